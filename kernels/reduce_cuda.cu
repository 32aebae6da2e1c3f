// CUDA reductions along one axis of (outer, len, inner) (math in kernels/reduce.h).
// Deterministic by construction: every partial sum has a fixed owner and a fixed order (per-thread loops, then
// shuffle/shared-memory trees of fixed shape), and there are no atomics. The plan below depends only on the
// shape, so the same shape always sums in the same order.
//   inner == 1: rows are contiguous. A warp (short rows) or a 256-thread block (long rows) reduces one row.
//   inner > 1:  a block owns a tile of up to 32 consecutive inner columns (coalesced loads) and splits the len
//               loop over its 256 / tile_width thread rows, then adds those partials in shared memory.
// When that gives too few blocks to fill the GPU (few long rows; the bias/BatchNorm gradient (1, N*H*W, C)),
// len is cut into chunks: pass 1 writes one partial per chunk to the caller's workspace, pass 2 reduces the
// partials with the same kernels. Besides filling the GPU this also shortens the float accumulation chains.
#include <algorithm>
#include <cstdint>

#include "kernels/cuda_device.h"
#include "kernels/reduce.h"

namespace graft {
namespace {

using std::int64_t;

constexpr int kThreads = 256;
constexpr int64_t kTargetBlocks = 1024;  // ~ one full wave of 256-thread blocks on an H100 (132 SMs x 8)
constexpr int64_t kMaxChunks = 1024;     // bounds the workspace and keeps pass 2 short
constexpr int kShortRow = 256;           // rows up to this length go to one warp each
constexpr int64_t kMinPerThread = 16;    // a chunk gives every thread at least this many elements

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

struct Plan {
  bool rows = false;  // inner == 1
  int tile = 1;       // inner > 1: columns per block (power of two <= 32); thread rows = kThreads / tile
  int64_t chunks = 1;
  int64_t chunk_len = 1;
};

Plan make_plan(int64_t outer, int64_t len, int64_t inner) {
  Plan plan;
  plan.rows = inner == 1;
  int64_t blocks, min_chunk;
  if (plan.rows) {
    const bool warp_per_row = len <= kShortRow;
    blocks = warp_per_row ? ceil_div(outer, kThreads / 32) : outer;
    // Short rows already get a warp each; only long rows are worth splitting.
    min_chunk = warp_per_row ? std::max<int64_t>(len, 1) : kThreads * kMinPerThread;
  } else {
    while (plan.tile < 32 && plan.tile < inner) plan.tile *= 2;
    blocks = outer * ceil_div(inner, plan.tile);
    min_chunk = (kThreads / plan.tile) * kMinPerThread;
  }
  if (blocks < kTargetBlocks && len > min_chunk) {
    plan.chunks = std::min({ceil_div(kTargetBlocks, blocks), ceil_div(len, min_chunk), kMaxChunks});
  }
  plan.chunk_len = std::max<int64_t>(1, ceil_div(len, plan.chunks));
  plan.chunks = std::max<int64_t>(1, ceil_div(len, plan.chunk_len));  // no empty trailing chunk
  return plan;
}

// Sum over a group of kGroup threads (a warp, or the whole 256-thread block). The xor butterfly leaves the
// same bits in every lane (each step adds the same two values, only in swapped order, and + is commutative).
template <int kGroup>
__device__ __forceinline__ float group_sum(float v, float* smem) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  if constexpr (kGroup == 32) {
    return v;
  } else {
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    __syncthreads();  // the previous call's readers are done with smem
    if (lane == 0) smem[warp] = v;
    __syncthreads();
    v = lane < kGroup / 32 ? smem[lane] : 0.f;
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
    return v;
  }
}

// inp (rows, len) contiguous; out (rows, chunks): out[r, c] = scale * sum of inp[r, c*chunk_len ...].
// The loop over work items is uniform per block, so every thread reaches the block-wide barriers.
template <int kGroup>
__global__ void __launch_bounds__(kThreads) sum_rows_kernel(float* out, const float* inp, int64_t rows, int64_t len,
                                                            int64_t chunks, int64_t chunk_len, float scale) {
  constexpr int kGroupsPerBlock = kThreads / kGroup;
  __shared__ float smem[32];
  const int lane = threadIdx.x % kGroup;
  const int64_t items = rows * chunks;
  for (int64_t base = static_cast<int64_t>(blockIdx.x) * kGroupsPerBlock; base < items;
       base += static_cast<int64_t>(gridDim.x) * kGroupsPerBlock) {
    const int64_t item = base + threadIdx.x / kGroup;
    float acc = 0.f;
    if (item < items) {
      const int64_t row = item / chunks, chunk = item % chunks;
      const int64_t begin = chunk * chunk_len, end = std::min(len, begin + chunk_len);
      const float* p = inp + row * len;
#pragma unroll 4
      for (int64_t l = begin + lane; l < end; l += kGroup) acc += p[l];
    }
    acc = group_sum<kGroup>(acc, smem);
    if (item < items && lane == 0) out[item] = acc * scale;
  }
}

// inp (outer, len, inner); out (chunks, outer, inner). A block reduces `tile` consecutive columns of one
// (chunk, outer) pair: thread (ty, tx) sums rows ty, ty + ny, ... of column tx, then a shared-memory tree over
// ty adds the ny partials.
__global__ void __launch_bounds__(kThreads)
    sum_strided_kernel(float* out, const float* inp, int64_t outer, int64_t len, int64_t inner, int tile,
                       int64_t chunks, int64_t chunk_len, float scale) {
  __shared__ float smem[kThreads];
  const int ny = kThreads / tile;
  const int tx = threadIdx.x % tile, ty = threadIdx.x / tile;
  const int64_t col_tiles = (inner + tile - 1) / tile;
  const int64_t items = chunks * outer * col_tiles;
  for (int64_t item = blockIdx.x; item < items; item += gridDim.x) {
    const int64_t col = (item % col_tiles) * tile + tx;
    const int64_t rest = item / col_tiles;
    const int64_t o = rest % outer, chunk = rest / outer;
    const int64_t begin = chunk * chunk_len, end = std::min(len, begin + chunk_len);
    float acc = 0.f;
    if (col < inner) {
      // an index, not a pointer walked past the last row: a pointer beyond the buffer is undefined even unread
      int64_t at = (o * len + begin + ty) * inner + col;
      const int64_t step = static_cast<int64_t>(ny) * inner;
#pragma unroll 4
      for (int64_t l = begin + ty; l < end; l += ny, at += step) acc += inp[at];
    }
    __syncthreads();  // the previous item's tree is done reading smem
    smem[threadIdx.x] = acc;
    __syncthreads();
    for (int half = ny / 2; half > 0; half /= 2) {
      if (ty < half) smem[threadIdx.x] += smem[threadIdx.x + half * tile];
      __syncthreads();
    }
    if (ty == 0 && col < inner) out[(chunk * outer + o) * inner + col] = smem[tx] * scale;
  }
}

void launch_rows(float* out, const float* inp, int64_t rows, int64_t len, int64_t chunks, int64_t chunk_len,
                 float scale) {
  if (len <= kShortRow) {
    sum_rows_kernel<32><<<cuda::grid_for(rows * chunks, kThreads / 32), kThreads, 0, cuda::stream()>>>(
        out, inp, rows, len, chunks, chunk_len, scale);
  } else {
    sum_rows_kernel<kThreads><<<cuda::grid_for(rows * chunks, 1), kThreads, 0, cuda::stream()>>>(
        out, inp, rows, len, chunks, chunk_len, scale);
  }
  GRAFT_CUDA_CHECK_LAUNCH("sum_rows_kernel");
}

void launch_strided(float* out, const float* inp, int64_t outer, int64_t len, int64_t inner, int tile, int64_t chunks,
                    int64_t chunk_len, float scale) {
  const int64_t items = chunks * outer * ceil_div(inner, tile);
  sum_strided_kernel<<<cuda::grid_for(items, 1), kThreads, 0, cuda::stream()>>>(out, inp, outer, len, inner, tile,
                                                                                chunks, chunk_len, scale);
  GRAFT_CUDA_CHECK_LAUNCH("sum_strided_kernel");
}

// dinp (outer, len, inner) = scale * dout (outer, inner) broadcast over len. A thread writes V adjacent elements
// of one (o, l) row at a time (V = 4, one float4, when inner % 4 == 0 and both pointers are 16-byte aligned).
// Its group index is walked in mixed radix (o, l, i / V) along the grid-stride loop, with the stride's digits
// computed on the host, so no thread divides more than once.
// kSplat (inner == 1, len % 4 == 0, aligned): the four elements of a float4 are four consecutive l of one o, all
// scale * dout[o]; the walk is then over (o, l / 4) with inner_groups = 1 and `len` = len / 4. (With one float per
// store this shape, the gradient of a sum over the last axis, ran at 50% of the copy on an H100.)
template <int V, bool kSplat = false>
__global__ void broadcast_axis_kernel(float* dinp, const float* dout, int64_t groups, int64_t len,
                                      int64_t inner_groups, float scale, int64_t step_o, int64_t step_l,
                                      int64_t step_i) {
  const int64_t first = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  if (first >= groups) return;
  int64_t i = first % inner_groups, q = first / inner_groups;
  int64_t l = q % len, o = q / len;
  for (int64_t e = first; e < groups; e += stride) {
    if constexpr (kSplat) {
      const float d = scale * dout[o];
      reinterpret_cast<float4*>(dinp)[e] = make_float4(d, d, d, d);
    } else if constexpr (V == 4) {
      const float4 d = reinterpret_cast<const float4*>(dout)[o * inner_groups + i];
      reinterpret_cast<float4*>(dinp)[e] = make_float4(scale * d.x, scale * d.y, scale * d.z, scale * d.w);
    } else {
      dinp[e] = scale * dout[o * inner_groups + i];
    }
    i += step_i;
    int64_t carry = i >= inner_groups;
    if (carry) i -= inner_groups;
    l += step_l + carry;
    carry = l >= len;
    if (carry) l -= len;
    o += step_o + carry;
  }
}

}  // namespace

