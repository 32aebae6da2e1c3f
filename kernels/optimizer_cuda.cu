// CUDA fused optimizer updates (math in kernels/optimizer.h): one thread per element, grid-stride loops.
// Memory-bound (SGD: 4-5 floats moved per element, Adam: 7). Every operation is an explicit round-to-nearest
// intrinsic (__fmul_rn, __fadd_rn, __fdiv_rn, __fsqrt_rn) so nvcc cannot contract a multiply-add into an FMA:
// the result is bit-identical to the CPU reference, which does the same operations in the same order.
// Tensors may be views at any float offset, so no vector loads are assumed (a float4 path with an alignment
// check, or a multi-tensor launch, is a later speed issue).
#include <cstdint>

#include "kernels/cuda_device.h"
#include "kernels/optimizer.h"

namespace graft {
namespace {

using std::int64_t;

template <bool kMomentum, bool kNesterov, bool kFirst>
__global__ void sgd_step_kernel(float* param, float* momentum_buf, const float* grad, int64_t n, SGDScalars s) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    float d = grad[i];
    const float p = param[i];
    if (s.weight_decay != 0.f) d = __fadd_rn(d, __fmul_rn(s.weight_decay, p));
    if constexpr (kMomentum) {
      float b;
      if constexpr (kFirst) {
        b = d;
      } else {
        b = __fadd_rn(__fmul_rn(momentum_buf[i], s.momentum), __fmul_rn(s.one_minus_damp, d));
      }
      momentum_buf[i] = b;
      if constexpr (kNesterov) {
        d = __fadd_rn(d, __fmul_rn(s.momentum, b));
      } else {
        d = b;
      }
    }
    param[i] = __fadd_rn(p, __fmul_rn(s.neg_lr, d));
  }
}

__global__ void adam_step_kernel(float* param, float* exp_avg, float* exp_avg_sq, const float* grad, int64_t n,
                                 AdamScalars s) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    float g = grad[i];
    float p = param[i];
    if (s.l2 != 0.f) g = __fadd_rn(g, __fmul_rn(s.l2, p));
    if (s.decay != 1.f) p = __fmul_rn(p, s.decay);
    const float m = __fadd_rn(__fmul_rn(exp_avg[i], s.beta1), __fmul_rn(s.one_minus_beta1, g));
    const float v = __fadd_rn(__fmul_rn(exp_avg_sq[i], s.beta2), __fmul_rn(__fmul_rn(s.one_minus_beta2, g), g));
    exp_avg[i] = m;
    exp_avg_sq[i] = v;
    const float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(v), s.bias2_sqrt), s.eps);
    param[i] = __fadd_rn(p, __fdiv_rn(__fmul_rn(s.neg_step_size, m), denom));
  }
}

template <bool kMomentum, bool kNesterov, bool kFirst>
void launch_sgd(float* param, float* momentum_buf, const float* grad, int64_t n, const SGDScalars& s) {
  sgd_step_kernel<kMomentum, kNesterov, kFirst>
      <<<cuda::grid_for(n), cuda::kBlock, 0, cuda::stream()>>>(param, momentum_buf, grad, n, s);
  GRAFT_CUDA_CHECK_LAUNCH("sgd_step_kernel");
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

}  // namespace graft
