// CUDA benchmarks of the foundation kernels: the very launchers of kernels/*.h that the engine calls, on graft's
// compute stream, timed with CUDA events (manual time), after a warm-up (helpers: bench/cuda_bench.h).
// - Memory-bound kernels run on 64M floats (256 MiB per operand, 5x the 50 MB L2 of an H100) and rotate over
//   enough buffer sets that no launch finds its operands in L2. They report bytes/s counting every byte read plus
//   every byte written once, and pct_of_copy: their median bandwidth over that of cudaMemcpyAsync device-to-device
//   (also read + written) measured once at start in this process (bench_cuda_main.cpp).
// - GEMM (square 1024/2048/4096) reports FLOP/s and pct_of_cublas against cuBLAS in strict FP32 at the same size,
//   measured in this process.
// The counters GB/s, TFLOP/s, pct_of_* come from the MEDIAN time per launch; bytes_per_second and FLOP/s are
// Google Benchmark's means.
#include <map>

#include "bench/cuda_bench.h"
#include "kernels/elementwise.h"
#include "kernels/gemm.h"
#include "kernels/reduce.h"
#include "kernels/softmax.h"

namespace graft::bench {
namespace {

// ---- elementwise --------------------------------------------------------------------------------------------

void BM_binary_forward_cuda(benchmark::State& state, BinaryOp op, Broadcast ib) {
  guarded(state, [&] {
    const std::int64_t channels = 64, nb = ib == Broadcast::Channel ? channels : kN;
    const int sets = rotation_sets((2 * kN + nb) * kF);
    auto a = random_buffers(sets, kN, 1), b = random_buffers(sets, nb, 2, 0.5f, 2.f);
    auto out = random_buffers(sets, kN, 3);
    const double t = run_timed(state, sets, [&](int s) {
      binary_forward_cuda(out[s].f(), a[s].f(), Broadcast::Full, b[s].f(), ib, op, kN, channels);
    });
    report_bandwidth(state, sets, (2 * kN + nb) * kF, t,
                     tuple_label({kN}) + (ib == Broadcast::Channel ? " b=(64)" : ""));
  });
}
BENCHMARK_CAPTURE(BM_binary_forward_cuda, add, BinaryOp::Add, Broadcast::Full)
    ->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_binary_forward_cuda, mul_channel, BinaryOp::Mul, Broadcast::Channel)
    ->UseManualTime()->Unit(benchmark::kMicrosecond);

void BM_unary_forward_cuda(benchmark::State& state, UnaryOp op) {
  guarded(state, [&] {
    const int sets = rotation_sets(2 * kN * kF);
    auto x = op == UnaryOp::Log ? random_buffers(sets, kN, 4, 0.1f, 4.f) : random_buffers(sets, kN, 4);
    auto out = random_buffers(sets, kN, 5);
    const double t = run_timed(state, sets, [&](int s) { unary_forward_cuda(out[s].f(), x[s].f(), op, kN); });
    report_bandwidth(state, sets, 2 * kN * kF, t, tuple_label({kN}));
  });
}
BENCHMARK_CAPTURE(BM_unary_forward_cuda, relu, UnaryOp::Relu)->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_unary_forward_cuda, exp, UnaryOp::Exp)->UseManualTime()->Unit(benchmark::kMicrosecond);

void BM_scale_shift_cuda(benchmark::State& state) {
  guarded(state, [&] {
    const int sets = rotation_sets(2 * kN * kF);
    auto x = random_buffers(sets, kN, 6), out = random_buffers(sets, kN, 7);
    const double t = run_timed(state, sets, [&](int s) { scale_shift_cuda(out[s].f(), x[s].f(), 1.5f, -0.25f, kN); });
    report_bandwidth(state, sets, 2 * kN * kF, t, tuple_label({kN}));
  });
}
BENCHMARK(BM_scale_shift_cuda)->UseManualTime()->Unit(benchmark::kMicrosecond);

void BM_relu_backward_cuda(benchmark::State& state) {
  guarded(state, [&] {
    const int sets = rotation_sets(3 * kN * kF);
    auto dout = random_buffers(sets, kN, 8), out = random_buffers(sets, kN, 9), dinp = random_buffers(sets, kN, 10);
    const double t =
        run_timed(state, sets, [&](int s) { relu_backward_cuda(dinp[s].f(), dout[s].f(), out[s].f(), kN); });
    report_bandwidth(state, sets, 3 * kN * kF, t, tuple_label({kN}));
  });
}
BENCHMARK(BM_relu_backward_cuda)->UseManualTime()->Unit(benchmark::kMicrosecond);

