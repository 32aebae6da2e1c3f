// Inverted dropout with a counter-based (Philox) mask, so the mask is never stored:
//   forward:  out[i]  = keep_i ? inp[i] / (1-p) : 0,   keep_i = philox_uniform(i, seed, offset) >= p
//   backward: dinp[i] = keep_i ? dout[i] / (1-p) : 0  - the same map with the same (seed, offset), so the
//             backward recomputes exactly the forward's mask: call dropout_forward_* on dout.
// Element i uses lane i%4 of Philox counter offset + i/4 (kernels/philox.h), i.e. uniform_counters(n) counters
// starting at `offset`; the CPU and CUDA masks are bit-identical for the same (seed, offset).
#pragma once
#include <cstdint>

namespace graft {

// inp, out (n); 0 <= p < 1. In-place use (out == inp) is allowed.
void dropout_forward_cpu(float* out, const float* inp, std::int64_t n, float p, std::uint64_t seed,
                         std::uint64_t offset);

#if GRAFT_HAS_CUDA
void dropout_forward_cuda(float* out, const float* inp, std::int64_t n, float p, std::uint64_t seed,
                          std::uint64_t offset);
#endif

}  // namespace graft
