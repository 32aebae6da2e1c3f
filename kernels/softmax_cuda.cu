// CUDA softmax, log-softmax and softmax-cross-entropy over the last axis (math in kernels/softmax.h).
// Rows of up to 1024 columns (classifier logits) take one warp each and live in registers: lane l holds columns
// l, l+32, ... (coalesced loads), so a row is read from memory once and written once. Longer rows take one
// 256-thread block each and are swept in separate passes (max, sum of exponentials, write); their re-reads mostly
// hit L1/L2. Either way the max is known before exponentials are summed (no online rescaling): subtracting a known
// max keeps -inf entries (masks) harmless, where online rescaling would produce inf - inf. Each lane adds its
// columns in increasing order, then shuffle/shared-memory trees of fixed shape combine the lanes, so results are
// deterministic and the same whether or not a row sits in registers. The loss gradient scale dloss lives on the
// device and is read inside the kernel: the backward never waits for the host.
#include <cmath>
#include <cstdint>
#include <type_traits>

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

// This lane's columns of one row: c = lane, lane + kGroup, ... < cols. With kPerLane > 0 (warp mode, cols <=
// 32 kPerLane) they are loaded into registers once, at construction; with kPerLane = 0 every pass reads memory.
template <int kGroup, int kPerLane>
struct RowSlice {
  const float* row;
  int64_t cols;
  int lane;
  float v[kPerLane > 0 ? kPerLane : 1];
  __device__ __forceinline__ RowSlice(const float* r, int64_t n, int l) : row(r), cols(n), lane(l) {
    if constexpr (kPerLane > 0) {
#pragma unroll
      for (int j = 0; j < kPerLane; ++j) {
        const int64_t c = lane + static_cast<int64_t>(kGroup) * j;
        v[j] = c < cols ? row[c] : 0.f;
      }
    }
  }
  // Calls f(c, value, j) for each of this lane's columns c = lane + kGroup * j, in increasing c.
  template <class F>
  __device__ __forceinline__ void each(F f) const {
    if constexpr (kPerLane > 0) {
#pragma unroll
      for (int j = 0; j < kPerLane; ++j) {
        const int64_t c = lane + static_cast<int64_t>(kGroup) * j;
        if (c < cols) f(c, v[j], j);
      }
    } else {
      int j = 0;
      for (int64_t c = lane; c < cols; c += kGroup, ++j) f(c, row[c], j);
    }
  }
  // Warp mode: replaces each value v by exp(v - m) and returns this lane's sum of them, with row_sum_exp's
  // expression in its order (the same bits), so a write pass needs no second exponential.
  __device__ __forceinline__ float exponentiate(float m) {
    static_assert(kPerLane > 0, "exponentiate keeps the row in registers");
    float s = 0.f;
#pragma unroll
    for (int j = 0; j < kPerLane; ++j)
      if (lane + static_cast<int64_t>(kGroup) * j < cols) {
        v[j] = expf(v[j] - m);
        s += v[j];
      }
    return s;
  }
  // The value at column c = lane + kGroup * j of a row of the same shape (inside another slice's each()); j is a
  // compile-time constant there, so the register array is indexed statically.
  __device__ __forceinline__ float at(int64_t c, int j) const {
    if constexpr (kPerLane > 0) return v[j];
    else return row[c];
  }
};

template <int kGroup, int kPerLane>
__device__ __forceinline__ float row_max(const RowSlice<kGroup, kPerLane>& x, float* smem) {
  float m = -INFINITY;
  x.each([&](int64_t, float v, int) { m = fmaxf(m, v); });
  return group_reduce<kGroup>(m, MaxOp{}, smem);
}

template <int kGroup, int kPerLane>
__device__ __forceinline__ float row_sum_exp(const RowSlice<kGroup, kPerLane>& x, float m, float* smem) {
  float s = 0.f;
  x.each([&](int64_t, float v, int) { s += expf(v - m); });
  return group_reduce<kGroup>(s, SumOp{}, smem);
}

