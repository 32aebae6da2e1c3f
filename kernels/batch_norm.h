// Batch normalisation over the channels of an NHWC activation viewed as (M, C): M = N*H*W rows, C contiguous.
//   forward:  mean_c = 1/M sum_m x_mc,  var_c = 1/M sum_m (x_mc - mean_c)^2   (biased, used to normalise)
//             invstd_c = 1/sqrt(var_c + eps),  xhat = (x - mean) invstd,  y = gamma xhat + beta
//             running update (torch momentum m): r_mean = (1-m) r_mean + m mean,
//                                                 r_var  = (1-m) r_var  + m var * M/(M-1)   (unbiased)
//             with running statistics instead: mean = r_mean, invstd = 1/sqrt(r_var + eps)
//   backward: dbeta = sum_m dy,  dgamma = sum_m dy xhat
//             batch statistics:   dx = gamma invstd / M * (M dy - dbeta - xhat dgamma)
//             running statistics: dx = gamma invstd dy
// Fused epilogue (ResNet's bn -> relu and bn -> + identity -> relu): the forward optionally adds `residual` (M,C)
// and applies relu:  y = relu(gamma xhat + beta + residual). Its backward needs dz = dy * (y > 0) (torch's
// threshold_backward): the backward kernels take the mask (ReluMask below) and mask dout on the fly, so the masked
// gradient is never written out. Without a residual, y > 0 is gamma xhat + beta > 0, which the backward recomputes
// from the x it reads anyway instead of reading y: 5 passes over (M,C) in the backward instead of 7.
// gamma/beta may be null (1 and 0). Sums use double accumulation. The CUDA reductions are deterministic two-level
// reductions (per-block partial sums into a caller-provided workspace, then a final pass over the partials in a
// fixed order; no atomics). The CUDA versions run on graft's compute stream.
// The CPU computes the variance in two passes, sum (x - mean)^2; the CUDA statistics in one pass over the data,
// sum x and sum x^2 in double, var = E[x^2] - mean^2: the two agree to ~1e-6 relative in invstd while |mean| / std
// stays under ~10^5 (a host emulation measured 1.4e-6 at mean 1000, std 0.01; 2.6e-5 at std 0.001). Activations
// after a convolution are far from that; a NaN or inf in x gives NaN statistics on both.
#pragma once
#include <cstddef>
#include <cstdint>

