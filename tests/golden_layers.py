"""Golden fixtures for batch_norm, pooling, pad2d and concat_channels (tests/test_norm.cpp, test_pool.cpp,
test_layout.cpp): PyTorch's own functions (NCHW) on float32 inputs, evaluated in float64, written NHWC.

For each case: the inputs, the output, a random upstream gradient `<case>.dy` and the gradients PyTorch's autograd
computes for it.
"""
import os

import torch
import torch.nn.functional as F

from golden_io import nhwc, write


def rand(*shape):
    """float32 values (what the C++ test loads), promoted to float64 for the reference computation."""
    return torch.randn(*shape, dtype=torch.float32).double()


def grads(out, inputs, dy):
    for t in inputs:
        t.grad = None
    out.backward(dy)
    return [t.grad for t in inputs]


def batch_norm_cases(arrays):
    # (N,C,H,W) in training and eval mode, and (N,C) in training mode
    for case, shape, training in [("bn_train", (3, 5, 4, 6), True), ("bn_eval", (3, 5, 4, 6), False),
                                  ("bn2d_train", (7, 5), True)]:
        c = shape[1]
        x = rand(*shape).requires_grad_(True)
        gamma = (torch.rand(c, dtype=torch.float32) + 0.5).double().requires_grad_(True)
        beta = rand(c).requires_grad_(True)
        rm0 = (torch.randn(c, dtype=torch.float32) * 0.3).double()
        rv0 = (torch.rand(c, dtype=torch.float32) + 0.5).double()
        rm, rv = rm0.clone(), rv0.clone()
        y = F.batch_norm(x, rm, rv, gamma, beta, training=training, momentum=0.1, eps=1e-5)
        dy = rand(*y.shape)
        dx, dgamma, dbeta = grads(y, [x, gamma, beta], dy)
        to_layout = nhwc if len(shape) == 4 else (lambda t: t.detach().numpy())
        arrays.update({f"{case}.x": to_layout(x), f"{case}.gamma": gamma.detach().numpy(),
                       f"{case}.beta": beta.detach().numpy(), f"{case}.running_mean0": rm0.numpy(),
                       f"{case}.running_var0": rv0.numpy(), f"{case}.y": to_layout(y),
                       f"{case}.running_mean": rm.numpy(), f"{case}.running_var": rv.numpy(),
                       f"{case}.dy": to_layout(dy), f"{case}.dx": to_layout(dx),
                       f"{case}.dgamma": dgamma.numpy(), f"{case}.dbeta": dbeta.numpy()})


def pool_case(arrays, case, x_shape, fn):
    x = rand(*x_shape).requires_grad_(True)
    y = fn(x)
    dy = rand(*y.shape)
    (dx,) = grads(y, [x], dy)
    arrays.update({f"{case}.x": nhwc(x), f"{case}.y": nhwc(y), f"{case}.dy": nhwc(dy), f"{case}.dx": nhwc(dx)})


def pool_cases(arrays):
    pool_case(arrays, "maxpool", (2, 3, 9, 11), lambda x: F.max_pool2d(x, 3, 2, 1))
    pool_case(arrays, "maxpool_ceil", (2, 3, 10, 8),
              lambda x: F.max_pool2d(x, (3, 2), (2, 3), (1, 1), ceil_mode=True))
    pool_case(arrays, "avgpool", (2, 3, 9, 11), lambda x: F.avg_pool2d(x, 3, 2, 1))
    pool_case(arrays, "avgpool_nopad_ceil", (2, 3, 10, 8),
              lambda x: F.avg_pool2d(x, (3, 2), (2, 3), (1, 1), ceil_mode=True, count_include_pad=False))
    pool_case(arrays, "adaptive_11x13", (2, 3, 11, 13), lambda x: F.adaptive_avg_pool2d(x, (7, 7)))
    pool_case(arrays, "adaptive_5x3", (2, 3, 5, 3), lambda x: F.adaptive_avg_pool2d(x, (7, 7)))
    pool_case(arrays, "global", (2, 4, 5, 7), lambda x: F.adaptive_avg_pool2d(x, 1))


def layout_cases(arrays):
    # F.pad pads the last axes first: (left, right, top, bottom)
    pool_case(arrays, "pad", (2, 3, 4, 5), lambda x: F.pad(x, (1, 2, 3, 0)))
    parts = [rand(2, c, 3, 4).requires_grad_(True) for c in (2, 3, 1)]
    y = torch.cat(parts, dim=1)
    dy = rand(*y.shape)
    dparts = grads(y, parts, dy)
    arrays.update({"cat.y": nhwc(y), "cat.dy": nhwc(dy)})
    for i, (p, dp) in enumerate(zip(parts, dparts)):
        arrays[f"cat.x{i}"] = nhwc(p)
        arrays[f"cat.dx{i}"] = nhwc(dp)


def make(outdir):
    torch.manual_seed(7)
    arrays = {}
    batch_norm_cases(arrays)
    pool_cases(arrays)
    layout_cases(arrays)
    write(os.path.join(outdir, "layers.txt"), arrays)


if __name__ == "__main__":
    import sys
    make(sys.argv[1])
