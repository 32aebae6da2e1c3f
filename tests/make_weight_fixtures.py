"""Weight-import fixtures for tests/test_weights.cpp (and test_weights_export.cpp, test_hdf5.cpp), written into
the directory given as argv[1].

Models come from Debian's torchvision with seeded random weights and randomised BatchNorm statistics; logits from
torch itself (eval mode) on fixed inputs. The Keras-layout files hold the SAME torch weights converted to Keras
layouts (conv OIHW -> HWIO, dense (out,in) -> (in,out), VGG fc1 rows in (h,w,c) order), written by h5py in the
layouts Keras's own writers produce (shared/WEIGHT_FORMATS.md). The Keras ResNet-50 is torchvision's with Keras's
v1 differences applied (stride on the first 1x1 conv, conv biases, BN eps 1.001e-5 or 1e-3): torch's forward of
that model is the reference for graft's keras dialects.

The large files (~2.3 GB in all) are regenerated only when the STAMP file is missing or from another version.
"""
import os
import re
import sys

import h5py
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from export_torchvision import export_state_dict  # noqa: E402

torch = torchvision = None  # imported by main() only when the fixtures must be (re)generated: ctest runs it often

VERSION = "weights-fixtures-v3"
BLOCKS50 = [3, 4, 6, 3]
FILES = ["resnet50_torchvision.h5", "vgg16_torchvision.h5", "vgg16_keras1.h5", "vgg16_keras3.weights.h5",
         "resnet50_keras.h5", "resnet50_keras_2016.h5", "resnet50_keras_model.h5", "resnet50_keras3.weights.h5",
         "resnet50_keras3_noname.weights.h5", "reference_io.h5", "not_weights.h5", "int_weights.h5",
         "float_kinds.h5", "float_kinds_expected.h5", "nan_weights.h5", "not_hdf5.h5", "truncated.h5"]


def randomise_bn(model, gen):
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            c = m.num_features
            m.weight.data = torch.rand(c, generator=gen) * 0.6 + 0.7
            m.bias.data = torch.randn(c, generator=gen) * 0.1
            m.running_mean.data = torch.randn(c, generator=gen) * 0.1
            m.running_var.data = torch.rand(c, generator=gen) * 0.6 + 0.7


def nhwc(x):
    return x.permute(0, 2, 3, 1).contiguous().numpy()


def logits(model, x):
    with torch.no_grad():
        return model(x).numpy()


def write_arrays(path, arrays):
    tmp = path + ".partial"
    with h5py.File(tmp, "w") as f:
        for k, v in arrays.items():
            f.create_dataset(k, data=np.asarray(v, dtype=np.float32))
    os.replace(tmp, path)


# ---- Keras layouts -----------------------------------------------------------------------------------------------
def hwio(w):
    return w.detach().numpy().transpose(2, 3, 1, 0).copy()


def dense(w):
    return w.detach().numpy().T.copy()


def vec(t):
    return t.detach().numpy().copy()


