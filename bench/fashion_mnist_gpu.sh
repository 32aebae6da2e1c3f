#!/usr/bin/env bash
# Fashion-MNIST on a GPU (issue 5): the main job on the device (graft_study --device cuda) and the full-dataset
# accuracy check - ResNet-18 trained from scratch on all 60,000 training images, then `graft eval` on the 10,000
# test images - in two configurations run side by side on the one card:
#   A: 32x32 (28x28 resized), no augmentation          B: 64x64, random resized crop (scale 0.35-1) + flip
# both SGD momentum 0.9, lr 0.1, weight decay 5e-4, cosine with 1 warm-up epoch, batch 128, 15 epochs.
#   bash bench/fashion_mnist_gpu.sh BUILD_DIR FASHION_MNIST_DIR OUT_DIR [epochs]
# Prints the study's table, each run's last epoch line and time, and each eval's top-1.
set -uo pipefail
build=$1 data=$2 out=$3 epochs=${4:-15}
mkdir -p "$out"
echo "== graft_study --device cuda"
timeout "${STUDY_TIMEOUT:-200}" "$build/graft_study" --device cuda --data "$data" --out "$out/study" 2>&1 | grep -v '^epoch' | tail -14
run() {  # name, extra finetune options...
  local name=$1; shift
  local start=$(date +%s)
  timeout "${FINETUNE_TIMEOUT:-400}" "$build/graft" finetune --arch resnet18 --data "fashion-mnist:$data" --freeze none --bn train \
    --optimizer sgd --lr 0.1 --momentum 0.9 --weight-decay 5e-4 --schedule cosine --warmup 1 --epochs "$epochs" \
    --batch 128 --val-fraction 0 --device cuda --workers 7 --no-progress --seed 1 --out "$out/$name" "$@" \
    >"$out/$name.log" 2>&1
  echo "finetune $name exit $? in $(( $(date +%s) - start )) s" >>"$out/$name.log"
  timeout 120 "$build/graft" eval --checkpoint "$out/$name/last.h5" --data "fashion-mnist:$data" --device cuda \
    --batch 500 >"$out/$name.eval" 2>&1
}
echo "== ResNet-18, all 60,000 Fashion-MNIST training images, $epochs epochs, two configurations at once"
run A_size32_noaug --size 32 --no-augment &
run B_size64_aug --size 64 --augment &
wait
for name in A_size32_noaug B_size64_aug; do
  echo "-- $name"
  grep -v '^epoch [0-9]*/[0-9]* \[' "$out/$name.log" | tail -8
  cat "$out/$name/log.csv" 2>/dev/null | tail -3
  head -12 "$out/$name.eval"
done
