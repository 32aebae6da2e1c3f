// CPU reference of the fused optimizer updates (math in kernels/optimizer.h).
// Each statement is one rounded float operation in PyTorch's order; kernels/sources.cmake compiles this file with
// -ffp-contract=off so no multiply-add is fused and the CUDA kernels (which spell out __fmul_rn/__fadd_rn) match
// it bit for bit.
#include <cmath>

#include "kernels/optimizer.h"

namespace graft {

void sgd_step_cpu(float* param, float* momentum_buf, const float* grad, std::int64_t n, float lr, float momentum,
                  float dampening, float weight_decay, bool nesterov, bool first_step) {
  const SGDScalars s = sgd_scalars(lr, momentum, dampening, weight_decay);
  for (std::int64_t i = 0; i < n; ++i) {
    float d = grad[i];
    if (s.weight_decay != 0.f) d = d + s.weight_decay * param[i];
    if (s.momentum != 0.f) {
      float b = first_step ? d : momentum_buf[i] * s.momentum + s.one_minus_damp * d;
      momentum_buf[i] = b;
      d = nesterov ? d + s.momentum * b : b;
    }
    param[i] = param[i] + s.neg_lr * d;
  }
}

void adam_step_cpu(float* param, float* exp_avg, float* exp_avg_sq, const float* grad, std::int64_t n, float lr,
                   float beta1, float beta2, float eps, float weight_decay, bool decoupled, std::int64_t step) {
  const AdamScalars s = adam_scalars(lr, beta1, beta2, eps, weight_decay, decoupled, step);
  for (std::int64_t i = 0; i < n; ++i) {
    float g = grad[i];
    float p = param[i];
    if (s.l2 != 0.f) g = g + s.l2 * p;
    if (s.decay != 1.f) p = p * s.decay;
    const float m = exp_avg[i] * s.beta1 + s.one_minus_beta1 * g;
    const float v = exp_avg_sq[i] * s.beta2 + (s.one_minus_beta2 * g) * g;
    exp_avg[i] = m;
    exp_avg_sq[i] = v;
    const float denom = std::sqrt(v) / s.bias2_sqrt + s.eps;
    param[i] = p + (s.neg_step_size * m) / denom;
  }
}

}  // namespace graft