namespace graft {

// Where the backward of a fused relu takes its mask y > 0 from:
//   none()                  no relu: dout passes as it is
//   of_output(y)            the saved output y (M,C) (a residual was added before the relu)
//   of_input(gamma, beta)   recomputed: gamma xhat + beta > 0, with the forward kernel's own float expression on the
//                           same device, so the same mask bit for bit without reading y; gamma and beta as in the
//                           forward (null: 1 and 0)
// The kernels take the kind as a template argument (each loop without a test; on the GPU no registers for a mask it
// does not apply). With of_input, the backward reads inp and mean also with running statistics.
struct ReluMask {
  enum class Kind { None, FromOutput, FromInput };
  const float* out = nullptr;
  bool from_input = false;
  const float* gamma = nullptr;
  const float* beta = nullptr;
  static ReluMask none() { return {}; }
  static ReluMask of_output(const float* y) { return {y, false, nullptr, nullptr}; }
  static ReluMask of_input(const float* gamma, const float* beta) { return {nullptr, true, gamma, beta}; }
  Kind kind() const { return from_input ? Kind::FromInput : out != nullptr ? Kind::FromOutput : Kind::None; }
};

// inp (M,C) -> mean, invstd (C); when running_mean/running_var are non-null they are updated in place.
void batch_norm_stats_cpu(float* mean, float* invstd, float* running_mean, float* running_var, const float* inp,
                          std::int64_t m, std::int64_t c, float eps, float momentum);
// var (C) -> invstd (C) = 1/sqrt(var + eps)
void batch_norm_invstd_cpu(float* invstd, const float* var, std::int64_t c, float eps);
// out, inp, residual (M,C); mean, invstd, gamma, beta (C); residual may be null
void batch_norm_forward_cpu(float* out, const float* inp, const float* mean, const float* invstd,
                            const float* gamma, const float* beta, std::int64_t m, std::int64_t c,
                            const float* residual = nullptr, bool relu = false);
// dout, inp (M,C) -> dgamma = sum dy xhat, dbeta = sum dy (C); dy = dout masked by `relu`
void batch_norm_backward_reduce_cpu(float* dgamma, float* dbeta, const float* dout, const float* inp,
                                    const float* mean, const float* invstd, std::int64_t m, std::int64_t c,
                                    const ReluMask& relu = ReluMask::none());
// dinp (M,C); sum_dy, sum_dy_xhat (C) come from batch_norm_backward_reduce (only read with batch statistics)
void batch_norm_backward_input_cpu(float* dinp, const float* dout, const float* inp, const float* mean,
                                   const float* invstd, const float* gamma, const float* sum_dy,
                                   const float* sum_dy_xhat, std::int64_t m, std::int64_t c, bool batch_stats,
                                   const ReluMask& relu = ReluMask::none());

#if GRAFT_HAS_CUDA
// Bytes of workspace batch_norm_stats_cuda and batch_norm_backward_reduce_cuda need for (M,C).
std::size_t batch_norm_workspace_cuda(std::int64_t m, std::int64_t c);
void batch_norm_stats_cuda(float* mean, float* invstd, float* running_mean, float* running_var, const float* inp,
                           std::int64_t m, std::int64_t c, float eps, float momentum, void* workspace);
void batch_norm_invstd_cuda(float* invstd, const float* var, std::int64_t c, float eps);
void batch_norm_forward_cuda(float* out, const float* inp, const float* mean, const float* invstd,
                             const float* gamma, const float* beta, std::int64_t m, std::int64_t c,
                             const float* residual = nullptr, bool relu = false);
// Inference with running statistics in one kernel: batch_norm_invstd_cuda + batch_norm_forward_cuda fused, bitwise
// the same result (invstd is recomputed per element in the same double expression; no (C) invstd tensor, one
// launch fewer per layer, which is what a batch-1 CUDA graph of ResNet-50 pays for). The CPU keeps the two steps.
void batch_norm_forward_running_cuda(float* out, const float* inp, const float* running_mean,
                                     const float* running_var, float eps, const float* gamma, const float* beta,
                                     std::int64_t m, std::int64_t c, const float* residual = nullptr,
                                     bool relu = false);
// masked_out (M,C), when non-null, receives dy = dout masked by `relu` (the residual's gradient), written in the
// same pass that sums it.
void batch_norm_backward_reduce_cuda(float* dgamma, float* dbeta, const float* dout, const float* inp,
                                     const float* mean, const float* invstd, std::int64_t m, std::int64_t c,
                                     void* workspace, const ReluMask& relu = ReluMask::none(),
                                     float* masked_out = nullptr);
void batch_norm_backward_input_cuda(float* dinp, const float* dout, const float* inp, const float* mean,
                                    const float* invstd, const float* gamma, const float* sum_dy,
                                    const float* sum_dy_xhat, std::int64_t m, std::int64_t c, bool batch_stats,
                                    const ReluMask& relu = ReluMask::none());

// The bias + relu epilogue of conv2d_relu (core/ops.h), on the same machinery:
//   forward:  y = relu(y + bias) in place over (M,C) rows (bias may be null);
//   backward: dz = dout (y > 0) written out, dbias = sum_m dz (skipped when dbias is null), in one pass with the
//             deterministic two-level reduction above; workspace: bias_relu_workspace_cuda(m, c) bytes.
void bias_relu_forward_cuda(float* y, const float* bias, std::int64_t m, std::int64_t c);
inline std::size_t bias_relu_workspace_cuda(std::int64_t m, std::int64_t c) { return batch_norm_workspace_cuda(m, c); }
void bias_relu_backward_cuda(float* dz, float* dbias, const float* dout, const float* y, std::int64_t m,
                             std::int64_t c, void* workspace);
#endif

}  // namespace graft
