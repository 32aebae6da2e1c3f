// CPU benchmarks of the foundation kernels: the very launchers of kernels/*.h that the engine calls.
// Memory-bound kernels report bytes/s counting every byte read plus every byte written once (the convention of
// a copy benchmark: a copy of B bytes moves 2B); GEMM reports FLOP/s (2*M*N*K per call).
// Inputs are fresh Philox-random values (never zeros: exp/log/division take data-dependent time on some CPUs).
// Sizes: 1M floats (4 MiB, cache-resident on most server CPUs) and 16M floats (64 MiB, DRAM-bound).
// Rates use the calling thread's CPU time (the default), which a busy shared machine disturbs less than wall time;
// the single-threaded kernels spend all their time on that thread. GEMM uses wall time (OpenBLAS threads).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "core/ops.h"
#include "core/tensor.h"
#include "io/dataset.h"
#include "io/transforms.h"
#include "kernels/batch_norm.h"
#include "kernels/conv2d.h"
#include "kernels/elementwise.h"
#include "kernels/gemm.h"
#include "kernels/optimizer.h"
#include "kernels/pool.h"
#include "kernels/random.h"
#include "kernels/reduce.h"
#include "kernels/softmax.h"

namespace graft {
namespace {

constexpr std::int64_t kSmall = std::int64_t{1} << 20;
constexpr std::int64_t kLarge = std::int64_t{1} << 24;
constexpr std::int64_t kF = sizeof(float);

std::vector<float> random_vector(std::int64_t n, std::uint64_t seed, float low = -1.f, float high = 1.f) {
  std::vector<float> v(static_cast<std::size_t>(n));
  uniform_cpu(v.data(), n, seed, 0, low, high);
  return v;
}

// Bytes moved per call -> bytes/s; the label records the shape so RESULTS.md tables read on their own.
void finish(benchmark::State& state, std::int64_t bytes_per_call, const std::string& label) {
  state.SetBytesProcessed(state.iterations() * bytes_per_call);
  state.SetLabel(label);
}

std::string n_label(std::int64_t n) { return "n=" + std::to_string(n); }

// "(a,b,c)", as shapes print everywhere else.
std::string tuple_label(std::initializer_list<std::int64_t> dims) { return shape_str(Shape(dims)); }

// ---- elementwise --------------------------------------------------------------------------------------------

void BM_binary_forward_cpu(benchmark::State& state, BinaryOp op, Broadcast ib) {
  const std::int64_t n = state.range(0), channels = 64;
  const std::int64_t nb = ib == Broadcast::Full ? n : ib == Broadcast::Channel ? channels : 1;
  std::vector<float> a = random_vector(n, 1), b = random_vector(nb, 2, 0.5f, 2.f), out(a.size());
  for (auto _ : state) {
    binary_forward_cpu(out.data(), a.data(), Broadcast::Full, b.data(), ib, op, n, channels);
    benchmark::ClobberMemory();
  }
  finish(state, (2 * n + nb) * kF, n_label(n) + (ib == Broadcast::Channel ? " b=(64)" : ""));
}
BENCHMARK_CAPTURE(BM_binary_forward_cpu, add, BinaryOp::Add, Broadcast::Full)->Arg(kSmall)->Arg(kLarge);
BENCHMARK_CAPTURE(BM_binary_forward_cpu, div, BinaryOp::Div, Broadcast::Full)->Arg(kSmall)->Arg(kLarge);
BENCHMARK_CAPTURE(BM_binary_forward_cpu, mul_channel, BinaryOp::Mul, Broadcast::Channel)->Arg(kSmall)->Arg(kLarge);

void BM_unary_forward_cpu(benchmark::State& state, UnaryOp op) {
  const std::int64_t n = state.range(0);
  // log needs positive inputs; the others get both signs so relu's branch is unpredictable.
  std::vector<float> x = op == UnaryOp::Log ? random_vector(n, 3, 0.1f, 4.f) : random_vector(n, 3), out(x.size());
  for (auto _ : state) {
    unary_forward_cpu(out.data(), x.data(), op, n);
    benchmark::ClobberMemory();
  }
  finish(state, 2 * n * kF, n_label(n));
}
BENCHMARK_CAPTURE(BM_unary_forward_cpu, relu, UnaryOp::Relu)->Arg(kSmall)->Arg(kLarge);
BENCHMARK_CAPTURE(BM_unary_forward_cpu, exp, UnaryOp::Exp)->Arg(kSmall)->Arg(kLarge);
BENCHMARK_CAPTURE(BM_unary_forward_cpu, log, UnaryOp::Log)->Arg(kSmall)->Arg(kLarge);

void BM_scale_shift_cpu(benchmark::State& state) {
  const std::int64_t n = state.range(0);
  std::vector<float> x = random_vector(n, 4), out(x.size());
  for (auto _ : state) {
    scale_shift_cpu(out.data(), x.data(), 1.5f, -0.25f, n);
    benchmark::ClobberMemory();
  }
  finish(state, 2 * n * kF, n_label(n));
}
BENCHMARK(BM_scale_shift_cpu)->Arg(kSmall)->Arg(kLarge);

void BM_relu_backward_cpu(benchmark::State& state) {
  const std::int64_t n = state.range(0);
  std::vector<float> dout = random_vector(n, 5), out = random_vector(n, 6), dinp(dout.size());
  for (auto _ : state) {
    relu_backward_cpu(dinp.data(), dout.data(), out.data(), n);
    benchmark::ClobberMemory();
  }
  finish(state, 3 * n * kF, n_label(n));
}
BENCHMARK(BM_relu_backward_cpu)->Arg(kSmall)->Arg(kLarge);

void BM_fill_cpu(benchmark::State& state) {
  const std::int64_t n = state.range(0);
  std::vector<float> out(static_cast<std::size_t>(n));
  for (auto _ : state) {
    fill_cpu(out.data(), 0.5f, n);
    benchmark::ClobberMemory();
  }
  finish(state, n * kF, n_label(n));
}
BENCHMARK(BM_fill_cpu)->Arg(kSmall)->Arg(kLarge);

// ---- reductions: the input viewed as (outer, len, inner), 16M floats ----------------------------------------
// (1, 65536, 256): per-channel sums over N*H*W rows (bias / batch-norm gradients); (65536, 256, 1): row sums;
// (64, 1024, 256): a middle axis.

void BM_sum_axis_cpu(benchmark::State& state) {
  const std::int64_t outer = state.range(0), len = state.range(1), inner = state.range(2);
  const std::int64_t n = outer * len * inner;
  std::vector<float> inp = random_vector(n, 7), out(static_cast<std::size_t>(outer * inner));
  for (auto _ : state) {
    sum_axis_cpu(out.data(), inp.data(), outer, len, inner, 1.f);
    benchmark::ClobberMemory();
  }
  finish(state, (n + outer * inner) * kF, tuple_label({outer, len, inner}));
}
BENCHMARK(BM_sum_axis_cpu)->Args({1, 65536, 256})->Args({65536, 256, 1})->Args({64, 1024, 256});

void BM_broadcast_axis_cpu(benchmark::State& state) {
  const std::int64_t outer = state.range(0), len = state.range(1), inner = state.range(2);
  const std::int64_t n = outer * len * inner;
  std::vector<float> dout = random_vector(outer * inner, 8), dinp(static_cast<std::size_t>(n));
  for (auto _ : state) {
    broadcast_axis_cpu(dinp.data(), dout.data(), outer, len, inner, 0.5f);
    benchmark::ClobberMemory();
  }
  finish(state, (n + outer * inner) * kF, tuple_label({outer, len, inner}));
}
BENCHMARK(BM_broadcast_axis_cpu)->Args({1, 65536, 256})->Args({65536, 256, 1})->Args({64, 1024, 256});

// ---- softmax and cross entropy: (rows, 1000 classes), the ImageNet classifier head --------------------------

void BM_softmax_forward_cpu(benchmark::State& state, bool log) {
  const std::int64_t rows = state.range(0), cols = state.range(1), n = rows * cols;
  std::vector<float> x = random_vector(n, 9, -4.f, 4.f), y(x.size());
  for (auto _ : state) {
    softmax_forward_cpu(y.data(), x.data(), rows, cols, log);
    benchmark::ClobberMemory();
  }
  finish(state, 2 * n * kF, tuple_label({rows, cols}));
}
BENCHMARK_CAPTURE(BM_softmax_forward_cpu, softmax, false)->Args({256, 1000})->Args({4096, 1000});
BENCHMARK_CAPTURE(BM_softmax_forward_cpu, log_softmax, true)->Args({256, 1000})->Args({4096, 1000});

void BM_softmax_backward_cpu(benchmark::State& state, bool log) {
  const std::int64_t rows = state.range(0), cols = state.range(1), n = rows * cols;
  std::vector<float> x = random_vector(n, 10, -4.f, 4.f), y(x.size()), dy = random_vector(n, 11), dx(x.size());
  softmax_forward_cpu(y.data(), x.data(), rows, cols, log);  // a real softmax output, as the backward sees it
  for (auto _ : state) {
    softmax_backward_cpu(dx.data(), dy.data(), y.data(), rows, cols, log);
    benchmark::ClobberMemory();
  }
  finish(state, 3 * n * kF, tuple_label({rows, cols}));
}
BENCHMARK_CAPTURE(BM_softmax_backward_cpu, softmax, false)->Args({256, 1000})->Args({4096, 1000});
BENCHMARK_CAPTURE(BM_softmax_backward_cpu, log_softmax, true)->Args({256, 1000})->Args({4096, 1000});

std::vector<std::int32_t> random_labels(std::int64_t rows, std::int64_t cols) {
  std::vector<float> u = random_vector(rows, 12, 0.f, 1.f);
  std::vector<std::int32_t> labels(u.size());
  for (std::size_t i = 0; i < u.size(); ++i)
    labels[i] = static_cast<std::int32_t>(std::min<std::int64_t>(cols - 1, static_cast<std::int64_t>(u[i] * cols)));
  return labels;
}

void BM_cross_entropy_forward_cpu(benchmark::State& state) {
  const std::int64_t rows = state.range(0), cols = state.range(1), n = rows * cols;
  std::vector<float> logits = random_vector(n, 13, -4.f, 4.f), probs(logits.size()),
                     losses(static_cast<std::size_t>(rows));
  std::vector<std::int32_t> labels = random_labels(rows, cols);
  for (auto _ : state) {
    cross_entropy_forward_cpu(losses.data(), probs.data(), logits.data(), labels.data(), rows, cols, 0.1f);
    benchmark::ClobberMemory();
  }
  finish(state, (2 * n + 2 * rows) * kF, tuple_label({rows, cols}) + " smoothing=0.1");
}
BENCHMARK(BM_cross_entropy_forward_cpu)->Args({256, 1000})->Args({4096, 1000});

void BM_cross_entropy_backward_cpu(benchmark::State& state) {
  const std::int64_t rows = state.range(0), cols = state.range(1), n = rows * cols;
  std::vector<float> logits = random_vector(n, 14, -4.f, 4.f), probs(logits.size()), dlogits(logits.size()),
                     losses(static_cast<std::size_t>(rows));
  std::vector<std::int32_t> labels = random_labels(rows, cols);
  cross_entropy_forward_cpu(losses.data(), probs.data(), logits.data(), labels.data(), rows, cols, 0.1f);
  const float dloss = 1.f;
  for (auto _ : state) {
    cross_entropy_backward_cpu(dlogits.data(), probs.data(), labels.data(), &dloss, rows, cols, 0.1f,
                               1.f / static_cast<float>(rows));
    benchmark::ClobberMemory();
  }
  finish(state, (2 * n + rows) * kF, tuple_label({rows, cols}) + " smoothing=0.1");
}
BENCHMARK(BM_cross_entropy_backward_cpu)->Args({256, 1000})->Args({4096, 1000});

// ---- random fills: write-only, bounded by the Philox arithmetic on the CPU ---------------------------------

void BM_uniform_cpu(benchmark::State& state) {
  const std::int64_t n = state.range(0);
  std::vector<float> out(static_cast<std::size_t>(n));
  std::uint64_t offset = 0;
  for (auto _ : state) {
    uniform_cpu(out.data(), n, 42, offset, -1.f, 1.f);
    offset += uniform_counters(n);
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * n);
  finish(state, n * kF, n_label(n));
}
BENCHMARK(BM_uniform_cpu)->Arg(kSmall)->Arg(kLarge);

void BM_normal_cpu(benchmark::State& state) {
  const std::int64_t n = state.range(0);
  std::vector<float> out(static_cast<std::size_t>(n));
  std::uint64_t offset = 0;
  for (auto _ : state) {
    normal_cpu(out.data(), n, 42, offset, 0.f, 1.f);
    offset += normal_counters(n);
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * n);
  finish(state, n * kF, n_label(n));
}
BENCHMARK(BM_normal_cpu)->Arg(kSmall)->Arg(kLarge);

// ---- GEMM (OpenBLAS): C (M,N) = op(A) op(B) ------------------------------------------------------------------

void BM_gemm_cpu(benchmark::State& state) {
  const std::int64_t m = state.range(0), n = state.range(1), k = state.range(2);
  const bool trans_a = state.range(3) != 0, trans_b = state.range(4) != 0;
  std::vector<float> a = random_vector(m * k, 15), b = random_vector(k * n, 16), c(static_cast<std::size_t>(m * n));
  for (auto _ : state) {
    gemm_cpu(c.data(), a.data(), b.data(), trans_a, trans_b, m, n, k, 1.f, 0.f);
    benchmark::ClobberMemory();
  }
  const double flops = 2.0 * static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k);
  state.counters["FLOP/s"] =
      benchmark::Counter(flops * static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
  std::ostringstream label;
  label << "M=" << m << " N=" << n << " K=" << k << (trans_a ? " A^T" : "") << (trans_b ? " B^T" : "");
  state.SetLabel(label.str());
}
BENCHMARK(BM_gemm_cpu)
    ->ArgNames({"M", "N", "K", "ta", "tb"})
    ->Args({256, 256, 256, 0, 0})
    ->Args({512, 512, 512, 0, 0})
    ->Args({1024, 1024, 1024, 0, 0})
    ->Args({2048, 2048, 2048, 0, 0})
    ->Args({1024, 1024, 1024, 1, 0})  // the dW GEMM of a Linear/1x1 conv backward: x^T dy
    ->Args({256, 1000, 2048, 0, 1})   // ResNet-50's fc forward at batch 256: x W^T
    ->UseRealTime()                   // OpenBLAS runs its own threads: the calling thread's CPU time undercounts
    ->Unit(benchmark::kMillisecond);

// ---- layer kernels at ResNet-50 shapes, batch 8 (GPU: bench_conv_cuda.cpp, bench_layers_cuda.cpp) ----

// Batch 8, square input and kernel, "same" padding, from Args (in C, out K, kernel, stride, input H=W, groups).
Conv2dGeometry bench_conv_geometry(const benchmark::State& state) {
  Conv2dGeometry g;
  g.n = 8;
  g.c = state.range(0);
  g.k = state.range(1);
  g.r = g.s = state.range(2);
  g.stride_h = g.stride_w = static_cast<int>(state.range(3));
  g.pad_h = g.pad_w = static_cast<int>(state.range(2) / 2);
  g.h = g.w = state.range(4);
  g.groups = static_cast<int>(state.range(5));
  g.p = g.q = (g.h + 2 * g.pad_h - g.r) / g.stride_h + 1;
  return g;
}

// conv2d_forward_cpu (what the op calls): im2col + OpenBLAS sgemm, a plain GEMM for a 1x1 stride-1 conv, or the
// direct grouped kernels (kernels/conv2d_cpu_grouped.cpp); the label names the path.
// FLOP/s = 2*N*P*Q*K*R*S*C/groups over wall time (OpenBLAS threads). Args: in C, out K, kernel, stride, input
// H=W, groups.
void BM_conv2d_forward_cpu(benchmark::State& state) {
  const Conv2dGeometry g = bench_conv_geometry(state);
  std::vector<float> inp = random_vector(g.n * g.h * g.w * g.c, 17),
                     weight = random_vector(g.k * g.r * g.s * g.c / g.groups, 18),
                     out(static_cast<std::size_t>(g.n * g.p * g.q * g.k));
  const std::size_t workspace_bytes = conv2d_workspace_bytes_cpu(g);
  std::vector<float> workspace(workspace_bytes / sizeof(float) + 1);
  for (auto _ : state) {
    conv2d_forward_cpu(out.data(), inp.data(), weight.data(), nullptr, g, workspace.data(), workspace_bytes);
    benchmark::ClobberMemory();
  }
  const double flops = 2.0 * static_cast<double>(out.size()) * static_cast<double>(g.r * g.s * g.c / g.groups);
  state.counters["FLOP/s"] =
      benchmark::Counter(flops * static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
  std::ostringstream label;
  label << "in (" << g.n << ',' << g.h << ',' << g.w << ',' << g.c << ") " << g.r << 'x' << g.s << '/' << g.stride_h
        << " -> " << g.k << (g.groups > 1 ? " groups " + std::to_string(g.groups) : "") << ' '
        << conv2d_cpu_path(g) << (conv2d_cpu_grouped_applies(g) ? std::string(" ") + conv2d_cpu_grouped_isa() : "");
  state.SetLabel(label.str());
}
BENCHMARK(BM_conv2d_forward_cpu)
    ->ArgNames({"C", "K", "k", "s", "hw", "g"})
    ->Args({64, 64, 3, 1, 56, 1})       // ResNet-50 layer1 3x3
    ->Args({256, 64, 1, 1, 56, 1})      // layer1 1x1 reduce (pointwise GEMM)
    ->Args({256, 256, 3, 1, 14, 1})     // layer3 3x3
    ->Args({128, 128, 3, 1, 56, 32})    // ResNeXt-50 32x4d layer1 grouped 3x3 (4 channels per group)
    ->Args({256, 256, 3, 1, 28, 32})    // layer2 (8 per group)
    ->Args({256, 256, 3, 2, 56, 32})    // layer2's first block: stride 2
    ->Args({1024, 1024, 3, 1, 7, 32})   // layer4 (32 per group)
    ->UseRealTime()                     // OpenBLAS threads, as gemm_cpu
    ->Unit(benchmark::kMillisecond);

// conv2d_backward_data_cpu / conv2d_backward_filter_cpu at the same shapes (Args as above, then d: 0 data, 1 filter).
void BM_conv2d_backward_cpu(benchmark::State& state) {
  const Conv2dGeometry g = bench_conv_geometry(state);
  const bool filter = state.range(6) == 1;
  std::vector<float> inp = random_vector(g.n * g.h * g.w * g.c, 17),
                     weight = random_vector(g.k * g.r * g.s * g.c / g.groups, 18),
                     dout = random_vector(g.n * g.p * g.q * g.k, 19);
  const std::size_t workspace_bytes = conv2d_workspace_bytes_cpu(g);
  std::vector<float> workspace(workspace_bytes / sizeof(float) + 1);
  for (auto _ : state) {
    if (filter)
      conv2d_backward_filter_cpu(weight.data(), dout.data(), inp.data(), g, workspace.data(), workspace_bytes);
    else
      conv2d_backward_data_cpu(inp.data(), dout.data(), weight.data(), g, workspace.data(), workspace_bytes);
    benchmark::ClobberMemory();
  }
  const double flops = 2.0 * static_cast<double>(dout.size()) * static_cast<double>(g.r * g.s * g.c / g.groups);
  state.counters["FLOP/s"] =
      benchmark::Counter(flops * static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
  std::ostringstream label;
  label << (filter ? "dW " : "dx ") << "in (" << g.n << ',' << g.h << ',' << g.w << ',' << g.c << ") " << g.r << 'x'
        << g.s << '/' << g.stride_h << " -> " << g.k << (g.groups > 1 ? " groups " + std::to_string(g.groups) : "")
        << ' ' << conv2d_cpu_path(g)
        << (conv2d_cpu_grouped_applies(g) ? std::string(" ") + conv2d_cpu_grouped_isa() : "");
  state.SetLabel(label.str());
}
BENCHMARK(BM_conv2d_backward_cpu)
    ->ArgNames({"C", "K", "k", "s", "hw", "g", "d"})
    ->Args({64, 64, 3, 1, 56, 1, 0})        // ResNet-50 layer1 3x3
    ->Args({64, 64, 3, 1, 56, 1, 1})
    ->Args({128, 128, 3, 1, 56, 32, 0})     // ResNeXt-50 32x4d layer1 grouped 3x3
    ->Args({128, 128, 3, 1, 56, 32, 1})
    ->Args({256, 256, 3, 2, 56, 32, 0})     // layer2's first block: stride 2
    ->Args({256, 256, 3, 2, 56, 32, 1})
    ->Args({1024, 1024, 3, 1, 7, 32, 0})    // layer4
    ->Args({1024, 1024, 3, 1, 7, 32, 1})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// Batch norm forward in training: statistics (one pass) + normalise; bytes = 3*M*C floats (read x twice, write y).
void BM_batch_norm_forward_cpu(benchmark::State& state) {
  const std::int64_t hw = state.range(0), c = state.range(1), m = 8 * hw * hw, n = m * c;
  std::vector<float> x = random_vector(n, 19), y(x.size()), gamma = random_vector(c, 20, 0.5f, 1.5f),
                     beta = random_vector(c, 21), mean(static_cast<std::size_t>(c)), invstd(mean.size()),
                     running_mean = random_vector(c, 22), running_var = random_vector(c, 23, 0.5f, 1.5f);
  for (auto _ : state) {
    batch_norm_stats_cpu(mean.data(), invstd.data(), running_mean.data(), running_var.data(), x.data(), m, c, 1e-5f,
                         0.1f);
    batch_norm_forward_cpu(y.data(), x.data(), mean.data(), invstd.data(), gamma.data(), beta.data(), m, c);
    benchmark::ClobberMemory();
  }
  finish(state, 3 * n * kF, tuple_label({8, hw, hw, c}) + " stats+normalise");
}
BENCHMARK(BM_batch_norm_forward_cpu)->ArgNames({"hw", "c"})->Args({56, 256})->Args({7, 2048});

// The stem's max pool 3x3/2 pad 1 on (8,112,112,64): read input, write output + int32 argmax.
void BM_max_pool2d_forward_cpu(benchmark::State& state) {
  const Pool2dShape ps{8, 112, 112, 64, 56, 56, 3, 3, 2, 2, 1, 1};
  const std::int64_t n_in = ps.n * ps.h * ps.w * ps.c, n_out = ps.n * ps.p * ps.q * ps.c;
  std::vector<float> x = random_vector(n_in, 24), y(static_cast<std::size_t>(n_out));
  std::vector<std::int32_t> argmax(y.size());
  for (auto _ : state) {
    max_pool2d_forward_cpu(y.data(), argmax.data(), x.data(), ps);
    benchmark::ClobberMemory();
  }
  finish(state, (n_in + 2 * n_out) * kF, tuple_label({ps.n, ps.h, ps.w, ps.c}) + " 3x3/2 pad 1");
}
BENCHMARK(BM_max_pool2d_forward_cpu);

// One SGD step (momentum 0.9, weight decay 1e-4, buffer read) over 25.6M floats, ResNet-50's parameter count, as
// one tensor: read p, g, buf; write p, buf = 5n floats.
void BM_sgd_step_cpu(benchmark::State& state) {
  const std::int64_t n = state.range(0);
  std::vector<float> p = random_vector(n, 25), g = random_vector(n, 26, -1e-2f, 1e-2f),
                     buf = random_vector(n, 27, -1e-2f, 1e-2f);
  for (auto _ : state) {
    sgd_step_cpu(p.data(), buf.data(), g.data(), n, 0.1f, 0.9f, 0.f, 1e-4f, false, false);
    benchmark::ClobberMemory();
  }
  finish(state, 5 * n * kF, n_label(n) + " momentum");
}
BENCHMARK(BM_sgd_step_cpu)->Arg(25557032)->Unit(benchmark::kMillisecond);

}  // namespace

// The input pipeline's resampling (io/transforms.cpp) on one decoded image: torchvision's eval transform (resize the
// shorter side to 256 with antialiasing, center crop 224, normalise) and the training one (random resized crop to
// 224 and flip), from a photo-sized (4000x3000) and an ImageNet-sized (500x375) RGB image. Bytes/s counts the
// source image's bytes.
void BM_transform_example_cpu(benchmark::State& state) {
  const int w = int(state.range(0)), h = int(state.range(1));
  const bool train = state.range(2) != 0;
  graft::Example ex;
  ex.width = w, ex.height = h, ex.channels = 3, ex.label = 0;
  const std::vector<float> noise = random_vector(std::int64_t(w) * h * 3, 41, 0.f, 255.f);
  ex.pixels.assign(noise.begin(), noise.end());
  graft::TransformOptions options;
  options.random_resized_crop = options.random_flip = train;
  std::vector<float> out(224 * 224 * 3);
  std::mt19937_64 rng(5);
  for (auto _ : state) {
    graft::transform_example(ex, options, rng, out.data());
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(std::int64_t(state.iterations()) * w * h * 3);
  state.SetLabel(std::to_string(w) + "x" + std::to_string(h) + (train ? " random resized crop + flip" : " eval: resize 256, crop 224"));
}
BENCHMARK(BM_transform_example_cpu)
    ->ArgNames({"w", "h", "train"})
    ->Args({4000, 3000, 0})
    ->Args({4000, 3000, 1})
    ->Args({500, 375, 0})
    ->Args({500, 375, 1})
    ->Unit(benchmark::kMillisecond);

// The engine's own cost per op, apart from any kernel: add() on one-element CPU tensors (shape checks, the result's
// allocation, and with grad the autograd node), and with grad one backward through a chain of 16 adds (per op:
// the node's backward and the gradient's accumulation). On the GPU the same host work precedes every launch, so it
// bounds eager steps whose kernels are short (ResNet-50 inference at batch 1: ~360 launches per image).
void BM_op_overhead_cpu(benchmark::State& state) {
  const bool grad = state.range(0) != 0, backward = state.range(1) != 0;
  Tensor a = Tensor::full({1}, 1.f), b = Tensor::full({1}, 0.5f);
  a.set_requires_grad(grad);
  constexpr int kChain = 16;
  for (auto _ : state) {
    Tensor y = a;
    for (int i = 0; i < kChain; ++i) y = add(y, b);
    if (backward) {
      y.backward();
      a.zero_grad();
    }
    benchmark::DoNotOptimize(y.data<float>());
  }
  state.counters["ns_per_op"] = benchmark::Counter(double(state.iterations()) * kChain,
                                                   benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  state.SetLabel(std::string(grad ? "requires_grad" : "no grad") + (backward ? ", forward + backward" : ", forward"));
}
BENCHMARK(BM_op_overhead_cpu)->ArgNames({"grad", "backward"})->Args({0, 0})->Args({1, 0})->Args({1, 1});

}  // namespace graft

BENCHMARK_MAIN();
