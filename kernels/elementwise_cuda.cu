// CUDA elementwise kernels (math in kernels/elementwise.h).
// All of them are memory-bound: the levers are coalesced accesses, 16-byte vector loads/stores and cheap index
// math. Tensors may be views at any float offset, so the 16-byte path is taken only after checking that every
// pointer involved is 16-byte aligned; the last n % 4 elements are done by the first threads of the grid.
// The fp operations are the plain IEEE ones of the CPU reference (no fast-math intrinsics); expf/logf differ
// from glibc by an ulp or two.
#include <cstdint>

#include "kernels/cuda_device.h"
#include "kernels/elementwise.h"
#include "kernels/host_device.h"

namespace graft {
namespace {

using std::int64_t;

template <int W>
struct Pack {
  float v[W];
};

template <int W>
__device__ __forceinline__ Pack<W> load_pack(const float* p) {
  if constexpr (W == 4) {
    float4 t = *reinterpret_cast<const float4*>(p);
    return {{t.x, t.y, t.z, t.w}};
  } else {
    return {{*p}};
  }
}

template <int W>
__device__ __forceinline__ void store_pack(float* p, const Pack<W>& x) {
  if constexpr (W == 4) {
    *reinterpret_cast<float4*>(p) = make_float4(x.v[0], x.v[1], x.v[2], x.v[3]);
  } else {
    *p = x.v[0];
  }
}


// ---- maps: out[i] = fn(x0[i], x1[i], i) ------------------------------------------------------------------

// kInputs says how many of x0, x1 are read, so unused (null) pointers are never dereferenced.
template <int W, int kInputs, class Fn>
__global__ void map_kernel(float* out, const float* x0, const float* x1, int64_t n, Fn fn) {
  const int64_t units = n / W;
  const int64_t first = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t u = first; u < units; u += stride) {
    const int64_t e = u * W;
    Pack<W> a{}, b{}, r;
    if constexpr (kInputs >= 1) a = load_pack<W>(x0 + e);
    if constexpr (kInputs >= 2) b = load_pack<W>(x1 + e);
#pragma unroll
    for (int k = 0; k < W; ++k) r.v[k] = fn(a.v[k], b.v[k], e + k);
    store_pack<W>(out + e, r);
  }
  if constexpr (W > 1) {
    const int64_t e = units * W + first;
    if (e < n) {
      float a = 0.f, b = 0.f;
      if constexpr (kInputs >= 1) a = x0[e];
      if constexpr (kInputs >= 2) b = x1[e];
      out[e] = fn(a, b, e);
    }
  }
}

template <int kInputs, class Fn>
void launch_map(float* out, const float* x0, const float* x1, int64_t n, Fn fn) {
  if (n <= 0) return;
  bool vec = cuda::aligned16(out) && (kInputs < 1 || cuda::aligned16(x0)) && (kInputs < 2 || cuda::aligned16(x1));
  if (vec && n >= 4) {
    map_kernel<4, kInputs><<<cuda::grid_for(n / 4), cuda::kBlock, 0, cuda::stream()>>>(out, x0, x1, n, fn);
  } else {
    map_kernel<1, kInputs><<<cuda::grid_for(n), cuda::kBlock, 0, cuda::stream()>>>(out, x0, x1, n, fn);
  }
  GRAFT_CUDA_CHECK_LAUNCH("map_kernel");
}

template <UnaryOp Op>
struct UnaryFn {
  __device__ float operator()(float x, float, int64_t) const {
    if constexpr (Op == UnaryOp::Neg) return -x;
    if constexpr (Op == UnaryOp::Relu) return relu_value(x);
    if constexpr (Op == UnaryOp::Exp) return expf(x);
    if constexpr (Op == UnaryOp::Log) return logf(x);
    return x;
  }
};

struct ScaleShiftFn {
  float scale, shift;
  // Rounded twice like the CPU reference; a contracted FMA would differ from it in the last bit.
  __device__ float operator()(float x, float, int64_t) const { return __fadd_rn(__fmul_rn(x, scale), shift); }
};

struct ReluBackwardFn {
  __device__ float operator()(float dout, float out, int64_t) const { return out > 0.f ? dout : 0.f; }
};

struct FillFn {
  float value;
  __device__ float operator()(float, float, int64_t) const { return value; }
};

struct ArangeFn {
  __device__ float operator()(float, float, int64_t i) const { return static_cast<float>(i); }
};

// ---- binary with broadcasting ----------------------------------------------------------------------------

template <BinaryOp Op>
__device__ __forceinline__ float apply(float a, float b) {
  if constexpr (Op == BinaryOp::Add) return a + b;
  if constexpr (Op == BinaryOp::Sub) return a - b;
  if constexpr (Op == BinaryOp::Mul) return a * b;
  return a / b;
}

// e: the element index, c: e % channels (only meaningful when some operand is per-channel).
template <int W>
__device__ __forceinline__ Pack<W> load_operand(const float* p, Broadcast mode, int64_t e, int64_t c) {
  if (mode == Broadcast::Full) return load_pack<W>(p + e);
  if (mode == Broadcast::Channel) return load_pack<W>(p + c);
  Pack<W> r;
  const float s = *p;
#pragma unroll
  for (int k = 0; k < W; ++k) r.v[k] = s;
  return r;
}

// The channel index is carried along the grid-stride loop (c += stride % channels, one conditional wrap)
// instead of a 64-bit modulo per element, which would make this memory-bound kernel compute-bound.
// With W = 4 the launcher guarantees channels % 4 == 0, so the 4 elements of a unit share one channel run.
template <BinaryOp Op, int W>
__global__ void binary_kernel(float* out, const float* a, Broadcast ia, const float* b, Broadcast ib, int64_t n,
                              int64_t channels, int64_t stride_mod_channels) {
  const int64_t units = n / W;
  const int64_t first = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  int64_t c = first < units ? (first * W) % channels : 0;
  for (int64_t u = first; u < units; u += stride) {
    const int64_t e = u * W;
    Pack<W> x = load_operand<W>(a, ia, e, c), y = load_operand<W>(b, ib, e, c), r;
#pragma unroll
    for (int k = 0; k < W; ++k) r.v[k] = apply<Op>(x.v[k], y.v[k]);
    store_pack<W>(out + e, r);
    c += stride_mod_channels;
    if (c >= channels) c -= channels;
  }
  if constexpr (W > 1) {
    const int64_t e = units * W + first;
    if (e < n) {
      const int64_t ce = e % channels;
      out[e] = apply<Op>(load_operand<1>(a, ia, e, ce).v[0], load_operand<1>(b, ib, e, ce).v[0]);
    }
  }
}

template <BinaryOp Op>
void launch_binary(float* out, const float* a, Broadcast ia, const float* b, Broadcast ib, int64_t n,
                   int64_t channels) {
  const bool per_channel = ia == Broadcast::Channel || ib == Broadcast::Channel;
  if (!per_channel) channels = 1;  // keeps the modulo well defined whatever the caller passed
  GRAFT_CHECK(channels > 0, "binary_forward_cuda: per-channel broadcast needs channels > 0, got ", channels);
  // A scalar operand is read as one float, so only full and per-channel operands constrain alignment.
  auto vec_ok = [&](const float* p, Broadcast mode) { return mode == Broadcast::Scalar || cuda::aligned16(p); };
  const bool vec =
      n >= 4 && cuda::aligned16(out) && vec_ok(a, ia) && vec_ok(b, ib) && (!per_channel || channels % 4 == 0);
  const int w = vec ? 4 : 1;
  // Several units per thread amortize the one 64-bit modulo each thread does to find its first channel.
  const int64_t units = n / w;
  const unsigned grid = cuda::grid_for((units + 3) / 4);
  const int64_t stride_mod = (static_cast<int64_t>(grid) * cuda::kBlock * w) % channels;
  if (vec) {
    binary_kernel<Op, 4><<<grid, cuda::kBlock, 0, cuda::stream()>>>(out, a, ia, b, ib, n, channels, stride_mod);
  } else {
    binary_kernel<Op, 1><<<grid, cuda::kBlock, 0, cuda::stream()>>>(out, a, ia, b, ib, n, channels, stride_mod);
  }
  GRAFT_CUDA_CHECK_LAUNCH("binary_kernel");
}

}  // namespace

