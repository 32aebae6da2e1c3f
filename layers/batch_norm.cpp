#include "layers/batch_norm.h"

#include <sstream>

#include "core/ops.h"
#include "layers/basic.h"

namespace graft {

void BatchNorm2d::set_eps(float eps) {
  GRAFT_CHECK(eps >= 0.f, "BatchNorm2d: set_eps(", eps, "): eps must be >= 0");
  eps_ = eps;
}

BatchNorm2d::BatchNorm2d(int channels, float eps, float momentum)
    : channels_(channels), eps_(eps), momentum_(momentum) {
  GRAFT_CHECK(channels > 0 && eps >= 0.f && momentum >= 0.f && momentum <= 1.f, "BatchNorm2d: channels ", channels,
              ", eps ", eps, ", momentum ", momentum, ": channels must be positive, eps >= 0, momentum in [0, 1]");
  register_parameter("weight", Tensor::ones({channels}));
  register_parameter("bias", Tensor::zeros({channels}));
  register_buffer("running_mean", Tensor::zeros({channels}));
  register_buffer("running_var", Tensor::ones({channels}));
}

Tensor BatchNorm2d::forward(const Tensor& x) {
  return batch_norm(x, parameter("weight"), parameter("bias"), buffer("running_mean"), buffer("running_var"),
                    use_batch_stats_, update_running_, momentum_, eps_);
}

Tensor BatchNorm2d::forward_add_relu(const Tensor& x, const std::optional<Tensor>& residual, bool relu) {
  Tensor y = batch_norm_add_relu(x, parameter("weight"), parameter("bias"), buffer("running_mean"),
                                 buffer("running_var"), use_batch_stats_, update_running_, momentum_, eps_, residual,
                                 relu);
  set_last_output_shape(y.shape());
  return y;
}

void BatchNorm2d::train(bool training) {
  training_ = training;
  if (!pinned_) use_batch_stats_ = update_running_ = training;
}

void BatchNorm2d::pin_stats(bool use_batch_stats, bool update_running) {
  pinned_ = true;
  use_batch_stats_ = use_batch_stats;
  update_running_ = update_running;
}

void BatchNorm2d::unpin_stats() {
  pinned_ = false;
  use_batch_stats_ = update_running_ = training_;
}

void BatchNorm2d::freeze_bn() {
  pin_stats(false, false);
  freeze("*");
}

bool BatchNorm2d::learn_affine() const {
  for (auto& [name, t] : named_parameters())
    if (t.requires_grad()) return true;
  return false;
}

std::string BatchNorm2d::mode() const {
  std::string s = use_batch_stats_ ? "batch stats" : "running stats";
  if (update_running_) s += ", updating";
  if (pinned_) s += ", pinned";
  s += learn_affine() ? ", affine trainable" : ", affine frozen";
  return s;
}

std::string BatchNorm2d::describe() const {
  std::ostringstream s;
  s << channels_ << ", eps " << eps_ << ", momentum " << momentum_;
  return s.str();
}

Tensor norm_add_relu(Module& norm, Module* activation, const Tensor& y, const std::optional<Tensor>& residual) {
  auto* batch_norm = dynamic_cast<BatchNorm2d*>(&norm);
  auto* plain_relu = dynamic_cast<ReLU*>(activation);
  if (batch_norm && (activation == nullptr || plain_relu)) {
    Tensor out = batch_norm->forward_add_relu(y, residual, true);
    if (plain_relu) plain_relu->set_last_output_shape(out.shape());  // for summaries: it ran, fused
    return out;
  }
  Tensor out = norm(y);
  if (residual) out = add(out, *residual);
  return activation ? (*activation)(out) : relu(out);
}

}  // namespace graft
