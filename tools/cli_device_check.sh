#!/usr/bin/env bash
# The graft CLI on the GPU, beside the same commands on the CPU (tools/device_check.sh runs it after the gpu tests;
# the gpu test label calls the library, never the CLI). On tests/make_tiny_data.py's data (3 classes of 40x40
# PNGs, one corrupt file), with ResNet-18 at 32x32:
#   1. finetune --device cuda (frozen backbone: the feature cache is filled from the GPU) and --freeze none
#      (every layer trained on the GPU, with gradient accumulation, clipping, class weights and label smoothing),
#      each must finish and report its validation top-1;
#   2. predict, eval and features with --device cuda and --device cpu on one checkpoint (the CPU-trained one):
#      every command succeeds; predict's top-1 class agrees for all but at most one image and its top-1
#      probability within 0.05 (the GPU runs its convolutions in TF32, so bits differ; a wrong kernel or a
#      mixed-up batch is far outside that); eval's top-1 within one image; the feature files are written.
# Prints what it compared. Exit 0 all passed, 1 a check failed, 3 a prerequisite is missing (python with numpy).
#   cli_device_check.sh GRAFT_BINARY WORK_DIR [PYTHON]
# GRAFT_CLI_CHECK_DEVICE=cpu runs the "GPU" side on the CPU too: how the script itself is tested without a GPU.
set -u -o pipefail
graft=$1 work=$2
py=${3:-${PYTHON:-python3}}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
fail() { echo "FAIL: $*"; failed=1; }
failed=0
gpu=${GRAFT_CLI_CHECK_DEVICE:-cuda}
"$py" -c 'import numpy' 2>/dev/null || { echo "cli check: $py has no numpy (tests/make_tiny_data.py needs it)"; exit 3; }
rm -rf "$work" && mkdir -p "$work" || exit 3
"$py" "$here/tests/make_tiny_data.py" "$work/data" >/dev/null || { echo "cli check: make_tiny_data.py failed"; exit 3; }
common=(--arch resnet18 --size 32 --batch 6 --workers 1 --no-progress --epochs 2 --lr 0.05)

# 1. Training on the GPU: the frozen backbone (cached features), and the whole network with the loss and step
#    options whose CUDA paths no gpu test reaches (gradient accumulation and clipping scale the gradients on the
#    device; class-weighted, smoothed cross-entropy).
for mode in all none; do
  out=$work/train_cuda_$mode
  extra=()
  [ "$mode" = none ] && extra=(--accumulate 2 --clip-grad-norm 1 --class-weights balanced --label-smoothing 0.1)
  echo "finetune --device $gpu --freeze $mode ${extra[*]}"
  if "$graft" finetune "${common[@]}" --freeze "$mode" "${extra[@]}" --device "$gpu" --data "$work/data/folder" \
       --out "$out" >"$out.log" 2>&1; then
    grep -q 'best validation top-1' "$out.log" || fail "finetune --device $gpu --freeze $mode: no validation line"
    [ "$mode" = none ] || grep -q 'feature cache: used' "$out.log" ||
      fail "finetune --device $gpu --freeze all: the feature cache was not used"
    echo "  $(grep -o 'best validation top-1[^,]*' "$out.log" | tail -1)"
  else
    tail -5 "$out.log"; fail "finetune --device $gpu --freeze $mode"
  fi
done

# 2. One checkpoint, both devices.
# Without augmentation: a checkpoint whose classes are apart (with it, 2 epochs predicted one class for every image,
# the top two probabilities 0.01 apart: TF32 rounding could flip them).
echo "finetune --device cpu --freeze none --no-augment (the checkpoint both devices run)"
"$graft" finetune "${common[@]}" --freeze none --no-augment --device cpu --data "$work/data/folder" --out "$work/train_cpu" \
  >"$work/train_cpu.log" 2>&1 || { tail -5 "$work/train_cpu.log"; fail "finetune --device cpu"; }
ck=$work/train_cpu/last.h5
for pair in cpu:cpu "gpu:$gpu"; do
  side=${pair%%:*} dev=${pair#*:}
  echo "predict, eval, features --device $dev"
  "$graft" predict --checkpoint "$ck" --device "$dev" --batch 4 --top 1 --csv "$work/predict_$side.csv" \
    "$work/data/folder" >/dev/null 2>"$work/predict_$side.err" || { cat "$work/predict_$side.err"; fail "predict --device $dev"; }
  "$graft" eval --checkpoint "$ck" --device "$dev" --workers 1 --data "$work/data/clean" --out "$work/eval_$side" \
    >"$work/eval_$side.log" 2>&1 || { tail -5 "$work/eval_$side.log"; fail "eval --device $dev"; }
  "$graft" features --checkpoint "$ck" --device "$dev" --batch 4 --out "$work/features_$side.h5" "$work/data/folder" \
    >"$work/features_$side.log" 2>&1 || { tail -5 "$work/features_$side.log"; fail "features --device $dev"; }
done
if [ -s "$work/predict_cpu.csv" ] && [ -s "$work/predict_gpu.csv" ]; then
  # path,class1,probability1 per row; rows in the same order on both devices
  paste -d, "$work/predict_cpu.csv" "$work/predict_gpu.csv" | awk -F, -v gpu="$gpu" 'NR > 1 {
      n++; if ($1 != $4) order++; if ($2 != $5) flips++
      d = $3 - $6; if (d < 0) d = -d; if (d > worst) worst = d }
    END { printf "predict cpu vs " gpu ": %d images, %d top-1 class(es) differ, max |p1 difference| %.5f\n", n, flips, worst
          exit !(n > 0 && order == 0 && flips <= 1 && worst <= 0.05) }' \
    || fail "predict on the GPU disagrees with the CPU beyond TF32 rounding"
fi
top1() { grep -o 'top-1 [0-9.]*%' "$1" | head -1 | sed -E 's/top-1 ([0-9.]+)%/\1/'; }
if [ -f "$work/eval_cpu.log" ] && [ -f "$work/eval_gpu.log" ]; then
  a=$(top1 "$work/eval_cpu.log") b=$(top1 "$work/eval_gpu.log")
  echo "eval top-1: cpu ${a:-?}%, $gpu ${b:-?}% (18 images)"
  awk -v a="${a:-x}" -v b="${b:-y}" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(a != "x" && b != "y" && d <= 100 / 18 + 0.01) }' \
    || fail "eval top-1 on the GPU is more than one image from the CPU's"
fi
for side in cpu gpu; do
  [ -s "$work/features_$side.h5" ] || fail "features ($side) wrote no file"
done
grep -h 'features:' "$work/features_gpu.log" 2>/dev/null | head -1
if [ "$failed" = 0 ]; then echo "cli check: PASS"; else echo "cli check: FAIL"; fi
exit "$failed"
