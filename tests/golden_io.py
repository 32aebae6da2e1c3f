"""Writes golden fixtures that tests/golden.h reads: a text file of named float arrays.

Format, one record per array:
    name <key>
    shape <d0> <d1> ...        (nothing after 'shape' for a scalar)
    data <v0> <v1> ...         (float32 values, row-major, printed with 9 significant digits)
"""
import numpy as np


def write(path, arrays):
    with open(path, "w") as f:
        for key, value in arrays.items():
            a = np.asarray(value, dtype=np.float32)
            f.write(f"name {key}\n")
            f.write("shape" + "".join(f" {d}" for d in a.shape) + "\n")
            f.write("data" + "".join(f" {v:.9g}" for v in a.reshape(-1).tolist()) + "\n")


def nhwc(t):
    """torch NCHW tensor -> numpy NHWC array."""
    return t.detach().permute(0, 2, 3, 1).contiguous().numpy()


def conv_weight(t):
    """torch conv weight (O,I,KH,KW) -> graft (O,KH,KW,I)."""
    return t.detach().permute(0, 2, 3, 1).contiguous().numpy()
