#!/usr/bin/env bash
# CPU speed of graft beside PyTorch (Debian's python3-torch) in the same run, same threads:
# ResNet-50 inference at batch 8 and a training step at batch 8, 224x224, synthetic data.
#   bench/compare_torch_cpu.sh [build-dir] [threads]
# Prints one line per side and the ratio graft/PyTorch of milliseconds per batch (lower is better for graft).
set -euo pipefail
build=${1:-build}
threads=${2:-2}
export OMP_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=$threads
torch_ms() {  # mode
  /usr/bin/python3 - "$1" "$threads" <<'PY'
import sys, time, torch, torchvision
mode, threads = sys.argv[1], int(sys.argv[2])
torch.set_num_threads(threads)
torch.manual_seed(0)
model = torchvision.models.resnet50()
x = torch.randn(8, 3, 224, 224)
y = torch.randint(0, 1000, (8,))
opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
def step():
    if mode == "infer":
        with torch.no_grad():
            model(x)
    else:
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad()
model.train(mode == "train")
step()
times = []
for _ in range(3):
    t = time.perf_counter(); step(); times.append((time.perf_counter() - t) * 1000)
times.sort()
print(f"{times[len(times)//2]:.1f}")
PY
}
for mode in infer train; do
  g=$("$build/graft" bench --arch resnet50 --batch 8 --size 224 --mode "$mode" --device cpu --iters 3)
  gms=$(sed -n 's/.*ms_per_batch=\([0-9.]*\).*/\1/p' <<<"$g")
  tms=$(torch_ms "$mode")
  echo "graft:   $g"
  echo "pytorch: mode=$mode ms_per_batch=$tms (torch $(/usr/bin/python3 -c 'import torch; print(torch.__version__)'), $threads threads)"
  awk -v g="$gms" -v t="$tms" -v m="$mode" 'BEGIN {printf "ratio graft/pytorch resnet50 %s b8: %.2f\n", m, g / t}'
done
