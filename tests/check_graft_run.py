"""End-to-end check of `graft run` (the black-box comparison interface) on every weight format.

    check_graft_run.py GRAFT_BINARY WEIGHTS_DIR WORK_DIR

For each weight file made by make_weight_fixtures.py: writes the reference input as dataset `input`, runs
`graft run`, and compares dataset `output` with the reference framework's logits (max|diff| / max|ref| < 1e-4).
Also checks that a bad input file fails with one line on stderr and a non-zero exit, leaving no output file.
"""
import os
import subprocess
import sys

import h5py
import numpy as np

CASES = [  # weight file, input, reference logits
    ("resnet50_torchvision.h5", "input_224", "resnet50_logits_224"),
    ("resnet50_keras.h5", "input_112", "keras_resnet50_logits_112"),
    ("resnet50_keras_2016.h5", "input_112", "keras2016_resnet50_logits_112"),
    ("resnet50_keras_model.h5", "input_112", "keras_resnet50_logits_112"),
    ("resnet50_keras3.weights.h5", "input_112", "keras_resnet50_logits_112"),
    ("vgg16_keras1.h5", "input_224", "vgg16_logits_224"),
]


def main():
    graft, weights, work = sys.argv[1:4]
    os.makedirs(work, exist_ok=True)
    ref = h5py.File(os.path.join(weights, "reference_io.h5"), "r")
    failures = 0
    for weight_file, input_name, logits_name in CASES:
        inp = os.path.join(work, input_name + ".h5")
        out = os.path.join(work, weight_file + ".out.h5")
        with h5py.File(inp, "w") as f:
            f.create_dataset("input", data=ref[input_name][()].astype(np.float32))
        if os.path.exists(out):
            os.remove(out)
        run = subprocess.run([graft, "run", "--weights", os.path.join(weights, weight_file), "--input", inp,
                              "--output", out], capture_output=True, text=True)
        if run.returncode != 0:
            print(f"FAIL {weight_file}: exit {run.returncode}: {run.stderr.strip()}")
            failures += 1
            continue
        got = h5py.File(out, "r")["output"][()]
        expected = ref[logits_name][()]
        rel = float(np.abs(got - expected).max() / np.abs(expected).max()) if got.shape == expected.shape else 1e9
        ok = rel < 1e-4
        failures += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {weight_file}: output {got.shape}, max rel diff {rel:.2e}")

    # weights convert -> native checkpoint -> run gives the same logits
    ckpt = os.path.join(work, "resnet50_keras_2016.graft.h5")
    conv = subprocess.run([graft, "weights", "convert", os.path.join(weights, "resnet50_keras_2016.h5"), ckpt],
                          capture_output=True, text=True)
    inp = os.path.join(work, "input_112.h5")
    out = os.path.join(work, "checkpoint.out.h5")
    run = subprocess.run([graft, "run", "--weights", ckpt, "--input", inp, "--output", out], capture_output=True,
                         text=True)
    if conv.returncode != 0 or run.returncode != 0:
        print(f"FAIL convert + run: {conv.stderr.strip()} {run.stderr.strip()}")
        failures += 1
    else:
        got, expected = h5py.File(out, "r")["output"][()], ref["keras2016_resnet50_logits_112"][()]
        rel = float(np.abs(got - expected).max() / np.abs(expected).max())
        failures += not rel < 1e-4
        print(f"{'ok  ' if rel < 1e-4 else 'FAIL'} convert to checkpoint + run: max rel diff {rel:.2e}")

    bad = os.path.join(work, "bad_input.h5")
    with h5py.File(bad, "w") as f:
        f.create_dataset("input", data=np.zeros((2, 8, 8, 4), np.float32))  # 4 channels
    out = os.path.join(work, "bad.out.h5")
    run = subprocess.run([graft, "run", "--weights", os.path.join(weights, "resnet50_torchvision.h5"), "--input",
                          bad, "--output", out], capture_output=True, text=True)
    lines = [l for l in run.stderr.splitlines() if l.strip()]
    ok = run.returncode not in (0,) and run.returncode < 128 and len(lines) == 1 and not os.path.exists(out)
    failures += not ok
    print(f"{'ok  ' if ok else 'FAIL'} bad input: exit {run.returncode}, stderr {lines}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
