// CUDA fused optimizer updates (math in kernels/optimizer.h). Memory-bound (SGD: 4-5 floats moved per element,
// Adam: 7). Every operation is an explicit round-to-nearest intrinsic (__fmul_rn, __fadd_rn, __fdiv_rn,
// __fsqrt_rn) so nvcc cannot contract a multiply-add into an FMA: the result is bit-identical to the CPU
// reference, which does the same operations in the same order. The per-element math lives once (sgd_update,
// adam_update) and is shared by the two launch shapes:
// - single tensor: one thread per element, grid-stride loop;
// - multi tensor: a by-value table of up to kOptimizerMultiTensors tensors (__grid_constant__, < 4 KB of kernel
//   parameters); block b finds its tensor by binary search over the table's block prefix sums and updates one
//   chunk of kOptimizerChunk elements, kIlp elements per thread at a time (all loads before the stores, so each
//   thread has several independent loads in flight).
// Tensors may be views at any float offset, so no vector loads are assumed.
#include <climits>
#include <cstdint>

#include "kernels/cuda_device.h"
#include "kernels/optimizer.h"

namespace graft {
namespace {

using std::int64_t;

// ---- per-element math (one place for both launch shapes) ----------------------------------------------------------

// p (in/out), b momentum buffer (out; also in unless kFirst), g grad.
template <bool kMomentum, bool kNesterov, bool kFirst>
__device__ __forceinline__ void sgd_update(float& p, float& b, float g, const SGDScalars& s) {
  float d = g;
  if (s.weight_decay != 0.f) d = __fadd_rn(d, __fmul_rn(s.weight_decay, p));
  if constexpr (kMomentum) {
    if constexpr (kFirst) {
      b = d;
    } else {
      b = __fadd_rn(__fmul_rn(b, s.momentum), __fmul_rn(s.one_minus_damp, d));
    }
    if constexpr (kNesterov) {
      d = __fadd_rn(d, __fmul_rn(s.momentum, b));
    } else {
      d = b;
    }
  }
  p = __fadd_rn(p, __fmul_rn(s.neg_lr, d));
}

// p, m exp_avg, v exp_avg_sq (in/out), g grad.
__device__ __forceinline__ void adam_update(float& p, float& m, float& v, float g, const AdamScalars& s) {
  if (s.l2 != 0.f) g = __fadd_rn(g, __fmul_rn(s.l2, p));
  if (s.decay != 1.f) p = __fmul_rn(p, s.decay);
  m = __fadd_rn(__fmul_rn(m, s.beta1), __fmul_rn(s.one_minus_beta1, g));
  v = __fadd_rn(__fmul_rn(v, s.beta2), __fmul_rn(__fmul_rn(s.one_minus_beta2, g), g));
  const float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(v), s.bias2_sqrt), s.eps);
  p = __fadd_rn(p, __fdiv_rn(__fmul_rn(s.neg_step_size, m), denom));
}

// ---- single tensor ------------------------------------------------------------------------------------------------

template <bool kMomentum, bool kNesterov, bool kFirst>
__global__ void sgd_step_kernel(float* param, float* momentum_buf, const float* grad, int64_t n, SGDScalars s) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    float p = param[i], b = 0.f;
    if constexpr (kMomentum && !kFirst) b = momentum_buf[i];
    sgd_update<kMomentum, kNesterov, kFirst>(p, b, grad[i], s);
    if constexpr (kMomentum) momentum_buf[i] = b;
    param[i] = p;
  }
}

__global__ void adam_step_kernel(float* param, float* exp_avg, float* exp_avg_sq, const float* grad, int64_t n,
                                 AdamScalars s) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    float p = param[i], m = exp_avg[i], v = exp_avg_sq[i];
    adam_update(p, m, v, grad[i], s);
    exp_avg[i] = m;
    exp_avg_sq[i] = v;
    param[i] = p;
  }
}

template <bool kMomentum, bool kNesterov, bool kFirst>
void launch_sgd(float* param, float* momentum_buf, const float* grad, int64_t n, const SGDScalars& s) {
  sgd_step_kernel<kMomentum, kNesterov, kFirst>
      <<<cuda::grid_for(n), cuda::kBlock, 0, cuda::stream()>>>(param, momentum_buf, grad, n, s);
  GRAFT_CUDA_CHECK_LAUNCH("sgd_step_kernel");
}

// ---- multi tensor -------------------------------------------------------------------------------------------------

constexpr int kMax = kOptimizerMultiTensors;
constexpr int kIlp = 4;  // elements per thread per iteration

// Block prefix sums: tensor t owns blocks [first_block[t], first_block[t+1]).
struct BlockMap {
  int count = 0;
  int first_block[kMax + 1] = {};
  int64_t n[kMax] = {};
};

struct SGDTable {
  BlockMap map;
  float* param[kMax];
  float* buf[kMax];
  const float* grad[kMax];
  bool first_step[kMax];
  SGDScalars s;
};

