#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_checkpoint (tests/fuzz/checkpoint_corpus): checkpoints of the fuzz target's tiny
model in graft's native layout (io/checkpoint.h) - two valid ones (weights only; weights + Adam state) and broken
variants that each hit one refusal path (wrong shape, missing tensor, bad integer attributes, a dataset claiming
2^40 elements, a non-integer Adam step, integer data, a truncated file). Run once; the files are committed.
    /usr/bin/python3 tests/fuzz/make_checkpoint_corpus.py tests/fuzz/checkpoint_corpus
"""
import os
import sys

import h5py
import numpy as np

# The model of tests/fuzz/fuzz_checkpoint.cpp: Conv2d(3->4, 3x3, no bias), BatchNorm2d(4), Linear(4->2).
STATE = {"0.weight": (4, 3, 3, 3), "1.weight": (4,), "1.bias": (4,), "1.running_mean": (4,),
         "1.running_var": (4,), "2.weight": (2, 4), "2.bias": (2,)}
PARAMS = ["0.weight", "1.weight", "1.bias", "2.weight", "2.bias"]  # trainable_parameters() order
META = {"format": "graft-checkpoint", "graft_version": "0.1.0", "arch": "tiny", "dialect": "torchvision",
        "num_classes": "2", "epoch": "1", "step": "7", "schedule_step": "7", "rng_seed": "42", "rng_offset": "96"}


def write(path, meta=None, state=None, optimizer=None, extra=None):
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
        for key, value in (meta or META).items():
            # fixed-length, as graft writes them (io/hdf5_write.cpp); variable-length strings would put a global
            # heap in every seed, whose damaged copies crash libhdf5 1.10 itself
            f.attrs.create(key, np.bytes_(value.encode()))
        for name, shape in (state or STATE).items():
            f.create_dataset("model/" + name, data=rng.standard_normal(shape).astype("f4"))
        for name, value in (optimizer or {}).items():
            f.create_dataset("optimizer/" + name, data=value)
        if extra:
            extra(f)


def adam_state(step=7.0):
    out = {}
    for i, name in enumerate(PARAMS):
        out[f"group0.param{i}.exp_avg"] = np.full(STATE[name], 0.01, "f4")
        out[f"group0.param{i}.exp_avg_sq"] = np.full(STATE[name], 1e-4, "f4")
        out[f"group0.param{i}.step"] = np.array([step], "f4")
    return out


def main(out):
    os.makedirs(out, exist_ok=True)
    p = lambda name: os.path.join(out, name)
    write(p("valid_weights.h5"))
    write(p("valid_adam.h5"), optimizer=adam_state())
    write(p("wrong_shape.h5"), state={**STATE, "0.weight": (4, 3, 3, 2)})
    write(p("missing_tensor.h5"), state={k: v for k, v in STATE.items() if k != "1.running_var"})
    write(p("bad_rng_seed.h5"), meta={**META, "rng_seed": "-1"})
    write(p("bad_step.h5"), meta={**META, "step": "7x", "num_classes": "99999999999"})
    write(p("adam_fractional_step.h5"), optimizer=adam_state(step=1.5))
    write(p("integer_data.h5"), optimizer={"group0.param1.exp_avg": np.ones(4, "i4")})
    # Claims 2^40 float32 elements (4 TiB) without storing them: must be refused before allocating.
    write(p("huge_dataset.h5"), optimizer=adam_state(),
          extra=lambda f: f["optimizer"].create_dataset("group0.param9.exp_avg", shape=(2**40,), dtype="f4"))
    with open(p("valid_adam.h5"), "rb") as f:
        data = f.read()
    with open(p("truncated.h5"), "wb") as f:
        f.write(data[: len(data) // 2])


if __name__ == "__main__":
    main(sys.argv[1])
