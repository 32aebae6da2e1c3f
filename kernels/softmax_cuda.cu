// CUDA softmax, log-softmax and softmax-cross-entropy over the last axis (math in kernels/softmax.h).
// One row per warp when the row is short (up to 1024 columns: classifier logits), one row per 256-thread block
// otherwise. Each row is swept in separate passes (max, sum of exponentials, write) rather than with an online
// max/sum: the re-reads of a row mostly hit L1/L2, and subtracting a known max keeps -inf entries (masks)
// harmless, where the online rescaling would produce inf - inf. Reductions are shuffle/shared-memory trees of
// fixed shape, so results are deterministic. The loss gradient scale dloss lives on the device and is read
// inside the kernel: the backward never waits for the host.
#include <cmath>
#include <cstdint>

#include "kernels/cuda_device.h"
#include "kernels/softmax.h"

namespace graft {
namespace {

using std::int64_t;

constexpr int kThreads = 256;
constexpr int64_t kWarpRowMaxCols = 1024;

struct SumOp {
  __device__ float operator()(float a, float b) const { return a + b; }
  static constexpr float kIdentity = 0.f;
};
struct MaxOp {
  __device__ float operator()(float a, float b) const { return fmaxf(a, b); }
  static constexpr float kIdentity = -INFINITY;
};

// Reduction over a group of kGroup threads (a warp or the whole block); every lane gets the same bits, since each
// butterfly step combines the same two values, only in swapped order.
template <int kGroup, class Op>
__device__ __forceinline__ float group_reduce(float v, Op op, float* smem) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, offset));
  if constexpr (kGroup == 32) {
    return v;
  } else {
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    __syncthreads();  // the previous call's readers are done with smem
    if (lane == 0) smem[warp] = v;
    __syncthreads();
    v = lane < kGroup / 32 ? smem[lane] : Op::kIdentity;
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, offset));
    return v;
  }
}

// Rows owned by this thread's group. The loop is uniform per block (block mode) or per warp (warp mode), so
// barriers and full-mask shuffles are always reached by every participating thread.
template <int kGroup>
__device__ __forceinline__ int64_t first_row() {
  return static_cast<int64_t>(blockIdx.x) * (kThreads / kGroup) + threadIdx.x / kGroup;
}
template <int kGroup>
__device__ __forceinline__ int64_t row_stride() {
  return static_cast<int64_t>(gridDim.x) * (kThreads / kGroup);
}

template <int kGroup>
__device__ __forceinline__ float row_max(const float* x, int64_t cols, int lane, float* smem) {
  float m = -INFINITY;
  for (int64_t c = lane; c < cols; c += kGroup) m = fmaxf(m, x[c]);
  return group_reduce<kGroup>(m, MaxOp{}, smem);
}

template <int kGroup>
__device__ __forceinline__ float row_sum_exp(const float* x, int64_t cols, float m, int lane, float* smem) {
  float s = 0.f;
  for (int64_t c = lane; c < cols; c += kGroup) s += expf(x[c] - m);
  return group_reduce<kGroup>(s, SumOp{}, smem);
}

template <int kGroup>
__global__ void __launch_bounds__(kThreads)
    softmax_forward_kernel(float* out, const float* inp, int64_t rows, int64_t cols, bool log) {
  __shared__ float smem[32];
  const int lane = threadIdx.x % kGroup;
  for (int64_t row = first_row<kGroup>(); row < rows; row += row_stride<kGroup>()) {
    const float* x = inp + row * cols;
    float* y = out + row * cols;
    const float m = row_max<kGroup>(x, cols, lane, smem);
    const float s = row_sum_exp<kGroup>(x, cols, m, lane, smem);
    if (log) {
      const float log_s = logf(s);
      for (int64_t c = lane; c < cols; c += kGroup) y[c] = (x[c] - m) - log_s;
    } else {
      for (int64_t c = lane; c < cols; c += kGroup) y[c] = expf(x[c] - m) / s;
    }
  }
}

template <int kGroup>
__global__ void __launch_bounds__(kThreads)
    softmax_backward_kernel(float* dinp, const float* dout, const float* out, int64_t rows, int64_t cols, bool log) {
  __shared__ float smem[32];
  const int lane = threadIdx.x % kGroup;
  for (int64_t row = first_row<kGroup>(); row < rows; row += row_stride<kGroup>()) {
    const float* dy = dout + row * cols;
    const float* y = out + row * cols;
    float* dx = dinp + row * cols;
    float acc = 0.f;
    if (log) {
      for (int64_t c = lane; c < cols; c += kGroup) acc += dy[c];
    } else {
      for (int64_t c = lane; c < cols; c += kGroup) acc += dy[c] * y[c];
    }
    acc = group_reduce<kGroup>(acc, SumOp{}, smem);
    if (log) {
      for (int64_t c = lane; c < cols; c += kGroup) dx[c] = dy[c] - expf(y[c]) * acc;
    } else {
      for (int64_t c = lane; c < cols; c += kGroup) dx[c] = y[c] * (dy[c] - acc);
    }
  }
}

// Target q_c = (1 - s) [c == label] + s / C, written so that it rounds like the CPU reference.
__device__ __forceinline__ float target(int64_t c, int64_t label, float smoothing, float off) {
  return (c == label ? 1.f - smoothing : 0.f) + off;
}

