// CUDA batch normalisation over (M, C) NHWC rows (math in kernels/batch_norm.h).
// Reductions: a block is 32 channels (threadIdx.x, so a warp reads 128 contiguous bytes of one row) by 8 row
// lanes (threadIdx.y); grid.x covers the channels, grid.y splits the rows into chunks. Each block sums its chunk in
// double, folds the 8 row lanes in shared memory in a fixed order and writes one partial per (chunk, channel) into
// the workspace; a second kernel (one thread per channel) adds the partials in chunk order. No atomics, so the
// result is bitwise reproducible run to run.
#include <cuda_runtime.h>

#include <algorithm>

#include "kernels/batch_norm.h"
#include "kernels/cuda_device.h"

namespace graft {
namespace {

constexpr int kLanesC = 32;  // channels per block
constexpr int kLanesR = 8;   // row lanes per block
constexpr std::int64_t kTargetBlocks = 1024;

struct ReduceGrid {
  std::int64_t blocks_c;
  std::int64_t chunks;
  std::int64_t rows_per_chunk;
};

ReduceGrid reduce_grid(std::int64_t m, std::int64_t c) {
  ReduceGrid g;
  g.blocks_c = (c + kLanesC - 1) / kLanesC;
  // at least 4 rows per row lane; enough chunks to fill the GPU when there are few channels
  std::int64_t max_chunks = std::max<std::int64_t>(1, (m + 4 * kLanesR - 1) / (4 * kLanesR));
  std::int64_t want = std::max<std::int64_t>(1, (kTargetBlocks + g.blocks_c - 1) / g.blocks_c);
  std::int64_t chunks = std::min<std::int64_t>({max_chunks, want, 65535});
  g.rows_per_chunk = std::max<std::int64_t>(1, (m + chunks - 1) / chunks);  // m may be 0 (an empty batch)
  g.chunks = std::max<std::int64_t>(1, (m + g.rows_per_chunk - 1) / g.rows_per_chunk);
  return g;
}

// partial (2, chunks, C) doubles: [0] = sum a, [1] = sum b over the block's chunk of rows, where
//   statistics (kBackward false): a = x, b = x^2
//   backward   (kBackward true):  a = dy, b = dy * xhat   (dy = dout masked by relu_out > 0 when non-null)
template <bool kBackward>
__global__ void batch_norm_partial_sums_kernel(double* partial, const float* inp, const float* dout,
                                               const float* mean, const float* invstd, std::int64_t m,
                                               std::int64_t c, std::int64_t rows_per_chunk, const float* relu_out) {
  __shared__ double shared_a[kLanesR][kLanesC + 1];
  __shared__ double shared_b[kLanesR][kLanesC + 1];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const std::int64_t ch = static_cast<std::int64_t>(blockIdx.x) * kLanesC + tx;
  const std::int64_t chunk = blockIdx.y;
  const std::int64_t r0 = chunk * rows_per_chunk;
  const std::int64_t r1 = min(m, r0 + rows_per_chunk);
  double a = 0.0, b = 0.0;
  if (ch < c) {
    float mu = 0.f, is = 0.f;
    if constexpr (kBackward) mu = mean[ch], is = invstd[ch];
    for (std::int64_t r = r0 + ty; r < r1; r += kLanesR) {
      float x = inp[r * c + ch];
      if constexpr (kBackward) {
        float dy = relu_out && !(relu_out[r * c + ch] > 0.f) ? 0.f : dout[r * c + ch];
        a += dy;
        b += static_cast<double>(dy) * ((x - mu) * is);
      } else {
        a += x;
        b += static_cast<double>(x) * x;
      }
    }
  }
  shared_a[ty][tx] = a;
  shared_b[ty][tx] = b;
  __syncthreads();
  if (ty == 0 && ch < c) {
    double sa = 0.0, sb = 0.0;
    for (int k = 0; k < kLanesR; ++k) sa += shared_a[k][tx], sb += shared_b[k][tx];
    const std::int64_t chunks = gridDim.y;
    partial[chunk * c + ch] = sa;
    partial[(chunks + chunk) * c + ch] = sb;
  }
}

__global__ void batch_norm_finalize_stats_kernel(float* mean, float* invstd, float* running_mean, float* running_var,
                                                 const double* partial, std::int64_t chunks, std::int64_t m,
                                                 std::int64_t c, float eps, float momentum) {
  const std::int64_t ch = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (ch >= c) return;
  double sum = 0.0, sq = 0.0;
  for (std::int64_t k = 0; k < chunks; ++k) sum += partial[k * c + ch], sq += partial[(chunks + k) * c + ch];
  const double mu = sum / static_cast<double>(m);
  const double var = fmax(sq / static_cast<double>(m) - mu * mu, 0.0);
  mean[ch] = static_cast<float>(mu);
  invstd[ch] = static_cast<float>(1.0 / sqrt(var + static_cast<double>(eps)));
  if (running_mean) {
    const double unbiased = m > 1 ? var * static_cast<double>(m) / static_cast<double>(m - 1) : var;
    running_mean[ch] = static_cast<float>((1.0 - momentum) * running_mean[ch] + momentum * mu);
    running_var[ch] = static_cast<float>((1.0 - momentum) * running_var[ch] + momentum * unbiased);
  }
}

__global__ void batch_norm_finalize_backward_kernel(float* dgamma, float* dbeta, const double* partial,
                                                    std::int64_t chunks, std::int64_t c) {
  const std::int64_t ch = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (ch >= c) return;
  double sum_dy = 0.0, sum_dy_xhat = 0.0;
  for (std::int64_t k = 0; k < chunks; ++k) sum_dy += partial[k * c + ch], sum_dy_xhat += partial[(chunks + k) * c + ch];
  dbeta[ch] = static_cast<float>(sum_dy);
  dgamma[ch] = static_cast<float>(sum_dy_xhat);
}

__global__ void batch_norm_invstd_kernel(float* invstd, const float* var, std::int64_t c, float eps) {
  const std::int64_t ch = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (ch < c) invstd[ch] = static_cast<float>(1.0 / sqrt(static_cast<double>(var[ch]) + static_cast<double>(eps)));
}

// Index is unsigned 32-bit when the tensor allows it (cheaper channel modulo), 64-bit otherwise.
template <typename Index>
__global__ void batch_norm_forward_kernel(float* out, const float* inp, const float* mean, const float* invstd,
                                          const float* gamma, const float* beta, Index n, Index c,
                                          const float* residual, bool relu) {
  for (Index i = static_cast<Index>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<Index>(gridDim.x) * blockDim.x) {
    const Index j = i % c;
    const float xhat = (inp[i] - mean[j]) * invstd[j];
    float y = (gamma ? gamma[j] : 1.f) * xhat + (beta ? beta[j] : 0.f);
    if (residual) y += residual[i];
    out[i] = relu ? (y > 0.f ? y : 0.f) : y;
  }
}

template <typename Index>
__global__ void batch_norm_backward_input_kernel(float* dinp, const float* dout, const float* inp, const float* mean,
                                                 const float* invstd, const float* gamma, const float* sum_dy,
                                                 const float* sum_dy_xhat, Index n, Index c, float inv_m,
                                                 bool batch_stats, const float* relu_out) {
  for (Index i = static_cast<Index>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<Index>(gridDim.x) * blockDim.x) {
    const Index j = i % c;
    const float scale = (gamma ? gamma[j] : 1.f) * invstd[j];
    const float dy = relu_out && !(relu_out[i] > 0.f) ? 0.f : dout[i];
    if (batch_stats) {
      const float xhat = (inp[i] - mean[j]) * invstd[j];
      dinp[i] = scale * (dy - inv_m * sum_dy[j] - xhat * (inv_m * sum_dy_xhat[j]));
    } else {
      dinp[i] = scale * dy;
    }
  }
}

constexpr std::int64_t kInt32Limit = 2147483647LL;

}  // namespace

std::size_t batch_norm_workspace_cuda(std::int64_t m, std::int64_t c) {
  ReduceGrid g = reduce_grid(m, c);
  return static_cast<std::size_t>(2 * g.chunks * c) * sizeof(double);
}

void batch_norm_stats_cuda(float* mean, float* invstd, float* running_mean, float* running_var, const float* inp,
                           std::int64_t m, std::int64_t c, float eps, float momentum, void* workspace) {
  if (c == 0) return;
  ReduceGrid g = reduce_grid(m, c);
  auto* partial = static_cast<double*>(workspace);
  dim3 block(kLanesC, kLanesR), grid(static_cast<unsigned>(g.blocks_c), static_cast<unsigned>(g.chunks));
  batch_norm_partial_sums_kernel<false><<<grid, block, 0, cuda::stream()>>>(partial, inp, nullptr, nullptr, nullptr,
                                                                            m, c, g.rows_per_chunk, nullptr);
  GRAFT_CUDA_CHECK_LAUNCH("batch_norm_partial_sums_kernel");
  batch_norm_finalize_stats_kernel<<<cuda::grid_for(c), cuda::kBlock, 0, cuda::stream()>>>(
      mean, invstd, running_mean, running_var, partial, g.chunks, m, c, eps, momentum);
  GRAFT_CUDA_CHECK_LAUNCH("batch_norm_finalize_stats_kernel");
}

void batch_norm_invstd_cuda(float* invstd, const float* var, std::int64_t c, float eps) {
  if (c == 0) return;
  batch_norm_invstd_kernel<<<cuda::grid_for(c), cuda::kBlock, 0, cuda::stream()>>>(invstd, var, c, eps);
  GRAFT_CUDA_CHECK_LAUNCH("batch_norm_invstd_kernel");
}

void batch_norm_forward_cuda(float* out, const float* inp, const float* mean, const float* invstd,
                             const float* gamma, const float* beta, std::int64_t m, std::int64_t c,
                             const float* residual, bool relu) {
  const std::int64_t n = m * c;
  if (n == 0) return;
  if (n <= kInt32Limit)
    batch_norm_forward_kernel<std::uint32_t><<<cuda::grid_for(n), cuda::kBlock, 0, cuda::stream()>>>(
        out, inp, mean, invstd, gamma, beta, static_cast<std::uint32_t>(n), static_cast<std::uint32_t>(c), residual,
        relu);
  else
    batch_norm_forward_kernel<std::int64_t><<<cuda::grid_for(n), cuda::kBlock, 0, cuda::stream()>>>(
        out, inp, mean, invstd, gamma, beta, n, c, residual, relu);
  GRAFT_CUDA_CHECK_LAUNCH("batch_norm_forward_kernel");
}

void batch_norm_backward_reduce_cuda(float* dgamma, float* dbeta, const float* dout, const float* inp,
                                     const float* mean, const float* invstd, std::int64_t m, std::int64_t c,
                                     void* workspace, const float* relu_out) {
  if (c == 0) return;
  ReduceGrid g = reduce_grid(m, c);
  auto* partial = static_cast<double*>(workspace);
  dim3 block(kLanesC, kLanesR), grid(static_cast<unsigned>(g.blocks_c), static_cast<unsigned>(g.chunks));
  batch_norm_partial_sums_kernel<true><<<grid, block, 0, cuda::stream()>>>(partial, inp, dout, mean, invstd, m, c,
                                                                           g.rows_per_chunk, relu_out);
  GRAFT_CUDA_CHECK_LAUNCH("batch_norm_partial_sums_kernel");
  batch_norm_finalize_backward_kernel<<<cuda::grid_for(c), cuda::kBlock, 0, cuda::stream()>>>(dgamma, dbeta, partial,
                                                                                             g.chunks, c);
  GRAFT_CUDA_CHECK_LAUNCH("batch_norm_finalize_backward_kernel");
}

void batch_norm_backward_input_cuda(float* dinp, const float* dout, const float* inp, const float* mean,
                                    const float* invstd, const float* gamma, const float* sum_dy,
                                    const float* sum_dy_xhat, std::int64_t m, std::int64_t c, bool batch_stats,
                                    const float* relu_out) {
  const std::int64_t n = m * c;
  if (n == 0) return;
  const float inv_m = 1.f / static_cast<float>(m);
  if (n <= kInt32Limit)
    batch_norm_backward_input_kernel<std::uint32_t><<<cuda::grid_for(n), cuda::kBlock, 0, cuda::stream()>>>(
        dinp, dout, inp, mean, invstd, gamma, sum_dy, sum_dy_xhat, static_cast<std::uint32_t>(n),
        static_cast<std::uint32_t>(c), inv_m, batch_stats, relu_out);
  else
    batch_norm_backward_input_kernel<std::int64_t><<<cuda::grid_for(n), cuda::kBlock, 0, cuda::stream()>>>(
        dinp, dout, inp, mean, invstd, gamma, sum_dy, sum_dy_xhat, n, c, inv_m, batch_stats, relu_out);
  GRAFT_CUDA_CHECK_LAUNCH("batch_norm_backward_input_kernel");
}

}  // namespace graft
