#!/usr/bin/env bash
# graft device check: ONE script for a bare GPU machine (no Debian packages, no network), given build-dev built
# on the development machine (bench/README.md says how). It
#   1. lists the GPU (nvidia-smi -L) and the driver, and warns when the driver is too old for CUDA 13;
#   2. finds libcublas.so.13, libcublasLt.so.13 and libcudnn.so.9 (CUDA toolkit first, then Python
#      site-packages nvidia/*/lib) and exports LD_LIBRARY_PATH; prints ldd when something is missing;
#   3. runs the gpu-labelled tests (ctest -L gpu, or the test binary itself when ctest cannot be used);
#   3b. runs the CLI with --device cuda beside --device cpu (tools/cli_device_check.sh: finetune, predict, eval,
#      features on tiny generated images; ~30 s; python with numpy makes the images);
#   4. runs graft_bench_cuda briefly and prints its summary (kernel, size, GB/s or TFLOP/s, % of reference);
#      GRAFT_BENCH_FILTER (a regex) runs only the matching benchmarks;
#   5. with GRAFT_COMPARE_TORCH=1, runs bench/compare_torch.sh (graft vs PyTorch, ResNet-50 / VGG16) as well;
#   5b. with GRAFT_PROFILE=1, bench/profile_gpu.sh for each arch:mode:batch[:graph] in GRAFT_PROFILE_ROWS (the
#      per-kernel tables all go to one file, $OUT/profiles.txt; only their headline lines are printed);
#   6. with GRAFT_MEMCHECK=1, runs tools/graph_memcheck_probe.cu's three graphs (no graft code) under compute-sanitizer
#      memcheck, then the gpu tests once more under it (GRAFT_MEMCHECK_FILTER
#      narrows them, GRAFT_MEMCHECK_TIMEOUT caps the seconds, default 200; reported, not part of the exit code);
#      GRAFT_MEMCHECK_EACH=1 runs one memcheck process per test (each report named by its test, the limit per test).
# Everything printed is also written under $OUT when that is set, in at most 6 files (the device tool brings back 8):
# device_check.log, ldd.txt, gpu_tests.log, bench_cuda.log, bench_cuda.json and profiles.txt.
# Takes well under 5 minutes on an H100.
# Exit code: 0 all passed (or no GPU at all: tests and benchmarks skip, said clearly); 1 a gpu test or the CLI check
# failed, or tests were skipped although a GPU is present; 2 the tests passed but the benchmark failed; 3 the build
# or the CUDA libraries are missing.
# Usage: bash tools/device_check.sh [build-dir]      (default: build-dev next to this script's tools/)
#        GRAFT_NO_CTEST=1 runs the test binary directly (one process) instead of ctest.
#        GRAFT_SKIP_TESTS=1 / GRAFT_SKIP_BENCH=1 leave out steps 3 / 4, to split a long check over two device calls
#        (e.g. tests + kernel lab + memcheck, then the comparison and profiles); a skipped step counts as passed.
set -u -o pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=$(cd "${1:-$ROOT/build-dev}" 2>/dev/null && pwd || echo "${1:-$ROOT/build-dev}")
TEST_BIN=$BUILD/tests/graft_gpu_tests
BENCH_BIN=$BUILD/bench/graft_bench_cuda
OUT_DIR=${OUT:-}
NEEDED_LIBS="libcublas.so.13 libcublasLt.so.13 libcudnn.so.9"
START=$(date +%s)
ORIG_LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}

section() { printf '\n==== %s  (t=%ss)\n' "$1" "$(( $(date +%s) - START ))"; }
append() {  # append NAME: add stdin to $OUT/NAME when $OUT is set, and pass it through
  if [ -n "$OUT_DIR" ]; then tee -a "$OUT_DIR/$1"; else cat; fi
}

# Ranks a library path: the CUDA toolkit first, then system folders, then Python wheels, then anything else.
rank() {
  case "$1" in
    /usr/local/cuda*) echo 0 ;;
    /usr/lib*|/lib*|/opt/nvidia*|/usr/local/nvidia*) echo 1 ;;
    */site-packages/nvidia/*|*/dist-packages/nvidia/*) echo 2 ;;
    *) echo 3 ;;
  esac
}

show_ldd() {  # show_ldd BINARY: the dynamic libraries BINARY resolves with the current LD_LIBRARY_PATH
  if command -v ldd >/dev/null 2>&1; then ldd "$1" 2>&1; else LD_TRACE_LOADED_OBJECTS=1 "$1" 2>&1; fi
}

# error_summary TEXT: memcheck's "ERROR SUMMARY: N errors" line in TEXT
error_summary() { grep -m1 'ERROR SUMMARY' <<<"$1" | sed 's/^=* *//'; }
# first_report TEXT: memcheck's first report in TEXT in full, without its host frames
first_report() {
  grep -v 'Host Frame' <<<"$1" | grep -m1 -A5 '^========= [A-Z][a-z]* .*\(read\|write\|access\|Address\)'
}

