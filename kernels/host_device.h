// What the CPU reference and the CUDA kernels share as inline code, so that both compute the same bits:
// GRAFT_HOST_DEVICE marks such a function (host and device under nvcc, plain inline elsewhere).
#pragma once

#if defined(__CUDACC__)
#define GRAFT_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define GRAFT_HOST_DEVICE inline
#endif

namespace graft {

// relu(x) = max(x, 0) as every kernel applies it (relu, conv + bias + relu, batch norm's fused epilogue): -0 gives
// +0, and a NaN stays NaN, as in PyTorch - a NaN from diverged or damaged weights must reach the logits and the loss,
// not vanish into a 0. The backward's masks stay [y > 0]: 0 at a NaN, where PyTorch's threshold_backward passes dout
// on (fit stops at a NaN loss before any backward; a NaN output has NaN gradients upstream either way).
GRAFT_HOST_DEVICE float relu_value(float x) { return x > 0.f || x != x ? x : 0.f; }

}  // namespace graft
