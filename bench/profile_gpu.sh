#!/usr/bin/env bash
# Where the GPU time of a step goes, graft beside PyTorch (channels_last), kernel by kernel: the profile that
# explains a row of bench/compare_torch.sh.
#   bash bench/profile_gpu.sh [graft-binary] [arch] [mode] [batch] [--graph]     (default build-dev/graft resnet50 train 128)
# graft: `graft bench --profile` (CUPTI activity records of the timed steps: tools/kernel_profile.h; needs
# libcupti.so.13 on LD_LIBRARY_PATH, it ships with the CUDA toolkit). PyTorch: torch.profiler over the same number
# of timed steps (bench/compare_torch.py --profile). Both print ms per step by kernel, largest first; the sum of
# kernel time next to the step's wall time shows how much of the step is launch gaps.
# PYTHON selects the python with torch; TORCH_LD_LIBRARY_PATH its library path (as in compare_torch.sh).
set -uo pipefail
graft=${1:-build-dev/graft}; arch=${2:-resnet50}; mode=${3:-train}; batch=${4:-128}; graph=${5:-}
py=${PYTHON:-python3}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
steps=10
if [ -n "${TORCH_LD_LIBRARY_PATH+x}" ]; then py_env=(env "LD_LIBRARY_PATH=$TORCH_LD_LIBRARY_PATH"); else py_env=(); fi
echo "==== graft ${graph:+(CUDA graph) }$arch $mode $batch: kernels of $steps timed steps"
timeout 300 "$graft" bench --arch "$arch" --batch "$batch" --size 224 --mode "$mode" --device cuda --iters $steps \
  --warmup 3 --profile $graph 2>&1
echo "==== PyTorch channels_last $arch $mode $batch: torch.profiler over $steps timed steps"
timeout 300 "${py_env[@]}" "$py" "$here/compare_torch.py" --rows "$arch:$mode:$batch" --layouts channels_last \
  --iters $steps --warmup 3 --profile 2>&1 | grep -v -i "warn"
