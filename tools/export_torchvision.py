#!/usr/bin/env python3
"""Exports a torchvision model's state_dict to the HDF5 layout graft imports (io/weights.h, format "torchvision").

One dataset per state_dict key, named exactly by the key, in PyTorch's own shape and layout (conv OIHW, linear
(out, in)); floating tensors as float32; BatchNorm's integer num_batches_tracked is kept as int64 (graft ignores
it). Root attributes: graft_format = "torchvision-state-dict", arch = the torchvision model name.

    export_torchvision.py resnet50 resnet50.h5                       # ImageNet weights (downloads via torchvision)
    export_torchvision.py vgg16 vgg16.h5 --weights IMAGENET1K_V1
    export_torchvision.py resnet50 random.h5 --weights none --seed 0  # random initialisation
    export_torchvision.py resnet50 mine.h5 --state-dict finetuned.pt  # any saved state_dict

graft then loads it with load_weights(model, "resnet50.h5") into make_model("resnet50") (dialect torchvision).
"""
import argparse
import os
import sys
import tempfile

import h5py
import numpy as np


def export_state_dict(state_dict, path, arch=None):
    """Writes `state_dict` (key -> tensor) to `path`; the file appears complete or not at all.

    It is written under a new temporary name beside `path` (created exclusively: nothing planted there is
    followed, and two exports of one file never share it), removed if anything fails, and renamed over `path` at
    the end."""
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), prefix=os.path.basename(path) + ".partial-")
    os.close(fd)
    try:
        with h5py.File(tmp, "w") as f:
            for key, value in state_dict.items():
                array = value.detach().cpu().numpy()
                if value.is_floating_point():
                    array = array.astype(np.float32)
                f.create_dataset(key, data=array)
            f.attrs["graft_format"] = "torchvision-state-dict"
            if arch:
                f.attrs["arch"] = arch
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def current_umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("arch", help="torchvision model name: resnet18/34/50/101/152, resnext50_32x4d, "
                        "resnext101_32x8d/64x4d, wide_resnet50_2/101_2, vgg11/13/16/19[_bn]")
    parser.add_argument("out", help="output .h5 file")
    parser.add_argument("--weights", default="DEFAULT",
                        help="torchvision weights enum name (DEFAULT, IMAGENET1K_V1, IMAGENET1K_V2) or 'none'")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random initialisation (--weights none)")
    parser.add_argument("--state-dict", help="a torch.save()d state_dict to export instead of torchvision weights")
    args = parser.parse_args(argv)

    import torch
    import torchvision

    torch.manual_seed(args.seed)
    builder = getattr(torchvision.models, args.arch, None)
    if builder is None:
        sys.exit(f"export_torchvision: unknown torchvision model '{args.arch}'")
    weights = None if args.weights.lower() == "none" or args.state_dict else args.weights
    model = builder(weights=weights)
    if args.state_dict:
        model.load_state_dict(torch.load(args.state_dict, map_location="cpu"))
    export_state_dict(model.state_dict(), args.out, arch=args.arch)
    count = sum(v.numel() for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked"))
    print(f"export_torchvision: {args.arch} ({count} values) -> {args.out}")


if __name__ == "__main__":
    main()