void BM_fill_cuda(benchmark::State& state) {
  guarded(state, [&] {
    const int sets = rotation_sets(kN * kF);
    auto out = random_buffers(sets, kN, 11);
    const double t = run_timed(state, sets, [&](int s) { fill_cuda(out[s].f(), 0.5f, kN); });
    report_bandwidth(state, sets, kN * kF, t, tuple_label({kN}) + " write-only");
  });
}
BENCHMARK(BM_fill_cuda)->UseManualTime()->Unit(benchmark::kMicrosecond);

// ---- reductions over (outer, len, inner), 64M floats ----------------------------------------------------------
// (1, 262144, 256): per-channel sums over N*H*W rows; (262144, 256, 1): row sums; (256, 1024, 256): middle axis.

void BM_sum_axis_cuda(benchmark::State& state) {
  guarded(state, [&] {
    const std::int64_t outer = state.range(0), len = state.range(1), inner = state.range(2);
    const std::int64_t n = outer * len * inner, m = outer * inner;
    const int sets = rotation_sets((n + m) * kF);
    auto inp = random_buffers(sets, n, 12), out = random_buffers(sets, m, 13);
    const std::size_t workspace_bytes = sum_axis_workspace_cuda(outer, len, inner);
    DeviceBuffer workspace(std::max<std::size_t>(workspace_bytes, 4));
    const double t = run_timed(state, sets, [&](int s) {
      sum_axis_cuda(out[s].f(), inp[s].f(), outer, len, inner, 1.f, workspace_bytes > 0 ? workspace.f() : nullptr);
    });
    report_bandwidth(state, sets, (n + m) * kF, t, tuple_label({outer, len, inner}));
  });
}
BENCHMARK(BM_sum_axis_cuda)
    ->Args({1, 262144, 256})->Args({262144, 256, 1})->Args({256, 1024, 256})
    ->UseManualTime()->Unit(benchmark::kMicrosecond);

void BM_broadcast_axis_cuda(benchmark::State& state) {
  guarded(state, [&] {
    const std::int64_t outer = state.range(0), len = state.range(1), inner = state.range(2);
    const std::int64_t n = outer * len * inner, m = outer * inner;
    const int sets = rotation_sets((n + m) * kF);
    auto dout = random_buffers(sets, m, 14), dinp = random_buffers(sets, n, 15);
    const double t = run_timed(
        state, sets, [&](int s) { broadcast_axis_cuda(dinp[s].f(), dout[s].f(), outer, len, inner, 0.5f); });
    report_bandwidth(state, sets, (n + m) * kF, t, tuple_label({outer, len, inner}));
  });
}
BENCHMARK(BM_broadcast_axis_cuda)
    ->Args({1, 262144, 256})->Args({262144, 256, 1})->Args({256, 1024, 256})
    ->UseManualTime()->Unit(benchmark::kMicrosecond);

// ---- softmax and cross entropy: (65536, 1000), the ImageNet classifier head at a large batch ---------------

constexpr std::int64_t kRows = 65536, kCols = 1000;

void BM_softmax_forward_cuda(benchmark::State& state, bool log) {
  guarded(state, [&] {
    const std::int64_t n = kRows * kCols;
    const int sets = rotation_sets(2 * n * kF);
    auto x = random_buffers(sets, n, 16, -4.f, 4.f), y = random_buffers(sets, n, 17);
    const double t =
        run_timed(state, sets, [&](int s) { softmax_forward_cuda(y[s].f(), x[s].f(), kRows, kCols, log); });
    report_bandwidth(state, sets, 2 * n * kF, t, tuple_label({kRows, kCols}));
  });
}
BENCHMARK_CAPTURE(BM_softmax_forward_cuda, softmax, false)->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_softmax_forward_cuda, log_softmax, true)->UseManualTime()->Unit(benchmark::kMicrosecond);