std::size_t sum_axis_workspace_cuda(std::int64_t outer, std::int64_t len, std::int64_t inner) {
  if (outer <= 0 || inner <= 0 || len <= 0) return 0;
  Plan plan = make_plan(outer, len, inner);
  if (plan.chunks == 1) return 0;
  return static_cast<std::size_t>(plan.chunks * outer * inner) * sizeof(float);
}

void sum_axis_cuda(float* out, const float* inp, std::int64_t outer, std::int64_t len, std::int64_t inner, float scale,
                   void* workspace) {
  if (outer <= 0 || inner <= 0) return;
  if (len <= 0) len = 0;  // an empty sum: the kernels write zeros
  Plan plan = make_plan(outer, len, inner);
  if (plan.chunks > 1)
    GRAFT_CHECK(workspace != nullptr, "sum_axis_cuda: shape (", outer, ",", len, ",", inner, ") needs ",
                sum_axis_workspace_cuda(outer, len, inner), " bytes of workspace, got none");
  float* partial = static_cast<float*>(workspace);
  if (plan.rows) {
    if (plan.chunks == 1) return launch_rows(out, inp, outer, len, 1, std::max<int64_t>(len, 1), scale);
    launch_rows(partial, inp, outer, len, plan.chunks, plan.chunk_len, 1.f);  // partial (outer, chunks)
    launch_rows(out, partial, outer, plan.chunks, 1, plan.chunks, scale);
  } else {
    if (plan.chunks == 1)
      return launch_strided(out, inp, outer, len, inner, plan.tile, 1, std::max<int64_t>(len, 1), scale);
    // partial (chunks, outer, inner) is itself a (1, chunks, outer * inner) sum.
    launch_strided(partial, inp, outer, len, inner, plan.tile, plan.chunks, plan.chunk_len, 1.f);
    int tile = 1;
    while (tile < 32 && tile < outer * inner) tile *= 2;
    launch_strided(out, partial, 1, plan.chunks, outer * inner, tile, 1, plan.chunks, scale);
  }
}