def keras_resnet50_layers(m, style, head):
    """[(layer name, keras class, [(weight name, array)])] in Keras's model.layers order, weightless layers too."""
    def conv(name, c):
        if style == "2016":
            return (name, "Conv2D", [(f"{name}_W:0", hwio(c.weight)), (f"{name}_b:0", vec(c.bias))])
        return (name, "Conv2D", [(f"{name}/kernel:0", hwio(c.weight)), (f"{name}/bias:0", vec(c.bias))])

    def bn(name, b):
        parts = [vec(b.weight), vec(b.bias), vec(b.running_mean), vec(b.running_var)]
        suffixes = (["_gamma:0", "_beta:0", "_running_mean:0", "_running_std:0"] if style == "2016"
                    else ["/gamma:0", "/beta:0", "/moving_mean:0", "/moving_variance:0"])
        return (name, "BatchNormalization", [(name + s, p) for s, p in zip(suffixes, parts)])

    def plain(name, cls):
        return (name, cls, [])

    layers = [plain("input_1", "InputLayer")]
    act = iter(range(1, 1000))
    if style == "2016":
        layers += [plain("zero_padding2d_1", "ZeroPadding2D"), conv("conv1", m.conv1), bn("bn_conv1", m.bn1),
                   plain(f"activation_{next(act)}", "Activation"), plain("max_pooling2d_1", "MaxPooling2D")]
    else:
        layers += [plain("conv1_pad", "ZeroPadding2D"), conv("conv1_conv", m.conv1), bn("conv1_bn", m.bn1),
                   plain("conv1_relu", "Activation"), plain("pool1_pad", "ZeroPadding2D"),
                   plain("pool1_pool", "MaxPooling2D")]
    adds = iter(range(1, 100))
    for s, n in enumerate(BLOCKS50):
        for b in range(n):
            blk = getattr(m, f"layer{s + 1}")[b]
            if style == "2016":
                p = f"{s + 2}{chr(ord('a') + b)}_branch"
                for k, letter in ((1, "a"), (2, "b")):
                    layers += [conv(f"res{p}2{letter}", getattr(blk, f"conv{k}")),
                               bn(f"bn{p}2{letter}", getattr(blk, f"bn{k}")),
                               plain(f"activation_{next(act)}", "Activation")]
                layers.append(conv(f"res{p}2c", blk.conv3))
                if b == 0:  # Keras 2.0: add([x, shortcut])
                    layers.append(conv(f"res{p}1", blk.downsample[0]))
                layers.append(bn(f"bn{p}2c", blk.bn3))
                if b == 0:
                    layers.append(bn(f"bn{p}1", blk.downsample[1]))
                layers += [plain(f"add_{next(adds)}", "Add"), plain(f"activation_{next(act)}", "Activation")]
            else:
                p = f"conv{s + 2}_block{b + 1}_"
                for k in (1, 2):
                    layers += [conv(f"{p}{k}_conv", getattr(blk, f"conv{k}")), bn(f"{p}{k}_bn", getattr(blk, f"bn{k}")),
                               plain(f"{p}{k}_relu", "Activation")]
                if b == 0:  # add([shortcut, x]): depth ties are broken in favour of the shortcut
                    layers += [conv(f"{p}0_conv", blk.downsample[0]), conv(f"{p}3_conv", blk.conv3),
                               bn(f"{p}0_bn", blk.downsample[1]), bn(f"{p}3_bn", blk.bn3)]
                else:
                    layers += [conv(f"{p}3_conv", blk.conv3), bn(f"{p}3_bn", blk.bn3)]
                layers += [plain(f"{p}add", "Add"), plain(f"{p}out", "Activation")]
    if style == "2016":
        layers += [plain("avg_pool", "AveragePooling2D"), plain("flatten_1", "Flatten")]
        head_weights = [("fc1000_W:0", dense(m.fc.weight)), ("fc1000_b:0", vec(m.fc.bias))]
        layers.append(("fc1000", "Dense", head_weights))
    else:
        layers.append(plain("avg_pool", "GlobalAveragePooling2D"))
        layers.append((head, "Dense", [(f"{head}/kernel:0", dense(m.fc.weight)), (f"{head}/bias:0", vec(m.fc.bias))]))
    return layers


def keras_vgg16_layers(m, keras1_names):
    convs = [mod for mod in m.features if isinstance(mod, torch.nn.Conv2d)]
    per_block = [2, 2, 3, 3, 3]
    fc1 = m.classifier[0].weight.detach()  # (4096, 512*7*7) columns in torch's (c,h,w) order
    fc1 = fc1.reshape(4096, 512, 7, 7).permute(0, 2, 3, 1).reshape(4096, -1).numpy().T.copy()  # rows (h,w,c)

    def names(layer):
        return (f"{layer}_W_1:0", f"{layer}_b_1:0") if keras1_names else (f"{layer}/kernel:0", f"{layer}/bias:0")

    layers = [("input_1", "InputLayer", [])]
    i = 0
    for b, n in enumerate(per_block):
        for c in range(n):
            name = f"block{b + 1}_conv{c + 1}"
            wn, bn = names(name)
            layers.append((name, "Conv2D", [(wn, hwio(convs[i].weight)), (bn, vec(convs[i].bias))]))
            i += 1
        layers.append((f"block{b + 1}_pool", "MaxPooling2D", []))
    layers.append(("flatten", "Flatten", []))
    heads = (("fc1", fc1, m.classifier[0].bias), ("fc2", dense(m.classifier[3].weight), m.classifier[3].bias),
             ("predictions", dense(m.classifier[6].weight), m.classifier[6].bias))
    for name, w, bias in heads:
        wn, bn = names(name)
        layers.append((name, "Dense", [(wn, w), (bn, vec(bias))]))
    return layers


def string_attr(names, vlen):
    if vlen:
        return np.array(names, dtype=h5py.string_dtype())
    return np.array([n.encode("utf8") for n in names])  # fixed length |S<longest>, no terminator on the longest


