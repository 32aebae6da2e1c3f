// Hand-written SGEMM, row-major C (M,N) = alpha op(A) op(B) + beta C (math in kernels/gemm.h), kept to study and
// to benchmark against cuBLAS. Strict FP32: every product is an fmaf, no tensor cores.
//
// Tiling (steps 2-5 of siboehm's "How to optimize a CUDA matmul kernel for cuBLAS-like performance"):
//   - A block of 256 threads owns a 128 x 128 tile of C and walks K in slabs of 8. Each slab of op(A) (128 x 8)
//     and op(B) (8 x 128) is staged in shared memory k-major (As[k][m], Bs[k][n]), so the inner loop reads a
//     column of op(A) and a row of op(B) as contiguous 16-byte vectors.
//   - Each thread accumulates an 8 x 8 register tile: per k it loads 8 values of A and 8 of B (four 16-byte
//     shared loads) for 64 FMAs, which is what lifts the kernel from shared-memory-bound to FMA-bound. Its
//     rows are {4 tr .. 4 tr + 3} and {64 + 4 tr ..}, its columns likewise with tc (tr = tid / 16, tc = tid % 16):
//     split 4 + 4 so that the 16 threads of a half-warp read 16 consecutive float4 of Bs (no bank conflicts),
//     and the two tr values of a warp make the As reads broadcasts.
//   - Global loads are coalesced whatever the transposes: a slab stored with k fastest (A untransposed, B
//     transposed) is read 8 consecutive k per row and stored transposed into a row padded to 132 floats, which
//     spreads the transposed stores over all 32 banks; a slab stored with m (or n) fastest is read 128
//     consecutive floats per k. The next slab is loaded into registers while the current one is multiplied, so
//     global latency overlaps the FMAs.
//   - Edge tiles are zero-filled on load and bounds-checked on store, so any M, N, K works; beta == 0 never
//     reads C (BLAS semantics: C may hold garbage or NaN).
//   - 32-bit index math whenever every matrix has < 2^31 elements, and __launch_bounds__(256, 2): registers are
//     capped at 128 so two blocks (16 warps) share an SM (ptxas reports 0-12 bytes of spill for the 32-bit
//     variants, more for the 64-bit fallback).
// What keeps it below cuBLAS (FP32; with TF32 allowed, cuBLAS uses tensor cores and is several times faster):
//   - scalar 4-byte global loads (16-byte loads would need alignment and K, M, N multiples of 4 checked per call);
//   - one shared buffer and two barriers per 8-deep slab (cuBLAS double-buffers shared memory with cp.async,
//     or TMA on Hopper, and uses deeper slabs);
//   - no warp tiling: a warp's 8 x 8 thread tiles are not arranged to maximize register reuse and hide
//     shared-memory latency, which gave the last ~20% in siboehm's worklog;
//   - one fixed 128 x 128 tile: small or skinny problems launch too few blocks (M = N = 256 fills 4 of 132 SMs),
//     where cuBLAS picks smaller tiles or split-K by heuristics/autotuning;
//   - a bounds check on every element loaded, even in interior tiles.
#include <climits>
#include <cstdint>

#include "kernels/cuda_device.h"
#include "kernels/gemm.h"

