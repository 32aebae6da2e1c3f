"""Golden fixture ops.txt: forward outputs and input gradients of the foundation ops (core/ops.h) from PyTorch.

Every case `<key>` stores its inputs (`<key>.<input>`), the output `<key>.out`, a random weight `<key>.w` of the
output's shape and the gradients `<key>.d<input>` of loss = (out * w).sum(), so tests/test_ops_golden.cpp runs
graft on exactly these numbers. Cross-entropy labels are stored as floats (the fixture format has one dtype).
"""
import os

import torch
import torch.nn.functional as F

import golden_io


def make(outdir):
    gen = torch.Generator().manual_seed(20240611)

    def randn(*shape):
        return torch.randn(shape, generator=gen, dtype=torch.float32)

    def uniform(low, high, *shape):
        return low + (high - low) * torch.rand(shape, generator=gen, dtype=torch.float32)

    def away_from_zero(*shape):
        # |x| >= 0.1: relu's kink stays far from every input, so its gradient is unambiguous
        x = randn(*shape)
        return x + 0.1 * torch.sign(x)

    def divisor(*shape):
        # |x| in [0.5, 2], random sign: division stays well conditioned
        return uniform(0.5, 2.0, *shape) * torch.where(torch.rand(shape, generator=gen) < 0.5, -1.0, 1.0)

    arrays = {}

    def case(key, fn, **inputs):
        leaves = {name: t.clone().requires_grad_(True) for name, t in inputs.items()}
        out = fn(*leaves.values())  # positional, in the order the inputs are given
        w = uniform(0.5, 1.5, *out.shape)
        (out * w).sum().backward()
        for name, t in leaves.items():
            arrays[f"{key}.{name}"] = t.detach().numpy()
        arrays[f"{key}.out"] = out.detach().numpy()
        arrays[f"{key}.w"] = w.numpy()
        for name, t in leaves.items():
            arrays[f"{key}.d{name}"] = t.grad.numpy()

    # Binary ops in graft's three broadcast modes, each with the broadcast operand on either side:
    # equal shapes, a one-element operand (shape () and shape (1,)), a 1-D operand over the last axis.
    modes = {
        "same": ((3, 5), (3, 5)),
        "scalar_b": ((3, 5), ()),
        "scalar_a": ((1,), (3, 5)),
        "channel_b": ((2, 3, 5), (5,)),
        "channel_a": ((5,), (2, 3, 5)),
    }
    binary = {"add": torch.add, "sub": torch.sub, "mul": torch.mul, "div": torch.div}
    for op, fn in binary.items():
        for mode, (shape_a, shape_b) in modes.items():
            b = divisor(*shape_b) if op == "div" else randn(*shape_b)
            case(f"{op}.{mode}", lambda a, b, fn=fn: fn(a, b), a=randn(*shape_a), b=b)

    # Tensor-scalar ops; the scalars are stored too.
    arrays["add_scalar.s"] = torch.tensor(0.75)
    case("add_scalar", lambda x: x + 0.75, x=randn(4, 3))
    arrays["mul_scalar.s"] = torch.tensor(-1.25)
    case("mul_scalar", lambda x: x * -1.25, x=randn(4, 3))

    case("neg", lambda x: -x, x=randn(4, 6))
    case("relu", torch.relu, x=away_from_zero(5, 7))
    case("exp", torch.exp, x=uniform(-3.0, 2.0, 4, 6))
    case("log", torch.log, x=uniform(0.1, 5.0, 4, 6))

    case("sum_all", lambda x: x.sum(), x=randn(3, 4, 5))
    case("mean_all", lambda x: x.mean(), x=randn(3, 4, 5))
    for axis in (0, 1, 2, -1):
        for keepdim in (False, True):
            suffix = f"axis{axis}.keep{int(keepdim)}"
            case(f"sum.{suffix}", lambda x, a=axis, k=keepdim: x.sum(a, keepdim=k), x=randn(3, 4, 5))
            case(f"mean.{suffix}", lambda x, a=axis, k=keepdim: x.mean(a, keepdim=k), x=randn(3, 4, 5))

    case("matmul", torch.matmul, a=randn(7, 5), b=randn(5, 3))

    def linear(x, weight, bias=None):
        return F.linear(x, weight, bias)

    case("linear.2d_bias", linear, x=randn(4, 6), weight=randn(3, 6), bias=randn(3))
    case("linear.2d_nobias", linear, x=randn(4, 6), weight=randn(3, 6))
    case("linear.3d_bias", linear, x=randn(2, 4, 6), weight=randn(3, 6), bias=randn(3))
    case("linear.3d_nobias", linear, x=randn(2, 4, 6), weight=randn(3, 6))

    case("softmax.2d", lambda x: torch.softmax(x, -1), x=2.0 * randn(4, 7))
    case("softmax.3d", lambda x: torch.softmax(x, -1), x=2.0 * randn(2, 3, 7))
    case("log_softmax.2d", lambda x: torch.log_softmax(x, -1), x=2.0 * randn(4, 7))
    case("log_softmax.3d", lambda x: torch.log_softmax(x, -1), x=2.0 * randn(2, 3, 7))

    labels = torch.randint(0, 5, (6,), generator=gen)
    for name, smoothing in (("s0", 0.0), ("s01", 0.1)):
        key = f"cross_entropy.{name}"
        arrays[f"{key}.labels"] = labels.float()
        arrays[f"{key}.smoothing"] = torch.tensor(smoothing)
        case(key, lambda logits, s=smoothing: F.cross_entropy(logits, labels, reduction="mean", label_smoothing=s),
             logits=2.0 * randn(6, 5))

    golden_io.write(os.path.join(outdir, "ops.txt"), arrays)


if __name__ == "__main__":
    import sys

    make(sys.argv[1])
