// CUDA pooling (math in kernels/pool.h).
// Forward: one thread per V consecutive channels of an output pixel (n,p,q), consecutive threads on consecutive
// channels so every window row is read coalesced (V as in the backward below).
// Backward: gathers, deterministic and without atomics. A thread owns V consecutive channels of one input pixel
// (V = 4: float4/int4 loads and stores, taken when C % 4 == 0 and every pointer is 16-byte aligned; V = 1
// otherwise), finds the output windows covering that pixel once for its V channels, and adds their contributions
// in increasing (p,q) order with the same float operations as the CPU reference, so results are bitwise equal.
// Index math: a flat index is split into (n,h,w,c) by multiply-high division (Divider<int>) whenever input and
// output fit in 32 bits (every ResNet/VGG shape does), else by plain 64-bit division. Integer division is emulated
// on the GPU (~20 instructions in 32 bits, far more in 64): it made these memory-bound kernels compute-bound
// (max-pool backward ran at 14-17% of the copy bandwidth on an H100 with one element and seven divisions a thread).
#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>

#include "kernels/cuda_device.h"
#include "kernels/pack.cuh"
#include "kernels/pool.h"

namespace graft {
namespace {

using std::int64_t;

// ---- index helpers ---------------------------------------------------------------------------------------------

// x / d for 0 <= x < 2^31 and 1 <= d < 2^31 as a multiply-high, an add and a shift (Granlund & Montgomery 1994,
// as PyTorch's IntDivider): with 2^(shift-1) < d <= 2^shift and magic = floor(2^32 (2^shift - d) / d) + 1,
// x / d = (umulhi(x, magic) + x) >> shift; the sum stays below 2^32 because umulhi(x, magic) <= x < 2^31.
template <typename I>
struct Divider;
template <>
struct Divider<int> {
  int d;
  unsigned magic, shift;
  explicit Divider(int divisor) : d(divisor), shift(0) {
    while ((std::uint64_t{1} << shift) < static_cast<std::uint64_t>(d)) ++shift;
    magic = static_cast<unsigned>(((std::uint64_t{1} << 32) * ((std::uint64_t{1} << shift) - d)) / d + 1);
  }
  __device__ __forceinline__ int div(int x) const {
    return static_cast<int>((__umulhi(static_cast<unsigned>(x), magic) + static_cast<unsigned>(x)) >> shift);
  }
};
// Tensors past 2^30 elements: plain 64-bit division.
template <>
struct Divider<int64_t> {
  int64_t d;
  explicit Divider(int64_t divisor) : d(divisor) {}
  __device__ __forceinline__ int64_t div(int64_t x) const { return x / d; }
};

// The grid-stride loop every kernel runs: for (I i = first_index<I>(); i < total; i += index_stride<I>()).
template <typename I>
__device__ __forceinline__ I first_index() {
  return static_cast<I>(blockIdx.x) * blockDim.x + threadIdx.x;
}
template <typename I>
__device__ __forceinline__ I index_stride() {
  return static_cast<I>(gridDim.x) * blockDim.x;
}

// A flat index i over an NHWC tensor of V-channel groups, i.e. over (N,H,W,C/V), split into the pixel (n,h,w) and
// its first channel c. The group's first element is at i * V.
template <typename I>
struct Pixel {
  I n;
  int h, w, c;
};
template <typename I>
struct NhwcIndex {
  Divider<I> groups, width, height;  // C/V, W, H
  int v;                             // V
  NhwcIndex(int64_t h, int64_t w, int64_t c, int vector_width)
      : groups(static_cast<I>(c / vector_width)), width(static_cast<I>(w)), height(static_cast<I>(h)),
        v(vector_width) {}
  __device__ __forceinline__ Pixel<I> split(I i) const {
    const I pixel = groups.div(i), row = width.div(pixel), n = height.div(row);
    return Pixel<I>{n, static_cast<int>(row - n * height.d), static_cast<int>(pixel - row * width.d),
                    static_cast<int>(i - pixel * groups.d) * v};
  }
};

// One axis of a pooling window: pool_covering (kernels/pool.h) with its two divisions by the stride done by a
// Divider. Indices are image coordinates (int), so this is 32-bit math for every tensor size.
struct PoolAxis {
  int kernel, pad, out;
  Divider<int> stride;
  PoolAxis(int kernel_size, int stride_size, int padding, int out_size)
      : kernel(kernel_size), pad(padding), out(out_size), stride(stride_size) {}
  // The output indices [*first, *last] whose windows (before clipping) contain input index x.
  __device__ __forceinline__ void covering(int x, int* first, int* last) const {
    const int num = x + pad - kernel + 1;
    *first = num <= 0 ? 0 : stride.div(num + stride.d - 1);
    const int l = stride.div(x + pad);
    *last = l < out - 1 ? l : out - 1;
  }
};

using cuda::load;
using cuda::Pack;
using cuda::store;

// ---- forward: one thread per V channels of an output pixel (n, p, q) ------------------------------------------
// Each channel sees exactly the CPU's operations in the CPU's order (the window in row-major order); V = 4 only
// moves four adjacent channels per load and store.

template <typename I, int V>
__global__ void max_pool2d_forward_kernel(float* __restrict__ out, std::int32_t* __restrict__ argmax,
                                          const float* __restrict__ inp, Pool2dShape s, NhwcIndex<I> index,
                                          I total) {
  for (I i = first_index<I>(); i < total; i += index_stride<I>()) {
    const Pixel<I> o = index.split(i);  // (n, p, q, c)
    const PoolWindow wh = pool_window(o.h, s.h, s.kernel_h, s.stride_h, s.pad_h);
    const PoolWindow ww = pool_window(o.w, s.w, s.kernel_w, s.stride_w, s.pad_w);
    Pack<float, V> best;
    Pack<std::int32_t, V> best_index;
#pragma unroll
    for (int k = 0; k < V; ++k) best.v[k] = -INFINITY, best_index.v[k] = wh.lo * s.w + ww.lo;
    for (int h = wh.lo; h < wh.hi; ++h)
      for (int w = ww.lo; w < ww.hi; ++w) {
        const Pack<float, V> x = load<V>(inp + ((o.n * s.h + h) * s.w + w) * s.c + o.c);
        const std::int32_t at = h * s.w + w;
#pragma unroll
        for (int k = 0; k < V; ++k)
          if (x.v[k] > best.v[k] || isnan(x.v[k])) best.v[k] = x.v[k], best_index.v[k] = at;
      }
    store<V>(out + i * V, best);
    store<V>(argmax + i * V, best_index);
  }
}

template <typename I, int V>
__global__ void avg_pool2d_forward_kernel(float* __restrict__ out, const float* __restrict__ inp, Pool2dShape s,
                                          bool count_include_pad, NhwcIndex<I> index, I total) {
  for (I i = first_index<I>(); i < total; i += index_stride<I>()) {
    const Pixel<I> o = index.split(i);  // (n, p, q, c)
    const PoolWindow wh = pool_window(o.h, s.h, s.kernel_h, s.stride_h, s.pad_h);
    const PoolWindow ww = pool_window(o.w, s.w, s.kernel_w, s.stride_w, s.pad_w);
    Pack<float, V> acc{};
    for (int h = wh.lo; h < wh.hi; ++h)
      for (int w = ww.lo; w < ww.hi; ++w) {
        const Pack<float, V> x = load<V>(inp + ((o.n * s.h + h) * s.w + w) * s.c + o.c);
#pragma unroll
        for (int k = 0; k < V; ++k) acc.v[k] += x.v[k];
      }
    const int count = count_include_pad ? wh.padded * ww.padded : (wh.hi - wh.lo) * (ww.hi - ww.lo);
#pragma unroll
    for (int k = 0; k < V; ++k) acc.v[k] = count > 0 ? acc.v[k] / static_cast<float>(count) : 0.f;
    store<V>(out + i * V, acc);
  }
}

// Global average pooling (P = Q = 1) is the case that matters (ResNet's head): few threads (one per V channels of
// an image), each summing H*W pixels, so the time is load latency. A bin spanning whole rows (always, for global
// pooling) is one contiguous run of pixels: one flat loop, unrolled to keep 8 loads in flight; the adds stay in
// the CPU's row-major order. (54% of the copy at ResNet-50's (64,7,7,2048) head on an H100: one wave of 128 blocks,
// latency-bound. Loading 16 pixels explicitly before adding them measured the same, 53%, and was not kept; more
// threads per image would need a split sum, another order than the CPU's.)
template <typename I, int V>
__global__ void adaptive_avg_pool2d_forward_kernel(float* __restrict__ out, const float* __restrict__ inp, int h,
                                                   int w, int c, int p, int q, NhwcIndex<I> index, I total) {
  for (I i = first_index<I>(); i < total; i += index_stride<I>()) {
    const Pixel<I> o = index.split(i);  // (n, bin row, bin column, c)
    const int h0 = adaptive_start(o.h, h, p), h1 = adaptive_end(o.h, h, p);
    const int w0 = adaptive_start(o.w, w, q), w1 = adaptive_end(o.w, w, q);
    Pack<float, V> acc{};
    const bool whole_rows = w0 == 0 && w1 == w;
    const int runs = whole_rows ? 1 : h1 - h0, run_length = whole_rows ? (h1 - h0) * w : w1 - w0;
    for (int r = 0; r < runs; ++r) {
      const float* pixel = inp + ((o.n * h + h0 + r) * w + w0) * c + o.c;
#pragma unroll 8
      for (int x = 0; x < run_length; ++x) {
        const Pack<float, V> v = load<V>(pixel + static_cast<I>(x) * c);
#pragma unroll
        for (int k = 0; k < V; ++k) acc.v[k] += v.v[k];
      }
    }
    const float area = static_cast<float>((h1 - h0) * (w1 - w0));
#pragma unroll
    for (int k = 0; k < V; ++k) acc.v[k] /= area;
    store<V>(out + i * V, acc);
  }
}

// ---- backward: one thread per V channels of an input pixel (n, h, w), a gather in (p,q) order -----------------

template <typename I, int V>
__global__ void max_pool2d_backward_kernel(float* __restrict__ dinp, const float* __restrict__ dout,
                                           const std::int32_t* __restrict__ argmax, Pool2dShape s,
                                           NhwcIndex<I> index, PoolAxis rows, PoolAxis cols, I total) {
  for (I i = first_index<I>(); i < total; i += index_stride<I>()) {
    const Pixel<I> x = index.split(i);
    int p0, p1, q0, q1;
    rows.covering(x.h, &p0, &p1);
    cols.covering(x.w, &q0, &q1);
    const std::int32_t self = x.h * s.w + x.w;
    Pack<float, V> acc{};  // zeros, as the CPU's acc
    for (int p = p0; p <= p1; ++p)
      for (int q = q0; q <= q1; ++q) {
        const I o = ((x.n * s.p + p) * s.q + q) * s.c + x.c;
        const Pack<std::int32_t, V> a = load<V>(argmax + o);
        bool hit = false;
#pragma unroll
        for (int k = 0; k < V; ++k) hit |= a.v[k] == self;
        if (!hit) continue;  // most windows took their maximum elsewhere: skip reading dout
        const Pack<float, V> d = load<V>(dout + o);
#pragma unroll
        for (int k = 0; k < V; ++k)
          if (a.v[k] == self) acc.v[k] += d.v[k];
      }
    store<V>(dinp + i * V, acc);
  }
}

template <typename I, int V>
__global__ void avg_pool2d_backward_kernel(float* __restrict__ dinp, const float* __restrict__ dout, Pool2dShape s,
                                           bool count_include_pad, NhwcIndex<I> index, PoolAxis rows,
                                           PoolAxis cols, I total) {
  for (I i = first_index<I>(); i < total; i += index_stride<I>()) {
    const Pixel<I> x = index.split(i);
    int p0, p1, q0, q1;
    rows.covering(x.h, &p0, &p1);
    cols.covering(x.w, &q0, &q1);
    Pack<float, V> acc{};
    for (int p = p0; p <= p1; ++p) {
      const PoolWindow wh = pool_window(p, s.h, s.kernel_h, s.stride_h, s.pad_h);
      for (int q = q0; q <= q1; ++q) {
        const PoolWindow ww = pool_window(q, s.w, s.kernel_w, s.stride_w, s.pad_w);
        const int count = count_include_pad ? wh.padded * ww.padded : (wh.hi - wh.lo) * (ww.hi - ww.lo);
        const Pack<float, V> d = load<V>(dout + ((x.n * s.p + p) * s.q + q) * s.c + x.c);
#pragma unroll
        for (int k = 0; k < V; ++k) acc.v[k] += d.v[k] / static_cast<float>(count);
      }
    }
    store<V>(dinp + i * V, acc);
  }
}

template <typename I, int V>
__global__ void adaptive_avg_pool2d_backward_kernel(float* __restrict__ dinp, const float* __restrict__ dout, int h,
                                                    int w, int c, int p, int q, NhwcIndex<I> index, I total) {
  for (I i = first_index<I>(); i < total; i += index_stride<I>()) {
    const Pixel<I> x = index.split(i);
    int i0, i1, k0, k1;
    adaptive_covering(x.h, h, p, &i0, &i1);
    adaptive_covering(x.w, w, q, &k0, &k1);
    Pack<float, V> acc{};
    for (int bin = i0; bin <= i1; ++bin) {
      const int bin_rows = adaptive_end(bin, h, p) - adaptive_start(bin, h, p);
      for (int k = k0; k <= k1; ++k) {
        const float count = static_cast<float>(bin_rows * (adaptive_end(k, w, q) - adaptive_start(k, w, q)));
        const Pack<float, V> d = load<V>(dout + ((x.n * p + bin) * q + k) * c + x.c);
#pragma unroll
        for (int j = 0; j < V; ++j) acc.v[j] += d.v[j] / count;
      }
    }
    store<V>(dinp + i * V, acc);
  }
}

// Global average pooling, the adaptive backward with P = Q = 1 (one bin of area H*W covering every pixel):
// dinp[n,h,w,c] = 0 + dout[n,c] / (H*W), the CPU's one-term sum. Flat index i over (N*H*W, C/V).
template <typename I, int V>
__global__ void global_avg_pool_backward_kernel(float* __restrict__ dinp, const float* __restrict__ dout, int c,
                                                float area, Divider<I> groups, Divider<I> image, I total) {
  for (I i = first_index<I>(); i < total; i += index_stride<I>()) {
    const I pixel = groups.div(i);
    const I n = image.div(pixel);
    const Pack<float, V> d = load<V>(dout + n * c + (i - pixel * groups.d) * V);
    Pack<float, V> r;
#pragma unroll
    for (int k = 0; k < V; ++k) r.v[k] = 0.f + d.v[k] / area;
    store<V>(dinp + i * V, r);
  }
}

// ---- launch helpers --------------------------------------------------------------------------------------------

// Calls launch(I{}) with I = int when every index of the input and output fits comfortably in 32 bits, else int64.
template <typename Launch>
void launch_with_index(int64_t input_numel, int64_t output_numel, Launch launch) {
  constexpr int64_t kInt32Safe = int64_t{1} << 30;  // leaves room for i + grid stride
  if (input_numel < kInt32Safe && output_numel < kInt32Safe) {
    launch(int{0});
  } else {
    launch(int64_t{0});
  }
}

// As launch_with_index, and calls launch(I{}, std::integral_constant<int, V>{}) with V = 4 when `vectorize`, else 1.
template <typename Launch>
void launch_with_index_and_width(int64_t input_numel, int64_t output_numel, bool vectorize, Launch launch) {
  launch_with_index(input_numel, output_numel, [&](auto index) {
    if (vectorize) {
      launch(index, std::integral_constant<int, 4>{});
    } else {
      launch(index, std::integral_constant<int, 1>{});
    }
  });
}

}  // namespace

void max_pool2d_forward_cuda(float* out, std::int32_t* argmax, const float* inp, const Pool2dShape& s) {
  const int64_t total = s.n * s.p * s.q * s.c;
  if (total == 0) return;
  const bool vectorize = s.c % 4 == 0 && cuda::aligned16(out) && cuda::aligned16(argmax) && cuda::aligned16(inp);
  launch_with_index_and_width(s.n * s.h * s.w * s.c, total, vectorize, [&](auto index, auto width) {
    using I = decltype(index);
    constexpr int V = decltype(width)::value;
    max_pool2d_forward_kernel<I, V><<<cuda::grid_for(total / V), cuda::kBlock, 0, cuda::stream()>>>(
        out, argmax, inp, s, NhwcIndex<I>(s.p, s.q, s.c, V), static_cast<I>(total / V));
  });
  GRAFT_CUDA_CHECK_LAUNCH("max_pool2d_forward_kernel");
}

void max_pool2d_backward_cuda(float* dinp, const float* dout, const std::int32_t* argmax, const Pool2dShape& s) {
  const int64_t numel = s.n * s.h * s.w * s.c;
  if (numel == 0) return;
  const bool vectorize = s.c % 4 == 0 && cuda::aligned16(dinp) && cuda::aligned16(dout) && cuda::aligned16(argmax);
  const PoolAxis rows(s.kernel_h, s.stride_h, s.pad_h, s.p), cols(s.kernel_w, s.stride_w, s.pad_w, s.q);
  launch_with_index_and_width(numel, s.n * s.p * s.q * s.c, vectorize, [&](auto index, auto width) {
    using I = decltype(index);
    constexpr int V = decltype(width)::value;
    const int64_t total = numel / V;
    max_pool2d_backward_kernel<I, V><<<cuda::grid_for(total), cuda::kBlock, 0, cuda::stream()>>>(
        dinp, dout, argmax, s, NhwcIndex<I>(s.h, s.w, s.c, V), rows, cols, static_cast<I>(total));
  });
  GRAFT_CUDA_CHECK_LAUNCH("max_pool2d_backward_kernel");
}

void avg_pool2d_forward_cuda(float* out, const float* inp, const Pool2dShape& s, bool count_include_pad) {
  const int64_t total = s.n * s.p * s.q * s.c;
  if (total == 0) return;
  const bool vectorize = s.c % 4 == 0 && cuda::aligned16(out) && cuda::aligned16(inp);
  launch_with_index_and_width(s.n * s.h * s.w * s.c, total, vectorize, [&](auto index, auto width) {
    using I = decltype(index);
    constexpr int V = decltype(width)::value;
    avg_pool2d_forward_kernel<I, V><<<cuda::grid_for(total / V), cuda::kBlock, 0, cuda::stream()>>>(
        out, inp, s, count_include_pad, NhwcIndex<I>(s.p, s.q, s.c, V), static_cast<I>(total / V));
  });
  GRAFT_CUDA_CHECK_LAUNCH("avg_pool2d_forward_kernel");
}

void avg_pool2d_backward_cuda(float* dinp, const float* dout, const Pool2dShape& s, bool count_include_pad) {
  const int64_t numel = s.n * s.h * s.w * s.c;
  if (numel == 0) return;
  const bool vectorize = s.c % 4 == 0 && cuda::aligned16(dinp) && cuda::aligned16(dout);
  const PoolAxis rows(s.kernel_h, s.stride_h, s.pad_h, s.p), cols(s.kernel_w, s.stride_w, s.pad_w, s.q);
  launch_with_index_and_width(numel, s.n * s.p * s.q * s.c, vectorize, [&](auto index, auto width) {
    using I = decltype(index);
    constexpr int V = decltype(width)::value;
    const int64_t total = numel / V;
    avg_pool2d_backward_kernel<I, V><<<cuda::grid_for(total), cuda::kBlock, 0, cuda::stream()>>>(
        dinp, dout, s, count_include_pad, NhwcIndex<I>(s.h, s.w, s.c, V), rows, cols, static_cast<I>(total));
  });
  GRAFT_CUDA_CHECK_LAUNCH("avg_pool2d_backward_kernel");
}

void adaptive_avg_pool2d_forward_cuda(float* out, const float* inp, int64_t n, int h, int w, int c, int p, int q) {
  const int64_t total = n * p * q * c;
  if (total == 0) return;
  const bool vectorize = c % 4 == 0 && cuda::aligned16(out) && cuda::aligned16(inp);
  launch_with_index_and_width(n * h * w * c, total, vectorize, [&](auto index, auto width) {
    using I = decltype(index);
    constexpr int V = decltype(width)::value;
    adaptive_avg_pool2d_forward_kernel<I, V><<<cuda::grid_for(total / V), cuda::kBlock, 0, cuda::stream()>>>(
        out, inp, h, w, c, p, q, NhwcIndex<I>(p, q, c, V), static_cast<I>(total / V));
  });
  GRAFT_CUDA_CHECK_LAUNCH("adaptive_avg_pool2d_forward_kernel");
}

void adaptive_avg_pool2d_backward_cuda(float* dinp, const float* dout, int64_t n, int h, int w, int c, int p,
                                       int q) {
  const int64_t numel = n * h * w * c;
  if (numel == 0) return;
  const bool vectorize = c % 4 == 0 && cuda::aligned16(dinp) && cuda::aligned16(dout);
  launch_with_index_and_width(numel, n * p * q * c, vectorize, [&](auto index, auto width) {
    using I = decltype(index);
    constexpr int V = decltype(width)::value;
    const int64_t total = numel / V;
    if (p == 1 && q == 1) {
      const Divider<I> groups(c / V), image(static_cast<I>(static_cast<int64_t>(h) * w));
      global_avg_pool_backward_kernel<I, V><<<cuda::grid_for(total), cuda::kBlock, 0, cuda::stream()>>>(
          dinp, dout, c, static_cast<float>(h * w), groups, image, static_cast<I>(total));
    } else {
      adaptive_avg_pool2d_backward_kernel<I, V><<<cuda::grid_for(total), cuda::kBlock, 0, cuda::stream()>>>(
          dinp, dout, h, w, c, p, q, NhwcIndex<I>(h, w, c, V), static_cast<I>(total));
    }
  });
  GRAFT_CUDA_CHECK_LAUNCH("adaptive_avg_pool2d_backward_kernel");
}

}  // namespace graft
