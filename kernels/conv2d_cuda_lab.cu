// Hand-written forward convolutions for the kernel lab (issue 6, bench/bench_conv_cuda.cpp): NHWC input, weights
// (K,R,S,C/groups), strict FP32 (fmaf, no tensor cores). The math is in kernels/conv2d.h; the engine's conv2d op runs
// cuDNN (kernels/conv2d_cudnn.cpp) and never these. Both read the convolution as a GEMM, per group:
//   out (M, Kg) = taps (M, L) x W^T (L, Kg),   M = N*P*Q output pixels, L = R*S*Cg taps, row m of `taps` holding
//   inp[n, p*sh - ph + r*dh, q*sw - pw + s*dw, g*Cg + c] for l = (r*S + s)*Cg + c (zero outside the image).
//
// conv2d_forward_cuda_direct - implicit GEMM: `taps` is never stored. A block of 256 threads owns a 64 x 64 tile of
//   out (64 pixels x 64 output channels of one group) and walks L in slabs of 16 taps. Each slab of taps (64 x 16) is
//   gathered from the input through the index map above, and the matching slab of weights (16 x 64) read as it is
//   stored (a weight row is contiguous in l); both go to shared memory l-major (xs[l][m], ws[l][k]), so every
//   thread reads its 4 pixels and its 4 channels as one 16-byte vector each and does 16 fmaf per tap (a 4 x 4
//   register tile). While one slab is multiplied the next is loaded into registers (global latency hidden behind
//   the FMAs, as in kernels/gemm_cuda_tiled.cu). Each thread gathers the same tap column l0 + tid % 16 for 4 fixed
//   pixels, so the pixel -> (n, h0, w0) division is done once per thread and the l -> (r, s, c) one once per slab.
// conv2d_forward_cuda_im2col - the textbook lowering: an im2col kernel writes `taps` for a chunk of rows into the
//   workspace (one block row per pixel, threads striding over its L taps, so reads and writes are contiguous runs of
//   channels), then gemm_cuda_tiled multiplies the chunk by the weights into the output rows; a 1x1 stride-1
//   unpadded conv skips im2col (the input already is `taps`). Bias, if any, is one broadcast add at the end.
//
// What limits them against cuDNN's strict-FP32 forward (BM_conv2d_lab rows; H100, 2026-11-27: `direct` 83-115% of
// cuDNN on the 3x3 and 7x7 shapes and 164-205% on the 1x1 ones, `im2col` 45-50% at 56x56 and the stem, 97-252%
// elsewhere; bench/RESULTS.md):
//   - both run on the FP32 FMA pipes like cuDNN's FMA-math algorithms, but with smaller register tiles (16 outputs
//     per thread in `direct`; gemm_cuda_tiled's 64 does better on large GEMMs) and a single shared-memory buffer
//     with two barriers per slab (cuDNN pipelines shared memory);
//   - `direct` pays the tap gather: 4 bounds checks per element and scalar 4-byte loads (a pixel's 16 taps of a slab
//     are one 64-byte run only when Cg % 16 == 0; with the stem's Cg = 3 they span 5-6 filter positions);
//   - `im2col` writes and reads L/Cg times the input (9x for a 3x3 conv) through HBM before the GEMM starts, and its
//     GEMM has the 128 x 128 tile problem at 7x7 and 14x14 (M = 64*49 = 3136 rows: 25 row tiles for 132 SMs);
//   - neither uses Winograd or FFT (fewer multiplications for 3x3), which cuDNN's FMA path may pick.
#include <climits>
#include <cstdint>

#include "kernels/conv2d.h"
#include "kernels/cuda_device.h"
#include "kernels/gemm.h"

