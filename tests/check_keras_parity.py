"""graft against Keras itself: `graft run` on files Keras wrote (legacy whole-model .h5 via model.save and Keras 3
.weights.h5 via model.save_weights; ResNet50, ResNet50V2 and VGG16), on a Keras-1-layout VGG16 file built with h5py
from the same Keras weights and on a ResNet50V2 .weights.h5 without layer names must reproduce Keras's logits:
max|diff| / max|ref| < 1e-4.

    check_keras_parity.py GRAFT_BINARY KERAS_FIXTURE_DIR WORK_DIR
"""
import os
import subprocess
import sys

import h5py
import numpy as np


def main():
    graft, fixtures, work = sys.argv[1:4]
    os.makedirs(work, exist_ok=True)
    ref = h5py.File(os.path.join(fixtures, "keras_reference.h5"), "r")
    failures = 0
    for arch in ("resnet50", "resnet50v2", "vgg16"):
        inp = os.path.join(work, f"{arch}_input.h5")
        with h5py.File(inp, "w") as f:
            f.create_dataset("input", data=ref[f"{arch}_input"][()])
        files = [f"{arch}_keras_model.h5", f"{arch}.weights.h5"] + {
            "vgg16": ["vgg16_keras1.h5"], "resnet50v2": ["resnet50v2_noname.weights.h5"]}.get(arch, [])
        for weights in files:
            out = os.path.join(work, weights + ".out.h5")
            run = subprocess.run([graft, "run", "--weights", os.path.join(fixtures, weights), "--input", inp,
                                  "--output", out], capture_output=True, text=True)
            if run.returncode != 0:
                print(f"FAIL {weights}: exit {run.returncode}: {run.stderr.strip()}")
                failures += 1
                continue
            got, expected = h5py.File(out, "r")["output"][()], ref[f"{arch}_logits"][()]
            rel = float(np.abs(got - expected).max() / np.abs(expected).max()) if got.shape == expected.shape else 1e9
            failures += not rel < 1e-4
            print(f"{'ok  ' if rel < 1e-4 else 'FAIL'} {weights}: {run.stdout.strip()}; max rel diff vs Keras {rel:.2e}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