void BM_softmax_backward_cuda(benchmark::State& state, bool log) {
  guarded(state, [&] {
    const std::int64_t n = kRows * kCols;
    const int sets = rotation_sets(3 * n * kF);
    auto x = random_buffers(sets, n, 18, -4.f, 4.f), y = random_buffers(sets, n, 19);
    auto dy = random_buffers(sets, n, 20), dx = random_buffers(sets, n, 21);
    for (int s = 0; s < sets; ++s) softmax_forward_cuda(y[s].f(), x[s].f(), kRows, kCols, log);  // real outputs
    const double t = run_timed(
        state, sets, [&](int s) { softmax_backward_cuda(dx[s].f(), dy[s].f(), y[s].f(), kRows, kCols, log); });
    report_bandwidth(state, sets, 3 * n * kF, t, tuple_label({kRows, kCols}));
  });
}
BENCHMARK_CAPTURE(BM_softmax_backward_cuda, softmax, false)->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_softmax_backward_cuda, log_softmax, true)->UseManualTime()->Unit(benchmark::kMicrosecond);

// Valid labels in [0, cols), made on the host (there is no float->int kernel) and copied once per set.
std::vector<DeviceBuffer> label_buffers(int sets, std::int64_t rows, std::int64_t cols) {
  std::vector<DeviceBuffer> buffers;
  std::vector<std::int32_t> host(static_cast<std::size_t>(rows));
  for (int s = 0; s < sets; ++s) {
    std::uint64_t state = 0x9e3779b97f4a7c15ULL * static_cast<std::uint64_t>(s + 1);
    for (auto& label : host) {
      state = state * 6364136223846793005ULL + 1442695040888963407ULL;
      label = static_cast<std::int32_t>((state >> 33) % static_cast<std::uint64_t>(cols));
    }
    buffers.emplace_back(host.size() * sizeof(std::int32_t));
    cuda::copy_to_device(buffers.back().f(), host.data(), host.size() * sizeof(std::int32_t));
  }
  cuda::synchronize();
  return buffers;
}

void BM_cross_entropy_forward_cuda(benchmark::State& state) {
  guarded(state, [&] {
    const std::int64_t n = kRows * kCols;
    const int sets = rotation_sets((2 * n + 2 * kRows) * kF);
    auto logits = random_buffers(sets, n, 22, -4.f, 4.f), probs = random_buffers(sets, n, 23);
    auto losses = random_buffers(sets, kRows, 24);
    auto labels = label_buffers(sets, kRows, kCols);
    const double t = run_timed(state, sets, [&](int s) {
      cross_entropy_forward_cuda(losses[s].f(), probs[s].f(), logits[s].f(), labels[s].as<std::int32_t>(), kRows,
                                 kCols, 0.1f);
    });
    report_bandwidth(state, sets, (2 * n + 2 * kRows) * kF, t, tuple_label({kRows, kCols}) + " smoothing=0.1");
  });
}
BENCHMARK(BM_cross_entropy_forward_cuda)->UseManualTime()->Unit(benchmark::kMicrosecond);

void BM_cross_entropy_backward_cuda(benchmark::State& state) {
  guarded(state, [&] {
    const std::int64_t n = kRows * kCols;
    const int sets = rotation_sets((2 * n + kRows) * kF);
    auto logits = random_buffers(sets, n, 25, -4.f, 4.f), probs = random_buffers(sets, n, 26);
    auto losses = random_buffers(sets, kRows, 27), dlogits = random_buffers(sets, n, 28);
    auto labels = label_buffers(sets, kRows, kCols);
    for (int s = 0; s < sets; ++s)  // real probabilities, as the backward sees them
      cross_entropy_forward_cuda(losses[s].f(), probs[s].f(), logits[s].f(), labels[s].as<std::int32_t>(), kRows,
                                 kCols, 0.1f);
    DeviceBuffer dloss(sizeof(float));
    const float one = 1.f;
    cuda::copy_to_device(dloss.f(), &one, sizeof(float));
    const double t = run_timed(state, sets, [&](int s) {
      cross_entropy_backward_cuda(dlogits[s].f(), probs[s].f(), labels[s].as<std::int32_t>(), dloss.f(), kRows,
                                  kCols, 0.1f, 1.f / static_cast<float>(kRows));
    });
    report_bandwidth(state, sets, (2 * n + kRows) * kF, t, tuple_label({kRows, kCols}) + " smoothing=0.1");
  });
}
BENCHMARK(BM_cross_entropy_backward_cuda)->UseManualTime()->Unit(benchmark::kMicrosecond);

// ---- random fills (write-only) ------------------------------------------------------------------------------