# memcheck_probe SANITIZER: tools/graph_memcheck_probe.cu's three graphs (no graft code) under memcheck - two that
# keep an allocation (made after an intermediate's free, or before it), one writing into memory allocated before it -
# with the probe's own line saying whether the results were right.
memcheck_probe() {
  local probe=$BUILD/graft_graph_memcheck_probe mode out rc
  if [ ! -x "$probe" ]; then
    echo "no $probe (build and pack the graft_graph_memcheck_probe target): the probe is skipped"
    return
  fi
  for mode in kept-last kept-first outside; do
    out=$(timeout 60 "$1" --tool memcheck --leak-check no --error-exitcode 9 "$probe" "$mode" 3 2>&1)
    rc=$?
    echo "graph_memcheck_probe $mode: memcheck exit $rc, $(error_summary "$out")"
    grep -m1 '^graph_memcheck_probe' <<<"$out"
    first_report "$out"
  done
}

main() {
  section "graft device check"
  echo "date:    $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
  echo "host:    $(uname -n) $(uname -m), kernel $(uname -r)"
  echo "libc:    $( (ldd --version 2>/dev/null || true) | head -1)"
  echo "cpu:     $(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | sed 's/.*: //'), $(nproc) threads"
  echo "build:   $BUILD"
  [ -f "$BUILD/REVISION" ] && echo "graft:   $(cat "$BUILD/REVISION") (tools/pack_device_bundle.sh)"
  local missing_build=0
  for bin in "$TEST_BIN" "$BENCH_BIN" "$BUILD/graft"; do
    if [ -x "$bin" ]; then
      echo "binary:  $bin ($(du -h "$bin" | cut -f1))"
    else
      echo "MISSING: $bin"
      missing_build=1
    fi
  done
  if [ "$missing_build" = 1 ]; then
    echo "FAIL: build-dev is incomplete: build it on the development machine (bench/README.md) and carry it."
    return 3
  fi

  # ---- 1. the GPU and its driver -------------------------------------------------------------------------
  section "GPU"
  local gpu_present=0
  if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi -L 2>&1 || true
    if nvidia-smi -L 2>/dev/null | grep -q '^GPU '; then gpu_present=1; fi
    local query driver
    query=$(nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader 2>/dev/null |
            head -1)
    echo "gpu 0:   ${query:-?}"
    driver=$(echo "$query" | cut -d, -f2 | tr -d ' ')
    echo "driver supports CUDA $(nvidia-smi 2>/dev/null | sed -n 's/.*CUDA Version: *\([0-9.]*\).*/\1/p' | head -1)"
    # The binaries carry the CUDA 13 runtime (cudart_static), which needs driver 580 or newer.
    if [ -n "$driver" ] && [ "${driver%%.*}" -lt 580 ] 2>/dev/null; then
      echo "WARNING: driver $driver is older than 580: the CUDA 13 runtime in these binaries will refuse it"
      echo "         (cudaErrorInsufficientDriver); rebuild build-dev with a CUDA 12 toolkit for this machine."
    fi
  else
    echo "nvidia-smi not found: no NVIDIA driver on this machine"
  fi
  [ "$gpu_present" = 1 ] || echo "NO GPU: the gpu tests and benchmarks will skip, each with its reason."

  # ---- 2. the CUDA libraries -----------------------------------------------------------------------------
  section "CUDA libraries (need $NEEDED_LIBS)"
  # The usual places first (the toolkit, system folders, Python environments); all of / only if one is missing.
  local found roots lib
  find_libs() {
    timeout 120 find "$@" \( -path /proc -o -path /sys -o -path /dev -o -path /run -o -path "$ROOT" \) -prune -o \
      \( -name 'libcublas.so.*' -o -name 'libcublasLt.so.*' -o -name 'libcudnn.so.*' -o -name 'libnvrtc.so.*' -o -name 'libcupti.so.*' \) \
      -print 2>/dev/null
  }
  roots=$(for d in /usr/local /opt /usr/lib /usr/lib64 /lib /root /home; do [ -d "$d" ] && echo "$d"; done)
  found=$(find_libs $roots | sort -u)
  for lib in $NEEDED_LIBS; do
    if ! echo "$found" | awk -F/ -v n="$lib" '$NF == n {hit = 1} END {exit !hit}'; then
      echo "($lib not in $(echo $roots): searching all of /)"
      found=$(find_libs / | sort -u)
      break
    fi
  done
  echo "${found:-(none found)}" | sed 's/^/  found: /'
  local dirs="" best missing_libs=""
  for lib in $NEEDED_LIBS; do
    best=$(echo "$found" | awk -F/ -v n="$lib" '$NF == n' | while read -r p; do echo "$(rank "$p") $p"; done |
           sort -n | head -1 | cut -d' ' -f2-)
    if [ -n "$best" ]; then
      echo "using:   $best"
      case ":$dirs:" in *":$(dirname "$best"):"*) ;; *) dirs="$dirs:$(dirname "$best")" ;; esac
    else
      missing_libs="$missing_libs $lib"
    fi
  done
  # Optional, dlopened when present: NVRTC (cuDNN's runtime-compiled engines) and CUPTI (graft bench --profile).
  for lib in libnvrtc.so.13 libcupti.so.13; do
    best=$(echo "$found" | awk -F/ -v n="$lib" '$NF == n' | while read -r p; do echo "$(rank "$p") $p"; done |
           sort -n | head -1 | cut -d' ' -f2-)
    if [ -n "$best" ]; then case ":$dirs:" in *":$(dirname "$best"):"*) ;; *) dirs="$dirs:$(dirname "$best")" ;; esac; fi
  done
  if [ -n "$missing_libs" ]; then
    echo "MISSING:$missing_libs"
    if echo "$found" | grep -q 'libcublas\.so\.12'; then
      echo "This machine has only CUDA 12 cuBLAS (libcublas.so.12 above). graft's build-dev was built with the"
      echo "CUDA 13 toolkit and needs libcublas.so.13 / libcublasLt.so.13: carry CUDA 13's cuBLAS (e.g. the"
      echo "nvidia-cublas wheel for CUDA 13, unpacked) or rebuild build-dev with a CUDA 12 toolkit."
    fi
  fi
  export LD_LIBRARY_PATH="${dirs#:}:$BUILD/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"

  local unresolved=0
  for bin in "$TEST_BIN" "$BENCH_BIN" "$BUILD/graft"; do
    local deps
    deps=$(show_ldd "$bin")
    if [ -n "$OUT_DIR" ]; then printf '## %s\n%s\n' "$bin" "$deps" >>"$OUT_DIR/ldd.txt"; fi
    if echo "$deps" | grep -q 'not found'; then
      unresolved=1
      echo "unresolved libraries of $bin:"
      echo "$deps"
    fi
  done
  if [ "$unresolved" = 1 ]; then
    echo "FAIL: the binaries cannot start: a library above is 'not found'."
    return 3
  fi
  echo "all libraries of the test and benchmark binaries resolve."
  # OpenBLAS's kernel for this host's CPU: the gpu tests compare against CPU runs here.
  local gemm
  gemm=$(timeout 60 "$BUILD/graft" bench --arch resnet18 --batch 1 --size 32 --iters 1 --warmup 0 --device cpu 2>&1)
  echo "cpu gemm: $(grep -o 'cpu_gemm=.*' <<<"$gemm" || echo "? ($(tail -1 <<<"$gemm"))")"

  # ---- 3. the gpu tests ----------------------------------------------------------------------------------
  section "gpu tests"
  local test_rc=0 skipped=0 log
  if [ -n "${GRAFT_SKIP_TESTS:-}" ]; then
    echo "(GRAFT_SKIP_TESTS set: the gpu tests are not run in this call)"
  else
    log=$(mktemp)
    # CTest's files hold the absolute paths the build was configured at. On a copy of the tree elsewhere (the
    # device machine), rewrite them in this copy so that ctest finds the binaries.
    local configured source
    configured=$(sed -n 's/^# Build directory: //p' "$BUILD/CTestTestfile.cmake" 2>/dev/null | head -1)
    source=$(sed -n 's/^# Source directory: //p' "$BUILD/CTestTestfile.cmake" 2>/dev/null | head -1)
    if command -v ctest >/dev/null 2>&1 && [ -n "$configured" ] && [ "$configured" != "$BUILD" ]; then
      echo "(relocating this copy's CTest files: $configured -> $BUILD, $source -> $ROOT)"
      find "$BUILD" -maxdepth 2 \( -name CTestTestfile.cmake -o -name '*_include.cmake' -o -name '*_tests.cmake' \) \
        -exec sed -i -e "s#$configured#$BUILD#g" -e "s#$source/#$ROOT/#g" {} + && configured=$BUILD
    fi
    if [ -z "${GRAFT_NO_CTEST:-}" ] && command -v ctest >/dev/null 2>&1 && [ "$configured" = "$BUILD" ]; then
      echo "+ ctest --test-dir $BUILD -L gpu --output-on-failure -j4 --timeout 120"
      timeout 240 ctest --test-dir "$BUILD" -L gpu --output-on-failure -j4 --timeout 120 >"$log" 2>&1
      test_rc=$?
      skipped=$(grep -c '\*\*\*Skipped' "$log" || true)
      # Failures in full, then CTest's summary (which lists the skipped tests).
      grep -v '^ *[0-9]*/[0-9]* Test *#[0-9]*: .* Passed' "$log" | grep -v '\*\*\*Skipped' |
        grep -v '^ *Start  *[0-9]*: ' | sed -n '/^Test project/,$p'
      [ "$skipped" != 0 ] && grep -m1 -A1 ': Skipped$' "$log" | tail -1 | sed 's/^/first skip reason: /'
      # (ctest prints the skipped output only on failure; rerun one test to show the reason)
      if [ "$skipped" != 0 ] && ! grep -q ': Skipped$' "$log"; then
        local first
        first=$(grep -m1 '\*\*\*Skipped' "$log" | sed 's/.*Test *#[0-9]*: \([^ ]*\) .*/\1/')
        "$TEST_BIN" --gtest_brief=1 --gtest_filter="$first" 2>&1 | grep -m1 -A1 ': Skipped$' | tail -1 |
          sed 's/^/first skip reason: /'
      fi
    else
      if [ -n "${GRAFT_NO_CTEST:-}" ]; then echo "(GRAFT_NO_CTEST set: running the test binary directly)"
      elif ! command -v ctest >/dev/null 2>&1; then echo "(no ctest here: running the test binary directly)"
      else echo "(no usable CTest files in $BUILD: running the test binary directly)"; fi
      echo "+ $TEST_BIN"
      timeout 240 "$TEST_BIN" >"$log" 2>&1
      test_rc=$?
      skipped=$(sed -n 's/^\[  SKIPPED \] \([0-9]*\) tests\{0,1\}[.,].*/\1/p' "$log" | head -1)
      skipped=${skipped:-0}
      # Each failing test in full, then gtest's summary (which lists the failed and the skipped tests).
      awk '/^\[ RUN      \]/ {buf = ""; run = 1}
           run {buf = buf $0 "\n"}
           /^\[  FAILED  \] [A-Za-z_]/ && run {printf "%s", buf; run = 0}
           /^\[       OK \]|^\[  SKIPPED \] [A-Za-z_]/ {run = 0}
           /^\[==========\] .* ran/ {summary = 1}
           summary {print}' "$log"
      [ "$skipped" != 0 ] && grep -m1 -A1 ': Skipped$' "$log" | tail -1 | sed 's/^/first skip reason: /'
    fi
    [ "$test_rc" = 124 ] && echo "FAIL: the gpu tests ran past 240 s"
    [ -n "$OUT_DIR" ] && cat "$log" >"$OUT_DIR/gpu_tests.log"
    rm -f "$log"
  fi

  # ---- 3b. the CLI on the GPU (tools/cli_device_check.sh): finetune, predict, eval, features --device cuda ----------
  local cli_rc=-
  if [ -z "${GRAFT_SKIP_TESTS:-}" ] && [ "$gpu_present" = 1 ]; then
    section "graft CLI with --device cuda beside --device cpu"
    local cli_py=${PYTHON:-}
    [ -z "$cli_py" ] && [ -x /opt/torch/.venv/bin/python ] && cli_py=/opt/torch/.venv/bin/python
    local cli_work
    cli_work=$(mktemp -d)
    timeout 120 bash "$ROOT/tools/cli_device_check.sh" "$BUILD/graft" "$cli_work" \
      "${cli_py:-python3}"
    cli_rc=$?
    if [ "$cli_rc" != 0 ] && [ "$cli_rc" != 3 ]; then  # the commands' own output, for what failed or hung
      [ "$cli_rc" = 124 ] && echo "FAIL: the CLI check ran past 120 s"
      for f in "$cli_work"/*.log "$cli_work"/*.err; do
        [ -s "$f" ] && { echo "--- $(basename "$f") (last lines)"; tail -5 "$f"; }
      done
    fi
    rm -rf "$cli_work"
    # 3 = a prerequisite is missing here (python with numpy): said, not a failure of graft
    [ "$cli_rc" = 3 ] && echo "(the CLI check did not run: see above)"
  fi

  # ---- 4. the benchmarks ---------------------------------------------------------------------------------
  section "graft_bench_cuda --benchmark_min_time=0.05"
  local bench_rc=0 bench_log
  if [ -n "${GRAFT_SKIP_BENCH:-}" ]; then
    echo "(GRAFT_SKIP_BENCH set: the kernel benchmarks are not run in this call)"
  else
    bench_log=${OUT_DIR:+$OUT_DIR/bench_cuda.log}
    bench_log=${bench_log:-$(mktemp)}
    timeout 180 "$BENCH_BIN" --benchmark_min_time=0.05 ${GRAFT_BENCH_FILTER:+--benchmark_filter=$GRAFT_BENCH_FILTER} \
      ${OUT_DIR:+--benchmark_out=$OUT_DIR/bench_cuda.json --benchmark_out_format=json} >"$bench_log" 2>&1
    bench_rc=$?
    # The full console output stays in the log ($OUT/bench_cuda.log); the summary table and any errors show here.
    grep -m1 'skipping' "$bench_log"
    grep 'ERROR OCCURRED' "$bench_log" | grep -v 'no usable GPU' | head -20
    sed -n '/^== graft_bench_cuda summary/,$p' "$bench_log"
    [ "$bench_rc" = 124 ] && echo "FAIL: graft_bench_cuda ran past 180 s"
    [ -z "$OUT_DIR" ] && rm -f "$bench_log"
  fi

  # ---- 5. optional: graft beside PyTorch (GRAFT_COMPARE_TORCH=1, needs $BUILD/graft and a python with CUDA torch) --
  if [ -n "${GRAFT_COMPARE_TORCH:-}" ] && [ "$gpu_present" = 1 ]; then
    section "bench/compare_torch.sh (graft vs PyTorch on this card)"
    local py=""
    for cand in ${PYTHON:-} python3 python /usr/bin/python3 /opt/conda/bin/python /usr/local/bin/python3; do
      if command -v "$cand" >/dev/null 2>&1 &&
         "$cand" -c 'import torch, torchvision, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
        py=$cand; break
      fi
    done
    if [ -z "$py" ]; then echo "no python with CUDA torch + torchvision found: comparison skipped"
    elif [ ! -x "$BUILD/graft" ]; then echo "no $BUILD/graft: comparison skipped"
    else PYTHON=$py TORCH_LD_LIBRARY_PATH=$ORIG_LD_LIBRARY_PATH timeout "${GRAFT_COMPARE_TIMEOUT:-400}" bash "$ROOT/bench/compare_torch.sh" "$BUILD/graft" \
           "${GRAFT_COMPARE_ITERS:-20}"
    fi
  fi

  # ---- 5b. optional: kernel profiles, graft beside PyTorch (GRAFT_PROFILE=1; rows in GRAFT_PROFILE_ROWS) --------
  if [ -n "${GRAFT_PROFILE:-}" ] && [ "$gpu_present" = 1 ] && [ -x "$BUILD/graft" ]; then
    local prow parch pmode pbatch pgraph
    [ -n "$OUT_DIR" ] && : >"$OUT_DIR/profiles.txt"
    for prow in ${GRAFT_PROFILE_ROWS:-resnet50:train:128}; do
      IFS=: read -r parch pmode pbatch pgraph <<<"$prow"
      section "bench/profile_gpu.sh $parch $pmode $pbatch ${pgraph:+--graph}"
      # (awk, not head, keeps the first lines: head would stop reading, and the SIGPIPE would cut tee's file short)
      PYTHON=${PYTHON:-python3} TORCH_LD_LIBRARY_PATH=$ORIG_LD_LIBRARY_PATH \
        bash "$ROOT/bench/profile_gpu.sh" "$BUILD/graft" "$parch" "$pmode" "$pbatch" ${pgraph:+--graph} 2>&1 |
        append profiles.txt | grep -v '^ *[0-9.]* ms  *[0-9.]*% .*' | awk 'NR <= 8'
    done
  fi

  # ---- 6. optional: compute-sanitizer memcheck over the gpu tests (GRAFT_MEMCHECK=1) ---------------------------
  local memcheck_rc=-
  if [ -n "${GRAFT_MEMCHECK:-}" ] && [ "$gpu_present" = 1 ]; then
    section "compute-sanitizer --tool memcheck on graph_memcheck_probe and graft_gpu_tests"
    # API errors are not reported: the out-of-memory tests provoke cudaErrorMemoryAllocation on purpose.
    local sanitizer
    sanitizer=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
    # the time limit, memcheck and its options, the test binary (a --gtest_filter follows)
    local memcheck=(timeout "${GRAFT_MEMCHECK_TIMEOUT:-200}" "$sanitizer" --tool memcheck --leak-check no
                    --report-api-errors no --error-exitcode 9 "$TEST_BIN" --gtest_brief=1)
    if [ -z "$sanitizer" ]; then
      echo "no compute-sanitizer on this machine: memcheck skipped"
    else
      memcheck_probe "$sanitizer"
      if [ -n "${GRAFT_MEMCHECK_EACH:-}" ]; then
        # One memcheck process per test, so that every report is attributed to its test (in one process the reports
        # and gtest's output interleave, and --gtest_brief names no passing test). Each test gets the time limit.
        local t out rc
        memcheck_rc=0
        for t in $("$TEST_BIN" --gtest_list_tests ${GRAFT_MEMCHECK_FILTER:+--gtest_filter=$GRAFT_MEMCHECK_FILTER} |
                   awk '/^[^ ]/ {suite = $1} /^  [^ ]/ {print suite $1}'); do
          out=$("${memcheck[@]}" --gtest_filter="$t" 2>&1)
          rc=$?
          echo "$t: memcheck exit $rc, $(error_summary "$out")"
          if [ "$rc" != 0 ]; then
            first_report "$out"  # also a report made before the time limit cut memcheck off
            memcheck_rc=$rc
          fi
        done
        echo "memcheck exit: $memcheck_rc (the last non-zero; 0 clean; 9 memcheck found errors; 124 ran past the time limit)"
      else
        "${memcheck[@]}" ${GRAFT_MEMCHECK_FILTER:+--gtest_filter=$GRAFT_MEMCHECK_FILTER} 2>&1 |
          grep -v '^\[       OK \]' | tail -40
        memcheck_rc=${PIPESTATUS[0]}
        echo "memcheck exit: $memcheck_rc (0 clean; 9 memcheck found errors; 124 ran past the time limit)"
      fi
    fi
  fi

  # ---- verdict -------------------------------------------------------------------------------------------
  section "verdict"
  echo "gpu present: $gpu_present   tests exit: $test_rc   tests skipped: $skipped   CLI check exit: $cli_rc   bench exit: $bench_rc"
  if [ "$test_rc" != 0 ]; then echo "FAIL: gpu tests failed (exit $test_rc)"; return 1; fi
  if [ "$cli_rc" != - ] && [ "$cli_rc" != 0 ] && [ "$cli_rc" != 3 ]; then
    echo "FAIL: the CLI check on the GPU failed (exit $cli_rc)"; return 1
  fi
  if [ "$gpu_present" = 1 ] && [ "$skipped" != 0 ] && [ -z "${GRAFT_SKIP_TESTS:-}" ]; then
    echo "FAIL: a GPU is present but $skipped gpu tests skipped (driver/runtime mismatch? see their reasons above)"
    return 1
  fi
  if [ "$bench_rc" != 0 ]; then echo "FAIL: graft_bench_cuda exited $bench_rc"; return 2; fi
  if [ "$gpu_present" = 1 ] && [ -n "${GRAFT_SKIP_TESTS:-}${GRAFT_SKIP_BENCH:-}" ]; then
    echo "PASS for what ran (GRAFT_SKIP_TESTS=${GRAFT_SKIP_TESTS:-} GRAFT_SKIP_BENCH=${GRAFT_SKIP_BENCH:-})."
  elif [ "$gpu_present" = 1 ]; then echo "PASS: all gpu tests passed and the benchmarks ran."
  else echo "OK (no GPU): every gpu test and benchmark skipped with its reason; nothing ran on a device."; fi
  return 0
}

if [ -n "$OUT_DIR" ]; then
  mkdir -p "$OUT_DIR"
  : >"$OUT_DIR/ldd.txt"
  main 2>&1 | tee "$OUT_DIR/device_check.log"
  exit "${PIPESTATUS[0]}"
fi
main