struct AdamTable {
  BlockMap map;
  float* param[kMax];
  float* exp_avg[kMax];
  float* exp_avg_sq[kMax];
  const float* grad[kMax];
  float neg_step_size[kMax];  // the step-dependent scalars of each tensor; the rest of s is the group's
  float bias2_sqrt[kMax];
  AdamScalars s;
};
static_assert(sizeof(SGDTable) <= 4096 && sizeof(AdamTable) <= 4096, "kernel parameters are limited to 4 KB");

// This block's tensor and element range [begin, end).
struct Chunk {
  int t;
  int64_t begin, end;
};
__device__ __forceinline__ Chunk find_chunk(const BlockMap& map) {
  const int block = static_cast<int>(blockIdx.x);
  int lo = 0, hi = map.count - 1;  // the last t with first_block[t] <= block
  while (lo < hi) {
    const int mid = (lo + hi + 1) / 2;
    if (map.first_block[mid] <= block) lo = mid;
    else hi = mid - 1;
  }
  const int64_t begin = static_cast<int64_t>(block - map.first_block[lo]) * kOptimizerChunk;
  const int64_t end = begin + kOptimizerChunk < map.n[lo] ? begin + kOptimizerChunk : map.n[lo];
  return {lo, begin, end};
}

template <bool kMomentum, bool kNesterov, bool kFirst>
__device__ void sgd_chunk(float* param, float* buf, const float* grad, int64_t begin, int64_t end,
                          const SGDScalars& s) {
  for (int64_t base = begin + threadIdx.x; base < end; base += static_cast<int64_t>(kIlp) * blockDim.x) {
    float p[kIlp], b[kIlp], g[kIlp];
#pragma unroll
    for (int k = 0; k < kIlp; ++k) {
      const int64_t i = base + static_cast<int64_t>(k) * blockDim.x;
      if (i < end) {
        p[k] = param[i];
        g[k] = grad[i];
        b[k] = 0.f;
        if constexpr (kMomentum && !kFirst) b[k] = buf[i];
      }
    }
#pragma unroll
    for (int k = 0; k < kIlp; ++k) {
      const int64_t i = base + static_cast<int64_t>(k) * blockDim.x;
      if (i < end) {
        sgd_update<kMomentum, kNesterov, kFirst>(p[k], b[k], g[k], s);
        if constexpr (kMomentum) buf[i] = b[k];
        param[i] = p[k];
      }
    }
  }
}

template <bool kMomentum, bool kNesterov>
__global__ void sgd_step_multi_kernel(const __grid_constant__ SGDTable tab) {
  const Chunk c = find_chunk(tab.map);
  if (kMomentum && tab.first_step[c.t]) {
    sgd_chunk<kMomentum, kNesterov, true>(tab.param[c.t], tab.buf[c.t], tab.grad[c.t], c.begin, c.end, tab.s);
  } else {
    sgd_chunk<kMomentum, kNesterov, false>(tab.param[c.t], tab.buf[c.t], tab.grad[c.t], c.begin, c.end, tab.s);
  }
}

__global__ void adam_step_multi_kernel(const __grid_constant__ AdamTable tab) {
  const Chunk c = find_chunk(tab.map);
  AdamScalars s = tab.s;
  s.neg_step_size = tab.neg_step_size[c.t];
  s.bias2_sqrt = tab.bias2_sqrt[c.t];
  float* param = tab.param[c.t];
  float* exp_avg = tab.exp_avg[c.t];
  float* exp_avg_sq = tab.exp_avg_sq[c.t];
  const float* grad = tab.grad[c.t];
  for (int64_t base = c.begin + threadIdx.x; base < c.end; base += static_cast<int64_t>(kIlp) * blockDim.x) {
    float p[kIlp], m[kIlp], v[kIlp], g[kIlp];
#pragma unroll
    for (int k = 0; k < kIlp; ++k) {
      const int64_t i = base + static_cast<int64_t>(k) * blockDim.x;
      if (i < c.end) {
        p[k] = param[i];
        m[k] = exp_avg[i];
        v[k] = exp_avg_sq[i];
        g[k] = grad[i];
      }
    }
#pragma unroll
    for (int k = 0; k < kIlp; ++k) {
      const int64_t i = base + static_cast<int64_t>(k) * blockDim.x;
      if (i < c.end) {
        adam_update(p[k], m[k], v[k], g[k], s);
        exp_avg[i] = m[k];
        exp_avg_sq[i] = v[k];
        param[i] = p[k];
      }
    }
  }
}

// Appends a tensor of n > 0 elements to the map; false (map unchanged) when the table or the grid is full.
bool add_to_map(BlockMap& map, int64_t n) {
  const int64_t blocks = (n + kOptimizerChunk - 1) / kOptimizerChunk;
  GRAFT_CHECK(blocks <= INT_MAX, "multi-tensor optimizer step: a tensor of ", n, " elements is too large");
  if (map.count == kMax || map.first_block[map.count] + blocks > INT_MAX) return false;
  map.n[map.count] = n;
  map.first_block[map.count + 1] = static_cast<int>(map.first_block[map.count] + blocks);
  ++map.count;
  return true;
}

