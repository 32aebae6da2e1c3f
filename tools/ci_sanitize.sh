#!/usr/bin/env bash
# CI stage 2, run by .ci/run after README command (b): the CPU path under AddressSanitizer + UndefinedBehaviorSanitizer
# and every libFuzzer target for a bounded time. A failing test, any sanitizer report or leak in the test run, and
# any fuzzer report (crash, sanitizer report, uncaught exception, timeout, huge allocation) fails the stage - except
# faults inside libhdf5 itself on damaged files, which are listed as warnings (see the fuzz loop below).
#
#   1. One clang build (build-sanitize/): -DGRAFT_SANITIZE=ON (ASan + UBSan, -fno-sanitize-recover=all, so the first
#      report aborts) -DGRAFT_FUZZ=ON (libFuzzer targets; everything else gets fuzzer coverage instrumentation).
#   2. graft_tests, the whole CPU suite, under ASan + UBSan + LeakSanitizer. The golden and weight fixtures are the
#      ones command (b)'s ctest set-up wrote into build/tests/ (cache variables GRAFT_GOLDEN_DIR/GRAFT_WEIGHTS_DIR):
#      regenerating ~2.3 GB would double the stage's time for nothing. Run command (b) first.
#   3. Every tests/fuzz/fuzz_<name>.cpp target for GRAFT_FUZZ_SECONDS (default 20; 30 until the suite grew past
#      ~26 min of CI on a 2-core machine) on a COPY of
#      tests/fuzz/<name>_corpus in the build dir (libFuzzer adds the inputs it finds to its corpus directory; the
#      repository is never written). A crash leaves its input in build-sanitize/fuzz/<name>/ to reproduce with
#      `build-sanitize/fuzz_<name> <that file>`; turn it into a regression test in the normal suite.
# Environment: GRAFT_MAIN_BUILD (default build), GRAFT_SANITIZE_BUILD (default build-sanitize), GRAFT_FUZZ_SECONDS,
# GRAFT_SANITIZE_TESTS (a --gtest_filter, default: everything).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
main_build=${GRAFT_MAIN_BUILD:-build}
build=${GRAFT_SANITIZE_BUILD:-build-sanitize}
fuzz_seconds=${GRAFT_FUZZ_SECONDS:-20}
test_filter=${GRAFT_SANITIZE_TESTS:-*}
jobs=${GRAFT_SANITIZE_JOBS:-$(nproc)}
t0=$(date +%s)
stamp() { echo "ci_sanitize: $* ($(($(date +%s) - t0)) s)"; }

for dir in "$main_build/tests/golden" "$main_build/tests/weights"; do
  [ -d "$dir" ] || { echo "ci_sanitize: $dir is missing: run README command (b) first (it writes the fixtures)" >&2; exit 1; }
done
command -v clang++ >/dev/null || { echo "ci_sanitize: clang++ not found: run tools/install_deps.sh" >&2; exit 1; }

fuzzers=()
for src in tests/fuzz/fuzz_*.cpp; do fuzzers+=("$(basename "$src" .cpp)"); done

# GRAFT_WERROR=OFF: clang's warning set differs from GCC's, which the main build holds to -Werror; this stage is
# about sanitizer reports.
CC=clang CXX=clang++ cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DGRAFT_CUDA=OFF -DGRAFT_SANITIZE=ON \
  -DGRAFT_FUZZ=ON -DGRAFT_BUILD_BENCH=OFF -DGRAFT_WERROR=OFF \
  -DGRAFT_GOLDEN_DIR="$root/$main_build/tests/golden" -DGRAFT_WEIGHTS_DIR="$root/$main_build/tests/weights" >/dev/null
cmake --build "$build" -j"$jobs" --target graft_tests "${fuzzers[@]}"
stamp "built graft_tests and ${fuzzers[*]}"

# Reports abort (exit != 0); leaks are reported at exit; UBSan prints the stack of the offending line.
export ASAN_OPTIONS=abort_on_error=1:detect_leaks=1:strict_init_order=1:check_initialization_order=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
command -v llvm-symbolizer >/dev/null || export ASAN_SYMBOLIZER_PATH=/usr/lib/llvm-14/bin/llvm-symbolizer

"$build/tests/graft_tests" --gtest_filter="$test_filter" --gtest_brief=1
stamp "graft_tests passed under ASan + UBSan"

