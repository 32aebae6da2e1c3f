// CUDA benchmarks of the convolutions at ResNet-50 (torchvision) training shapes, batch 64, 224x224 input: the
// very launchers of kernels/conv2d.h that the engine calls, on graft's compute stream, timed with CUDA events after a
// warm-up (helpers and conventions: bench/cuda_bench.h, bench/README.md).
// - conv2d via cuDNN: forward, backward-data, backward-filter for each of the 23 distinct conv shapes of ResNet-50,
//   in the current math mode (TF32 by default, graft::cuda::tf32_allowed()). FLOP/s counts 2*N*P*Q*K*R*S*C per
//   direction (the direct definition; cuDNN's Winograd/FFT algorithms may do fewer). The label names the algorithm
//   cuDNN's find chose. No reference in the process: judge TFLOP/s against the card's TF32 dense peak
//   (bench/README.md).
// - the kernel lab's hand-written forward convolutions (kernels/conv2d_cuda_lab.cu: implicit GEMM, im2col + tiled
//   SGEMM) beside cuDNN's strict-FP32 forward on six of those shapes: TFLOP/s and pct_of_cudnn.
// Operands rotate over rotation_sets() copies so that no launch finds the previous launch's operands in L2.
// The other layer kernels (batch norm, pooling, the optimizer step): bench/bench_layers_cuda.cpp.
#include <cudnn.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "bench/cuda_bench.h"
#include "kernels/conv2d.h"
#include "kernels/cudnn_check.h"

