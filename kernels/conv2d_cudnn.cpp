// conv2d through cuDNN 9's convolution API: NHWC tensors and NHWC (K,R,S,C/groups) filters, which is graft's
// layout, so no transposes. See kernels/conv2d.h for the math.
//
// Algorithms: the first time a (geometry, direction, math mode) is seen, cudnnFind*AlgorithmEx times every
// algorithm on the caller's buffers (it overwrites the output, which the call writes anyway) and the fastest
// one that succeeded is cached for the life of the process. Math: CUDNN_TENSOR_OP_MATH (TF32) when
// graft::cuda::tf32_allowed(), else CUDNN_FMA_MATH (strict FP32); as in PyTorch, a choice runs with the math type
// Find reports for it, and strict mode only accepts FMA-math results. In deterministic mode
// (graft::cuda::deterministic()) only algorithms Find reports as CUDNN_DETERMINISTIC are accepted; the mode is part
// of the cache key, so switching it never reuses a choice made under the other mode.
// Opt-in alternative (conv2d_cudnn_set_engine_search, GRAFT_CUDNN_ENGINES=1): every graph-API engine configuration
// is timed instead (kernels/conv2d_cudnn_engines.h); shapes no engine takes still come here.
#include "kernels/conv2d.h"

#if GRAFT_HAS_CUDA
#include <cudnn.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <mutex>
#include <sstream>

#include "kernels/cuda_device.h"
#include "kernels/cuda_graph.h"
#include "kernels/conv2d_cudnn_engines.h"
#include "kernels/cudnn_check.h"
#include "kernels/elementwise.h"