# Where a report's fault lies: the first frame of the report's first stack that belongs to libhdf5 or to code
# built here (a source path under this checkout, graft::, CLI::, std::, the fuzz entry point). Frames without either
# - sanitizer interceptors (memcpy, strdup, malloc: they sit in the fuzz binary with no source line), libFuzzer,
# libc - are skipped, so a libhdf5 function that calls strdup or memcpy is blamed, not the interceptor.
# One awk, never a failing status: under `set -euo pipefail` a grep that matched nothing (a report with no stack, as
# when an input no longer reproduces alone) or a grep killed by SIGPIPE after `head` would end this script silently.
faulting_frame() {
  awk -v ours="libhdf5|$root/[^ ]*[.](cpp|cc|h|hpp):[0-9]|graft::|CLI::|std::|LLVMFuzzerTestOneInput" '
    /^ +#[0-9]+ / { if (seen && $1 == "#0") exit; seen = 1; if ($0 ~ ours) { print; exit } }' "$1" || true
}

status=0
for name in "${fuzzers[@]}"; do
  corpus=tests/fuzz/${name#fuzz_}_corpus
  [ -d "$corpus" ] || { echo "ci_sanitize: $name has no seed corpus $corpus" >&2; exit 1; }
  work=$build/fuzz/$name
  rm -rf "$work" && mkdir -p "$work/corpus" && cp -R "$corpus/." "$work/corpus/"
  # Fork mode with -ignore_crashes: fuzzing goes on after a report, so one run finds every kind it can, and each
  # report (crash-*, leak-*, oom-*, timeout-* input in $work/) is then classified below.
  # -rss_limit_mb also caps single allocations (malloc_limit_mb): an input that makes graft allocate gigabytes
  # is a bug (limits are checked before allocating), as is one input running longer than -timeout seconds.
  # -detect_leaks=0: libhdf5 1.10 leaks inside H5Fopen's own error paths on damaged files (nothing graft holds
  # or can free); graft's own leaks are caught by graft_tests above, which runs under LeakSanitizer.
  # allocator_may_return_null=1: as without ASan, an impossible malloc inside libhdf5 (sizes read from a damaged
  # file) returns NULL and libhdf5 reports it, which graft turns into a graft::Error.
  export ASAN_OPTIONS_FUZZ=$ASAN_OPTIONS:allocator_may_return_null=1:detect_leaks=0
  # -seed=1: the same mutations on every CI run (reproducible results); explore with other seeds and longer runs
  # by hand (README "Sanitizers and fuzzing").
  ASAN_OPTIONS=$ASAN_OPTIONS_FUZZ "$build/$name" -seed=1 -fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1 \
    -max_total_time="$fuzz_seconds" -timeout=30 -rss_limit_mb=2560 -detect_leaks=0 -print_final_stats=1 \
    -artifact_prefix="$work/" "$work/corpus" >"$work/log.txt" 2>&1 || true
  runs=$(grep -o '#[0-9]*: cov: [0-9]* ft: [0-9]*' "$work/log.txt" | tail -n 1 || true)
  # Debian 12's libhdf5 1.10.8 is not memory-safe on damaged files (use-after-free, wild memcpy inside its own
  # metadata cache and global heap: upstream CVEs fixed in 1.14). Reports whose fault lies inside libhdf5 are
  # listed as warnings; any other report - graft, CLI11, the standard library, an uncaught exception - fails CI.
  for input in "$work"/crash-* "$work"/leak-* "$work"/oom-* "$work"/timeout-*; do
    [ -e "$input" ] || continue
    ASAN_OPTIONS=$ASAN_OPTIONS_FUZZ timeout 120 "$build/$name" -timeout=30 -rss_limit_mb=2560 \
      "$input" >"$input.report" 2>&1 || true
    frame=$(faulting_frame "$input.report")
    if grep -q 'ERROR: \(AddressSanitizer\|libFuzzer\)' "$input.report" && [[ "$frame" == *libhdf5* ]]; then
      echo "ci_sanitize: warning: $name: a libhdf5-internal fault on a damaged file ($input): $frame"
    elif ! grep -qE 'ERROR|runtime error|deadly signal|terminate called|Timeout' "$input.report"; then
      echo "ci_sanitize: warning: $name: $input no longer reproduces alone (fork-mode flake); see $work/log.txt"
    else
      echo "ci_sanitize: $name: a report outside libhdf5 ($input):" >&2
      grep -E 'ERROR|runtime error|terminate called|#[0-9]+ ' "$input.report" | head -n 25 >&2 || true
      status=1
    fi
  done
  stamp "$name: fuzzed ${runs:-?}"
done
[ "$status" -eq 0 ] || { echo "ci_sanitize: FAILED: fuzzers found bugs (inputs in $build/fuzz/)" >&2; exit 1; }
stamp "sanitizer and fuzzing stage passed"