def write_keras_legacy(path, layers, vlen=False, split=1, versions=True, whole_model=False):
    """Keras's save_weights_to_hdf5_group layout; whole_model puts it under /model_weights like model.save()."""
    tmp = path + ".partial"
    with h5py.File(tmp, "w") as f:
        g = f.create_group("model_weights") if whole_model else f
        if whole_model:
            f.attrs["keras_version"] = "2.2.4"
            f.attrs["backend"] = "tensorflow"
            f.attrs["model_config"] = '{"class_name": "Model", "config": {"name": "resnet50"}}'
        names = [l[0] for l in layers]
        if split == 1:
            g.attrs["layer_names"] = string_attr(names, vlen)
        else:  # Keras splits attributes over 64512 bytes into layer_names0, layer_names1, ...
            for i, chunk in enumerate(np.array_split(np.array(names, dtype=object), split)):
                g.attrs[f"layer_names{i}"] = string_attr(list(chunk), vlen)
        if versions:
            g.attrs["backend"] = "tensorflow"
            g.attrs["keras_version"] = "2.2.4"
        for name, _, weights in layers:
            lg = g.create_group(name)
            if weights:
                lg.attrs["weight_names"] = string_attr([w for w, _ in weights], vlen)
            else:
                lg.attrs["weight_names"] = np.asarray([])  # what Keras writes: float64, shape (0,)
            for wname, value in weights:
                lg.create_dataset(wname, data=np.asarray(value, dtype=np.float32))  # '/' makes nested groups
    os.replace(tmp, path)


def snake(cls):
    """keras.src.utils.naming.to_snake_case: Conv2D -> conv2d, BatchNormalization -> batch_normalization."""
    name = re.sub(r"\W+", "", cls)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def write_keras3(path, layers, names):
    """Keras 3 model.save_weights(): /layers/<class_snake>[_k]/vars/<i>; `name` attribute when names (>= 3.6)."""
    tmp = path + ".partial"
    with h5py.File(tmp, "w") as f:
        f.create_group("vars")
        lg = f.create_group("layers")
        used = {}
        for name, cls, weights in layers:
            key = snake(cls)
            if key in used:
                used[key] += 1
                key = f"{key}_{used[key]}"
            else:
                used[key] = 0
            v = lg.create_group(key).create_group("vars")
            if names:
                v.attrs["name"] = name
            for i, (_, value) in enumerate(weights):
                v.create_dataset(str(i), data=np.asarray(value, dtype=np.float32))
    os.replace(tmp, path)


def keras_v1_resnet50(seed, gen):
    """torchvision's ResNet-50 turned into Keras's ResNet v1: stride on conv1 of a stage's first block, conv biases."""
    torch.manual_seed(seed)
    m = torchvision.models.resnet50()
    randomise_bn(m, gen)
    for mod in m.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.eps = 1.001e-5
        if isinstance(mod, torch.nn.Conv2d):
            mod.bias = torch.nn.Parameter(torch.randn(mod.out_channels, generator=gen) * 0.05)
    for layer in (m.layer2, m.layer3, m.layer4):
        layer[0].conv1.stride = (2, 2)
        layer[0].conv2.stride = (1, 1)
    return m.eval()


def make_small_files(outdir):
    """Bad and unusual inputs (for resnet18-sized keys), each a few MB."""
    rng = np.random.default_rng(7)
    with h5py.File(os.path.join(outdir, "not_weights.h5"), "w") as f:
        f.create_dataset("data/images", data=rng.integers(0, 255, (4, 8, 8, 3), dtype=np.uint8))
        f.create_dataset("data/labels", data=np.arange(4, dtype=np.int64))
    with h5py.File(os.path.join(outdir, "int_weights.h5"), "w") as f:
        f.create_dataset("fc.weight", data=rng.integers(-3, 3, (1000, 512), dtype=np.int32))
        f.create_dataset("fc.bias", data=rng.standard_normal(1000).astype(np.float32))
    w64 = rng.standard_normal((1000, 512))
    b16 = rng.standard_normal(1000).astype(np.float16)
    with h5py.File(os.path.join(outdir, "float_kinds.h5"), "w") as f:
        f.create_dataset("fc.weight", data=w64)  # float64
        f.create_dataset("fc.bias", data=b16)  # float16
        f.create_dataset("layer1.0.bn1.num_batches_tracked", data=np.int64(12))
    write_arrays(os.path.join(outdir, "float_kinds_expected.h5"),
                 {"fc.weight": w64.astype(np.float32), "fc.bias": b16.astype(np.float32)})
    with h5py.File(os.path.join(outdir, "nan_weights.h5"), "w") as f:
        w = rng.standard_normal((64, 64, 3, 3)).astype(np.float32)
        w[3, 5, 1, 2] = np.nan
        w[7, 0, 0, 0] = np.nan
        b = rng.standard_normal(1000).astype(np.float32)
        b[10] = np.inf
        f.create_dataset("layer1.0.conv1.weight", data=w)
        f.create_dataset("fc.bias", data=b)
    with open(os.path.join(outdir, "not_hdf5.h5"), "w") as f:
        f.write("this is a text file, not HDF5\n" * 20)
    with open(os.path.join(outdir, "float_kinds.h5"), "rb") as f:
        head = f.read(200000)  # the file is ~4 MB: cut inside the data
    with open(os.path.join(outdir, "truncated.h5"), "wb") as f:
        f.write(head)