namespace graft {
namespace {

using std::int64_t;

// ---- direct (implicit GEMM) --------------------------------------------------------------------------------------

constexpr int kTileM = 64;     // output pixels per block
constexpr int kTileK = 64;     // output channels per block
constexpr int kSlab = 16;      // taps per shared-memory slab
constexpr int kThreads = 256;  // 16 x 16 threads, 4 x 4 outputs each
constexpr int kLds = 68;       // shared row: 64 + 4, keeps the float4 reads 16-byte aligned (the l-major stores still
                               // meet 2-way bank conflicts: taps l and l + 8 of a warp share a bank; 8 stores
                               // against 32 vector loads and 256 fmaf per thread and slab)
constexpr int kRowsPerThread = kTileM * kSlab / kThreads;  // tap-slab elements each thread gathers (4)
static_assert(kTileM == kTileK && kThreads / kSlab * kRowsPerThread == kTileM, "one load pattern for both slabs");

// Sizes the kernel needs, as plain ints where the checks in conv2d_forward_cuda_direct allow.
struct DirectShape {
  int h, w, c, cg;  // input height, width, channels; channels per group
  int k, kg;        // output channels; per group
  int s, l;         // filter width; taps per output (R*S*Cg)
  int p, q;         // output height, width
  int64_t m;        // output pixels N*P*Q
  int stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w;
};

// Gathers this thread's part of a tap slab: tap l = l0 + tid % 16 of the thread's 4 pixels (rows tid / 16 + 16 i).
// `base`, `h0`, `w0` and `row_ok` are the per-pixel values worked out once at the start.
__device__ __forceinline__ void gather_taps(float (&v)[kRowsPerThread], const float* __restrict__ inp,
                                            const DirectShape& d, int l0, const int64_t (&base)[kRowsPerThread],
                                            const int (&h0)[kRowsPerThread], const int (&w0)[kRowsPerThread],
                                            const bool (&row_ok)[kRowsPerThread]) {
  const int l = l0 + static_cast<int>(threadIdx.x) % kSlab;
  const int c = l % d.cg, rs = l / d.cg;
  const int dr = (rs / d.s) * d.dilation_h, ds = (rs % d.s) * d.dilation_w;  // the tap's offset in the window
#pragma unroll
  for (int i = 0; i < kRowsPerThread; ++i) {
    const int h = h0[i] + dr, w = w0[i] + ds;
    const bool inside = row_ok[i] && l < d.l && h >= 0 && h < d.h && w >= 0 && w < d.w;
    v[i] = inside ? inp[base[i] + (static_cast<int64_t>(h) * d.w + w) * d.c + c] : 0.f;
  }
}

// The weight slab: tap l0 + tid % 16 of output channels k0 + tid / 16 + 16 i of the group (row k of the weights is
// contiguous in l, so 16 neighbouring threads read one 64-byte run).
__device__ __forceinline__ void load_weights(float (&v)[kRowsPerThread], const float* __restrict__ weight,
                                             const DirectShape& d, int l0, int k0) {
  const int l = l0 + static_cast<int>(threadIdx.x) % kSlab;
#pragma unroll
  for (int i = 0; i < kRowsPerThread; ++i) {
    const int k = k0 + static_cast<int>(threadIdx.x) / kSlab + i * (kThreads / kSlab);
    v[i] = k < d.kg && l < d.l ? weight[static_cast<int64_t>(k) * d.l + l] : 0.f;
  }
}

// Into the l-major shared slab s[l][row].
__device__ __forceinline__ void store_slab(float (*s)[kLds], const float (&v)[kRowsPerThread]) {
  const int l = static_cast<int>(threadIdx.x) % kSlab, row = static_cast<int>(threadIdx.x) / kSlab;
#pragma unroll
  for (int i = 0; i < kRowsPerThread; ++i) s[l][row + i * (kThreads / kSlab)] = v[i];
}

// Block (x, y, z) = (pixel tile, output-channel tile within the group, group). `weight` and `bias` start at the
// group's first output channel; `inp` at its first input channel; `out` at its first output channel.
__global__ void __launch_bounds__(kThreads)
    conv2d_direct_kernel(float* __restrict__ out, const float* __restrict__ inp, const float* __restrict__ weight,
                         const float* __restrict__ bias, DirectShape d) {
  __shared__ __align__(16) float xs[kSlab][kLds];
  __shared__ __align__(16) float ws[kSlab][kLds];
  const int group = static_cast<int>(blockIdx.z);
  inp += static_cast<int64_t>(group) * d.cg;
  weight += static_cast<int64_t>(group) * d.kg * d.l;
  out += static_cast<int64_t>(group) * d.kg;
  if (bias != nullptr) bias += static_cast<int64_t>(group) * d.kg;
  const int64_t m0 = static_cast<int64_t>(blockIdx.x) * kTileM;
  const int k0 = static_cast<int>(blockIdx.y) * kTileK;

  // This thread's 4 gather pixels: image offset, top-left input corner of the receptive field, in range.
  int64_t base[kRowsPerThread];
  int h0[kRowsPerThread], w0[kRowsPerThread];
  bool row_ok[kRowsPerThread];
#pragma unroll
  for (int i = 0; i < kRowsPerThread; ++i) {
    const int64_t m = m0 + static_cast<int>(threadIdx.x) / kSlab + i * (kThreads / kSlab);
    row_ok[i] = m < d.m;
    const int64_t pq = static_cast<int64_t>(d.p) * d.q;
    const int64_t n = row_ok[i] ? m / pq : 0, rem = row_ok[i] ? m % pq : 0;
    base[i] = n * d.h * d.w * d.c;
    h0[i] = static_cast<int>(rem / d.q) * d.stride_h - d.pad_h;
    w0[i] = static_cast<int>(rem % d.q) * d.stride_w - d.pad_w;
  }

  const int tr = static_cast<int>(threadIdx.x) / 16, tc = static_cast<int>(threadIdx.x) % 16;
  float acc[4][4] = {};
  float next_x[kRowsPerThread], next_w[kRowsPerThread];
  gather_taps(next_x, inp, d, 0, base, h0, w0, row_ok);
  load_weights(next_w, weight, d, 0, k0);
  for (int l0 = 0; l0 < d.l; l0 += kSlab) {
    store_slab(xs, next_x);
    store_slab(ws, next_w);
    __syncthreads();
    if (l0 + kSlab < d.l) {  // in flight while this slab is multiplied
      gather_taps(next_x, inp, d, l0 + kSlab, base, h0, w0, row_ok);
      load_weights(next_w, weight, d, l0 + kSlab, k0);
    }
#pragma unroll
    for (int l = 0; l < kSlab; ++l) {
      const float4 x4 = *reinterpret_cast<const float4*>(&xs[l][4 * tr]);
      const float4 w4 = *reinterpret_cast<const float4*>(&ws[l][4 * tc]);
      const float xv[4] = {x4.x, x4.y, x4.z, x4.w}, wv[4] = {w4.x, w4.y, w4.z, w4.w};
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] = fmaf(xv[i], wv[j], acc[i][j]);
    }
    __syncthreads();  // everyone is done reading the slab before the next one overwrites it
  }

#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int64_t m = m0 + 4 * tr + i;
    if (m >= d.m) continue;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int k = k0 + 4 * tc + j;
      if (k < d.kg) out[m * d.k + k] = acc[i][j] + (bias != nullptr ? bias[k] : 0.f);
    }
  }
}