namespace graft {
namespace {

// Upper bound of the scratch memory offered to cudnnFind*AlgorithmEx (FFT algorithms ask for gigabytes on large
// shapes; those that need more than this are simply not candidates).
constexpr std::size_t kFindWorkspaceLimit = std::size_t(512) << 20;

cudnnHandle_t handle() {
  // Created on first use and bound to graft's one compute stream. Never destroyed: it must outlive any static
  // that could still run a conv at exit, and the process teardown releases it.
  static cudnnHandle_t h = [] {  // (a throw leaves it unset: the next call tries again)
    GRAFT_CHECK(!cuda::capturing(), "conv2d: the process's first convolution inside a CUDA graph capture: cuDNN's "
                "handle cannot be created while the stream records; run the step once before capturing it");
    cudnnHandle_t created = nullptr;
    GRAFT_CUDNN_CHECK(cudnnCreate(&created));
    GRAFT_CUDNN_CHECK(cudnnSetStream(created, cuda::stream()));
    return created;
  }();
  return h;
}

using TensorDescriptor =
    cudnn::Owned<cudnnTensorDescriptor_t, cudnnCreateTensorDescriptor, cudnnDestroyTensorDescriptor>;
using FilterDescriptor =
    cudnn::Owned<cudnnFilterDescriptor_t, cudnnCreateFilterDescriptor, cudnnDestroyFilterDescriptor>;
using ConvolutionDescriptor =
    cudnn::Owned<cudnnConvolutionDescriptor_t, cudnnCreateConvolutionDescriptor, cudnnDestroyConvolutionDescriptor>;

using cudnn_engines::Workspace;

int as_int(std::int64_t v, const Conv2dGeometry& g) {
  GRAFT_CHECK(v <= INT_MAX, "conv2d: a size of ", conv2d_geometry_str(g), " exceeds cuDNN's int range");
  return static_cast<int>(v);
}

// The four descriptors of one conv. Members are built before the body runs, so a throw in the body still
// destroys them.
struct ConvDescriptors {
  TensorDescriptor x, y;
  FilterDescriptor w;
  ConvolutionDescriptor conv;
  ConvDescriptors(const Conv2dGeometry& g, cudnnMathType_t math) {
    as_int(g.n * g.h * g.w * g.c, g);  // cuDNN's 4-D descriptors hold int strides
    as_int(g.n * g.p * g.q * g.k, g);
    GRAFT_CUDNN_CHECK(cudnnSetTensor4dDescriptor(x.get(), CUDNN_TENSOR_NHWC, CUDNN_DATA_FLOAT, as_int(g.n, g),
                                                 as_int(g.c, g), as_int(g.h, g), as_int(g.w, g)));
    GRAFT_CUDNN_CHECK(cudnnSetTensor4dDescriptor(y.get(), CUDNN_TENSOR_NHWC, CUDNN_DATA_FLOAT, as_int(g.n, g),
                                                 as_int(g.k, g), as_int(g.p, g), as_int(g.q, g)));
    GRAFT_CUDNN_CHECK(cudnnSetFilter4dDescriptor(w.get(), CUDNN_DATA_FLOAT, CUDNN_TENSOR_NHWC, as_int(g.k, g),
                                                 as_int(g.c / g.groups, g), as_int(g.r, g), as_int(g.s, g)));
    GRAFT_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(conv.get(), g.pad_h, g.pad_w, g.stride_h, g.stride_w,
                                                      g.dilation_h, g.dilation_w, CUDNN_CROSS_CORRELATION,
                                                      CUDNN_DATA_FLOAT));
    GRAFT_CUDNN_CHECK(cudnnSetConvolutionGroupCount(conv.get(), g.groups));
    GRAFT_CUDNN_CHECK(cudnnSetConvolutionMathType(conv.get(), math));
  }
};

using Direction = cudnn_engines::ConvOp;
const char* direction_name(Direction d) { return cudnn_engines::op_name(d); }

const char* algo_name(Direction d, int algo) {
  static const char* const fwd[] = {"IMPLICIT_GEMM", "IMPLICIT_PRECOMP_GEMM", "GEMM", "DIRECT", "FFT", "FFT_TILING",
                                    "WINOGRAD",      "WINOGRAD_NONFUSED"};
  static const char* const bwd_data[] = {"ALGO_0", "ALGO_1", "FFT", "FFT_TILING", "WINOGRAD", "WINOGRAD_NONFUSED"};
  static const char* const bwd_filter[] = {"ALGO_0",    "ALGO_1", "FFT", "ALGO_3", "WINOGRAD", "WINOGRAD_NONFUSED",
                                           "FFT_TILING"};
  if (d == Direction::Forward && algo >= 0 && algo < 8) return fwd[algo];
  if (d == Direction::BackwardData && algo >= 0 && algo < 6) return bwd_data[algo];
  if (d == Direction::BackwardFilter && algo >= 0 && algo < 7) return bwd_filter[algo];
  return "UNKNOWN";
}

const char* math_name(cudnnMathType_t m) {
  switch (m) {
    case CUDNN_DEFAULT_MATH:
      return "DEFAULT";
    case CUDNN_TENSOR_OP_MATH:
      return "TENSOR_OP";
    case CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION:
      return "TENSOR_OP_ALLOW_CONVERSION";
    case CUDNN_FMA_MATH:
      return "FMA";
  }
  return "UNKNOWN";
}

struct Choice {
  int algo = 0;
  cudnnMathType_t math = CUDNN_FMA_MATH;
  std::size_t workspace = 0;
  bool deterministic = false;
  float find_ms = 0.f;  // the time Find measured for it
  std::string description;
};

using Key = cudnn_engines::ConvKey;

// Some kernels need aligned buffers (a batch slice of an NHWC tensor can start anywhere), so an algorithm found on
// aligned buffers is not reused for less aligned ones: the key holds the common alignment (up to 16 bytes).
std::int64_t common_alignment(std::initializer_list<const void*> ptrs) {
  std::uintptr_t bits = 16;
  for (const void* p : ptrs) bits |= reinterpret_cast<std::uintptr_t>(p);
  return static_cast<std::int64_t>(bits & (~bits + 1));  // lowest set bit
}

// `accumulate` (beta = 1) only matters to the engine search, whose plans fix beta; the legacy path's algorithm
// choice serves both.
Key make_key(const Conv2dGeometry& g, Direction d, bool tf32, bool deterministic, std::int64_t alignment,
             bool accumulate = false) {
  // clang-format off
  return {g.n, g.h, g.w, g.c, g.k, g.r, g.s, g.p, g.q, g.stride_h, g.stride_w, g.pad_h, g.pad_w, g.dilation_h,
          g.dilation_w, g.groups, static_cast<std::int64_t>(d), tf32 ? 1 : 0, deterministic ? 1 : 0, alignment,
          accumulate ? 1 : 0};
  // clang-format on
}

std::mutex& cache_mutex() {
  static std::mutex m;
  return m;
}
std::map<Key, Choice>& cache() {
  static std::map<Key, Choice> c;
  return c;
}

// The first successful entry of Find's results (they come sorted fastest first) whose math keeps the precision
// asked for: strict FP32 accepts FMA math only (as PyTorch asserts), TF32 anything but FP16 down-conversion.
template <typename Perf>
Choice pick(const Perf* perf, int returned, Direction d, const Conv2dGeometry& g, bool tf32, bool deterministic) {
  for (int i = 0; i < returned; ++i) {
    if (perf[i].status != CUDNN_STATUS_SUCCESS) continue;
    if (deterministic && perf[i].determinism != CUDNN_DETERMINISTIC) continue;
    if (tf32 ? perf[i].mathType == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION : perf[i].mathType != CUDNN_FMA_MATH) continue;
    Choice c;
    c.algo = static_cast<int>(perf[i].algo);
    c.math = perf[i].mathType;
    c.workspace = perf[i].memory;
    c.deterministic = perf[i].determinism == CUDNN_DETERMINISTIC;
    c.find_ms = perf[i].time;
    return c;
  }
  GRAFT_FAIL("conv2d: cuDNN has no ", direction_name(d), " algorithm for ", conv2d_geometry_str(g),
             tf32 ? " (TF32)" : " (strict FP32)", deterministic ? " in deterministic mode" : "");
}

void describe(Choice& c, Direction d, const Conv2dGeometry& g, bool tf32, bool deterministic, std::int64_t alignment) {
  std::ostringstream s;
  s << direction_name(d) << " " << conv2d_geometry_str(g) << " align " << alignment << (tf32 ? " tf32" : " fp32")
    << (deterministic ? " deterministic-mode" : "")
    << ": " << algo_name(d, c.algo) << " math=" << math_name(c.math)
    << " deterministic=" << (c.deterministic ? "yes" : "no") << " workspace=" << c.workspace
    << " find_ms=" << c.find_ms;
  c.description = s.str();
}

// Returns the cached choice, finding it first (on these very buffers) when the key is new. `find` runs
// cudnnFind*AlgorithmEx and returns the Choice; `query` gives the workspace of an algorithm (false if unsupported).
template <typename Find, typename Query>
Choice choose(Direction d, const Conv2dGeometry& g, bool tf32, std::int64_t alignment, ConvDescriptors& desc,
              int algo_count, Find find, Query query) {
  std::lock_guard<std::mutex> lock(cache_mutex());
  const bool deterministic = cuda::deterministic();
  const Key key = make_key(g, d, tf32, deterministic, alignment);
  auto it = cache().find(key);
  if (it != cache().end()) return it->second;
  GRAFT_CHECK(!cuda::capturing(), "conv2d: a convolution geometry seen for the first time inside a CUDA graph "
              "capture (", direction_name(d), " ", conv2d_geometry_str(g), "): cuDNN's algorithm search cannot be recorded; run the step once "
              "before capturing it");

  std::size_t offered = 0;
  for (int algo = 0; algo < algo_count; ++algo) {
    std::size_t bytes = 0;
    if (query(algo, bytes) && bytes <= kFindWorkspaceLimit) offered = std::max(offered, bytes);
  }
  Choice c;
  {
    Workspace scratch(offered);
    c = find(scratch, deterministic);
  }
  // The math type a choice runs with can change the workspace it needs; ask again with the final descriptor.
  GRAFT_CUDNN_CHECK(cudnnSetConvolutionMathType(desc.conv.get(), c.math));
  std::size_t bytes = 0;
  if (query(c.algo, bytes)) c.workspace = std::max(c.workspace, bytes);
  describe(c, d, g, tf32, deterministic, alignment);
  cache()[key] = c;
  return c;
}

cudnnMathType_t requested_math(bool tf32) { return tf32 ? CUDNN_TENSOR_OP_MATH : CUDNN_FMA_MATH; }

// Atomic like cuda::tf32_allowed(): one thread may switch it while another runs convolutions.
std::atomic<bool>& engine_search_flag() {
  static std::atomic<bool> on{[] {
    const char* v = std::getenv("GRAFT_CUDNN_ENGINES");
    return v != nullptr && std::string(v) == "1";
  }()};
  return on;
}

// With the engine search on: runs the convolution through the graph API (kernels/conv2d_cudnn_engines.h) and
// returns true, or returns false having run nothing (search off, or no engine for this shape).
bool ran_with_engine(Direction d, const Conv2dGeometry& g, float* out, const float* a, const float* b,
                     bool accumulate = false) {
  if (!engine_search_flag().load(std::memory_order_relaxed)) return false;
  const bool tf32 = cuda::tf32_allowed(), deterministic = cuda::deterministic();
  const std::int64_t alignment = common_alignment({out, a, b});
  return cudnn_engines::run(handle(), d,
                            make_key(g, d, tf32, deterministic, alignment, accumulate), g, tf32, deterministic,
                            alignment, accumulate, out, a, b);
}

}  // namespace

