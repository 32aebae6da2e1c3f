"""ResNeXt and Wide ResNet in graft against torchvision itself (Debian's PyTorch 1.13 / torchvision 0.14).

    check_resnet_family.py GRAFT_BINARY WORK_DIR IMAGE_FOLDER

1. resnext50_32x4d and wide_resnet50_2, built by torchvision with seeded random weights, randomised BatchNorm
   statistics and 10 classes, are exported to HDF5 WITHOUT the arch attribute, so graft must tell the architecture
   from the tensors' shapes:
   - `graft weights inspect` names the architecture;
   - `graft run --weights` on random 64x64 images gives torch's eval logits (max|diff| / max|torch| < 1e-4);
   - `graft weights convert --to torchvision` writes a file that torch loads strictly, every tensor bit-equal to
     the original.
2. `graft finetune --arch resnext50_32x4d --weights` (the file above, a new 3-class head, layer4 unfrozen) trains an
   epoch on IMAGE_FOLDER and writes best.h5 holding a resnext50_32x4d.
3. resnext101_32x8d, resnext101_64x4d and wide_resnet101_2 (torchvision's random initialisation, one file at a
   time: up to 0.5 GB): `graft weights inspect` names the architecture, `graft run` loads the file strictly
   (every name and shape) into the model graft builds for that name, and `graft summary` counts the same
   parameters as torch.
"""
import os
import shutil
import subprocess
import sys

import h5py
import numpy as np
import torch
import torchvision


def randomise_bn(model, gen):
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            c = m.num_features
            m.weight.data = torch.rand(c, generator=gen) * 0.6 + 0.7
            m.bias.data = torch.randn(c, generator=gen) * 0.1
            m.running_mean.data = torch.randn(c, generator=gen) * 0.1
            m.running_var.data = torch.rand(c, generator=gen) * 0.6 + 0.7


def write_state(path, state):
    with h5py.File(path, "w") as f:
        for key, t in state.items():
            array = t.detach().numpy()
            f.create_dataset(key, data=array.astype(np.float32) if t.is_floating_point() else array)


def graft(binary, *args):
    return subprocess.run([binary, *args], capture_output=True, text=True)


def inspect_names(binary, path, arch):
    r = graft(binary, "weights", "inspect", path)
    ok = r.returncode == 0 and f"format torchvision, architecture {arch}," in r.stdout
    print(f"{arch}: inspect {'names it' if ok else 'FAILED: ' + (r.stdout.splitlines() or [r.stderr])[0]}")
    return ok


def check_small(binary, work, arch, seed):
    torch.manual_seed(seed)
    model = getattr(torchvision.models, arch)(num_classes=10)
    randomise_bn(model, torch.Generator().manual_seed(seed))
    model.eval()
    weights = os.path.join(work, arch + ".h5")
    write_state(weights, model.state_dict())
    ok = inspect_names(binary, weights, arch)

    images = np.random.default_rng(seed).standard_normal((2, 64, 64, 3)).astype(np.float32)
    inp, out = os.path.join(work, arch + "_in.h5"), os.path.join(work, arch + "_out.h5")
    with h5py.File(inp, "w") as f:
        f.create_dataset("input", data=images)
    r = graft(binary, "run", "--weights", weights, "--input", inp, "--output", out)
    if r.returncode != 0:
        print(f"{arch}: graft run FAILED: {r.stderr.strip()}")
        return False
    with torch.no_grad():
        expected = model(torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()).numpy()
    with h5py.File(out, "r") as f:
        got = f["output"][()]
    rel = float(np.abs(got - expected).max() / np.abs(expected).max()) if got.shape == expected.shape else np.inf
    print(f"{arch}: graft run vs torch, max rel diff {rel:.2e}")
    ok = ok and rel < 1e-4

    back = os.path.join(work, arch + ".back.h5")
    r = graft(binary, "weights", "convert", "--to", "torchvision", weights, back)
    if r.returncode != 0:
        print(f"{arch}: convert --to torchvision FAILED: {r.stderr.strip()}")
        return False
    with h5py.File(back, "r") as f:
        state = {k: torch.as_tensor(f[k][()]) for k in f}
    fresh = getattr(torchvision.models, arch)(num_classes=10)
    fresh.load_state_dict(state, strict=True)
    differ = [k for k, v in model.state_dict().items()
              if v.is_floating_point() and not torch.equal(v, fresh.state_dict()[k])]
    print(f"{arch}: exported back, loaded strictly by torch, {len(differ)} tensors differ")
    return ok and not differ


def main():
    binary, work, folder = sys.argv[1:4]
    os.makedirs(work, exist_ok=True)
    ok = all([check_small(binary, work, "resnext50_32x4d", 1), check_small(binary, work, "wide_resnet50_2", 2)])

    run = os.path.join(work, "run")
    shutil.rmtree(run, ignore_errors=True)
    r = graft(binary, "finetune", "--arch", "resnext50_32x4d", "--weights", os.path.join(work, "resnext50_32x4d.h5"),
              "--data", folder, "--unfreeze", "layer4", "--epochs", "1", "--size", "32", "--batch", "6", "--workers",
              "1", "--no-progress", "--out", run)
    trained = r.returncode == 0 and "1 epoch(s)" in r.stdout
    if trained:
        r = graft(binary, "weights", "inspect", os.path.join(run, "best.h5"))
        trained = r.returncode == 0 and "resnext50_32x4d" in r.stdout
    print("resnext50_32x4d: finetune " + ("trained an epoch" if trained else "FAILED: " + r.stdout + r.stderr))
    ok = ok and trained
    for name in os.listdir(work):
        if name.endswith(".h5"):
            os.remove(os.path.join(work, name))
    for arch in ["resnext101_32x8d", "resnext101_64x4d", "wide_resnet101_2"]:
        path = os.path.join(work, arch + ".h5")
        model = getattr(torchvision.models, arch)()
        write_state(path, model.state_dict())
        ok = inspect_names(binary, path, arch) and ok
        # `graft run` loads the file strictly into the model it builds for that name (on one small image: no
        # large file is written)
        tiny = os.path.join(work, "tiny_in.h5")
        with h5py.File(tiny, "w") as f:
            f.create_dataset("input", data=np.zeros((1, 32, 32, 3), np.float32))
        r = graft(binary, "run", "--weights", path, "--input", tiny, "--output", os.path.join(work, "tiny_out.h5"))
        print(f"{arch}: strict load {'done' if r.returncode == 0 else 'FAILED: ' + r.stderr.strip()}")
        ok = ok and r.returncode == 0
        os.remove(path)
        count = sum(p.numel() for p in model.parameters())
        r = graft(binary, "summary", "--arch", arch, "--size", "32")
        counted = f"parameters: {count:,} total" in r.stdout
        print(f"{arch}: summary {'counts' if counted else 'does NOT count'} torch's {count:,} parameters")
        ok = ok and counted
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