void binary_forward_cuda(float* out, const float* a, Broadcast ia, const float* b, Broadcast ib, BinaryOp op,
                         std::int64_t n, std::int64_t channels) {
  if (n <= 0) return;
  switch (op) {
    case BinaryOp::Add:
      return launch_binary<BinaryOp::Add>(out, a, ia, b, ib, n, channels);
    case BinaryOp::Sub:
      return launch_binary<BinaryOp::Sub>(out, a, ia, b, ib, n, channels);
    case BinaryOp::Mul:
      return launch_binary<BinaryOp::Mul>(out, a, ia, b, ib, n, channels);
    case BinaryOp::Div:
      return launch_binary<BinaryOp::Div>(out, a, ia, b, ib, n, channels);
  }
  GRAFT_FAIL("binary_forward_cuda: unknown BinaryOp ", static_cast<int>(op));
}

void unary_forward_cuda(float* out, const float* inp, UnaryOp op, std::int64_t n) {
  switch (op) {
    case UnaryOp::Neg:
      return launch_map<1>(out, inp, nullptr, n, UnaryFn<UnaryOp::Neg>{});
    case UnaryOp::Relu:
      return launch_map<1>(out, inp, nullptr, n, UnaryFn<UnaryOp::Relu>{});
    case UnaryOp::Exp:
      return launch_map<1>(out, inp, nullptr, n, UnaryFn<UnaryOp::Exp>{});
    case UnaryOp::Log:
      return launch_map<1>(out, inp, nullptr, n, UnaryFn<UnaryOp::Log>{});
  }
  GRAFT_FAIL("unary_forward_cuda: unknown UnaryOp ", static_cast<int>(op));
}

void scale_shift_cuda(float* out, const float* inp, float scale, float shift, std::int64_t n) {
  launch_map<1>(out, inp, nullptr, n, ScaleShiftFn{scale, shift});
}

void relu_backward_cuda(float* dinp, const float* dout, const float* out, std::int64_t n) {
  launch_map<2>(dinp, dout, out, n, ReluBackwardFn{});
}

void fill_cuda(float* out, float value, std::int64_t n) { launch_map<0>(out, nullptr, nullptr, n, FillFn{value}); }

void arange_cuda(float* out, std::int64_t n) { launch_map<0>(out, nullptr, nullptr, n, ArangeFn{}); }

}  // namespace graft
