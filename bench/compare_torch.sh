#!/usr/bin/env bash
# graft beside PyTorch on the same GPU in the same minutes (issue 6's table). Rows: ResNet-50 training at batch 128
# and 256, ResNet-50 inference at batch 1 and 64, VGG16 training at batch 64, and the ResNet-50 feature-extraction
# step (frozen backbone, trainable head) at batch 128; 224x224, synthetic data, SGD momentum 0.9.
#   graft:   `graft bench --device cuda` (NHWC, cuDNN Find per shape, TF32 math for convolutions and GEMMs);
#   PyTorch: bench/compare_torch.py, torchvision models, eager, cudnn.benchmark=True, default TF32 settings,
#            in NCHW and in channels_last.
# GRAPH_ROWS (default: ResNet-50 inference at batch 1 and 64, training at batch 128) are run by graft a second
# time with --graph: the step captured once as a CUDA graph and replayed (kernels/cuda_graph.h), compared with
# the same PyTorch eager rows.
# ENGINE_ROWS (default: ResNet-50 training at 128 and inference at batch 1 as a graph, the two rows short of their
# targets; "" for none)
# are run by graft once more with GRAFT_CUDNN_ENGINES=1: convolutions choose among all of cuDNN's graph-API
# engines (kernels/conv2d_cudnn_engines.h) instead of the legacy algorithms. A row is arch:mode:batch[:graph].
# Each side: warm-up, then the median of ITERS steps; peak = graft's pool peak / torch.cuda.max_memory_allocated.
#   bash bench/compare_torch.sh [graft-binary] [iters]        (PYTHON= selects the python with torch + CUDA)
# Prints every raw line, then one table (ms per step, images/s, peak MiB, ratio graft/PyTorch-best where < 1 is
# graft faster, and graft's first step: cuDNN's algorithm search, or the engine search in the engines rows).
# With $OUT set, the raw lines and the table are also written to $OUT/compare_torch.txt.
set -uo pipefail
graft=${1:-build-dev/graft}
iters=${2:-20}
py=${PYTHON:-python3}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
rows=${ROWS:-resnet50:train:128,resnet50:train:256,resnet50:infer:1,resnet50:infer:64,vgg16:train:64,resnet50:features:128}
graph_rows=${GRAPH_ROWS-resnet50:infer:1,resnet50:infer:64,resnet50:train:128}
engine_rows=${ENGINE_ROWS-resnet50:train:128,resnet50:infer:1:graph}
raw=$(mktemp)
run_graft() {  # run_graft ROW VARIANT ENGINES(0|1) [extra graft bench flags]
  local arch mode batch line
  IFS=: read -r arch mode batch _ <<<"$1"
  line=$(GRAFT_CUDNN_ENGINES=$3 timeout 300 "$graft" bench --arch "$arch" --batch "$batch" --size 224 --mode "$mode" \
         --device cuda --iters "$iters" --warmup 3 "${@:4}" 2>&1 | tail -1)
  echo "graft $line arch_row=$arch mode_row=$mode batch_row=$batch variant=$2" | tee -a "$raw"
}
# The first row is run once more first, as the row "first-process", so that no other row is the first process to
# touch the card and the host's file cache. (On the H100 on 2026-11-27, ResNet-50 training at 128 took 55.1 ms as
# the script's first row and 43.4 ms as its second row in a later run; inference at 64 went 8.74 -> 6.09 ms between
# the same two runs, so graft's eager rows, bound partly by the host's launch speed, also vary with the host: compare
# rows of one run only.) Its raw line's conv_algos fingerprint, beside the eager row's, says whether cuDNN's
# algorithm search chose other kernels in the first process (a cold card timing its candidates) or the same ones.
run_graft "${rows%%,*}" first-process 0
for row in ${rows//,/ }; do run_graft "$row" eager 0; done
for row in ${graph_rows//,/ }; do run_graft "$row" graph 0 --graph; done
for row in ${engine_rows//,/ }; do
  case "$row" in
    *:graph) run_graft "$row" engines+graph 1 --graph ;;
    *) run_graft "$row" engines 1 ;;
  esac
done
# PyTorch's wheels bundle their own cuDNN: a LD_LIBRARY_PATH set up for graft (another cuDNN) breaks torch's
# version check, so python runs with TORCH_LD_LIBRARY_PATH (device_check.sh passes the original value) when set.
if [ -n "${TORCH_LD_LIBRARY_PATH+x}" ]; then py_env=(env "LD_LIBRARY_PATH=$TORCH_LD_LIBRARY_PATH"); else py_env=(); fi
timeout 900 "${py_env[@]}" "$py" "$here/compare_torch.py" --rows "$rows" --iters "$iters" 2>&1 | tee -a "$raw"
echo
awk '
  function val(k,   i) { for (i = 1; i <= NF; i++) if (index($i, k "=") == 1) return substr($i, length(k) + 2); return "" }
  /^graft / { base = val("arch_row") " " val("mode_row") " " val("batch_row")
              v = val("variant"); key = base (v == "eager" ? "" : " " v); order[++n] = key; base_of[key] = base
              g_ms[key] = val("ms_per_batch"); g_mb[key] = val("peak_mem_mb"); if (g_ms[key] == "") g_ms[key] = "ERR"
              if (v ~ /graph/ && val("graph_mem_mb") != "") g_mb[key] = sprintf("%d/%d", g_mb[key], val("graph_mem_mb"))
              g_first[key] = val("first_step_ms"); if (g_first[key] == "") g_first[key] = "-" }
  /^torch / { key = val("arch") " " val("mode") " " val("batch"); l = val("layout"); ms = val("ms_per_batch")
              t_ms[key, l] = (ms == "" ? "ERR" : ms); t_mb[key, l] = val("peak_mb") }
  /^# torch/ { print }
  END {
    # graft MiB of a graph row: the peak of its tensors / the device memory the graph holds (kernels/cuda_graph.h)
    printf "%-34s %10s %10s %10s %11s %9s %9s %10s %10s %12s\n", "row (224x224)", "graft ms", "torch ms", "torch-CL ms",
           "graft MiB", "torch MiB", "CL MiB", "g/t", "g/t-CL", "graft 1st ms"
    for (i = 1; i <= n; i++) { k = order[i]; b = base_of[k]
      r1 = (g_ms[k] + 0 > 0 && t_ms[b, "nchw"] + 0 > 0) ? sprintf("%.2f", g_ms[k] / t_ms[b, "nchw"]) : "-"
      r2 = (g_ms[k] + 0 > 0 && t_ms[b, "channels_last"] + 0 > 0) ? sprintf("%.2f", g_ms[k] / t_ms[b, "channels_last"]) : "-"
      printf "%-34s %10s %10s %10s %11s %9s %9s %10s %10s %12s\n", k, g_ms[k], t_ms[b, "nchw"], t_ms[b, "channels_last"],
             g_mb[k], t_mb[b, "nchw"], t_mb[b, "channels_last"], r1, r2, g_first[k] }
  }' "$raw" | tee "$raw.table"
if [ -n "${OUT:-}" ]; then cat "$raw" "$raw.table" >"$OUT/compare_torch.txt"; fi
rm -f "$raw" "$raw.table"