int as_kernel_int(int64_t v, const char* what, const Conv2dGeometry& g) {
  GRAFT_CHECK(v >= 0 && v <= INT_MAX - kTileM, "conv2d_forward_cuda_direct: ", what, " = ", v,
              " exceeds the kernel's int range: ", conv2d_geometry_str(g));
  return static_cast<int>(v);
}

// ---- im2col + SGEMM ------------------------------------------------------------------------------------------------

constexpr int kIm2colTapThreads = 64, kIm2colRows = 4;  // a block = 4 pixels, 64 threads striding over each one's taps

// col (rows, L) for output pixels [row0, row0 + rows), groups == 1 (Cg = C).
__global__ void im2col_kernel(float* __restrict__ col, const float* __restrict__ inp, DirectShape d, int64_t row0,
                              int64_t rows) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kIm2colRows + threadIdx.y;
  if (row >= rows) return;
  const int64_t m = row0 + row, pq = static_cast<int64_t>(d.p) * d.q;
  const int64_t n = m / pq, rem = m % pq;
  const int h0 = static_cast<int>(rem / d.q) * d.stride_h - d.pad_h;
  const int w0 = static_cast<int>(rem % d.q) * d.stride_w - d.pad_w;
  const float* image = inp + n * d.h * d.w * d.c;
  float* dst = col + row * d.l;
  for (int l = static_cast<int>(threadIdx.x); l < d.l; l += kIm2colTapThreads) {
    const int c = l % d.c, rs = l / d.c;
    const int h = h0 + (rs / d.s) * d.dilation_h, w = w0 + (rs % d.s) * d.dilation_w;
    dst[l] = h >= 0 && h < d.h && w >= 0 && w < d.w ? image[(static_cast<int64_t>(h) * d.w + w) * d.c + c] : 0.f;
  }
}

DirectShape direct_shape(const Conv2dGeometry& g, const char* who) {
  GRAFT_CHECK(g.groups >= 1 && g.c % g.groups == 0 && g.k % g.groups == 0, who, ": channels do not split into ",
              g.groups, " groups: ", conv2d_geometry_str(g));
  GRAFT_CHECK(g.c > 0 && g.r > 0 && g.s > 0, who,
              ": a convolution without taps (no input channels or an empty "
              "filter): ",
              conv2d_geometry_str(g));
  DirectShape d{};
  d.h = as_kernel_int(g.h, "H", g), d.w = as_kernel_int(g.w, "W", g), d.c = as_kernel_int(g.c, "C", g);
  d.cg = static_cast<int>(g.c / g.groups);
  d.k = as_kernel_int(g.k, "K", g), d.kg = static_cast<int>(g.k / g.groups);
  d.s = as_kernel_int(g.s, "S", g);
  d.l = as_kernel_int(g.r * g.s * (g.c / g.groups), "R*S*C/groups", g);
  d.p = as_kernel_int(g.p, "P", g), d.q = as_kernel_int(g.q, "Q", g);
  d.m = g.n * g.p * g.q;
  d.stride_h = g.stride_h, d.stride_w = g.stride_w, d.pad_h = g.pad_h, d.pad_w = g.pad_w;
  d.dilation_h = g.dilation_h, d.dilation_w = g.dilation_w;
  return d;
}

}  // namespace

