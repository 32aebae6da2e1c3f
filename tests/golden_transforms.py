"""Golden fixture for io/transforms (tests/test_transforms.cpp): PyTorch's bilinear interpolate and torchvision's
eval pipeline (Resize of the shorter side or to a square, CenterCrop, Normalize) on random uint8 images.

Images are HWC uint8 stored as floats; torch works on CHW float tensors (x / 255 for the pipeline, as ToTensor
gives). Resizing is bilinear, align_corners=False, with and without antialias - both of which graft implements
(antialias where a side shrinks: torchvision's behaviour on PIL images).
"""
import os

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms as T
from torchvision.transforms import InterpolationMode

from golden_io import write

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def chw(img):
    return torch.from_numpy(img.astype(np.float32)).permute(2, 0, 1).contiguous()


def hwc(t):
    return t.permute(1, 2, 0).contiguous().numpy()


def make(outdir):
    rng = np.random.default_rng(2024)
    arrays = {}
    # (h, w, c) -> (out_h, out_w): mixed up/down, non-square, 1 and 3 channels, the identity
    # antialias: large shrinks (a window of ~35 taps), 1-pixel sides, a window wider than the image
    resizes = [(7, 11, 3, 16, 5), (13, 9, 1, 5, 20), (6, 6, 3, 3, 3), (5, 7, 3, 12, 15), (8, 9, 1, 8, 9),
               (40, 30, 3, 17, 23), (120, 90, 3, 7, 11), (1, 9, 3, 1, 3), (9, 1, 1, 4, 1), (5, 31, 3, 2, 1),
               (64, 64, 3, 64, 31)]
    for i, (h, w, c, oh, ow) in enumerate(resizes):
        img = rng.integers(0, 256, size=(h, w, c), dtype=np.uint8)
        arrays[f"resize{i}_in"] = img
        for aa in (False, True):
            out = F.interpolate(chw(img)[None], size=(oh, ow), mode="bilinear", align_corners=False, antialias=aa)[0]
            arrays[f"resize{i}_out" + ("_antialias" if aa else "")] = hwc(out)

    # (h, w, c, size, resize_to (0 = int(size * 256 / 224)), exact_resize, antialias)
    evals = [(37, 53, 3, 24, 0, 0, 0),   # landscape
             (53, 37, 3, 24, 0, 0, 0),   # portrait
             (40, 40, 1, 32, 0, 0, 0),   # gray square
             (31, 45, 3, 20, 27, 0, 0),  # explicit resize_to
             (19, 23, 3, 16, 0, 0, 0),   # crop offset 2.5 -> 2 (round half to even)
             (28, 28, 1, 32, 0, 1, 0),   # exact resize up (Fashion-MNIST to 32x32)
             (50, 20, 3, 16, 0, 1, 0),   # exact resize, aspect not kept
             (37, 53, 3, 24, 0, 0, 1),   # antialiased: landscape
             (53, 37, 3, 24, 0, 0, 1),   # portrait
             (90, 120, 3, 24, 0, 0, 1),  # a large shrink
             (50, 20, 3, 16, 0, 1, 1),   # exact resize: one side shrinks, the other grows
             (28, 28, 1, 32, 0, 1, 1)]   # growing only: the same as without antialias
    normalize = T.Normalize(MEAN, STD)
    for i, (h, w, c, size, resize_to, exact, aa) in enumerate(evals):
        img = rng.integers(0, 256, size=(h, w, c), dtype=np.uint8)
        x = chw(img) / 255.0
        if exact:
            x = T.Resize((size, size), interpolation=InterpolationMode.BILINEAR, antialias=bool(aa))(x)
        else:
            short = resize_to if resize_to else int(size * 256 / 224)
            x = T.Resize(short, interpolation=InterpolationMode.BILINEAR, antialias=bool(aa))(x)
            x = T.CenterCrop(size)(x)
        if c == 1:
            x = x.expand(3, -1, -1)
        x = normalize(x)
        arrays[f"eval{i}_in"] = img
        arrays[f"eval{i}_out"] = hwc(x)
        arrays[f"eval{i}_options"] = np.array([size, resize_to, exact, aa], dtype=np.float32)
    write(os.path.join(outdir, "transforms.txt"), arrays)
