#!/usr/bin/env bash
# A checkpoint holding NaN or Inf values loads with one warning per such tensor on stderr, and the command goes on:
# graft predict and graft weights convert on a copy of a trained checkpoint with a NaN and an Inf written into its
# head; the clean checkpoint gives no warning. graft weights inspect names the two tensors.
#   cli_checkpoint_warnings.sh GRAFT CHECKPOINT IMAGE WORK_DIR PYTHON   (PYTHON with h5py and numpy)
set -u
graft=$1 checkpoint=$2 image=$3 work=$4 python=$5
rm -rf "$work" && mkdir -p "$work"
fail() { echo "FAIL: $*"; exit 1; }
cp "$checkpoint" "$work/bad.h5" || fail "copying $checkpoint"
"$python" - "$work/bad.h5" <<'PY' || fail "writing the NaN and the Inf"
import sys
import h5py
import numpy as np
with h5py.File(sys.argv[1], "r+") as f:
    weight = f["/model/fc.weight"][()]
    weight.flat[0] = np.nan
    f["/model/fc.weight"][...] = weight
    bias = f["/model/fc.bias"][()]
    bias[1] = np.inf
    f["/model/fc.bias"][...] = bias
PY
for command in "predict --checkpoint $work/bad.h5 $image" "weights convert $work/bad.h5 $work/converted.h5"; do
  # shellcheck disable=SC2086 # the words of $command are the arguments
  "$graft" $command >"$work/out" 2>"$work/err" || { cat "$work/err"; fail "graft $command"; }
  grep -q "^graft: warning: '$work/bad.h5': fc.weight has 1 NaN and 0 Inf values$" "$work/err" \
    || { cat "$work/err"; fail "graft $command: no warning for fc.weight"; }
  grep -q "^graft: warning: '$work/bad.h5': fc.bias has 0 NaN and 1 Inf values$" "$work/err" \
    || { cat "$work/err"; fail "graft $command: no warning for fc.bias"; }
  [ "$(grep -c warning "$work/err")" -eq 2 ] || { cat "$work/err"; fail "graft $command: other warnings"; }
done
# graft weights inspect reads every tensor of a checkpoint and names those with NaN or Inf values.
"$graft" weights inspect "$work/bad.h5" >"$work/out" 2>"$work/err" || { cat "$work/err"; fail "inspect"; }
grep -q "^  /model/fc.weight has 1 NaN and 0 Inf values$" "$work/out" || { cat "$work/out"; fail "inspect: fc.weight"; }
grep -q "^  /model/fc.bias has 0 NaN and 1 Inf values$" "$work/out" || { cat "$work/out"; fail "inspect: fc.bias"; }
"$graft" weights inspect "$checkpoint" >"$work/out" 2>"$work/err" || { cat "$work/err"; fail "clean inspect"; }
grep -q "^tensors: [0-9]* of the model, [0-9]* of the optimizer, [0-9]* values, all finite$" "$work/out" \
  || { cat "$work/out"; fail "clean inspect: no tensor line"; }
"$graft" predict --checkpoint "$checkpoint" "$image" >"$work/out" 2>"$work/err" || { cat "$work/err"; fail "clean predict"; }
if grep -q warning "$work/err"; then cat "$work/err"; fail "a warning for the clean checkpoint"; fi
echo "ok: one warning per poisoned tensor, none for the clean checkpoint"
