"""graft against Keras itself: `graft run` on files Keras wrote (legacy whole-model .h5 via model.save and Keras 3
.weights.h5 via model.save_weights; ResNet50, ResNet50V2 and VGG16), on a Keras-1-layout VGG16 file built with h5py
from the same Keras weights and on a ResNet50V2 .weights.h5 without layer names must reproduce Keras's logits:
max|diff| / max|ref| < 1e-4.

    check_keras_parity.py GRAFT_BINARY KERAS_FIXTURE_DIR WORK_DIR IMAGE

Also: `graft predict` on the ResNet50V2 and the Keras-1 VGG16 file and on the graft checkpoint `graft weights convert`
makes of each gives the same probabilities for IMAGE: the checkpoint keeps the file's preprocessing (tf for V2,
caffe for VGG16; without it they would get caffe and torch).
"""
import os
import shutil
import subprocess
import sys

import h5py
import numpy as np


def main():
    graft, fixtures, work, image = sys.argv[1:5]
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
    # A V2 file into a (V1) resnet50: the error names the two architectures, not a dialect to build.
    wrong = subprocess.run([graft, "run", "--arch", "resnet50", "--weights",
                            os.path.join(fixtures, "resnet50v2.weights.h5"), "--input", inp, "--output",
                            os.path.join(work, "wrong.h5")], capture_output=True, text=True)
    named = wrong.returncode != 0 and "the file is a resnet50v2, the model a resnet50" in wrong.stderr
    failures += not named
    print(f"{'ok  ' if named else 'FAIL'} a ResNet50V2 file into a resnet50: {wrong.stderr.splitlines()[:1]}")
    failures += not same_prediction_from_a_converted_checkpoint(graft, os.path.join(fixtures, "resnet50v2.weights.h5"),
                                                                os.path.join(work, "resnet50v2.graft.h5"), image, True)
    # VGG16 has no dialect: only the preprocessing the conversion records keeps caffe (the default would be torch).
    failures += not same_prediction_from_a_converted_checkpoint(graft, os.path.join(fixtures, "vgg16_keras1.h5"),
                                                                os.path.join(work, "vgg16.graft.h5"), image, False)
    sys.exit(1 if failures else 0)


def same_prediction_from_a_converted_checkpoint(graft, weights, checkpoint, image, scale_head):
    # The V2 fixture's random weights give logits in the thousands (probabilities 1 and 0 whatever the preprocessing):
    # a copy with the dense kernel scaled by 1e-3 gives probabilities that tell tf from caffe.
    scaled = weights
    if scale_head:
        scaled = checkpoint.replace(".graft.h5", "_scaled.weights.h5")
        shutil.copy(weights, scaled)
        with h5py.File(scaled, "r+") as f:
            f["layers/dense/vars/0"][...] = f["layers/dense/vars/0"][()] * 1e-3

    def probabilities(*source):
        run = subprocess.run([graft, "predict", *source, "--size", "64", "--device", "cpu", image],
                             capture_output=True, text=True)
        return [line.split()[0] for line in run.stdout.splitlines()[1:]] if run.returncode == 0 else run.stderr
    conv = subprocess.run([graft, "weights", "convert", scaled, checkpoint], capture_output=True, text=True)
    direct, converted = probabilities("--weights", scaled), probabilities("--checkpoint", checkpoint)
    ok = (conv.returncode == 0 and isinstance(direct, list) and len(direct) == 5 and direct[0] != "1.0000" and
          direct == converted)
    print(f"{'ok  ' if ok else 'FAIL'} predict from {os.path.basename(weights)} {direct} and from its converted "
          f"checkpoint {converted}")
    if os.path.exists(checkpoint):
        os.remove(checkpoint)
    return ok


if __name__ == "__main__":
    main()
