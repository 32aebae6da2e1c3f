"""Golden fixture conv.txt: torch.nn.functional.conv2d forward and backward (dx, dw, db) for several configs.

Inputs are float32 values; the references are computed in float64 by torch itself (NCHW), then stored NHWC with
graft's (K,R,S,C/groups) weight layout. Per config <c>: <c>_opts = [stride_h, stride_w, pad_h, pad_w, dilation_h,
dilation_w, groups, has_bias], <c>_x, <c>_w, <c>_b (if has_bias), <c>_dout, <c>_out, <c>_dx, <c>_dw, <c>_db.
"""
import os

import torch
import torch.nn.functional as F

from golden_io import conv_weight, nhwc, write

# name: (N, C, H, W, K, R, S, stride, pad, dilation, groups, bias)
CONFIGS = {
    "basic3x3": (2, 3, 7, 6, 4, 3, 3, (1, 1), (1, 1), (1, 1), 1, True),
    "stride2": (2, 4, 9, 8, 5, 3, 3, (2, 2), (1, 1), (1, 1), 1, True),
    "stem7x7": (1, 3, 11, 11, 4, 7, 7, (2, 2), (3, 3), (1, 1), 1, False),
    "pointwise": (2, 6, 5, 6, 8, 1, 1, (1, 1), (0, 0), (1, 1), 1, True),
    "downsample1x1": (2, 6, 7, 7, 4, 1, 1, (2, 2), (0, 0), (1, 1), 1, False),
    "dilation2": (1, 4, 9, 9, 6, 3, 3, (1, 1), (2, 2), (2, 2), 1, True),
    "groups2": (2, 4, 6, 7, 6, 3, 3, (1, 1), (1, 1), (1, 1), 2, True),
    "depthwise": (2, 5, 7, 6, 5, 3, 3, (2, 2), (1, 1), (1, 1), 5, True),
    "asymmetric": (1, 3, 8, 9, 2, 2, 3, (2, 1), (0, 2), (1, 2), 1, True),
    "grouped_pointwise": (1, 6, 4, 5, 9, 1, 1, (1, 1), (0, 0), (1, 1), 3, False),
}


def make(outdir):
    gen = torch.Generator().manual_seed(20240611)
    arrays = {}
    for name, (n, c, h, w, k, r, s, stride, pad, dilation, groups, has_bias) in CONFIGS.items():
        x = (torch.rand(n, c, h, w, generator=gen) * 2 - 1).double().requires_grad_()
        wt = ((torch.rand(k, c // groups, r, s, generator=gen) * 2 - 1) / (r * s * c // groups) ** 0.5)
        wt = wt.double().requires_grad_()
        b = (torch.rand(k, generator=gen) * 2 - 1).double().requires_grad_() if has_bias else None
        out = F.conv2d(x, wt, b, stride=stride, padding=pad, dilation=dilation, groups=groups)
        dout = (torch.rand(out.shape, generator=gen) * 2 - 1).double()
        out.backward(dout)
        arrays[f"{name}_opts"] = [stride[0], stride[1], pad[0], pad[1], dilation[0], dilation[1], groups,
                                  1 if has_bias else 0]
        arrays[f"{name}_x"] = nhwc(x)
        arrays[f"{name}_w"] = conv_weight(wt)
        if has_bias:
            arrays[f"{name}_b"] = b.detach().numpy()
            arrays[f"{name}_db"] = b.grad.numpy()
        arrays[f"{name}_dout"] = nhwc(dout)
        arrays[f"{name}_out"] = nhwc(out)
        arrays[f"{name}_dx"] = nhwc(x.grad)
        arrays[f"{name}_dw"] = conv_weight(wt.grad)
    write(os.path.join(outdir, "conv.txt"), arrays)
