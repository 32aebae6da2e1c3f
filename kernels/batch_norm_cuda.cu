// CUDA batch normalisation over (M, C) NHWC rows (math in kernels/batch_norm.h).
// Every kernel comes in a width W: W = 4 when C % 4 == 0 and the pointers are 16-byte aligned (every ResNet/VGG
// layer), so each thread moves one float4 of 4 adjacent channels per load; W = 1 otherwise. The per-element
// float math is the same for both widths.
// Reductions (statistics, and the backward's sum dy / sum dy*xhat): a block is gx channel groups (threadIdx.x, so
// a warp reads contiguous bytes of a row) by gy row lanes (threadIdx.y), gx * gy = 256; grid.x covers the
// channels, grid.y splits the rows into chunks (~1024 blocks in all). Each thread sums its rows in double, the
// block folds its row lanes in shared memory in a fixed order and writes one partial per (chunk, channel) into
// the workspace; then one block per channel adds that channel's partials with a fixed-shape tree. No atomics, so
// the result is bitwise reproducible run to run.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <type_traits>

#include "kernels/batch_norm.h"
#include "kernels/cuda_device.h"
#include "kernels/host_device.h"
#include "kernels/pack.cuh"

namespace graft {
namespace {

constexpr int kBlockThreads = 256;
constexpr int kFinalizeThreads = 128;
constexpr std::int64_t kTargetBlocks = 1024;
constexpr std::int64_t kInt32Limit = 2147483647LL;

template <int W>
using Vec = cuda::Pack<float, W>;
using cuda::load;
using cuda::load_or;
using cuda::store;

// p + i, or null for an absent optional operand (gamma, beta, a residual, a relu mask).
__device__ __forceinline__ const float* offset(const float* p, std::int64_t i) {
  return p != nullptr ? p + i : nullptr;
}

// gamma xhat + beta: the forward's pre-activation, and (ReluMask::of_input) the backward's recomputed relu mask. One
// explicit fma, so both kernels compute it to the same bits whatever the compiler would contract.
__device__ __forceinline__ float affine(float xhat, float gamma, float beta) { return __fmaf_rn(gamma, xhat, beta); }

using Mask = ReluMask::Kind;

// Whether the gradient passes a relu mask of kind K at one element: y is the saved output (FromOutput), xhat, gamma
// and beta the forward's pre-activation recomputed (FromInput).
template <Mask K>
__device__ __forceinline__ bool passes(float y, float xhat, float gamma, float beta) {
  if constexpr (K == Mask::FromInput) return affine(xhat, gamma, beta) > 0.f;
  else if constexpr (K == Mask::FromOutput) return y > 0.f;
  else return true;
}

// Calls launch(std::integral_constant<Mask, K>{}) for the mask kind K of `relu` (kernels built only for the kinds a
// pass can take: a mask from the input needs the backward's xhat).
template <bool kFromInputAllowed, typename Launch>
void with_mask_kind(const ReluMask& relu, Launch launch) {
  const Mask kind = relu.kind();
  if (kind == Mask::FromOutput) {
    launch(std::integral_constant<Mask, Mask::FromOutput>{});
  } else if (kind == Mask::FromInput) {
    GRAFT_CHECK(kFromInputAllowed, "batch_norm: a relu mask recomputed from the input needs the backward's xhat; this "
                "pass reads no input (bias_relu_backward_cuda takes the mask from its output)");
    if constexpr (kFromInputAllowed) launch(std::integral_constant<Mask, Mask::FromInput>{});
  } else {
    launch(std::integral_constant<Mask, Mask::None>{});
  }
}

// The vector width for these pointers (nulls ignored).
int width_for(std::int64_t c, std::initializer_list<const void*> pointers) {
  if (c % 4 != 0) return 1;
  for (const void* p : pointers)
    if (p != nullptr && !cuda::aligned16(p)) return 1;
  return 4;
}

struct ReduceGrid {
  int gx, gy;               // block: gx channel groups x gy row lanes
  std::int64_t blocks_c;    // grid.x
  std::int64_t chunks;      // grid.y
  std::int64_t rows_per_chunk;
};

ReduceGrid reduce_grid(std::int64_t m, std::int64_t c, int width) {
  ReduceGrid g;
  const std::int64_t groups = c / width;
  g.gx = static_cast<int>(std::min<std::int64_t>(groups, 32));
  g.gy = kBlockThreads / g.gx;
  g.blocks_c = (groups + g.gx - 1) / g.gx;
  // at least 4 rows per row lane; enough chunks to fill the GPU when there are few channels
  const std::int64_t max_chunks = std::max<std::int64_t>(1, (m + 4 * g.gy - 1) / (4 * g.gy));
  const std::int64_t want = std::max<std::int64_t>(1, (kTargetBlocks + g.blocks_c - 1) / g.blocks_c);
  const std::int64_t chunks = std::min<std::int64_t>({max_chunks, want, 65535});
  g.rows_per_chunk = std::max<std::int64_t>(1, (m + chunks - 1) / chunks);  // m may be 0 (an empty batch)
  g.chunks = std::max<std::int64_t>(1, (m + g.rows_per_chunk - 1) / g.rows_per_chunk);
  return g;
}

// What a partial-sums pass adds up per channel: partial (2, chunks, C) doubles, [0] = sum a, [1] = sum b over the
// block's chunk of rows, where
//   Stats:    a = x,  b = x^2
//   Backward: a = dy, b = dy * xhat   (dy = dout masked by `relu`, kernels/batch_norm.h ReluMask)
//   Bias:     a = dy, b = 0           (a bias's gradient, masked by relu.out; x is not read)
// With masked_out non-null (Backward, Bias) the pass also writes dy there: the masked gradient a residual
// branch or a convolution's backward needs, without a separate pass to mask it.
enum class Sums { Stats, Backward, Bias };

// The backward pass without a mask is held to 64 registers, 4 blocks of 256 per SM (what it compiled to before the
// mask kinds, at 94-99% of the copy on an H100); with one, to 85 (3 blocks: sm_90 takes 80 without spilling; sm_80
// spills a few bytes). The statistics and bias passes get no minimum (0): any minimum changes ptxas's choices, and
// theirs compiled to fewer registers without one.
template <Sums kMode, int W, Mask K>
__global__ void __launch_bounds__(kBlockThreads, kMode != Sums::Backward ? 0 : K == Mask::None ? 4 : 3)
batch_norm_partial_sums_kernel(double* partial, const float* inp, const float* dout, const float* mean,
                               const float* invstd, std::int64_t m, std::int64_t c, std::int64_t rows_per_chunk,
                               ReluMask relu, float* masked_out) {
  static_assert(K != Mask::FromInput || kMode == Sums::Backward, "a mask from the input needs the backward's xhat");
  extern __shared__ double shared[];  // [2][gy][gx * W]
  const int tx = threadIdx.x, ty = threadIdx.y, gx = blockDim.x, gy = blockDim.y;
  const std::int64_t ch0 = (static_cast<std::int64_t>(blockIdx.x) * gx + tx) * W;  // this thread's first channel
  const std::int64_t chunk = blockIdx.y;
  const std::int64_t r0 = chunk * rows_per_chunk;
  const std::int64_t r1 = min(m, r0 + rows_per_chunk);
  double a[W] = {}, b[W] = {};
  if (ch0 < c) {
    [[maybe_unused]] Vec<W> mu{}, is{}, g{}, bt{};
    if constexpr (kMode == Sums::Backward) mu = load<W>(mean + ch0), is = load<W>(invstd + ch0);
    if constexpr (K == Mask::FromInput)
      g = load_or<W>(offset(relu.gamma, ch0), 1.f), bt = load_or<W>(offset(relu.beta, ch0), 0.f);
#pragma unroll 4
    for (std::int64_t r = r0 + ty; r < r1; r += gy) {
      const std::int64_t e = r * c + ch0;
      if constexpr (kMode == Sums::Stats) {
        const Vec<W> x = load<W>(inp + e);
        for (int k = 0; k < W; ++k) a[k] += x.v[k], b[k] += static_cast<double>(x.v[k]) * x.v[k];
      } else {
        // the order of the loads and sums as before the mask kinds (fewer live registers): dy and its sum first,
        // then x and sum dy * xhat; a mask from the input reads x first
        const Vec<W> d = load<W>(dout + e);
        [[maybe_unused]] Vec<W> x{}, y{};
        if constexpr (K == Mask::FromOutput) y = load<W>(relu.out + e);
        if constexpr (K == Mask::FromInput) x = load<W>(inp + e);
        Vec<W> dy;
        for (int k = 0; k < W; ++k) {
          [[maybe_unused]] float xhat = 0.f;
          if constexpr (K == Mask::FromInput) xhat = (x.v[k] - mu.v[k]) * is.v[k];
          dy.v[k] = passes<K>(y.v[k], xhat, g.v[k], bt.v[k]) ? d.v[k] : 0.f;
          a[k] += dy.v[k];
        }
        if (masked_out) store<W>(masked_out + e, dy);
        if constexpr (kMode == Sums::Backward) {
          if constexpr (K != Mask::FromInput) x = load<W>(inp + e);
          for (int k = 0; k < W; ++k) b[k] += static_cast<double>(dy.v[k]) * ((x.v[k] - mu.v[k]) * is.v[k]);
        }
      }
    }
  }
  const int row = gx * W;
  double* shared_a = shared;
  double* shared_b = shared + gy * row;
  for (int k = 0; k < W; ++k) shared_a[ty * row + tx * W + k] = a[k], shared_b[ty * row + tx * W + k] = b[k];
  __syncthreads();
  // Thread (tx, ty) with ty < W folds the row lanes of channel ch0 + ty, in lane order.
  if (ty < W && ch0 + ty < c) {
    double sa = 0.0, sb = 0.0;
    for (int lane = 0; lane < gy; ++lane) {
      sa += shared_a[lane * row + tx * W + ty];
      sb += shared_b[lane * row + tx * W + ty];
    }
    const std::int64_t chunks = gridDim.y;
    partial[chunk * c + ch0 + ty] = sa;
    partial[(chunks + chunk) * c + ch0 + ty] = sb;
  }
}

// One block per channel: sum_a, sum_b over the channel's `chunks` partials, in a fixed-shape tree.
__device__ void sum_partials(const double* partial, std::int64_t chunks, std::int64_t c, std::int64_t ch,
                             double& sum_a, double& sum_b) {
  __shared__ double sa[kFinalizeThreads], sb[kFinalizeThreads];
  double a = 0.0, b = 0.0;
  for (std::int64_t k = threadIdx.x; k < chunks; k += kFinalizeThreads)
    a += partial[k * c + ch], b += partial[(chunks + k) * c + ch];
  sa[threadIdx.x] = a;
  sb[threadIdx.x] = b;
  __syncthreads();
  for (int half = kFinalizeThreads / 2; half > 0; half /= 2) {
    if (static_cast<int>(threadIdx.x) < half) {
      sa[threadIdx.x] += sa[threadIdx.x + half];
      sb[threadIdx.x] += sb[threadIdx.x + half];
    }
    __syncthreads();
  }
  sum_a = sa[0];
  sum_b = sb[0];
}

__global__ void __launch_bounds__(kFinalizeThreads)
batch_norm_finalize_stats_kernel(float* mean, float* invstd, float* running_mean, float* running_var,
                                 const double* partial, std::int64_t chunks, std::int64_t m, std::int64_t c, float eps,
                                 float momentum) {
  const std::int64_t ch = blockIdx.x;
  double sum = 0.0, sq = 0.0;
  sum_partials(partial, chunks, c, ch, sum, sq);
  if (threadIdx.x != 0) return;
  const double mu = sum / static_cast<double>(m);
  // E[x^2] - mean^2 can round below 0; clamped with a comparison, not fmax, which would turn a NaN (a NaN or inf in x)
  // into 0 and hide it from invstd and the running variance (the CPU's two-pass variance keeps it).
  double var = sq / static_cast<double>(m) - mu * mu;
  if (var < 0.0) var = 0.0;
  mean[ch] = static_cast<float>(mu);
  invstd[ch] = static_cast<float>(1.0 / sqrt(var + static_cast<double>(eps)));
  if (running_mean) {
    const double unbiased = m > 1 ? var * static_cast<double>(m) / static_cast<double>(m - 1) : var;
    running_mean[ch] = static_cast<float>((1.0 - momentum) * running_mean[ch] + momentum * mu);
    running_var[ch] = static_cast<float>((1.0 - momentum) * running_var[ch] + momentum * unbiased);
  }
}

__global__ void __launch_bounds__(kFinalizeThreads)
batch_norm_finalize_backward_kernel(float* dgamma, float* dbeta, const double* partial, std::int64_t chunks,
                                    std::int64_t c) {
  const std::int64_t ch = blockIdx.x;
  double sum_dy = 0.0, sum_dy_xhat = 0.0;
  sum_partials(partial, chunks, c, ch, sum_dy, sum_dy_xhat);
  if (threadIdx.x != 0) return;
  dbeta[ch] = static_cast<float>(sum_dy);
  if (dgamma) dgamma[ch] = static_cast<float>(sum_dy_xhat);
}

__global__ void batch_norm_invstd_kernel(float* invstd, const float* var, std::int64_t c, float eps) {
  const std::int64_t ch = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (ch < c) invstd[ch] = static_cast<float>(1.0 / sqrt(static_cast<double>(var[ch]) + static_cast<double>(eps)));
}

// Elementwise kernels: thread i handles elements [i*W, i*W + W) of the (M,C) tensor, all in one row. Index is
// unsigned 32-bit when the tensor allows it (cheaper channel modulo), 64-bit otherwise; groups = n / W.
// They walk the tensor from its end: blocks are scheduled roughly in index order, and the pass before them (the
// statistics or the backward's sums, which read rows in increasing order, or the convolution that wrote the
// input) left the tensor's tail in L2 (50 MB on an H100), so the first blocks read it from there instead of HBM.
// Any order gives the same bits: each element is computed on its own.
template <typename Index>
__device__ __forceinline__ Index last_block_first() {
  return static_cast<Index>(gridDim.x - 1 - blockIdx.x) * blockDim.x + threadIdx.x;
}
// kFromVar (inference with running statistics): `scale` holds running_var, and invstd = 1/sqrt(var + eps) is
// computed here with batch_norm_invstd_kernel's exact expression, so the result is bitwise the one of the two
// kernels it replaces; otherwise `scale` is invstd.
template <int W, typename Index, bool kFromVar>
__global__ void batch_norm_forward_kernel(float* out, const float* inp, const float* mean, const float* scale,
                                          float eps, const float* gamma, const float* beta, Index groups,
                                          Index c_groups, const float* residual, bool relu) {
  for (Index i = last_block_first<Index>(); i < groups;
       i += static_cast<Index>(gridDim.x) * blockDim.x) {
    const Index j = (i % c_groups) * W, e = i * W;
    const Vec<W> x = load<W>(inp + e), mu = load<W>(mean + j);
    Vec<W> is = load<W>(scale + j);
    if constexpr (kFromVar)
      for (int k = 0; k < W; ++k)
        is.v[k] = static_cast<float>(1.0 / sqrt(static_cast<double>(is.v[k]) + static_cast<double>(eps)));
    const Vec<W> g = load_or<W>(offset(gamma, j), 1.f), b = load_or<W>(offset(beta, j), 0.f);
    const Vec<W> r = load_or<W>(offset(residual, e), 0.f);
    Vec<W> y;
    for (int k = 0; k < W; ++k) {
      const float xhat = (x.v[k] - mu.v[k]) * is.v[k];
      float v = affine(xhat, g.v[k], b.v[k]);
      if (residual) v += r.v[k];
      y.v[k] = relu ? relu_value(v) : v;
    }
    store<W>(out + e, y);
  }
}

template <int W, typename Index, Mask K>
__global__ void batch_norm_backward_input_kernel(float* dinp, const float* dout, const float* inp, const float* mean,
                                                 const float* invstd, const float* gamma, const float* sum_dy,
                                                 const float* sum_dy_xhat, Index groups, Index c_groups, float inv_m,
                                                 bool batch_stats, ReluMask relu) {
  for (Index i = last_block_first<Index>(); i < groups;
       i += static_cast<Index>(gridDim.x) * blockDim.x) {
    const Index j = (i % c_groups) * W, e = i * W;
    const Vec<W> d = load<W>(dout + e);
    const Vec<W> is = load<W>(invstd + j), g = load_or<W>(offset(gamma, j), 1.f);
    [[maybe_unused]] Vec<W> y{}, mask_g{}, mask_b{};
    if constexpr (K == Mask::FromOutput) y = load<W>(relu.out + e);
    if constexpr (K == Mask::FromInput)
      mask_g = load_or<W>(offset(relu.gamma, j), 1.f), mask_b = load_or<W>(offset(relu.beta, j), 0.f);
    Vec<W> dx;
    if (batch_stats) {
      const Vec<W> x = load<W>(inp + e), mu = load<W>(mean + j);
      const Vec<W> sd = load<W>(sum_dy + j), sdx = load<W>(sum_dy_xhat + j);
      for (int k = 0; k < W; ++k) {
        const float scale = g.v[k] * is.v[k];
        const float xhat = (x.v[k] - mu.v[k]) * is.v[k];
        const float dy = passes<K>(y.v[k], xhat, mask_g.v[k], mask_b.v[k]) ? d.v[k] : 0.f;
        dx.v[k] = scale * (dy - inv_m * sd.v[k] - xhat * (inv_m * sdx.v[k]));
      }
    } else {
      // running statistics: x is read only for a mask recomputed from it
      [[maybe_unused]] Vec<W> x{}, mu{};
      if constexpr (K == Mask::FromInput) x = load<W>(inp + e), mu = load<W>(mean + j);
      for (int k = 0; k < W; ++k) {
        const float xhat = (x.v[k] - mu.v[k]) * is.v[k];
        dx.v[k] = g.v[k] * is.v[k] * (passes<K>(y.v[k], xhat, mask_g.v[k], mask_b.v[k]) ? d.v[k] : 0.f);
      }
    }
    store<W>(dinp + e, dx);
  }
}

// Launches the partial sums and the finalize kernel of one reduction.
template <Sums kMode, typename Finalize>
void reduce(const float* inp, const float* dout, const float* mean, const float* invstd, std::int64_t m,
            std::int64_t c, void* workspace, const ReluMask& relu, float* masked_out, Finalize finalize) {
  const int width = width_for(c, {inp, dout, mean, invstd, relu.out, relu.gamma, relu.beta, masked_out});
  const ReduceGrid g = reduce_grid(m, c, width);
  auto* partial = static_cast<double*>(workspace);
  const dim3 block(static_cast<unsigned>(g.gx), static_cast<unsigned>(g.gy));
  const dim3 grid(static_cast<unsigned>(g.blocks_c), static_cast<unsigned>(g.chunks));
  const std::size_t shared = 2 * sizeof(double) * static_cast<std::size_t>(g.gx) * g.gy * width;
  with_mask_kind<kMode == Sums::Backward>(relu, [&](auto kind) {
    constexpr Mask K = decltype(kind)::value;
    if (width == 4)
      batch_norm_partial_sums_kernel<kMode, 4, K><<<grid, block, shared, cuda::stream()>>>(
          partial, inp, dout, mean, invstd, m, c, g.rows_per_chunk, relu, masked_out);
    else
      batch_norm_partial_sums_kernel<kMode, 1, K><<<grid, block, shared, cuda::stream()>>>(
          partial, inp, dout, mean, invstd, m, c, g.rows_per_chunk, relu, masked_out);
  });
  GRAFT_CUDA_CHECK_LAUNCH("batch_norm_partial_sums_kernel");
  finalize(partial, g.chunks);
  GRAFT_CUDA_CHECK_LAUNCH("batch_norm_finalize_kernel");
}

// Calls launch(std::integral_constant<int, W>{}, Index{}) with the vector width w and the narrowest index type
// that holds n elements (unsigned 32-bit: a cheaper channel modulo; 64-bit past 2^31).
template <typename Launch>
void dispatch(int w, std::int64_t n, Launch launch) {
  const bool narrow = n <= kInt32Limit;
  if (w == 4 && narrow) launch(std::integral_constant<int, 4>{}, std::uint32_t{});
  else if (w == 4) launch(std::integral_constant<int, 4>{}, std::int64_t{});
  else if (narrow) launch(std::integral_constant<int, 1>{}, std::uint32_t{});
  else launch(std::integral_constant<int, 1>{}, std::int64_t{});
}

// y = relu(y + bias[channel]) in place, W channels per thread.
template <int W, typename Index>
__global__ void bias_relu_forward_kernel(float* y, const float* bias, Index groups, Index c_groups) {
  for (Index i = last_block_first<Index>(); i < groups;
       i += static_cast<Index>(gridDim.x) * blockDim.x) {
    const Index e = i * W;
    Vec<W> v = load<W>(y + e);
    const Vec<W> b = load_or<W>(offset(bias, (i % c_groups) * W), 0.f);
    for (int k = 0; k < W; ++k) {
      const float z = v.v[k] + b.v[k];
      v.v[k] = relu_value(z);
    }
    store<W>(y + e, v);
  }
}

}  // namespace

std::size_t batch_norm_workspace_cuda(std::int64_t m, std::int64_t c) {
  std::int64_t chunks = reduce_grid(m, c, 1).chunks;  // the width is chosen at launch: room for either
  if (c % 4 == 0) chunks = std::max(chunks, reduce_grid(m, c, 4).chunks);
  return static_cast<std::size_t>(2 * chunks * c) * sizeof(double);
}

void batch_norm_stats_cuda(float* mean, float* invstd, float* running_mean, float* running_var, const float* inp,
                           std::int64_t m, std::int64_t c, float eps, float momentum, void* workspace) {
  if (c == 0) return;
  auto finalize = [&](const double* partial, std::int64_t chunks) {
    batch_norm_finalize_stats_kernel<<<static_cast<unsigned>(c), kFinalizeThreads, 0, cuda::stream()>>>(
        mean, invstd, running_mean, running_var, partial, chunks, m, c, eps, momentum);
  };
  reduce<Sums::Stats>(inp, nullptr, nullptr, nullptr, m, c, workspace, ReluMask::none(), nullptr, finalize);
}

void batch_norm_invstd_cuda(float* invstd, const float* var, std::int64_t c, float eps) {
  if (c == 0) return;
  batch_norm_invstd_kernel<<<cuda::grid_for(c), cuda::kBlock, 0, cuda::stream()>>>(invstd, var, c, eps);
  GRAFT_CUDA_CHECK_LAUNCH("batch_norm_invstd_kernel");
}

namespace {
template <bool kFromVar>
void launch_forward(float* out, const float* inp, const float* mean, const float* scale, float eps,
                    const float* gamma, const float* beta, std::int64_t m, std::int64_t c, const float* residual,
                    bool relu) {
  const std::int64_t n = m * c;
  if (n == 0) return;
  const int w = width_for(c, {out, inp, mean, scale, gamma, beta, residual});
  dispatch(w, n, [&](auto width, auto index) {
    constexpr int W = decltype(width)::value;
    using Index = decltype(index);
    batch_norm_forward_kernel<W, Index, kFromVar><<<cuda::grid_for(n / W), cuda::kBlock, 0, cuda::stream()>>>(
        out, inp, mean, scale, eps, gamma, beta, static_cast<Index>(n / W), static_cast<Index>(c / W), residual,
        relu);
  });
  GRAFT_CUDA_CHECK_LAUNCH("batch_norm_forward_kernel");
}
}  // namespace

void batch_norm_forward_cuda(float* out, const float* inp, const float* mean, const float* invstd,
                             const float* gamma, const float* beta, std::int64_t m, std::int64_t c,
                             const float* residual, bool relu) {
  launch_forward<false>(out, inp, mean, invstd, 0.f, gamma, beta, m, c, residual, relu);
}

void batch_norm_forward_running_cuda(float* out, const float* inp, const float* running_mean,
                                     const float* running_var, float eps, const float* gamma, const float* beta,
                                     std::int64_t m, std::int64_t c, const float* residual, bool relu) {
  launch_forward<true>(out, inp, running_mean, running_var, eps, gamma, beta, m, c, residual, relu);
}

void batch_norm_backward_reduce_cuda(float* dgamma, float* dbeta, const float* dout, const float* inp,
                                     const float* mean, const float* invstd, std::int64_t m, std::int64_t c,
                                     void* workspace, const ReluMask& relu, float* masked_out) {
  if (c == 0) return;
  auto finalize = [&](const double* partial, std::int64_t chunks) {
    batch_norm_finalize_backward_kernel<<<static_cast<unsigned>(c), kFinalizeThreads, 0, cuda::stream()>>>(
        dgamma, dbeta, partial, chunks, c);
  };
  reduce<Sums::Backward>(inp, dout, mean, invstd, m, c, workspace, relu, masked_out, finalize);
}

void batch_norm_backward_input_cuda(float* dinp, const float* dout, const float* inp, const float* mean,
                                    const float* invstd, const float* gamma, const float* sum_dy,
                                    const float* sum_dy_xhat, std::int64_t m, std::int64_t c, bool batch_stats,
                                    const ReluMask& relu) {
  const std::int64_t n = m * c;
  if (n == 0) return;
  const float inv_m = 1.f / static_cast<float>(m);
  const int w =
      width_for(c, {dinp, dout, inp, mean, invstd, gamma, sum_dy, sum_dy_xhat, relu.out, relu.gamma, relu.beta});
  dispatch(w, n, [&](auto width, auto index) {
    constexpr int W = decltype(width)::value;
    using Index = decltype(index);
    with_mask_kind<true>(relu, [&](auto kind) {
      constexpr Mask K = decltype(kind)::value;
      batch_norm_backward_input_kernel<W, Index, K><<<cuda::grid_for(n / W), cuda::kBlock, 0, cuda::stream()>>>(
          dinp, dout, inp, mean, invstd, gamma, sum_dy, sum_dy_xhat, static_cast<Index>(n / W),
          static_cast<Index>(c / W), inv_m, batch_stats, relu);
    });
  });
  GRAFT_CUDA_CHECK_LAUNCH("batch_norm_backward_input_kernel");
}

void bias_relu_forward_cuda(float* y, const float* bias, std::int64_t m, std::int64_t c) {
  const std::int64_t n = m * c;
  if (n == 0) return;
  dispatch(width_for(c, {y, bias}), n, [&](auto width, auto index) {
    constexpr int W = decltype(width)::value;
    using Index = decltype(index);
    bias_relu_forward_kernel<W, Index><<<cuda::grid_for(n / W), cuda::kBlock, 0, cuda::stream()>>>(
        y, bias, static_cast<Index>(n / W), static_cast<Index>(c / W));
  });
  GRAFT_CUDA_CHECK_LAUNCH("bias_relu_forward_kernel");
}

void bias_relu_backward_cuda(float* dz, float* dbias, const float* dout, const float* y, std::int64_t m,
                             std::int64_t c, void* workspace) {
  if (c == 0) return;
  if (m == 0) {  // an empty batch: no gradient to mask, a zero bias gradient (as the CPU's sum)
    if (dbias != nullptr)
      GRAFT_CUDA_CHECK(cudaMemsetAsync(dbias, 0, static_cast<std::size_t>(c) * sizeof(float), cuda::stream()));
    return;
  }
  auto finalize = [&](const double* partial, std::int64_t chunks) {
    if (dbias != nullptr)
      batch_norm_finalize_backward_kernel<<<static_cast<unsigned>(c), kFinalizeThreads, 0, cuda::stream()>>>(
          nullptr, dbias, partial, chunks, c);
  };
  reduce<Sums::Bias>(nullptr, dout, nullptr, nullptr, m, c, workspace, ReluMask::of_output(y), dz, finalize);
}

}  // namespace graft
