"""PyTorch itself loads what `graft weights convert --to torchvision` writes, and computes graft's logits with it.

    check_torch_export.py GRAFT_BINARY WEIGHTS_DIR CHECKPOINT WORK_DIR

1. CHECKPOINT (a `graft finetune` run: a ResNet-18 with a new head) -> torchvision file -> torchvision's resnet18
   with that many classes, load_state_dict(strict=True), eval: its logits on random images equal `graft run`'s
   on the checkpoint itself (max|diff| / max|graft| < 1e-4).
2. The Keras-1 VGG16 fixture (Keras layouts) -> torchvision file -> torchvision's vgg16: its logits equal torch's
   reference logits for the same weights (Keras -> graft -> PyTorch, both conversions and their inverses).
3. A Keras-dialect ResNet is refused with one line on stderr, and no file is written.
"""
import os
import subprocess
import sys

import h5py
import numpy as np
import torch
import torchvision


def convert_to_torch(graft, src, dst):
    if os.path.exists(dst):
        os.remove(dst)
    return subprocess.run([graft, "weights", "convert", "--to", "torchvision", src, dst], capture_output=True,
                          text=True)


def torch_model(arch, path):
    """torchvision's `arch` with the file's classes, loaded strictly as the README says."""
    with h5py.File(path, "r") as f:
        state = {k: torch.as_tensor(f[k][()]) for k in f}
    classes = state["fc.weight" if arch.startswith("resnet") else "classifier.6.weight"].shape[0]
    model = getattr(torchvision.models, arch)(num_classes=classes)
    model.load_state_dict(state, strict=True)
    return model.eval()


def torch_logits(model, nhwc):
    with torch.no_grad():
        return model(torch.from_numpy(nhwc).permute(0, 3, 1, 2).contiguous()).numpy()


def rel_diff(got, expected):
    if got.shape != expected.shape:
        return float("inf")
    return float(np.abs(got - expected).max() / np.abs(expected).max())


def main():
    graft, weights, checkpoint, work = sys.argv[1:5]
    os.makedirs(work, exist_ok=True)
    failures = 0

    # 1. a fine-tuned checkpoint, in PyTorch
    exported = os.path.join(work, "finetuned.torch.h5")
    conv = convert_to_torch(graft, checkpoint, exported)
    images = np.random.default_rng(0).standard_normal((3, 32, 32, 3)).astype(np.float32)
    inp, out = os.path.join(work, "images.h5"), os.path.join(work, "graft_logits.h5")
    with h5py.File(inp, "w") as f:
        f.create_dataset("input", data=images)
    run = subprocess.run([graft, "run", "--weights", checkpoint, "--input", inp, "--output", out],
                         capture_output=True, text=True)
    if conv.returncode != 0 or run.returncode != 0:
        print(f"FAIL checkpoint: {conv.stderr.strip()} {run.stderr.strip()}")
        failures += 1
    else:
        graft_out = h5py.File(out, "r")["output"][()]
        rel = rel_diff(torch_logits(torch_model("resnet18", exported), images), graft_out)
        failures += not rel < 1e-4
        print(f"{'ok  ' if rel < 1e-4 else 'FAIL'} fine-tuned checkpoint {graft_out.shape} in torchvision's resnet18: "
              f"max rel diff to graft {rel:.2e}")

    # 2. Keras VGG16 -> graft -> PyTorch
    ref = h5py.File(os.path.join(weights, "reference_io.h5"), "r")
    exported = os.path.join(work, "vgg16_from_keras.torch.h5")
    conv = convert_to_torch(graft, os.path.join(weights, "vgg16_keras1.h5"), exported)
    if conv.returncode != 0:
        print(f"FAIL vgg16: {conv.stderr.strip()}")
        failures += 1
    else:
        rel = rel_diff(torch_logits(torch_model("vgg16", exported), ref["input_224"][()].astype(np.float32)),
                       ref["vgg16_logits_224"][()])
        failures += not rel < 1e-4
        print(f"{'ok  ' if rel < 1e-4 else 'FAIL'} Keras VGG16 through graft in torchvision's vgg16: max rel diff to "
              f"torch's logits {rel:.2e}")
        os.remove(exported)  # 553 MB

    # 3. refused
    exported = os.path.join(work, "keras_resnet.torch.h5")
    conv = convert_to_torch(graft, os.path.join(weights, "resnet50_keras.h5"), exported)
    lines = [l for l in conv.stderr.splitlines() if l.strip()]
    ok = 0 < conv.returncode < 128 and len(lines) == 1 and "keras dialect" in lines[0] and not os.path.exists(exported)
    failures += not ok
    print(f"{'ok  ' if ok else 'FAIL'} Keras-dialect ResNet refused: exit {conv.returncode}, stderr {lines}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