template <int kGroup>
__global__ void __launch_bounds__(kThreads)
    cross_entropy_forward_kernel(float* losses, float* probs, const float* logits, const std::int32_t* labels,
                                 int64_t rows, int64_t cols, float smoothing) {
  __shared__ float smem[32];
  const int lane = threadIdx.x % kGroup;
  const float off = smoothing / static_cast<float>(cols);
  for (int64_t row = first_row<kGroup>(); row < rows; row += row_stride<kGroup>()) {
    const float* x = logits + row * cols;
    float* p = probs + row * cols;
    const int64_t label = labels[row];
    const float m = row_max<kGroup>(x, cols, lane, smem);
    const float s = row_sum_exp<kGroup>(x, cols, m, lane, smem);
    const float log_s = logf(s);
    float acc = 0.f;  // sum_c q_c log p_c
    for (int64_t c = lane; c < cols; c += kGroup) {
      const float shifted = x[c] - m;
      p[c] = expf(shifted) / s;
      acc += target(c, label, smoothing, off) * (shifted - log_s);
    }
    acc = group_reduce<kGroup>(acc, SumOp{}, smem);
    // A label outside [0, cols) (checked here, not on the host: that would synchronise every step) gives NaN.
    if (lane == 0) losses[row] = label >= 0 && label < cols ? -acc : __int_as_float(0x7fc00000);
  }
}

template <int kGroup>
__global__ void __launch_bounds__(kThreads)
    cross_entropy_backward_kernel(float* dlogits, const float* probs, const std::int32_t* labels, const float* dloss,
                                  int64_t rows, int64_t cols, float smoothing, float scale) {
  const int lane = threadIdx.x % kGroup;
  const float off = smoothing / static_cast<float>(cols);
  const float g = *dloss * scale;
  for (int64_t row = first_row<kGroup>(); row < rows; row += row_stride<kGroup>()) {
    const float* p = probs + row * cols;
    float* dx = dlogits + row * cols;
    const int64_t label = labels[row];
    const bool valid = label >= 0 && label < cols;  // NaN gradients for a bad label, as its loss
    for (int64_t c = lane; c < cols; c += kGroup)
      dx[c] = valid ? (p[c] - target(c, label, smoothing, off)) * g : __int_as_float(0x7fc00000);
  }
}

bool warp_per_row(int64_t cols) { return cols <= kWarpRowMaxCols; }
unsigned grid_for_rows(int64_t rows, int64_t cols) {
  return cuda::grid_for(rows, warp_per_row(cols) ? kThreads / 32 : 1);
}

}  // namespace

void softmax_forward_cuda(float* out, const float* inp, std::int64_t rows, std::int64_t cols, bool log) {
  if (rows <= 0 || cols <= 0) return;
  const unsigned grid = grid_for_rows(rows, cols);
  if (warp_per_row(cols)) {
    softmax_forward_kernel<32><<<grid, kThreads, 0, cuda::stream()>>>(out, inp, rows, cols, log);
  } else {
    softmax_forward_kernel<kThreads><<<grid, kThreads, 0, cuda::stream()>>>(out, inp, rows, cols, log);
  }
  GRAFT_CUDA_CHECK_LAUNCH("softmax_forward_kernel");
}

void softmax_backward_cuda(float* dinp, const float* dout, const float* out, std::int64_t rows, std::int64_t cols,
                           bool log) {
  if (rows <= 0 || cols <= 0) return;
  const unsigned grid = grid_for_rows(rows, cols);
  if (warp_per_row(cols)) {
    softmax_backward_kernel<32><<<grid, kThreads, 0, cuda::stream()>>>(dinp, dout, out, rows, cols, log);
  } else {
    softmax_backward_kernel<kThreads><<<grid, kThreads, 0, cuda::stream()>>>(dinp, dout, out, rows, cols, log);
  }
  GRAFT_CUDA_CHECK_LAUNCH("softmax_backward_kernel");
}

void cross_entropy_forward_cuda(float* losses, float* probs, const float* logits, const std::int32_t* labels,
                                std::int64_t rows, std::int64_t cols, float smoothing) {
  if (rows <= 0 || cols <= 0) return;
  const unsigned grid = grid_for_rows(rows, cols);
  if (warp_per_row(cols)) {
    cross_entropy_forward_kernel<32>
        <<<grid, kThreads, 0, cuda::stream()>>>(losses, probs, logits, labels, rows, cols, smoothing);
  } else {
    cross_entropy_forward_kernel<kThreads>
        <<<grid, kThreads, 0, cuda::stream()>>>(losses, probs, logits, labels, rows, cols, smoothing);
  }
  GRAFT_CUDA_CHECK_LAUNCH("cross_entropy_forward_kernel");
}

void cross_entropy_backward_cuda(float* dlogits, const float* probs, const std::int32_t* labels, const float* dloss,
                                 std::int64_t rows, std::int64_t cols, float smoothing, float scale) {
  if (rows <= 0 || cols <= 0) return;
  const unsigned grid = grid_for_rows(rows, cols);
  if (warp_per_row(cols)) {
    cross_entropy_backward_kernel<32>
        <<<grid, kThreads, 0, cuda::stream()>>>(dlogits, probs, labels, dloss, rows, cols, smoothing, scale);
  } else {
    cross_entropy_backward_kernel<kThreads>
        <<<grid, kThreads, 0, cuda::stream()>>>(dlogits, probs, labels, dloss, rows, cols, smoothing, scale);
  }
  GRAFT_CUDA_CHECK_LAUNCH("cross_entropy_backward_kernel");
}

}  // namespace graft
