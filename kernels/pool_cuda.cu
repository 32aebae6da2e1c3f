// CUDA pooling (math in kernels/pool.h). Forward: one thread per output element (n,p,q,c), consecutive threads
// on consecutive channels so every window row is read coalesced. Backward: one thread per input element that
// gathers from the output windows covering it - deterministic, no atomics - in the same order as the CPU reference.
// Index math runs in 32 bits whenever input and output fit (every ResNet/VGG shape does): 64-bit integer division
// is emulated on the GPU and made these memory-bound kernels compute-bound (max-pool backward ran at 14% of the
// copy bandwidth on an H100 with 64-bit indices).
#include <cuda_runtime.h>

#include "kernels/cuda_device.h"
#include "kernels/pool.h"

namespace graft {
namespace {

template <typename I>
__global__ void max_pool2d_forward_kernel(float* out, std::int32_t* argmax, const float* inp, Pool2dShape s,
                                          I total) {
  for (I i = static_cast<I>(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += static_cast<I>(gridDim.x) * blockDim.x) {
    const int j = static_cast<int>(i % s.c);
    I rest = i / s.c;
    const int q = static_cast<int>(rest % s.q);
    rest /= s.q;
    const int p = static_cast<int>(rest % s.p);
    const I n = rest / s.p;
    const PoolWindow wh = pool_window(p, s.h, s.kernel_h, s.stride_h, s.pad_h);
    const PoolWindow ww = pool_window(q, s.w, s.kernel_w, s.stride_w, s.pad_w);
    float best = -INFINITY;
    std::int32_t best_index = wh.lo * s.w + ww.lo;
    for (int h = wh.lo; h < wh.hi; ++h)
      for (int w = ww.lo; w < ww.hi; ++w) {
        const float v = inp[((n * s.h + h) * s.w + w) * s.c + j];
        if (v > best || isnan(v)) best = v, best_index = h * s.w + w;
      }
    out[i] = best;
    argmax[i] = best_index;
  }
}

template <typename I>
__global__ void max_pool2d_backward_kernel(float* dinp, const float* dout, const std::int32_t* argmax, Pool2dShape s,
                                           I total) {
  for (I i = static_cast<I>(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += static_cast<I>(gridDim.x) * blockDim.x) {
    const int j = static_cast<int>(i % s.c);
    I rest = i / s.c;
    const int w = static_cast<int>(rest % s.w);
    rest /= s.w;
    const int h = static_cast<int>(rest % s.h);
    const I n = rest / s.h;
    int p0, p1, q0, q1;
    pool_covering(h, s.kernel_h, s.stride_h, s.pad_h, s.p, &p0, &p1);
    pool_covering(w, s.kernel_w, s.stride_w, s.pad_w, s.q, &q0, &q1);
    const std::int32_t self = h * s.w + w;
    float acc = 0.f;
    for (int p = p0; p <= p1; ++p)
      for (int q = q0; q <= q1; ++q) {
        const I o = ((n * s.p + p) * s.q + q) * s.c + j;
        if (argmax[o] == self) acc += dout[o];
      }
    dinp[i] = acc;
  }
}

template <typename I>
__global__ void avg_pool2d_forward_kernel(float* out, const float* inp, Pool2dShape s, bool count_include_pad,
                                          I total) {
  for (I i = static_cast<I>(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += static_cast<I>(gridDim.x) * blockDim.x) {
    const int j = static_cast<int>(i % s.c);
    I rest = i / s.c;
    const int q = static_cast<int>(rest % s.q);
    rest /= s.q;
    const int p = static_cast<int>(rest % s.p);
    const I n = rest / s.p;
    const PoolWindow wh = pool_window(p, s.h, s.kernel_h, s.stride_h, s.pad_h);
    const PoolWindow ww = pool_window(q, s.w, s.kernel_w, s.stride_w, s.pad_w);
    float acc = 0.f;
    for (int h = wh.lo; h < wh.hi; ++h)
      for (int w = ww.lo; w < ww.hi; ++w) acc += inp[((n * s.h + h) * s.w + w) * s.c + j];
    const int count = count_include_pad ? wh.padded * ww.padded : (wh.hi - wh.lo) * (ww.hi - ww.lo);
    out[i] = count > 0 ? acc / static_cast<float>(count) : 0.f;
  }
}

template <typename I>
__global__ void avg_pool2d_backward_kernel(float* dinp, const float* dout, Pool2dShape s, bool count_include_pad,
                                           I total) {
  for (I i = static_cast<I>(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += static_cast<I>(gridDim.x) * blockDim.x) {
    const int j = static_cast<int>(i % s.c);
    I rest = i / s.c;
    const int w = static_cast<int>(rest % s.w);
    rest /= s.w;
    const int h = static_cast<int>(rest % s.h);
    const I n = rest / s.h;
    int p0, p1, q0, q1;
    pool_covering(h, s.kernel_h, s.stride_h, s.pad_h, s.p, &p0, &p1);
    pool_covering(w, s.kernel_w, s.stride_w, s.pad_w, s.q, &q0, &q1);
    float acc = 0.f;
    for (int p = p0; p <= p1; ++p)
      for (int q = q0; q <= q1; ++q) {
        const PoolWindow wh = pool_window(p, s.h, s.kernel_h, s.stride_h, s.pad_h);
        const PoolWindow ww = pool_window(q, s.w, s.kernel_w, s.stride_w, s.pad_w);
        const int count = count_include_pad ? wh.padded * ww.padded : (wh.hi - wh.lo) * (ww.hi - ww.lo);
        acc += dout[((n * s.p + p) * s.q + q) * s.c + j] / static_cast<float>(count);
      }
    dinp[i] = acc;
  }
}

template <typename I>
__global__ void adaptive_avg_pool2d_forward_kernel(float* out, const float* inp, int h, int w, int c, int p, int q,
                                                   I total) {
  for (I i = static_cast<I>(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += static_cast<I>(gridDim.x) * blockDim.x) {
    const int j = static_cast<int>(i % c);
    I rest = i / c;
    const int k = static_cast<int>(rest % q);
    rest /= q;
    const int bin = static_cast<int>(rest % p);
    const I b = rest / p;
    const int h0 = adaptive_start(bin, h, p), h1 = adaptive_end(bin, h, p);
    const int w0 = adaptive_start(k, w, q), w1 = adaptive_end(k, w, q);
    float acc = 0.f;
    for (int y = h0; y < h1; ++y)
      for (int x = w0; x < w1; ++x) acc += inp[((b * h + y) * w + x) * c + j];
    out[i] = acc / static_cast<float>((h1 - h0) * (w1 - w0));
  }
}

template <typename I>
__global__ void adaptive_avg_pool2d_backward_kernel(float* dinp, const float* dout, int h, int w, int c, int p, int q,
                                                    I total) {
  for (I i = static_cast<I>(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += static_cast<I>(gridDim.x) * blockDim.x) {
    const int j = static_cast<int>(i % c);
    I rest = i / c;
    const int x = static_cast<int>(rest % w);
    rest /= w;
    const int y = static_cast<int>(rest % h);
    const I b = rest / h;
    int i0, i1, k0, k1;
    adaptive_covering(y, h, p, &i0, &i1);
    adaptive_covering(x, w, q, &k0, &k1);
    float acc = 0.f;
    for (int bin = i0; bin <= i1; ++bin)
      for (int k = k0; k <= k1; ++k) {
        const float count = static_cast<float>((adaptive_end(bin, h, p) - adaptive_start(bin, h, p)) *
                                               (adaptive_end(k, w, q) - adaptive_start(k, w, q)));
        acc += dout[((b * p + bin) * q + k) * c + j] / count;
      }
    dinp[i] = acc;
  }
}

// Launches kernel<int> when every index of the input and output fits comfortably in 32 bits, else kernel<int64>.
template <typename Launch>
void launch_with_index(std::int64_t total, std::int64_t input_numel, std::int64_t output_numel, Launch launch) {
  constexpr std::int64_t kInt32Safe = std::int64_t{1} << 30;  // leaves room for i + grid stride
  if (total < kInt32Safe && input_numel < kInt32Safe && output_numel < kInt32Safe) {
    launch(int{0});
  } else {
    launch(std::int64_t{0});
  }
}

}  // namespace

void max_pool2d_forward_cuda(float* out, std::int32_t* argmax, const float* inp, const Pool2dShape& s) {
  const std::int64_t total = s.n * s.p * s.q * s.c;
  if (total == 0) return;
  launch_with_index(total, s.n * s.h * s.w * s.c, total, [&](auto index) {
    using I = decltype(index);
    max_pool2d_forward_kernel<I><<<cuda::grid_for(total), cuda::kBlock, 0, cuda::stream()>>>(out, argmax, inp, s,
                                                                                           static_cast<I>(total));
  });
  GRAFT_CUDA_CHECK_LAUNCH("max_pool2d_forward_kernel");
}

void max_pool2d_backward_cuda(float* dinp, const float* dout, const std::int32_t* argmax, const Pool2dShape& s) {
  const std::int64_t total = s.n * s.h * s.w * s.c;
  if (total == 0) return;
  launch_with_index(total, total, s.n * s.p * s.q * s.c, [&](auto index) {
    using I = decltype(index);
    max_pool2d_backward_kernel<I><<<cuda::grid_for(total), cuda::kBlock, 0, cuda::stream()>>>(dinp, dout, argmax, s,
                                                                                            static_cast<I>(total));
  });
  GRAFT_CUDA_CHECK_LAUNCH("max_pool2d_backward_kernel");
}

void avg_pool2d_forward_cuda(float* out, const float* inp, const Pool2dShape& s, bool count_include_pad) {
  const std::int64_t total = s.n * s.p * s.q * s.c;
  if (total == 0) return;
  launch_with_index(total, s.n * s.h * s.w * s.c, total, [&](auto index) {
    using I = decltype(index);
    avg_pool2d_forward_kernel<I><<<cuda::grid_for(total), cuda::kBlock, 0, cuda::stream()>>>(
        out, inp, s, count_include_pad, static_cast<I>(total));
  });
  GRAFT_CUDA_CHECK_LAUNCH("avg_pool2d_forward_kernel");
}

void avg_pool2d_backward_cuda(float* dinp, const float* dout, const Pool2dShape& s, bool count_include_pad) {
  const std::int64_t total = s.n * s.h * s.w * s.c;
  if (total == 0) return;
  launch_with_index(total, total, s.n * s.p * s.q * s.c, [&](auto index) {
    using I = decltype(index);
    avg_pool2d_backward_kernel<I><<<cuda::grid_for(total), cuda::kBlock, 0, cuda::stream()>>>(
        dinp, dout, s, count_include_pad, static_cast<I>(total));
  });
  GRAFT_CUDA_CHECK_LAUNCH("avg_pool2d_backward_kernel");
}

void adaptive_avg_pool2d_forward_cuda(float* out, const float* inp, std::int64_t n, int h, int w, int c, int p,
                                      int q) {
  const std::int64_t total = n * p * q * c;
  if (total == 0) return;
  launch_with_index(total, n * h * w * c, total, [&](auto index) {
    using I = decltype(index);
    adaptive_avg_pool2d_forward_kernel<I><<<cuda::grid_for(total), cuda::kBlock, 0, cuda::stream()>>>(
        out, inp, h, w, c, p, q, static_cast<I>(total));
  });
  GRAFT_CUDA_CHECK_LAUNCH("adaptive_avg_pool2d_forward_kernel");
}

void adaptive_avg_pool2d_backward_cuda(float* dinp, const float* dout, std::int64_t n, int h, int w, int c, int p,
                                       int q) {
  const std::int64_t total = n * h * w * c;
  if (total == 0) return;
  launch_with_index(total, total, n * p * q * c, [&](auto index) {
    using I = decltype(index);
    adaptive_avg_pool2d_backward_kernel<I><<<cuda::grid_for(total), cuda::kBlock, 0, cuda::stream()>>>(
        dinp, dout, h, w, c, p, q, static_cast<I>(total));
  });
  GRAFT_CUDA_CHECK_LAUNCH("adaptive_avg_pool2d_backward_kernel");
}

}  // namespace graft
