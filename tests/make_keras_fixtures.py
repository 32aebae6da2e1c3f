"""Keras itself as the oracle: builds keras.applications ResNet50, ResNet50V2 and VGG16 (weights=None, logits), randomises
every weight (BatchNorm moving statistics too), saves them the ways Keras users have them - a legacy whole-model
`.h5` (model.save) and a Keras 3 `.weights.h5` (model.save_weights) - and stores Keras's own logits on fixed inputs.
ResNet50V2 also gets a copy of its `.weights.h5` without the layer names Keras >= 3.6 records (older Keras 3 files
have none: graft matches their layers by position).

    KERAS_BACKEND=jax python make_keras_fixtures.py OUTDIR

Run by the ctest set-up inside a venv with keras + jax from PyPI (tests/keras_fixtures.sh). Skips work when present.
"""
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "jax")
import h5py  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402

VERSION = "keras-fixtures-v3"


def write_keras1_vgg16(model, path):
    """The same weights in the Keras-1 layout of the real VGG16 ImageNet file: fixed-length byte-string attributes,
    no keras_version/backend, datasets named block1_conv1_W_1:0 / _b_1:0 directly in each layer's group."""
    with h5py.File(path, "w") as f:
        names = [layer.name for layer in model.layers]
        f.attrs["layer_names"] = np.array([n.encode() for n in names])
        for layer in model.layers:
            g = f.create_group(layer.name)
            weights = layer.get_weights()
            if not weights:
                g.attrs["weight_names"] = np.zeros((0,), np.float64)
                continue
            wnames = [f"{layer.name}_{tag}_1:0" for tag in ("W", "b")][: len(weights)]
            g.attrs["weight_names"] = np.array([n.encode() for n in wnames])
            for n, w in zip(wnames, weights):
                g.create_dataset(n, data=np.asarray(w, np.float32))


def write_without_names(src, dst):
    """A copy of a Keras 3 .weights.h5 file without the `name` attribute of each layer's vars group."""
    with h5py.File(src, "r") as fin, h5py.File(dst, "w") as fout:
        for key in fin:
            fin.copy(key, fout)

        def strip(_, obj):
            if isinstance(obj, h5py.Group) and "name" in obj.attrs:
                del obj.attrs["name"]
        fout.visititems(strip)


def randomise(model, rng):
    values = []
    for w in model.weights:
        name, shape = w.path, tuple(w.shape)
        if "moving_variance" in name or "gamma" in name:
            v = rng.uniform(0.5, 1.5, shape)
        elif "kernel" in name:
            fan_in = int(np.prod(shape[:-1]))
            v = rng.normal(0.0, np.sqrt(2.0 / fan_in), shape)
        else:  # bias, beta, moving_mean
            v = rng.normal(0.0, 0.05, shape)
        values.append(v.astype(np.float32))
    model.set_weights(values)


def main():
    outdir = sys.argv[1]
    os.makedirs(outdir, exist_ok=True)
    stamp = os.path.join(outdir, "STAMP")
    if os.path.exists(stamp) and open(stamp).read().strip() == VERSION:
        print("keras fixtures: up to date")
        return
    rng = np.random.default_rng(11)
    ref = {}
    apps = keras.applications
    for name, builder, size in (("resnet50", apps.ResNet50, 96), ("resnet50v2", apps.ResNet50V2, 64),
                                ("vgg16", apps.VGG16, 224)):
        kwargs = dict(weights=None, classifier_activation=None)
        if name != "vgg16":
            kwargs["input_shape"] = (size, size, 3)
        model = builder(**kwargs)
        randomise(model, rng)
        x = rng.uniform(-1.0, 1.0, (2, size, size, 3)).astype(np.float32)
        ref[f"{name}_input"] = x
        ref[f"{name}_logits"] = np.asarray(model.predict(x, verbose=0), dtype=np.float32)
        model.save(os.path.join(outdir, f"{name}_keras_model.h5"))
        model.save_weights(os.path.join(outdir, f"{name}.weights.h5"))
        if name == "vgg16":
            write_keras1_vgg16(model, os.path.join(outdir, "vgg16_keras1.h5"))
        if name == "resnet50v2":
            write_without_names(os.path.join(outdir, f"{name}.weights.h5"),
                                os.path.join(outdir, f"{name}_noname.weights.h5"))
        print(f"keras fixtures: {name} ({model.count_params()} parameters, keras {keras.__version__})")
    with h5py.File(os.path.join(outdir, "keras_reference.h5"), "w") as f:
        for key, value in ref.items():
            f.create_dataset(key, data=value)
    with open(stamp, "w") as f:
        f.write(VERSION + "\n")


if __name__ == "__main__":
    main()
