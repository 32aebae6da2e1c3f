// Reductions along one axis. The input is viewed as (outer, len, inner); reducing all elements is
// outer = inner = 1.
//   sum_axis:       out[o,i]   = scale * sum_l inp[o,l,i]          out (outer, inner)
//   broadcast_axis: dinp[o,l,i] = scale * dout[o,i]                 (the gradient of sum_axis)
// Results are deterministic: a fixed summation order, no atomics.
#pragma once
#include <cstddef>
#include <cstdint>

namespace graft {

void sum_axis_cpu(float* out, const float* inp, std::int64_t outer, std::int64_t len, std::int64_t inner,
                  float scale);
void broadcast_axis_cpu(float* dinp, const float* dout, std::int64_t outer, std::int64_t len, std::int64_t inner,
                        float scale);

#if GRAFT_HAS_CUDA
// Bytes of scratch memory sum_axis_cuda needs for this shape (may be 0).
std::size_t sum_axis_workspace_cuda(std::int64_t outer, std::int64_t len, std::int64_t inner);
void sum_axis_cuda(float* out, const float* inp, std::int64_t outer, std::int64_t len, std::int64_t inner,
                   float scale, void* workspace);
void broadcast_axis_cuda(float* dinp, const float* dout, std::int64_t outer, std::int64_t len, std::int64_t inner,
                         float scale);
#endif

}  // namespace graft
