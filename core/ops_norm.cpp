// batch_norm: forward (batch or running statistics, optional running update) and its backward; batch_norm_add_relu:
// the same with ResNet's epilogue (+ residual, relu) fused into the normalise pass and the backward kernels.
#include <cmath>

#include "core/autograd.h"
#include "core/error.h"
#include "core/ops.h"
#include "kernels/batch_norm.h"
#include "kernels/elementwise.h"
#if GRAFT_HAS_CUDA
#include "kernels/cuda_device.h"
#endif

namespace graft {
namespace {

// A (C) float32 tensor on x's device.
void check_channel_vector(const Tensor& t, const Tensor& x, const char* arg) {
  check_float(t, "batch_norm", arg);
  GRAFT_CHECK(t.shape() == Shape{x.dim(-1)}, "batch_norm: ", arg, " ", shape_str(t.shape()), " does not match the ",
              x.dim(-1), " channels of x ", shape_str(x.shape()), " (expected (", x.dim(-1), "))");
  GRAFT_CHECK(t.device() == x.device(), "batch_norm: ", arg, " ", shape_str(t.shape()), " is on ", t.device().str(),
              ", x ", shape_str(x.shape()), " on ", x.device().str());
}

const float* data_or_null(const Tensor& t) { return t.defined() ? t.data<float>() : nullptr; }

#if GRAFT_HAS_CUDA
Tensor cuda_workspace(std::int64_t m, std::int64_t c) {
  std::size_t bytes = batch_norm_workspace_cuda(m, c);
  return Tensor::empty({static_cast<std::int64_t>((bytes + 3) / 4)}, kCUDA);
}
#endif

}  // namespace

Tensor batch_norm(const Tensor& x, const std::optional<Tensor>& gamma, const std::optional<Tensor>& beta,
                  Tensor& running_mean, Tensor& running_var, bool use_batch_stats, bool update_running,
                  float momentum, float eps) {
  return batch_norm_add_relu(x, gamma, beta, running_mean, running_var, use_batch_stats, update_running, momentum, eps,
                             std::nullopt, false);
}

Tensor batch_norm_add_relu(const Tensor& x, const std::optional<Tensor>& gamma_arg,
                           const std::optional<Tensor>& beta_arg, Tensor& running_mean, Tensor& running_var,
                           bool use_batch_stats, bool update_running, float momentum, float eps,
                           const std::optional<Tensor>& residual_arg, bool relu) {
  check_float(x, "batch_norm", "x");
  GRAFT_CHECK(x.ndim() >= 2, "batch_norm: x ", shape_str(x.shape()), " must be (N,C) or (N,H,W,C)");
  const std::int64_t c = x.dim(-1);
  GRAFT_CHECK(c > 0, "batch_norm: x ", shape_str(x.shape()), " has no channels");
  const std::int64_t m = x.numel() / c;
  GRAFT_CHECK(std::isfinite(eps) && eps >= 0.f, "batch_norm: eps ", eps, " must be finite and >= 0");
  GRAFT_CHECK(!update_running || use_batch_stats,
              "batch_norm: update_running needs use_batch_stats (running statistics are only updated from a batch)");
  GRAFT_CHECK(!update_running || (momentum >= 0.f && momentum <= 1.f), "batch_norm: momentum ", momentum,
              " must be in [0,1]");
  GRAFT_CHECK(!use_batch_stats || m >= 2, "batch_norm: batch statistics need more than one value per channel, x ",
              shape_str(x.shape()), " has ", m);
  Tensor gamma = gamma_arg ? *gamma_arg : Tensor();
  Tensor beta = beta_arg ? *beta_arg : Tensor();
  if (gamma.defined()) check_channel_vector(gamma, x, "gamma");
  if (beta.defined()) check_channel_vector(beta, x, "beta");
  const bool reads_running = !use_batch_stats || update_running;
  if (reads_running) {
    GRAFT_CHECK(running_mean.defined() && running_var.defined(), "batch_norm: running_mean/running_var are needed ",
                use_batch_stats ? "to update them" : "to normalise with running statistics", " but undefined");
    check_channel_vector(running_mean, x, "running_mean");
    check_channel_vector(running_var, x, "running_var");
  }
  Tensor residual = residual_arg ? *residual_arg : Tensor();
  if (residual.defined()) {
    check_float(residual, "batch_norm", "residual");
    GRAFT_CHECK(residual.shape() == x.shape() && residual.device() == x.device(), "batch_norm: residual ",
                shape_str(residual.shape()), " on ", residual.device().str(), " must match x ", shape_str(x.shape()),
                " on ", x.device().str());
  }
  const Device dev = x.device();
  const bool records = autograd::needs_grad({&x, &gamma, &beta, &residual});

#if GRAFT_HAS_CUDA
  // Inference on the GPU with running statistics: invstd is computed inside the normalise kernel (bitwise the same
  // as the two steps below; one launch per layer fewer, no (C) tensor).
  if (!use_batch_stats && !records && dev.is_cuda()) {
    Tensor out = Tensor::empty(x.shape(), dev);
    batch_norm_forward_running_cuda(out.data<float>(), x.data<float>(), running_mean.data<float>(),
                                    running_var.data<float>(), eps, data_or_null(gamma), data_or_null(beta), m, c,
                                    data_or_null(residual), relu);
    return out;
  }
#endif

  // The statistics this forward normalises with; the backward uses the same ones.
  Tensor mean = use_batch_stats ? Tensor::empty({c}, dev) : Tensor(), invstd = Tensor::empty({c}, dev);
  float* rm = update_running ? running_mean.data<float>() : nullptr;
  float* rv = update_running ? running_var.data<float>() : nullptr;
  if (use_batch_stats) {
#if GRAFT_HAS_CUDA
    if (dev.is_cuda()) {
      Tensor workspace = cuda_workspace(m, c);
      batch_norm_stats_cuda(mean.data<float>(), invstd.data<float>(), rm, rv, x.data<float>(), m, c, eps, momentum,
                            workspace.data<void>());
    } else
#endif
      batch_norm_stats_cpu(mean.data<float>(), invstd.data<float>(), rm, rv, x.data<float>(), m, c, eps, momentum);
  } else {
    NoGradGuard no_grad;
    // A copy when a backward will read it: the buffer may be updated in place before the backward runs.
    mean = records ? running_mean.detach().clone() : running_mean.detach();
#if GRAFT_HAS_CUDA
    if (dev.is_cuda()) batch_norm_invstd_cuda(invstd.data<float>(), running_var.data<float>(), c, eps); else
#endif
    batch_norm_invstd_cpu(invstd.data<float>(), running_var.data<float>(), c, eps);
  }

  Tensor out = Tensor::empty(x.shape(), dev);
#if GRAFT_HAS_CUDA
  if (dev.is_cuda())
    batch_norm_forward_cuda(out.data<float>(), x.data<float>(), mean.data<float>(), invstd.data<float>(),
                            data_or_null(gamma), data_or_null(beta), m, c, data_or_null(residual), relu);
  else
#endif
    batch_norm_forward_cpu(out.data<float>(), x.data<float>(), mean.data<float>(), invstd.data<float>(),
                           data_or_null(gamma), data_or_null(beta), m, c, data_or_null(residual), relu);

  if (records) {
    Tensor xs = x.detach(), gs = gamma.defined() ? gamma.detach() : Tensor();
    // relu's mask y > 0: read from y where a residual was added before the relu; without one, recomputed by the
    // backward kernels from x as gamma xhat + beta > 0 (kernels/batch_norm.h ReluMask), so y is not kept for it.
    // gamma and beta are read as they are at the backward (as gamma already was for dx): changing them in place
    // between a forward and its backward is not supported.
    Tensor ys = relu && residual.defined() ? out.detach() : Tensor();
    Tensor bs = relu && !residual.defined() && beta.defined() ? beta.detach() : Tensor();
    const bool relu_from_input = relu && !residual.defined();
    autograd::record(out, residual.defined() || relu ? "batch_norm_add_relu" : "batch_norm",
                     {&x, &gamma, &beta, &residual},
                     [xs, gs, bs, ys, mean, invstd, m, c, use_batch_stats, relu_from_input](
                         const Tensor& dout_arg, const std::vector<bool>& needs) {
                       const Device d = xs.device();
                       // With relu, dz = dout (y > 0). The residual's gradient is dz itself, so then dz is written
                       // out once (on CUDA by the reduction pass itself); otherwise the batch-norm kernels mask
                       // dout as they read it.
                       // sum(dy) and sum(dy xhat): dbeta and dgamma, and part of dx with batch statistics
                       const bool reduce = needs[1] || needs[2] || (needs[0] && use_batch_stats);
                       // On CUDA the reduction writes dz while it sums it (one pass fewer).
                       [[maybe_unused]] const bool dz_in_reduce = d.is_cuda() && reduce && ys.defined() && needs[3];
                       Tensor dout = dout_arg, dresidual;
                       ReluMask mask = relu_from_input ? ReluMask::of_input(data_or_null(gs), data_or_null(bs))
                                                       : ReluMask::none();
                       if (ys.defined() && needs[3]) {
                         dout = Tensor::empty(ys.shape(), d);
#if GRAFT_HAS_CUDA
                         if (d.is_cuda()) {
                           if (!dz_in_reduce)
                             relu_backward_cuda(dout.data<float>(), dout_arg.data<float>(), ys.data<float>(),
                                                ys.numel());
                         } else
#endif
                           relu_backward_cpu(dout.data<float>(), dout_arg.data<float>(), ys.data<float>(), ys.numel());
                       } else if (ys.defined()) {
                         mask = ReluMask::of_output(ys.data<float>());
                       }
                       if (needs[3]) dresidual = dout;
                       Tensor dgamma, dbeta, dx;
                       if (reduce) {
                         dgamma = Tensor::empty({c}, d), dbeta = Tensor::empty({c}, d);
#if GRAFT_HAS_CUDA
                         if (d.is_cuda()) {
                           Tensor workspace = cuda_workspace(m, c);
                           const Tensor& dy_in = dz_in_reduce ? dout_arg : dout;
                           batch_norm_backward_reduce_cuda(
                               dgamma.data<float>(), dbeta.data<float>(), dy_in.data<float>(), xs.data<float>(),
                               mean.data<float>(), invstd.data<float>(), m, c, workspace.data<void>(),
                               dz_in_reduce ? ReluMask::of_output(ys.data<float>()) : mask,
                               dz_in_reduce ? dout.data<float>() : nullptr);
                         } else
#endif
                           batch_norm_backward_reduce_cpu(dgamma.data<float>(), dbeta.data<float>(),
                                                          dout.data<float>(), xs.data<float>(), mean.data<float>(),
                                                          invstd.data<float>(), m, c, mask);
                       }
                       if (needs[0]) {
                         dx = Tensor::empty(xs.shape(), d);
                         const float* sum_dy = reduce ? dbeta.data<float>() : nullptr;
                         const float* sum_dy_xhat = reduce ? dgamma.data<float>() : nullptr;
#if GRAFT_HAS_CUDA
                         if (d.is_cuda())
                           batch_norm_backward_input_cuda(dx.data<float>(), dout.data<float>(), xs.data<float>(),
                                                          mean.data<float>(), invstd.data<float>(), data_or_null(gs),
                                                          sum_dy, sum_dy_xhat, m, c, use_batch_stats, mask);
                         else
#endif
                           batch_norm_backward_input_cpu(dx.data<float>(), dout.data<float>(), xs.data<float>(),
                                                         mean.data<float>(), invstd.data<float>(), data_or_null(gs),
                                                         sum_dy, sum_dy_xhat, m, c, use_batch_stats, mask);
                       }
                       return std::vector<Tensor>{dx, needs[1] ? dgamma : Tensor(), needs[2] ? dbeta : Tensor(),
                                                  dresidual};
                     });
  }
  return out;
}

}  // namespace graft