void conv2d_add_bias_cuda(float* out, const float* bias, const Conv2dGeometry& g) {
  if (bias)
    binary_forward_cuda(out, out, Broadcast::Full, bias, Broadcast::Channel, BinaryOp::Add, g.n * g.p * g.q * g.k, g.k);
}

void conv2d_cudnn_set_engine_search(bool on) { engine_search_flag().store(on, std::memory_order_relaxed); }
bool conv2d_cudnn_engine_search() { return engine_search_flag().load(std::memory_order_relaxed); }

void conv2d_forward_cudnn(float* out, const float* inp, const float* weight, const float* bias,
                          const Conv2dGeometry& g) {
  if (g.n == 0) return;
  if (ran_with_engine(Direction::Forward, g, out, inp, weight)) return conv2d_add_bias_cuda(out, bias, g);
  const bool tf32 = cuda::tf32_allowed();
  ConvDescriptors desc(g, requested_math(tf32));
  cudnnHandle_t h = handle();
  auto query = [&](int algo, std::size_t& bytes) {
    return cudnnGetConvolutionForwardWorkspaceSize(h, desc.x.get(), desc.w.get(), desc.conv.get(), desc.y.get(),
                                                   static_cast<cudnnConvolutionFwdAlgo_t>(algo),
                                                   &bytes) == CUDNN_STATUS_SUCCESS;
  };
  auto find = [&](const Workspace& scratch, bool deterministic) {
    cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    int returned = 0;
    GRAFT_CUDNN_CHECK(cudnnFindConvolutionForwardAlgorithmEx(
        h, desc.x.get(), inp, desc.w.get(), weight, desc.conv.get(), desc.y.get(), out,
        CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &returned, perf, scratch.get(), scratch.bytes()));
    return pick(perf, returned, Direction::Forward, g, tf32, deterministic);
  };
  const Choice c = choose(Direction::Forward, g, tf32, common_alignment({out, inp, weight}), desc,
                          CUDNN_CONVOLUTION_FWD_ALGO_COUNT, find, query);
  GRAFT_CUDNN_CHECK(cudnnSetConvolutionMathType(desc.conv.get(), c.math));
  const float one = 1.f, zero = 0.f;
  Workspace ws(c.workspace);
  GRAFT_CUDNN_CHECK(cudnnConvolutionForward(h, &one, desc.x.get(), inp, desc.w.get(), weight, desc.conv.get(),
                                            static_cast<cudnnConvolutionFwdAlgo_t>(c.algo), ws.get(), ws.bytes(), &zero,
                                            desc.y.get(), out));
  conv2d_add_bias_cuda(out, bias, g);
}