template <int kGroup, int kPerLane>
__global__ void __launch_bounds__(kThreads)
    softmax_forward_kernel(float* out, const float* inp, int64_t rows, int64_t cols, bool log) {
  __shared__ float smem[32];
  const int lane = threadIdx.x % kGroup;
  for (int64_t row = first_row<kGroup>(); row < rows; row += row_stride<kGroup>()) {
    RowSlice<kGroup, kPerLane> x(inp + row * cols, cols, lane);
    float* y = out + row * cols;
    const float m = row_max(x, smem);
    if (log) {
      const float log_s = logf(row_sum_exp(x, m, smem));
      x.each([&](int64_t c, float v, int) { y[c] = (v - m) - log_s; });
    } else if constexpr (kPerLane > 0) {  // one exponential per element (two ran at 71% of the copy on an H100)
      const float s = group_reduce<kGroup>(x.exponentiate(m), SumOp{}, smem);
      x.each([&](int64_t c, float e, int) { y[c] = e / s; });
    } else {
      const float s = row_sum_exp(x, m, smem);
      x.each([&](int64_t c, float v, int) { y[c] = expf(v - m) / s; });
    }
  }
}

template <int kGroup, int kPerLane>
__global__ void __launch_bounds__(kThreads)
    softmax_backward_kernel(float* dinp, const float* dout, const float* out, int64_t rows, int64_t cols, bool log) {
  __shared__ float smem[32];
  const int lane = threadIdx.x % kGroup;
  for (int64_t row = first_row<kGroup>(); row < rows; row += row_stride<kGroup>()) {
    const RowSlice<kGroup, kPerLane> dy(dout + row * cols, cols, lane), y(out + row * cols, cols, lane);
    float* dx = dinp + row * cols;
    float acc = 0.f;
    if (log) {
      dy.each([&](int64_t, float d, int) { acc += d; });
    } else {
      dy.each([&](int64_t c, float d, int j) { acc += d * y.at(c, j); });
    }
    acc = group_reduce<kGroup>(acc, SumOp{}, smem);
    if (log) {
      dy.each([&](int64_t c, float d, int j) { dx[c] = d - expf(y.at(c, j)) * acc; });
    } else {
      dy.each([&](int64_t c, float d, int j) { dx[c] = y.at(c, j) * (d - acc); });
    }
  }
}

// Target q_c = (1 - s) [c == label] + s / C, written so that it rounds like the CPU reference.
__device__ __forceinline__ float target(int64_t c, int64_t label, float smoothing, float off) {
  return (c == label ? 1.f - smoothing : 0.f) + off;
}

template <int kGroup, int kPerLane>
__global__ void __launch_bounds__(kThreads)
    cross_entropy_forward_kernel(float* losses, float* probs, const float* logits, const std::int32_t* labels,
                                 int64_t rows, int64_t cols, float smoothing) {
  __shared__ float smem[32];
  const int lane = threadIdx.x % kGroup;
  const float off = smoothing / static_cast<float>(cols);
  for (int64_t row = first_row<kGroup>(); row < rows; row += row_stride<kGroup>()) {
    const RowSlice<kGroup, kPerLane> x(logits + row * cols, cols, lane);
    float* p = probs + row * cols;
    const int64_t label = labels[row];
    const float m = row_max(x, smem);
    const float s = row_sum_exp(x, m, smem);
    const float log_s = logf(s);
    float acc = 0.f;  // sum_c q_c log p_c
    x.each([&](int64_t c, float v, int) {
      const float shifted = v - m;
      p[c] = expf(shifted) / s;
      // a zero target adds nothing (skipping it leaves acc's bits as they are), and a masked logit (-inf) must
      // not add 0 * -inf = NaN: the loss stays finite, as PyTorch's
      const float q = target(c, label, smoothing, off);
      if (q != 0.f) acc += q * (shifted - log_s);
      // PyTorch (and the CPU) add (1 - s) * nll: at s = 1 with the label's own logit masked that is 0 * inf = NaN
      if (c == label && smoothing == 1.f && shifted == -INFINITY) acc += __int_as_float(0x7fc00000);
    });
    acc = group_reduce<kGroup>(acc, SumOp{}, smem);
    // A label outside [0, cols) (checked here, not on the host: that would synchronise every step) gives NaN.
    if (lane == 0) losses[row] = label >= 0 && label < cols ? -acc : __int_as_float(0x7fc00000);
  }
}

template <int kGroup, int kPerLane>
__global__ void __launch_bounds__(kThreads)
    cross_entropy_backward_kernel(float* dlogits, const float* probs, const std::int32_t* labels, const float* dloss,
                                  int64_t rows, int64_t cols, float smoothing, float scale) {
  const int lane = threadIdx.x % kGroup;
  const float off = smoothing / static_cast<float>(cols);
  const float g = *dloss * scale;
  for (int64_t row = first_row<kGroup>(); row < rows; row += row_stride<kGroup>()) {
    const RowSlice<kGroup, kPerLane> p(probs + row * cols, cols, lane);  // all loads issued before any store
    float* dx = dlogits + row * cols;
    const int64_t label = labels[row];
    const bool valid = label >= 0 && label < cols;  // NaN gradients for a bad label, as its loss
    p.each([&](int64_t c, float v, int) {
      dx[c] = valid ? (v - target(c, label, smoothing, off)) * g : __int_as_float(0x7fc00000);
    });
  }
}

