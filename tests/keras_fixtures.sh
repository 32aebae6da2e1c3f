#!/usr/bin/env bash
# ctest set-up for the Keras parity tests: a venv (with Debian's site packages: h5py, numpy) holding keras + jax
# from PyPI, then Keras writes its files and logits (tests/make_keras_fixtures.py). Fast when both exist.
#   keras_fixtures.sh PYTHON VENV_DIR OUT_DIR
set -euo pipefail
python=$1 venv=$2 out=$3
if [ ! -x "$venv/bin/python" ] || ! KERAS_BACKEND=jax "$venv/bin/python" -c "import keras, jax" 2>/dev/null; then
  "$python" -m venv --system-site-packages "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "keras==3.15.1" "jax[cpu]==0.10.2"
fi
KERAS_BACKEND=jax "$venv/bin/python" "$(dirname "$0")/make_keras_fixtures.py" "$out" 2>&1 | grep -v "legacy\|WARNING" || true
test -f "$out/keras_reference.h5"