// Fills tables with `tensors` (fill(table, slot, tensor) after add_to_map) and launches each full or last table.
template <typename Table, typename Entry, typename Fill, typename Launch>
void for_each_table(std::span<const Entry> tensors, Table& tab, Fill&& fill, Launch&& launch) {
  auto flush = [&] {
    if (tab.map.count == 0) return;
    launch(tab, static_cast<unsigned>(tab.map.first_block[tab.map.count]));
    tab.map = BlockMap{};
  };
  for (const Entry& x : tensors) {
    if (x.n <= 0) continue;
    if (!add_to_map(tab.map, x.n)) {
      flush();
      add_to_map(tab.map, x.n);
    }
    fill(tab, tab.map.count - 1, x);
  }
  flush();
}

template <bool kMomentum, bool kNesterov>
void launch_sgd_multi(const SGDTable& tab, unsigned blocks) {
  sgd_step_multi_kernel<kMomentum, kNesterov><<<blocks, cuda::kBlock, 0, cuda::stream()>>>(tab);
  GRAFT_CUDA_CHECK_LAUNCH("sgd_step_multi_kernel");
}

}  // namespace

void sgd_step_cuda(float* param, float* momentum_buf, const float* grad, std::int64_t n, float lr, float momentum,
                   float dampening, float weight_decay, bool nesterov, bool first_step) {
  if (n <= 0) return;
  const SGDScalars s = sgd_scalars(lr, momentum, dampening, weight_decay);
  if (momentum == 0.f) return launch_sgd<false, false, false>(param, momentum_buf, grad, n, s);
  if (nesterov) {
    if (first_step) return launch_sgd<true, true, true>(param, momentum_buf, grad, n, s);
    return launch_sgd<true, true, false>(param, momentum_buf, grad, n, s);
  }
  if (first_step) return launch_sgd<true, false, true>(param, momentum_buf, grad, n, s);
  launch_sgd<true, false, false>(param, momentum_buf, grad, n, s);
}

void adam_step_cuda(float* param, float* exp_avg, float* exp_avg_sq, const float* grad, std::int64_t n, float lr,
                    float beta1, float beta2, float eps, float weight_decay, bool decoupled, std::int64_t step) {
  if (n <= 0) return;
  const AdamScalars s = adam_scalars(lr, beta1, beta2, eps, weight_decay, decoupled, step);
  adam_step_kernel<<<cuda::grid_for(n), cuda::kBlock, 0, cuda::stream()>>>(param, exp_avg, exp_avg_sq, grad, n, s);
  GRAFT_CUDA_CHECK_LAUNCH("adam_step_kernel");
}

void sgd_step_multi_cuda(std::span<const SGDMultiTensor> tensors, float lr, float momentum, float dampening,
                         float weight_decay, bool nesterov) {
  SGDTable tab{};
  tab.s = sgd_scalars(lr, momentum, dampening, weight_decay);
  auto fill = [](SGDTable& t, int k, const SGDMultiTensor& x) {
    t.param[k] = x.param;
    t.buf[k] = x.momentum_buf;
    t.grad[k] = x.grad;
    t.first_step[k] = x.first_step;
  };
  auto launch = [&](const SGDTable& t, unsigned blocks) {
    if (momentum == 0.f) launch_sgd_multi<false, false>(t, blocks);
    else if (nesterov) launch_sgd_multi<true, true>(t, blocks);
    else launch_sgd_multi<true, false>(t, blocks);
  };
  for_each_table(tensors, tab, fill, launch);
}

void adam_step_multi_cuda(std::span<const AdamMultiTensor> tensors, float lr, float beta1, float beta2, float eps,
                          float weight_decay, bool decoupled) {
  AdamTable tab{};
  tab.s = adam_scalars(lr, beta1, beta2, eps, weight_decay, decoupled, 1);
  auto fill = [&](AdamTable& t, int k, const AdamMultiTensor& x) {
    const AdamScalars s = adam_scalars(lr, beta1, beta2, eps, weight_decay, decoupled, x.step);
    t.param[k] = x.param;
    t.exp_avg[k] = x.exp_avg;
    t.exp_avg_sq[k] = x.exp_avg_sq;
    t.grad[k] = x.grad;
    t.neg_step_size[k] = s.neg_step_size;
    t.bias2_sqrt[k] = s.bias2_sqrt;
  };
  auto launch = [](const AdamTable& t, unsigned blocks) {
    adam_step_multi_kernel<<<blocks, cuda::kBlock, 0, cuda::stream()>>>(t);
    GRAFT_CUDA_CHECK_LAUNCH("adam_step_multi_kernel");
  };
  for_each_table(tensors, tab, fill, launch);
}

}  // namespace graft