void conv2d_backward_data_cudnn(float* dinp, const float* dout, const float* weight, const Conv2dGeometry& g,
                                bool accumulate) {
  if (g.n == 0) return;
  if (ran_with_engine(Direction::BackwardData, g, dinp, dout, weight, accumulate)) return;
  const bool tf32 = cuda::tf32_allowed();
  ConvDescriptors desc(g, requested_math(tf32));
  cudnnHandle_t h = handle();
  auto query = [&](int algo, std::size_t& bytes) {
    return cudnnGetConvolutionBackwardDataWorkspaceSize(h, desc.w.get(), desc.y.get(), desc.conv.get(), desc.x.get(),
                                                        static_cast<cudnnConvolutionBwdDataAlgo_t>(algo),
                                                        &bytes) == CUDNN_STATUS_SUCCESS;
  };
  auto find = [&](const Workspace& scratch, bool deterministic) {
    // Find writes its output: an accumulating call must not lose what dinp holds, so Find gets a scratch copy,
    // placed at dinp's offset within 256 bytes: the algorithm it picks must run on dinp's alignment, not better.
    const std::size_t misalign = reinterpret_cast<std::uintptr_t>(dinp) % 256;
    Workspace scratch_out(accumulate ? sizeof(float) * static_cast<std::size_t>(g.n * g.h * g.w * g.c) + misalign : 0);
    float* find_out = accumulate ? reinterpret_cast<float*>(static_cast<char*>(scratch_out.get()) + misalign) : dinp;
    cudnnConvolutionBwdDataAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
    int returned = 0;
    GRAFT_CUDNN_CHECK(cudnnFindConvolutionBackwardDataAlgorithmEx(
        h, desc.w.get(), weight, desc.y.get(), dout, desc.conv.get(), desc.x.get(), find_out,
        CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &returned, perf, scratch.get(), scratch.bytes()));
    return pick(perf, returned, Direction::BackwardData, g, tf32, deterministic);
  };
  const Choice c = choose(Direction::BackwardData, g, tf32, common_alignment({dinp, dout, weight}), desc,
                          CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, find, query);
  GRAFT_CUDNN_CHECK(cudnnSetConvolutionMathType(desc.conv.get(), c.math));
  const float one = 1.f, beta = accumulate ? 1.f : 0.f;
  Workspace ws(c.workspace);
  GRAFT_CUDNN_CHECK(cudnnConvolutionBackwardData(h, &one, desc.w.get(), weight, desc.y.get(), dout, desc.conv.get(),
                                                 static_cast<cudnnConvolutionBwdDataAlgo_t>(c.algo), ws.get(),
                                                 ws.bytes(), &beta, desc.x.get(), dinp));
}