namespace graft::bench {
namespace {

constexpr std::int64_t kBatch = 64;

// ---- conv2d (cuDNN) -------------------------------------------------------------------------------------------

// The distinct conv shapes of torchvision's ResNet-50 (v1.5: the stride sits on the 3x3 conv) at 224x224.
// `count`: how many of the network's 53 convs have that shape (for weighting a whole-network estimate).
struct ConvShape {
  int in, out, kernel, stride, pad, hw, count;
  const char* where;
};
// clang-format off
constexpr ConvShape kResNet50Convs[] = {
    //  in   out  k  s  p   H/W  count  where
    {   3,   64, 7, 2, 3, 224, 1, "conv1"},
    {  64,   64, 1, 1, 0,  56, 1, "layer1.0.conv1"},
    {  64,   64, 3, 1, 1,  56, 3, "layer1.*.conv2"},
    {  64,  256, 1, 1, 0,  56, 4, "layer1.*.conv3, layer1.0.downsample"},
    { 256,   64, 1, 1, 0,  56, 2, "layer1.1-2.conv1"},
    { 256,  128, 1, 1, 0,  56, 1, "layer2.0.conv1"},
    { 128,  128, 3, 2, 1,  56, 1, "layer2.0.conv2"},
    { 128,  512, 1, 1, 0,  28, 4, "layer2.*.conv3"},
    { 256,  512, 1, 2, 0,  56, 1, "layer2.0.downsample"},
    { 512,  128, 1, 1, 0,  28, 3, "layer2.1-3.conv1"},
    { 128,  128, 3, 1, 1,  28, 3, "layer2.1-3.conv2"},
    { 512,  256, 1, 1, 0,  28, 1, "layer3.0.conv1"},
    { 256,  256, 3, 2, 1,  28, 1, "layer3.0.conv2"},
    { 256, 1024, 1, 1, 0,  14, 6, "layer3.*.conv3"},
    { 512, 1024, 1, 2, 0,  28, 1, "layer3.0.downsample"},
    {1024,  256, 1, 1, 0,  14, 5, "layer3.1-5.conv1"},
    { 256,  256, 3, 1, 1,  14, 5, "layer3.1-5.conv2"},
    {1024,  512, 1, 1, 0,  14, 1, "layer4.0.conv1"},
    { 512,  512, 3, 2, 1,  14, 1, "layer4.0.conv2"},
    { 512, 2048, 1, 1, 0,   7, 3, "layer4.*.conv3"},
    {1024, 2048, 1, 2, 0,  14, 1, "layer4.0.downsample"},
    {2048,  512, 1, 1, 0,   7, 2, "layer4.1-2.conv1"},
    { 512,  512, 3, 1, 1,   7, 2, "layer4.1-2.conv2"},
};
// clang-format on

Conv2dGeometry conv_geometry(const ConvShape& c) {
  Conv2dGeometry g;
  g.n = kBatch;
  g.h = g.w = c.hw;
  g.c = c.in;
  g.k = c.out;
  g.r = g.s = c.kernel;
  g.stride_h = g.stride_w = c.stride;
  g.pad_h = g.pad_w = c.pad;
  g.p = g.q = (c.hw + 2 * c.pad - c.kernel) / c.stride + 1;
  return g;
}

enum class ConvDir { Forward, BackwardData, BackwardFilter };

const char* dir_name(ConvDir d) {
  return d == ConvDir::Forward ? "forward" : d == ConvDir::BackwardData ? "backward-data" : "backward-filter";
}

// "c64->256 1x1/1 56x56" (the summary's size column)
std::string conv_label(const ConvShape& c) {
  std::ostringstream s;
  s << 'c' << c.in << "->" << c.out << ' ' << c.kernel << 'x' << c.kernel << '/' << c.stride << ' ' << c.hw << 'x'
    << c.hw;
  return s.str();
}

// The algorithm cuDNN's find chose for this geometry and direction in the current math mode ("?" if not cached).
std::string chosen_algorithm(const Conv2dGeometry& g, ConvDir d) {
  const std::string prefix = std::string(dir_name(d)) + " " + conv2d_geometry_str(g) + " align ";
  const std::string math = cuda::tf32_allowed() ? " tf32: " : " fp32: ";
  for (const std::string& line : conv2d_cudnn_algorithms_used()) {
    if (line.rfind(prefix, 0) != 0) continue;
    const std::size_t at = line.find(math);
    if (at != std::string::npos) return line.substr(at + math.size());
  }
  return "?";
}

// A convolution's operands, `sets` copies of each (rotation_sets). Allocated once per benchmark (the largest
// activation, 64x112x112x64, is 205 MB); every direction reads two of the three tensors and overwrites the third.
struct ConvOperands {
  int sets;
  std::vector<DeviceBuffer> inp, weight, out;
};

ConvOperands conv_operands(const Conv2dGeometry& g) {
  const std::int64_t n_inp = g.n * g.h * g.w * g.c, n_w = g.k * g.r * g.s * g.c, n_out = g.n * g.p * g.q * g.k;
  const int sets = rotation_sets((n_inp + n_w + n_out) * kF);
  return {sets, random_buffers(sets, n_inp, 300), random_buffers(sets, n_w, 400, -0.1f, 0.1f),
          random_buffers(sets, n_out, 500)};
}

// FLOP/s (Google Benchmark's mean) and TFLOP/s (the median `seconds` per call) of one convolution direction.
void report_conv_flops(benchmark::State& state, const Conv2dGeometry& g, int sets, double seconds) {
  const double flops = 2.0 * static_cast<double>(g.n * g.p * g.q * g.k) * static_cast<double>(g.r * g.s * g.c);
  state.counters["FLOP/s"] =
      benchmark::Counter(flops * static_cast<double>(state.iterations() * sets), benchmark::Counter::kIsRate);
  state.counters["TFLOP/s"] = flops / seconds * 1e-12;
}

// "BM_conv2d_cudnn/forward/c64_k256_1x1s1_56": family, variant, in channels, out channels, kernel, stride, input H/W.
std::string conv_benchmark_name(const char* family, const char* variant, const ConvShape& shape) {
  std::ostringstream name;
  name << family << '/' << variant << "/c" << shape.in << "_k" << shape.out << '_' << shape.kernel << 'x'
       << shape.kernel << 's' << shape.stride << '_' << shape.hw;
  return name.str();
}

void BM_conv2d_cudnn(benchmark::State& state, const ConvShape& shape, ConvDir dir) {
  guarded(state, [&] {
    const Conv2dGeometry g = conv_geometry(shape);
    ConvOperands ops = conv_operands(g);
    auto &inp = ops.inp, &weight = ops.weight, &out = ops.out;
    const double t = run_timed(state, ops.sets, [&](int s) {
      switch (dir) {
        case ConvDir::Forward: conv2d_forward_cudnn(out[s].f(), inp[s].f(), weight[s].f(), nullptr, g); break;
        case ConvDir::BackwardData: conv2d_backward_data_cudnn(inp[s].f(), out[s].f(), weight[s].f(), g); break;
        case ConvDir::BackwardFilter: conv2d_backward_filter_cudnn(weight[s].f(), out[s].f(), inp[s].f(), g); break;
      }
    });
    report_conv_flops(state, g, ops.sets, t);
    // After " vs " (which the summary table leaves out): no reference; the algorithm cuDNN chose.
    state.SetLabel(conv_label(shape) + (cuda::tf32_allowed() ? " tf32" : " fp32") + " vs - ; " +
                   chosen_algorithm(g, dir));
  });
}

int register_conv_benchmarks() {
  for (ConvDir dir : {ConvDir::Forward, ConvDir::BackwardData, ConvDir::BackwardFilter}) {
    for (const ConvShape& shape : kResNet50Convs) {
      const std::string name = conv_benchmark_name("BM_conv2d_cudnn", dir_name(dir), shape);
      benchmark::RegisterBenchmark(name.c_str(), BM_conv2d_cudnn, shape, dir)
          ->UseManualTime()
          ->Unit(benchmark::kMillisecond);
    }
  }
  return 0;
}
const int kConvBenchmarksRegistered = register_conv_benchmarks();

// ---- the kernel lab's hand-written convolutions vs cuDNN, strict FP32 --------------------------------------------
// Forward only (kernels/conv2d_cuda_lab.cu): the implicit-GEMM "direct" kernel and im2col + gemm_cuda_tiled, beside
// cuDNN's forward in strict FP32 (CUDNN_FMA_MATH: no tensor cores, like the hand-written kernels) on six of the
// shapes above. pct_of_cudnn = cuDNN's strict-FP32 time (measured once per shape in this process) / this time.

enum class LabConv { CudnnFp32, Direct, Im2col };

const char* lab_conv_name(LabConv impl) {
  return impl == LabConv::CudnnFp32 ? "cudnn_fp32" : impl == LabConv::Direct ? "direct_fp32" : "im2col_fp32";
}

// The stem (3 channels: the gather's worst case), layer1's 1x1 expand (a pure GEMM) and 3x3, layer3's 3x3 at 14x14,
// and layer4's 1x1 reduce and 3x3 at 7x7 (few output pixels: the tile-count problem).
constexpr const char* kLabConvs[] = {"conv1",           "layer1.*.conv3, layer1.0.downsample", "layer1.*.conv2",
                                     "layer3.1-5.conv2", "layer4.1-2.conv1",                    "layer4.1-2.conv2"};

const ConvShape& conv_shape_at(const char* where) {
  for (const ConvShape& c : kResNet50Convs)
    if (std::string(c.where) == where) return c;
  GRAFT_FAIL("bench: no ResNet-50 conv shape named ", where);
}

// The convolution's operands (conv_operands) and the im2col path's workspace.
struct LabOperands : ConvOperands {
  std::size_t workspace_bytes;
  DeviceBuffer workspace;
};

LabOperands lab_operands(const Conv2dGeometry& g) {
  const std::size_t ws = conv2d_workspace_bytes_cuda_im2col(g);
  return {conv_operands(g), ws, DeviceBuffer(std::max<std::size_t>(ws, 16))};
}

void lab_launch(LabConv impl, const Conv2dGeometry& g, LabOperands& ops, int s) {
  float *out = ops.out[s].f(), *inp = ops.inp[s].f(), *w = ops.weight[s].f();
  switch (impl) {
    case LabConv::CudnnFp32: conv2d_forward_cudnn(out, inp, w, nullptr, g); break;
    case LabConv::Direct: conv2d_forward_cuda_direct(out, inp, w, nullptr, g); break;
    case LabConv::Im2col:
      conv2d_forward_cuda_im2col(out, inp, w, nullptr, g, ops.workspace.f(), ops.workspace_bytes);
      break;
  }
}

// cuDNN's strict-FP32 forward seconds per call for one shape, measured once in this process.
double cudnn_fp32_forward_seconds(const char* where) {
  static std::map<std::string, double> cache;
  auto found = cache.find(where);
  if (found != cache.end()) return found->second;
  Tf32Scope strict(false);
  const Conv2dGeometry g = conv_geometry(conv_shape_at(where));
  LabOperands ops = lab_operands(g);
  const double seconds = measure(ops.sets, 10, [&](int s) { lab_launch(LabConv::CudnnFp32, g, ops, s); });
  cache.emplace(where, seconds);
  return seconds;
}

void BM_conv2d_lab(benchmark::State& state, const char* where, LabConv impl) {
  guarded(state, [&] {
    const ConvShape& shape = conv_shape_at(where);
    const Conv2dGeometry g = conv_geometry(shape);
    const double reference = cudnn_fp32_forward_seconds(where);
    Tf32Scope strict(false);
    LabOperands ops = lab_operands(g);
    const double t = run_timed(state, ops.sets, [&](int s) { lab_launch(impl, g, ops, s); });
    report_conv_flops(state, g, ops.sets, t);
    state.counters["pct_of_cudnn"] = 100.0 * reference / t;
    state.SetLabel(conv_label(shape) + " fp32 vs cudnn_fp32 ; cuDNN: " + chosen_algorithm(g, ConvDir::Forward));
  });
}

// Names like "BM_conv2d_lab/direct_fp32/c64_k64_3x3s1_56".
int register_lab_benchmarks() {
  for (const char* where : kLabConvs) {
    for (LabConv impl : {LabConv::CudnnFp32, LabConv::Direct, LabConv::Im2col}) {
      const std::string name = conv_benchmark_name("BM_conv2d_lab", lab_conv_name(impl), conv_shape_at(where));
      benchmark::RegisterBenchmark(name.c_str(), BM_conv2d_lab, where, impl)
          ->UseManualTime()
          ->Unit(benchmark::kMillisecond);
    }
  }
  return 0;
}
const int kLabBenchmarksRegistered = register_lab_benchmarks();

}  // namespace
}  // namespace graft::bench