namespace graft {
namespace {

using std::int64_t;

constexpr int kTile = 128;       // block tile, rows and columns of C
constexpr int kSlab = 8;         // K depth of one shared-memory slab
constexpr int kThreads = 256;    // 16 x 16 threads, each 8 x 8 outputs
constexpr int kLds = kTile + 4;  // padded smem row (keeps 16-byte alignment, spreads transposed stores)
constexpr int kPerThread = kTile * kSlab / kThreads;  // slab elements each thread loads (4)

// A slab of rows [r0, r0 + 128) and depths [k0, k0 + 8) of a matrix with `rows` rows and `depth` depths, into
// registers, zero outside the matrix.
// kKFastest: element (r, k) is at src[r * depth + k] (A untransposed, B transposed); else at src[k * rows + r].
template <bool kKFastest, class Index>
__device__ __forceinline__ void load_slab(float (&v)[kPerThread], const float* __restrict__ src, Index rows,
                                          Index depth, Index r0, Index k0) {
  if constexpr (kKFastest) {
    const Index k = k0 + threadIdx.x % kSlab;
    const Index r = r0 + threadIdx.x / kSlab;
#pragma unroll
    for (int p = 0; p < kPerThread; ++p) {
      const Index rp = r + p * (kThreads / kSlab);
      v[p] = rp < rows && k < depth ? src[rp * depth + k] : 0.f;
    }
  } else {
    const Index r = r0 + threadIdx.x % kTile;
    const Index k = k0 + threadIdx.x / kTile;
#pragma unroll
    for (int p = 0; p < kPerThread; ++p) {
      const Index kp = k + p * (kThreads / kTile);
      v[p] = r < rows && kp < depth ? src[kp * rows + r] : 0.f;
    }
  }
}

// The same elements, into the k-major shared slab s[k][r].
template <bool kKFastest>
__device__ __forceinline__ void store_slab(float (*s)[kLds], const float (&v)[kPerThread]) {
  if constexpr (kKFastest) {
    const int k = threadIdx.x % kSlab, r = threadIdx.x / kSlab;
#pragma unroll
    for (int p = 0; p < kPerThread; ++p) s[k][r + p * (kThreads / kSlab)] = v[p];
  } else {
    const int r = threadIdx.x % kTile, k = threadIdx.x / kTile;
#pragma unroll
    for (int p = 0; p < kPerThread; ++p) s[k + p * (kThreads / kTile)][r] = v[p];
  }
}

// Row (or column) of the i-th of the thread's 8 outputs within the tile: two runs of 4, 64 apart.
__device__ __forceinline__ int tile_offset(int t, int i) { return (i < 4 ? 0 : kTile / 2) + 4 * t + (i & 3); }

// op(A) (M,K) is stored A (M,K), or (K,M) when kTransA; op(B) (K,N) is stored B (K,N), or (N,K) when kTransB.
// Block x covers rows [128 x, ...); blocks y loop over the column tiles (gridDim.y is capped at 65535).
// Index is int when every offset into A, B and C fits (fewer registers), int64_t otherwise.
template <bool kTransA, bool kTransB, class Index>
__global__ void __launch_bounds__(kThreads, 2)
    gemm_tiled_kernel(float* __restrict__ c, const float* __restrict__ a, const float* __restrict__ b, Index m, Index n,
                      Index k, float alpha, float beta) {
  __shared__ __align__(16) float as[kSlab][kLds];
  __shared__ __align__(16) float bs[kSlab][kLds];
  const int tr = threadIdx.x / 16, tc = threadIdx.x % 16;
  const Index m0 = static_cast<Index>(blockIdx.x) * kTile;
  const Index col_tiles = (n + kTile - 1) / kTile;
  for (Index tile = blockIdx.y; tile < col_tiles; tile += gridDim.y) {
    const Index n0 = tile * kTile;
    float acc[8][8];
#pragma unroll
    for (int i = 0; i < 8; ++i)
#pragma unroll
      for (int j = 0; j < 8; ++j) acc[i][j] = 0.f;

    float next_a[kPerThread], next_b[kPerThread];
    if (k > 0) {
      load_slab<!kTransA>(next_a, a, m, k, m0, Index{0});
      load_slab<kTransB>(next_b, b, n, k, n0, Index{0});
    }
    for (Index k0 = 0; k0 < k; k0 += kSlab) {
      store_slab<!kTransA>(as, next_a);
      store_slab<kTransB>(bs, next_b);
      __syncthreads();
      if (k0 + kSlab < k) {  // in flight while this slab is multiplied
        load_slab<!kTransA>(next_a, a, m, k, m0, k0 + kSlab);
        load_slab<kTransB>(next_b, b, n, k, n0, k0 + kSlab);
      }
#pragma unroll
      for (int kk = 0; kk < kSlab; ++kk) {
        const float4 a0 = *reinterpret_cast<const float4*>(&as[kk][4 * tr]);
        const float4 a1 = *reinterpret_cast<const float4*>(&as[kk][kTile / 2 + 4 * tr]);
        const float4 b0 = *reinterpret_cast<const float4*>(&bs[kk][4 * tc]);
        const float4 b1 = *reinterpret_cast<const float4*>(&bs[kk][kTile / 2 + 4 * tc]);
        const float av[8] = {a0.x, a0.y, a0.z, a0.w, a1.x, a1.y, a1.z, a1.w};
        const float bv[8] = {b0.x, b0.y, b0.z, b0.w, b1.x, b1.y, b1.z, b1.w};
#pragma unroll
        for (int i = 0; i < 8; ++i)
#pragma unroll
          for (int j = 0; j < 8; ++j) acc[i][j] = fmaf(av[i], bv[j], acc[i][j]);
      }
      __syncthreads();  // everyone is done reading the slab before it is overwritten
    }

#pragma unroll
    for (int i = 0; i < 8; ++i) {
      const Index row = m0 + tile_offset(tr, i);
      if (row >= m) continue;
      float* c_row = c + row * n;
#pragma unroll
      for (int j = 0; j < 8; ++j) {
        const Index col = n0 + tile_offset(tc, j);
        if (col >= n) continue;
        const float v = alpha * acc[i][j];
        c_row[col] = beta == 0.f ? v : v + beta * c_row[col];
      }
    }
  }
}

// 32-bit offsets are safe when every matrix has fewer than 2^31 elements, with slack for the loop bounds that
// step one tile past the last row, column or slab.
bool fits_int(int64_t m, int64_t n, int64_t k) {
  constexpr int64_t kLimit = INT_MAX - 2 * kTile;
  return m <= kLimit && n <= kLimit && k <= kLimit && m * k <= kLimit && k * n <= kLimit && m * n <= kLimit;
}

template <bool kTransA, bool kTransB>
void launch(float* c, const float* a, const float* b, int64_t m, int64_t n, int64_t k, float alpha, float beta) {
  const int64_t row_tiles = (m + kTile - 1) / kTile, col_tiles = (n + kTile - 1) / kTile;
  GRAFT_CHECK(row_tiles <= INT_MAX, "gemm_cuda_tiled: m=", m, " needs more than 2^31-1 row tiles");
  const dim3 grid(static_cast<unsigned>(row_tiles), static_cast<unsigned>(col_tiles < 65535 ? col_tiles : 65535));
  if (fits_int(m, n, k)) {
    gemm_tiled_kernel<kTransA, kTransB, int><<<grid, kThreads, 0, cuda::stream()>>>(
        c, a, b, static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), alpha, beta);
  } else {
    gemm_tiled_kernel<kTransA, kTransB, int64_t><<<grid, kThreads, 0, cuda::stream()>>>(c, a, b, m, n, k, alpha, beta);
  }
  GRAFT_CUDA_CHECK_LAUNCH("gemm_tiled_kernel");
}

}  // namespace

void gemm_cuda_tiled(float* c, const float* a, const float* b, bool trans_a, bool trans_b, std::int64_t m,
                     std::int64_t n, std::int64_t k, float alpha, float beta) {
  if (m <= 0 || n <= 0) return;
  if (k < 0 || alpha == 0.f) k = 0;  // BLAS: with alpha 0, A and B are not read (their NaNs must not leak into C)
  if (trans_a) {
    trans_b ? launch<true, true>(c, a, b, m, n, k, alpha, beta) : launch<true, false>(c, a, b, m, n, k, alpha, beta);
  } else {
    trans_b ? launch<false, true>(c, a, b, m, n, k, alpha, beta) : launch<false, false>(c, a, b, m, n, k, alpha, beta);
  }
}

}  // namespace graft