void broadcast_axis_cuda(float* dinp, const float* dout, std::int64_t outer, std::int64_t len, std::int64_t inner,
                         float scale) {
  const int64_t total = outer * len * inner;
  if (total <= 0) return;
  const bool splat = inner == 1 && len % 4 == 0 && cuda::aligned16(dinp);
  const bool vectorize = splat || (inner % 4 == 0 && cuda::aligned16(dinp) && cuda::aligned16(dout));
  const int v = vectorize ? 4 : 1;
  const int64_t groups = total / v, inner_groups = splat ? 1 : inner / v;
  if (splat) len /= 4;  // the walk is over (o, l / 4)
  // A few groups per thread amortize the divisions that place each thread.
  const unsigned grid = cuda::grid_for(ceil_div(groups, 4));
  const int64_t stride = static_cast<int64_t>(grid) * cuda::kBlock;
  const int64_t step_i = stride % inner_groups, step_q = stride / inner_groups;
  if (splat)
    broadcast_axis_kernel<4, true><<<grid, cuda::kBlock, 0, cuda::stream()>>>(
        dinp, dout, groups, len, inner_groups, scale, step_q / len, step_q % len, step_i);
  else if (vectorize)
    broadcast_axis_kernel<4><<<grid, cuda::kBlock, 0, cuda::stream()>>>(dinp, dout, groups, len, inner_groups, scale,
                                                                      step_q / len, step_q % len, step_i);
  else
    broadcast_axis_kernel<1><<<grid, cuda::kBlock, 0, cuda::stream()>>>(dinp, dout, groups, len, inner_groups, scale,
                                                                      step_q / len, step_q % len, step_i);
  GRAFT_CUDA_CHECK_LAUNCH("broadcast_axis_kernel");
}

}  // namespace graft