// Calls launch(kGroup, kPerLane) (std::integral_constant values) for rows of `cols` columns: a warp per row with
// the row in registers (kPerLane = the next power of two >= cols / 32) up to 1024 columns, else a block per row
// (kPerLane = 0).
template <typename Launch>
void dispatch_rows(int64_t cols, Launch launch) {
  using std::integral_constant;
  const int64_t per_lane = (cols + 31) / 32;
  if (cols > kWarpRowMaxCols) launch(integral_constant<int, kThreads>{}, integral_constant<int, 0>{});
  else if (per_lane <= 1) launch(integral_constant<int, 32>{}, integral_constant<int, 1>{});
  else if (per_lane <= 2) launch(integral_constant<int, 32>{}, integral_constant<int, 2>{});
  else if (per_lane <= 4) launch(integral_constant<int, 32>{}, integral_constant<int, 4>{});
  else if (per_lane <= 8) launch(integral_constant<int, 32>{}, integral_constant<int, 8>{});
  else if (per_lane <= 16) launch(integral_constant<int, 32>{}, integral_constant<int, 16>{});
  else launch(integral_constant<int, 32>{}, integral_constant<int, 32>{});
}

unsigned grid_for_rows(int64_t rows, int64_t cols) {
  return cuda::grid_for(rows, cols <= kWarpRowMaxCols ? kThreads / 32 : 1);
}

}  // namespace

void softmax_forward_cuda(float* out, const float* inp, std::int64_t rows, std::int64_t cols, bool log) {
  if (rows <= 0 || cols <= 0) return;
  dispatch_rows(cols, [&](auto group, auto per_lane) {
    softmax_forward_kernel<decltype(group)::value, decltype(per_lane)::value>
        <<<grid_for_rows(rows, cols), kThreads, 0, cuda::stream()>>>(out, inp, rows, cols, log);
  });
  GRAFT_CUDA_CHECK_LAUNCH("softmax_forward_kernel");
}

void softmax_backward_cuda(float* dinp, const float* dout, const float* out, std::int64_t rows, std::int64_t cols,
                           bool log) {
  if (rows <= 0 || cols <= 0) return;
  dispatch_rows(cols, [&](auto group, auto per_lane) {
    softmax_backward_kernel<decltype(group)::value, decltype(per_lane)::value>
        <<<grid_for_rows(rows, cols), kThreads, 0, cuda::stream()>>>(dinp, dout, out, rows, cols, log);
  });
  GRAFT_CUDA_CHECK_LAUNCH("softmax_backward_kernel");
}

void cross_entropy_forward_cuda(float* losses, float* probs, const float* logits, const std::int32_t* labels,
                                std::int64_t rows, std::int64_t cols, float smoothing) {
  if (rows <= 0 || cols <= 0) return;
  dispatch_rows(cols, [&](auto group, auto per_lane) {
    cross_entropy_forward_kernel<decltype(group)::value, decltype(per_lane)::value>
        <<<grid_for_rows(rows, cols), kThreads, 0, cuda::stream()>>>(losses, probs, logits, labels, rows, cols,
                                                                    smoothing);
  });
  GRAFT_CUDA_CHECK_LAUNCH("cross_entropy_forward_kernel");
}

void cross_entropy_backward_cuda(float* dlogits, const float* probs, const std::int32_t* labels, const float* dloss,
                                 std::int64_t rows, std::int64_t cols, float smoothing, float scale) {
  if (rows <= 0 || cols <= 0) return;
  dispatch_rows(cols, [&](auto group, auto per_lane) {
    cross_entropy_backward_kernel<decltype(group)::value, decltype(per_lane)::value>
        <<<grid_for_rows(rows, cols), kThreads, 0, cuda::stream()>>>(dlogits, probs, labels, dloss, rows, cols,
                                                                    smoothing, scale);
  });
  GRAFT_CUDA_CHECK_LAUNCH("cross_entropy_backward_kernel");
}

}  // namespace graft
