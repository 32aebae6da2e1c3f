#!/usr/bin/env bash
# CPU speed of graft beside PyTorch (Debian's python3-torch) in the same run, same threads:
# a model's inference at batch 8 and a training step at batch 8, 224x224, synthetic data.
#   bench/compare_torch_cpu.sh [build-dir] [threads] [arch: resnet50 (default) or any torchvision name graft has,
#                                                     e.g. resnext50_32x4d, wide_resnet50_2, vgg16]
# Prints one line per side and the ratio graft/PyTorch of milliseconds per batch (lower is better for graft).
# graft's cpu_gemm line names the OpenBLAS kernels: OpenBLAS picks them for the CPU unless OPENBLAS_CORETYPE is set
# (the development VM's environment sets Haswell, AVX2, on an AVX-512 CPU: ~1.5x slower GEMMs than its own pick).
set -euo pipefail
build=${1:-build}
threads=${2:-2}
arch=${3:-resnet50}
export OMP_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=$threads
torch_ms() {  # mode
  /usr/bin/python3 - "$1" "$threads" "$arch" <<'PY'
import sys, time, torch, torchvision
mode, threads, arch = sys.argv[1], int(sys.argv[2]), sys.argv[3]
torch.set_num_threads(threads)
torch.manual_seed(0)
model = getattr(torchvision.models, arch)()
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
  g=$("$build/graft" bench --arch "$arch" --batch 8 --size 224 --mode "$mode" --device cpu --iters 3)
  gms=$(sed -n 's/.*ms_per_batch=\([0-9.]*\).*/\1/p' <<<"$g")
  tms=$(torch_ms "$mode")
  echo "graft:   $g"
  echo "pytorch: mode=$mode ms_per_batch=$tms (torch $(/usr/bin/python3 -c 'import torch; print(torch.__version__)'), $threads threads)"
  awk -v g="$gms" -v t="$tms" -v m="$mode" -v a="$arch" 'BEGIN {printf "ratio graft/pytorch %s %s b8: %.2f\n", a, m, g / t}'
done