void conv2d_backward_filter_cudnn(float* dweight, const float* dout, const float* inp, const Conv2dGeometry& g) {
  if (g.n == 0) {  // no samples: the gradient is zero
    GRAFT_CUDA_CHECK(cudaMemsetAsync(dweight, 0, sizeof(float) * g.k * g.r * g.s * (g.c / g.groups), cuda::stream()));
    return;
  }
  if (ran_with_engine(Direction::BackwardFilter, g, dweight, dout, inp)) return;
  const bool tf32 = cuda::tf32_allowed();
  ConvDescriptors desc(g, requested_math(tf32));
  cudnnHandle_t h = handle();
  auto query = [&](int algo, std::size_t& bytes) {
    return cudnnGetConvolutionBackwardFilterWorkspaceSize(h, desc.x.get(), desc.y.get(), desc.conv.get(), desc.w.get(),
                                                          static_cast<cudnnConvolutionBwdFilterAlgo_t>(algo),
                                                          &bytes) == CUDNN_STATUS_SUCCESS;
  };
  auto find = [&](const Workspace& scratch, bool deterministic) {
    cudnnConvolutionBwdFilterAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
    int returned = 0;
    GRAFT_CUDNN_CHECK(cudnnFindConvolutionBackwardFilterAlgorithmEx(
        h, desc.x.get(), inp, desc.y.get(), dout, desc.conv.get(), desc.w.get(), dweight,
        CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &returned, perf, scratch.get(), scratch.bytes()));
    return pick(perf, returned, Direction::BackwardFilter, g, tf32, deterministic);
  };
  const Choice c = choose(Direction::BackwardFilter, g, tf32, common_alignment({dweight, dout, inp}), desc,
                          CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, find, query);
  GRAFT_CUDNN_CHECK(cudnnSetConvolutionMathType(desc.conv.get(), c.math));
  const float one = 1.f, zero = 0.f;
  Workspace ws(c.workspace);
  GRAFT_CUDNN_CHECK(cudnnConvolutionBackwardFilter(h, &one, desc.x.get(), inp, desc.y.get(), dout, desc.conv.get(),
                                                   static_cast<cudnnConvolutionBwdFilterAlgo_t>(c.algo), ws.get(),
                                                   ws.bytes(), &zero, desc.w.get(), dweight));
}

std::vector<std::string> conv2d_cudnn_algorithms_used() {
  std::lock_guard<std::mutex> lock(cache_mutex());
  std::vector<std::string> lines;
  for (const auto& [key, choice] : cache()) lines.push_back(choice.description);
  for (std::string& line : cudnn_engines::choices()) lines.push_back(std::move(line));
  return lines;
}

namespace cuda {
std::string conv_algorithms_report() {
  std::string report;
  for (const std::string& line : conv2d_cudnn_algorithms_used()) report += line + "\n";
  return report;
}
}  // namespace cuda

bool conv2d_cudnn_all_deterministic() {
  std::lock_guard<std::mutex> lock(cache_mutex());
  return std::all_of(cache().begin(), cache().end(), [](const auto& entry) { return entry.second.deterministic; }) &&
         cudnn_engines::all_deterministic();
}

}  // namespace graft
#endif  // GRAFT_HAS_CUDA