def main():
    outdir = sys.argv[1]
    os.makedirs(outdir, exist_ok=True)
    stamp = os.path.join(outdir, "STAMP")
    complete = all(os.path.exists(os.path.join(outdir, f)) for f in FILES)
    if complete and os.path.exists(stamp) and open(stamp).read().strip() == VERSION:
        print(f"weight fixtures: up to date in {outdir}")
        return
    if os.path.exists(stamp):
        os.remove(stamp)
    global torch, torchvision
    import torch
    import torchvision
    torch.set_num_threads(2)
    gen = torch.Generator().manual_seed(1234)
    x224 = torch.randn(2, 3, 224, 224, generator=gen)
    x160 = torch.randn(2, 3, 160, 192, generator=gen)
    x112 = torch.randn(2, 3, 112, 112, generator=gen)

    # torchvision ResNet-50 and VGG16 (the exports graft's users make with tools/export_torchvision.py)
    torch.manual_seed(0)
    r50 = torchvision.models.resnet50()
    randomise_bn(r50, gen)
    r50.eval()
    export_state_dict(r50.state_dict(), os.path.join(outdir, "resnet50_torchvision.h5"), arch="resnet50")
    torch.manual_seed(1)
    vgg = torchvision.models.vgg16().eval()
    export_state_dict(vgg.state_dict(), os.path.join(outdir, "vgg16_torchvision.h5"), arch="vgg16")
    # Per-stage activations of torch's ResNet-50 at 224: the tests name the first stage where graft diverges.
    stages = {}
    hooks = [getattr(r50, name).register_forward_hook(
        lambda mod, inp, out, name=name: stages.__setitem__(name, out.detach()))
        for name in ("maxpool", "layer1", "layer2", "layer3", "layer4", "avgpool")]
    logits(r50, x224)
    for h in hooks:
        h.remove()
    io = {f"resnet50_stage_{name}_224": (nhwc(t) if t.dim() == 4 and name != "avgpool" else t.flatten(1).numpy())
          for name, t in stages.items()}
    io.update({"input_224": nhwc(x224), "input_160x192": nhwc(x160), "input_112": nhwc(x112),
          "resnet50_logits_224": logits(r50, x224), "resnet50_logits_160x192": logits(r50, x160),
          "vgg16_logits_224": logits(vgg, x224)})

    # Keras layouts of the same VGG16 weights: the Keras-1 file (no versions) and a Keras 3 file without names
    vgg_keras = keras_vgg16_layers(vgg, keras1_names=True)
    write_keras_legacy(os.path.join(outdir, "vgg16_keras1.h5"), vgg_keras, versions=False)
    write_keras3(os.path.join(outdir, "vgg16_keras3.weights.h5"), vgg_keras, names=False)
    del vgg, vgg_keras

    # Keras's ResNet-50 (v1) as a torch model: the reference for graft's keras dialects
    kr = keras_v1_resnet50(2, gen)
    io["keras_resnet50_logits_112"] = logits(kr, x112)
    for mod in kr.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.eps = 1e-3
    kr.maxpool.padding = 0  # the 2016 model pooled without padding (112 -> 55)
    io["keras2016_resnet50_logits_112"] = logits(kr, x112)
    kr.maxpool.padding = 1
    layers_2018 = keras_resnet50_layers(kr, "2018", "probs")
    write_keras_legacy(os.path.join(outdir, "resnet50_keras.h5"), layers_2018)
    write_keras_legacy(os.path.join(outdir, "resnet50_keras_2016.h5"), keras_resnet50_layers(kr, "2016", "fc1000"),
                       vlen=True, split=2, versions=False)
    write_keras_legacy(os.path.join(outdir, "resnet50_keras_model.h5"),
                       keras_resnet50_layers(kr, "2018", "predictions"), vlen=True, whole_model=True)
    write_keras3(os.path.join(outdir, "resnet50_keras3.weights.h5"), layers_2018, names=True)
    write_keras3(os.path.join(outdir, "resnet50_keras3_noname.weights.h5"), layers_2018, names=False)
    write_arrays(os.path.join(outdir, "reference_io.h5"), io)
    make_small_files(outdir)
    with open(stamp, "w") as f:
        f.write(VERSION + "\n")
    print(f"weight fixtures: written to {outdir}")


if __name__ == "__main__":
    main()