void BM_uniform_cuda(benchmark::State& state) {
  guarded(state, [&] {
    const int sets = rotation_sets(kN * kF);
    auto out = random_buffers(sets, kN, 29);
    const double t = run_timed(state, sets, [&](int s) { uniform_cuda(out[s].f(), kN, 42, 0, -1.f, 1.f); });
    report_bandwidth(state, sets, kN * kF, t, tuple_label({kN}) + " write-only");
  });
}
BENCHMARK(BM_uniform_cuda)->UseManualTime()->Unit(benchmark::kMicrosecond);

void BM_normal_cuda(benchmark::State& state) {
  guarded(state, [&] {
    const int sets = rotation_sets(kN * kF);
    auto out = random_buffers(sets, kN, 30);
    const double t = run_timed(state, sets, [&](int s) { normal_cuda(out[s].f(), kN, 42, 0, 0.f, 1.f); });
    report_bandwidth(state, sets, kN * kF, t, tuple_label({kN}) + " write-only");
  });
}
BENCHMARK(BM_normal_cuda)->UseManualTime()->Unit(benchmark::kMicrosecond);

// ---- GEMM: hand-written tiled SGEMM vs cuBLAS ------------------------------------------------------------------

enum class GemmImpl { TiledFp32, CublasFp32, CublasTf32 };

struct GemmOperands {
  int sets;
  std::vector<DeviceBuffer> a, b, c;
};

GemmOperands gemm_operands(std::int64_t n) {
  const int sets = rotation_sets(3 * n * n * kF);
  return {sets, random_buffers(sets, n * n, 31), random_buffers(sets, n * n, 32), random_buffers(sets, n * n, 33)};
}

void gemm_launch(GemmImpl impl, GemmOperands& ops, std::int64_t n, int s) {
  if (impl == GemmImpl::TiledFp32)
    gemm_cuda_tiled(ops.c[s].f(), ops.a[s].f(), ops.b[s].f(), false, false, n, n, n, 1.f, 0.f);
  else
    gemm_cublas(ops.c[s].f(), ops.a[s].f(), ops.b[s].f(), false, false, n, n, n, 1.f, 0.f);
}

// cuBLAS strict-FP32 seconds per call for an n^3 GEMM, measured once per size in this process.
double cublas_fp32_seconds(std::int64_t n) {
  static std::map<std::int64_t, double> cache;
  auto found = cache.find(n);
  if (found != cache.end()) return found->second;
  Tf32Scope strict(false);
  GemmOperands ops = gemm_operands(n);
  const double seconds = measure(ops.sets, 10, [&](int s) { gemm_launch(GemmImpl::CublasFp32, ops, n, s); });
  cache.emplace(n, seconds);
  return seconds;
}

void BM_gemm_cuda(benchmark::State& state, GemmImpl impl) {
  guarded(state, [&] {
    const std::int64_t n = state.range(0);
    const double reference = cublas_fp32_seconds(n);
    Tf32Scope math(impl == GemmImpl::CublasTf32);
    GemmOperands ops = gemm_operands(n);
    const double t = run_timed(state, ops.sets, [&](int s) { gemm_launch(impl, ops, n, s); });
    const double flops = 2.0 * static_cast<double>(n) * static_cast<double>(n) * static_cast<double>(n);
    state.counters["FLOP/s"] =
        benchmark::Counter(flops * static_cast<double>(state.iterations() * ops.sets), benchmark::Counter::kIsRate);
    state.counters["TFLOP/s"] = flops / t * 1e-12;
    state.counters["pct_of_cublas"] = 100.0 * reference / t;
    std::ostringstream label;
    label << "M=N=K=" << n << " vs cublas_fp32";
    state.SetLabel(label.str());
  });
}
BENCHMARK_CAPTURE(BM_gemm_cuda, tiled_fp32, GemmImpl::TiledFp32)
    ->Arg(1024)->Arg(2048)->Arg(4096)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_gemm_cuda, cublas_fp32, GemmImpl::CublasFp32)
    ->Arg(1024)->Arg(2048)->Arg(4096)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_gemm_cuda, cublas_tf32, GemmImpl::CublasTf32)
    ->Arg(1024)->Arg(2048)->Arg(4096)->UseManualTime()->Unit(benchmark::kMillisecond);

// ==== Layer kernels: the convolutions in bench/bench_conv_cuda.cpp, batch norm, pooling and the optimizer step in
// bench/bench_layers_cuda.cpp (both with bench/cuda_bench.h's helpers).

}  // namespace
}  // namespace graft::bench
