#!/usr/bin/env bash
# Packs what the device check runs into build-dev/bundle.tar.xz (~15 MB): the binaries stripped (graft, graft_study,
# tests/graft_gpu_tests, bench/graft_bench_cuda, graft_graph_memcheck_probe: ~120 MB unpacked, over the device
# tool's 64 MiB carry limit) and build-dev/lib. Build them first (bench/README.md). On the device:
#   tar xJf build-dev/bundle.tar.xz -C build-dev && GRAFT_NO_CTEST=1 GRAFT_COMPARE_TORCH=1 bash tools/device_check.sh
# with carry ["build-dev/bundle.tar.xz"] (bench/README.md: the next run for issue 6, one call with all its flags).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${1:-$root/build-dev}
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/tests" "$stage/bench"
strip -o "$stage/graft" "$build/graft"
strip -o "$stage/graft_study" "$build/graft_study"
strip -o "$stage/tests/graft_gpu_tests" "$build/tests/graft_gpu_tests"
strip -o "$stage/bench/graft_bench_cuda" "$build/bench/graft_bench_cuda"
strip -o "$stage/graft_graph_memcheck_probe" "$build/graft_graph_memcheck_probe"
cp -r "$build/lib" "$stage/lib"
# Which source the binaries are (device_check.sh prints it): the commit, "+changes" when the tree had uncommitted
# edits, and when it was packed. (A bundle packed before the last commit's build shows an older commit here.)
rev=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
git -C "$root" diff --quiet HEAD 2>/dev/null || rev="$rev+changes"
echo "$rev packed $(date -u '+%Y-%m-%d %H:%M UTC')" >"$stage/REVISION"
tar -C "$stage" -cf - . | xz -T2 -6 >"$build/bundle.tar.xz"
ls -la "$build/bundle.tar.xz"