void conv2d_forward_cuda_direct(float* out, const float* inp, const float* weight, const float* bias,
                                const Conv2dGeometry& g) {
  const DirectShape d = direct_shape(g, "conv2d_forward_cuda_direct");
  if (d.m == 0 || d.k == 0) return;
  const int64_t pixel_tiles = (d.m + kTileM - 1) / kTileM;
  GRAFT_CHECK(pixel_tiles <= INT_MAX && g.groups <= 65535,
              "conv2d_forward_cuda_direct: too many tiles for the grid: ", conv2d_geometry_str(g));
  const dim3 grid(static_cast<unsigned>(pixel_tiles), static_cast<unsigned>((d.kg + kTileK - 1) / kTileK),
                  static_cast<unsigned>(g.groups));
  GRAFT_CHECK(grid.y <= 65535,
              "conv2d_forward_cuda_direct: too many output channels per group: ", conv2d_geometry_str(g));
  conv2d_direct_kernel<<<grid, kThreads, 0, cuda::stream()>>>(out, inp, weight, bias, d);
  GRAFT_CUDA_CHECK_LAUNCH("conv2d_direct_kernel");
}

std::size_t conv2d_workspace_bytes_cuda_im2col(const Conv2dGeometry& g) {
  if (conv2d_is_pointwise(g)) return 0;
  const std::size_t row = sizeof(float) * static_cast<std::size_t>(g.r * g.s * (g.c / g.groups));
  const std::size_t all = row * static_cast<std::size_t>(g.n * g.p * g.q);
  const std::size_t capped = all < kConv2dCudaIm2colWorkspaceLimit ? all : kConv2dCudaIm2colWorkspaceLimit;
  return capped > row ? capped : row;
}

void conv2d_forward_cuda_im2col(float* out, const float* inp, const float* weight, const float* bias,
                                const Conv2dGeometry& g, float* workspace, std::size_t workspace_bytes) {
  GRAFT_CHECK(g.groups == 1, "conv2d_forward_cuda_im2col: grouped convolutions (groups ", g.groups,
              ") are not lowered to one GEMM here; use conv2d_forward_cuda_direct: ", conv2d_geometry_str(g));
  const DirectShape d = direct_shape(g, "conv2d_forward_cuda_im2col");
  if (d.m == 0 || d.k == 0) return;
  if (conv2d_is_pointwise(g)) {
    gemm_cuda_tiled(out, inp, weight, false, true, d.m, d.k, d.c, 1.f, 0.f);
    return conv2d_add_bias_cuda(out, bias, g);
  }
  const std::size_t row_bytes = sizeof(float) * static_cast<std::size_t>(d.l);
  GRAFT_CHECK(workspace != nullptr && workspace_bytes >= row_bytes, "conv2d_forward_cuda_im2col: the workspace (",
              workspace_bytes, " bytes) must hold at least one row of ", row_bytes, " bytes: ", conv2d_geometry_str(g));
  const int64_t chunk = static_cast<int64_t>(workspace_bytes / row_bytes);
  for (int64_t row0 = 0; row0 < d.m; row0 += chunk) {
    const int64_t rows = d.m - row0 < chunk ? d.m - row0 : chunk;
    const int64_t blocks = (rows + kIm2colRows - 1) / kIm2colRows;
    GRAFT_CHECK(blocks <= INT_MAX, "conv2d_forward_cuda_im2col: too many rows in one chunk: ", conv2d_geometry_str(g));
    im2col_kernel<<<static_cast<unsigned>(blocks), dim3(kIm2colTapThreads, kIm2colRows), 0, cuda::stream()>>>(
        workspace, inp, d, row0, rows);
    GRAFT_CUDA_CHECK_LAUNCH("im2col_kernel");
    gemm_cuda_tiled(out + row0 * d.k, workspace, weight, false, true, rows, d.k, d.l, 1.f, 0.f);
  }
  conv2d_add_bias_cuda(out, bias, g);
}

}  // namespace graft
