// Fused optimizer updates: one pass over each parameter tensor per step. Raw pointers, updated in place.
//
// SGD (torch.optim.SGD), p param, g grad, b momentum buffer:
//   d = g + wd*p
//   momentum > 0:  b = first_step ? d : momentum*b + (1-dampening)*d      (no dampening on the first step)
//                  d = nesterov ? d + momentum*b : b
//   p = p - lr*d
// Adam / AdamW (torch.optim.Adam / AdamW), m exp_avg, v exp_avg_sq, t = step >= 1 (counted before this call):
//   Adam (L2):        g = g + wd*p
//   AdamW (decoupled): p = p*(1 - lr*wd)
//   m = beta1*m + (1-beta1)*g
//   v = beta2*v + (1-beta2)*g*g
//   p = p - (lr / (1-beta1^t)) * m / (sqrt(v) / sqrt(1-beta2^t) + eps)
// Not differentiable: optimizers run outside autograd.
//
// The per-step scalars (bias corrections, 1-beta, 1-lr*wd) are computed once on the host in double, as PyTorch
// does in Python, by the shared helpers below; CPU and CUDA then do the same float operations in the same order
// without fused multiply-adds, so both devices give bit-identical results.
// Multi-tensor variants (CUDA, as torch's _foreach/fused paths): one launch updates a whole list of tensors that
// share the group scalars (lr, weight decay); per-tensor state (SGD's first step, Adam's step count) travels in the
// launch's table. The per-element math is the single-tensor kernels' own code, so all paths agree bit for bit.
#pragma once
#include <cmath>
#include <cstdint>
#include <span>

namespace graft {

// The host-side scalars of one SGD step.
struct SGDScalars {
  float neg_lr;           // -lr
  float weight_decay;     // wd (0: skip)
  float momentum;         // 0: no buffer
  float one_minus_damp;   // 1 - dampening
};
inline SGDScalars sgd_scalars(float lr, float momentum, float dampening, float weight_decay) {
  return {-lr, weight_decay, momentum, static_cast<float>(1.0 - static_cast<double>(dampening))};
}

// The host-side scalars of one Adam/AdamW step at step t >= 1.
struct AdamScalars {
  float one_minus_beta1, one_minus_beta2;
  float beta1, beta2;
  float neg_step_size;    // -lr / (1 - beta1^t)
  float bias2_sqrt;       // sqrt(1 - beta2^t)
  float eps;
  float l2;               // Adam: wd added to the gradient (0 for AdamW)
  float decay;            // AdamW: 1 - lr*wd (1 for Adam)
};
inline AdamScalars adam_scalars(float lr, float beta1, float beta2, float eps, float weight_decay, bool decoupled,
                                std::int64_t step) {
  const double t = static_cast<double>(step);
  const double bias1 = 1.0 - std::pow(static_cast<double>(beta1), t);
  const double bias2 = 1.0 - std::pow(static_cast<double>(beta2), t);
  AdamScalars s;
  s.one_minus_beta1 = static_cast<float>(1.0 - beta1);
  s.one_minus_beta2 = static_cast<float>(1.0 - beta2);
  s.beta1 = beta1;
  s.beta2 = beta2;
  s.neg_step_size = static_cast<float>(-static_cast<double>(lr) / bias1);
  s.bias2_sqrt = static_cast<float>(std::sqrt(bias2));
  s.eps = eps;
  s.l2 = decoupled ? 0.f : weight_decay;
  s.decay = decoupled ? static_cast<float>(1.0 - static_cast<double>(lr) * weight_decay) : 1.f;
  return s;
}

// param, grad (n); momentum_buf (n), unused (may be null) when momentum == 0. first_step: the buffer is
// written, not read.
void sgd_step_cpu(float* param, float* momentum_buf, const float* grad, std::int64_t n, float lr, float momentum,
                  float dampening, float weight_decay, bool nesterov, bool first_step);
// param, exp_avg, exp_avg_sq, grad (n); step = t >= 1, the count including this step.
void adam_step_cpu(float* param, float* exp_avg, float* exp_avg_sq, const float* grad, std::int64_t n, float lr,
                   float beta1, float beta2, float eps, float weight_decay, bool decoupled, std::int64_t step);

// The multi-tensor CUDA steps' launch shape (below); plain constants, so tests size their cases by them in any build.
inline constexpr int kOptimizerMultiTensors = 64;     // tensors per launch
inline constexpr std::int64_t kOptimizerChunk = 16384;  // elements per block

#if GRAFT_HAS_CUDA
// Same contracts; grid-stride kernels on graft's compute stream (asynchronous).
void sgd_step_cuda(float* param, float* momentum_buf, const float* grad, std::int64_t n, float lr, float momentum,
                   float dampening, float weight_decay, bool nesterov, bool first_step);
void adam_step_cuda(float* param, float* exp_avg, float* exp_avg_sq, const float* grad, std::int64_t n, float lr,
                    float beta1, float beta2, float eps, float weight_decay, bool decoupled, std::int64_t step);

// Multi-tensor steps: every tensor of the list is updated as the single-tensor entry would, in as few launches
// as possible. The per-tensor pointers, sizes and flags are packed into a table passed by value as the kernel's
// parameter (no device allocation, no host-to-device copy, no synchronisation: capturable in a CUDA graph), up
// to kOptimizerMultiTensors tensors per launch; each block updates one chunk of kOptimizerChunk elements of one
// tensor. Tensors with n == 0 are skipped. Pointers must stay valid until the stream reaches the launch.
struct SGDMultiTensor {
  float* param;
  float* momentum_buf;  // null when momentum == 0
  const float* grad;
  std::int64_t n;
  bool first_step;      // the buffer is written, not read (this tensor's first step)
};
struct AdamMultiTensor {
  float* param;
  float* exp_avg;
  float* exp_avg_sq;
  const float* grad;
  std::int64_t n;
  std::int64_t step;    // t >= 1 of this tensor (a tensor skipped earlier may lag behind the others)
};
void sgd_step_multi_cuda(std::span<const SGDMultiTensor> tensors, float lr, float momentum, float dampening,
                         float weight_decay, bool nesterov);
void adam_step_multi_cuda(std::span<const AdamMultiTensor> tensors, float lr, float beta1, float beta2, float eps,
                          float weight_decay, bool decoupled);
#endif

}  // namespace graft
