// Softmax over the last axis of a (rows, cols) matrix, and the fused softmax-cross-entropy.
//   softmax:      y = e^{x - max} / sum e^{x - max}                 (log: y = x - max - log sum e^{x - max})
//   backward:     dx = y * (dy - sum(dy * y))                       (log: dx = dy - e^y * sum(dy))
//   cross entropy with label smoothing s over C classes, target q = (1-s) onehot(label) + s/C:
//                 loss_r = -sum_c q_c log p_c,  p = softmax(logits_r); probs keeps p for the backward
//                 dlogits = (p - q) * dloss[0] * scale     (dloss is a one-element device/host buffer, scale = 1/N)
//                 zero-target terms are left out, so a masked logit (-inf) leaves the loss finite when s = 0
// Precision: the CPU reference shifts and sums in double, the CUDA kernels in float. They differ beyond rounding only
// for finite logits more than FLT_MAX apart with s > 0, where x - max overflows in float: the CUDA loss is +inf, the
// CPU's finite when it is below FLT_MAX. Taking that term in double on the GPU (tried 2026-11-27) costs registers on
// every row - ptxas, sm_90: the block path (cols > 1024) 32 -> 40-47, the small-row paths 25-32 -> 26-40, fewer
// blocks per SM - so it is left so: such logits have lost all meaning long before.
// Labels: the op checks CPU labels before the kernel runs; labels already on the GPU are checked by the kernel
// itself (a label outside [0, cols) gives a NaN loss), since reading them back would synchronise every step.
#pragma once
#include <cstdint>

namespace graft {

void softmax_forward_cpu(float* out, const float* inp, std::int64_t rows, std::int64_t cols, bool log);
void softmax_backward_cpu(float* dinp, const float* dout, const float* out, std::int64_t rows, std::int64_t cols,
                          bool log);
void cross_entropy_forward_cpu(float* losses, float* probs, const float* logits, const std::int32_t* labels,
                               std::int64_t rows, std::int64_t cols, float smoothing);
void cross_entropy_backward_cpu(float* dlogits, const float* probs, const std::int32_t* labels, const float* dloss,
                                std::int64_t rows, std::int64_t cols, float smoothing, float scale);

#if GRAFT_HAS_CUDA
void softmax_forward_cuda(float* out, const float* inp, std::int64_t rows, std::int64_t cols, bool log);
void softmax_backward_cuda(float* dinp, const float* dout, const float* out, std::int64_t rows, std::int64_t cols,
                           bool log);
void cross_entropy_forward_cuda(float* losses, float* probs, const float* logits, const std::int32_t* labels,
                                std::int64_t rows, std::int64_t cols, float smoothing);
void cross_entropy_backward_cuda(float* dlogits, const float* probs, const std::int32_t* labels, const float* dloss,
                                 std::int64_t rows, std::int64_t cols, float smoothing, float scale);
#endif

}  // namespace graft
