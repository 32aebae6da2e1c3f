"""Keras itself loads what `graft weights convert --to keras` writes, and computes its own logits with it.

    KERAS_BACKEND=jax check_keras_export.py GRAFT_BINARY KERAS_FIXTURE_DIR WORK_DIR

Run with the Python of the Keras venv (tests/keras_fixtures.sh). For ResNet50, ResNet50V2 and VGG16: the Keras 3
`.weights.h5` file Keras wrote -> graft -> a Keras legacy .h5 weights file -> keras.applications with
weights=<that file> (the ResNets) or model.load_weights (VGG16): Keras's logits equal its reference logits for the
original weights (max|diff| / max|ref| < 1e-6: the same values, so the same arithmetic). Also: a file name ending
in .weights.h5 is refused with one line on stderr, and no file is written.
"""
import os
import subprocess
import sys

os.environ.setdefault("KERAS_BACKEND", "jax")
import h5py  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402


def convert(graft, src, dst):
    if os.path.exists(dst):
        os.remove(dst)
    return subprocess.run([graft, "weights", "convert", "--to", "keras", src, dst], capture_output=True, text=True)


def main():
    graft, fixtures, work = sys.argv[1:4]
    os.makedirs(work, exist_ok=True)
    ref = h5py.File(os.path.join(fixtures, "keras_reference.h5"), "r")
    failures = 0
    for arch in ("resnet50", "resnet50v2", "vgg16"):
        exported = os.path.join(work, f"{arch}_from_graft.h5")
        conv = convert(graft, os.path.join(fixtures, f"{arch}.weights.h5"), exported)
        if conv.returncode != 0:
            print(f"FAIL {arch}: {conv.stderr.strip()}")
            failures += 1
            continue
        x = ref[f"{arch}_input"][()]
        if arch != "vgg16":  # the way keras.applications users pass a weights file
            builder = keras.applications.ResNet50 if arch == "resnet50" else keras.applications.ResNet50V2
            model = builder(weights=exported, classifier_activation=None, input_shape=x.shape[1:])
        else:
            model = keras.applications.VGG16(weights=None, classifier_activation=None)
            model.load_weights(exported)
        got = np.asarray(model.predict(x, verbose=0), dtype=np.float32)
        expected = ref[f"{arch}_logits"][()]
        rel = float(np.abs(got - expected).max() / np.abs(expected).max()) if got.shape == expected.shape else 1e9
        failures += not rel < 1e-6
        print(f"{'ok  ' if rel < 1e-6 else 'FAIL'} {arch}: Keras file -> graft -> Keras legacy .h5 -> Keras: "
              f"max rel diff to Keras's logits {rel:.2e}")
        os.remove(exported)

    exported = os.path.join(work, "resnet50.weights.h5")
    conv = convert(graft, os.path.join(fixtures, "resnet50.weights.h5"), exported)
    lines = [l for l in conv.stderr.splitlines() if l.strip()]
    ok = 0 < conv.returncode < 128 and len(lines) == 1 and "name it <something>.h5" in lines[0] and not os.path.exists(exported)
    failures += not ok
    print(f"{'ok  ' if ok else 'FAIL'} a .weights.h5 name refused: exit {conv.returncode}, stderr {lines}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
