// BatchNorm2d with three switches that a parent's train()/eval() cannot surprise:
//   learn_affine      - gamma/beta are trainable (their requires_grad; freeze()/unfreeze() act on it too)
//   use_batch_stats   - normalise with the batch's statistics (training) or the running ones (inference)
//   update_running    - fold batch statistics into running_mean/var (torch momentum: r = (1-m) r + m b)
// By default the last two follow train()/eval(), as in PyTorch. pin_stats(...) or freeze_bn() fixes them: a later
// train() on the parent leaves them as set. Keras's momentum 0.99 is torch's 0.01.
#pragma once
#include <optional>

#include "layers/module.h"

namespace graft {

class BatchNorm2d : public Module {
 public:
  explicit BatchNorm2d(int channels, float eps = 1e-5f, float momentum = 0.1f);
  Tensor forward(const Tensor& x) override;
  // relu(bn(x) + residual) in one fused op (core/ops.h batch_norm_add_relu): ResNet's block epilogues.
  Tensor forward_add_relu(const Tensor& x, const std::optional<Tensor>& residual, bool relu);
  std::string type_name() const override { return "BatchNorm2d"; }
  std::string describe() const override;
  void train(bool training = true) override;

  // Fixes the statistics behaviour regardless of train()/eval().
  void pin_stats(bool use_batch_stats, bool update_running);
  void unpin_stats();  // follow train()/eval() again
  // For fine-tuning: running statistics, no updates, gamma/beta frozen; stays so under train().
  void freeze_bn();

  bool use_batch_stats() const { return use_batch_stats_; }
  bool update_running() const { return update_running_; }
  bool stats_pinned() const { return pinned_; }
  bool learn_affine() const;
  int channels() const { return channels_; }
  float eps() const { return eps_; }
  float momentum() const { return momentum_; }
  void set_eps(float eps);  // eps >= 0 (graft::Error otherwise)
  // "batch stats, updating" / "running stats, frozen" ...: the state a summary shows.
  std::string mode() const;

 private:
  int channels_;
  float eps_, momentum_;
  bool use_batch_stats_ = true, update_running_ = true, pinned_ = false;
};

// relu(norm(y) + residual) through whichever modules now sit where a network registered its norm and its activation
// (replace_module may have swapped either): batch norm's fused epilogue (one pass, core/ops.h batch_norm_add_relu)
// when they are a BatchNorm2d and a ReLU - activation null meaning a plain relu -, else each module's own forward.
// The residual is optional.
Tensor norm_add_relu(Module& norm, Module* activation, const Tensor& y, const std::optional<Tensor>& residual);

}  // namespace graft
