// Optimizers (SGD, Adam, AdamW) with parameter groups, and gradient clipping.
//
// An optimizer is not an autograd op: step() updates the parameters in place with grad mode off: one fused kernel
// per CPU parameter tensor, and on CUDA one multi-tensor launch per group (per 64 tensors; kernels/optimizer.h),
// asynchronous, with no host synchronisation and no device allocation after the first step. It holds the
// parameters as Tensors sharing their impls with the model, so the updates are what the model sees. The update math follows torch.optim exactly (see
// kernels/optimizer.h); the constructors reject the same hyperparameters torch rejects, with graft::Error.
//
//   SGD opt({{backbone_params, 1e-3f, 1e-4f, "backbone"}, {head_params, 1e-2f, 0.f, "head"}}, {.momentum = 0.9f});
//   loss.backward();  opt.step();  opt.zero_grad();
//
// A parameter whose grad is undefined (frozen, or unused by this step's graph) is skipped: not touched, and its
// state (including Adam's step count) does not advance, as in PyTorch.
//
// State, for checkpoints: state() returns named tensors (keys below, g = group index, i = index within the
// group), only for parameters that have state (i.e. were stepped at least once):
//   SGD with momentum:  "group<g>.param<i>.momentum_buffer"
//   Adam / AdamW:       "group<g>.param<i>.exp_avg", "group<g>.param<i>.exp_avg_sq", "group<g>.param<i>.step"
// "step" is a one-element float32 CPU tensor holding the count of steps taken (as torch 1.13 stores it; exact up
// to 2^24 steps). The buffers share storage with the optimizer (no copy: they change with the next step()).
// load_state(map) replaces the whole state with copies of the map's tensors, moved to each parameter's device;
// it throws graft::Error on an unknown key, a shape mismatch or an incomplete entry. Hyperparameters (group lr,
// weight decay, betas) are not part of the state: they come from the constructor and the LR schedule's position.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace graft {

struct ParamGroup {
  std::vector<Tensor> params;  // leaf float32 tensors
  float lr = 0.f;              // the value LR schedules scale
  float weight_decay = 0.f;
  std::string name;            // for messages and summaries only
};

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  // Updates every parameter that has a gradient. Throws graft::Error on a gradient whose shape or device does
  // not match its parameter, or on an invalid group lr / weight decay (e.g. a negative lr set by hand).
  virtual void step() = 0;
  // Drops the gradients of all parameters (Tensor::zero_grad; the next backward allocates fresh ones).
  void zero_grad();

  // Groups are mutable so that schedules (and users) can change lr / weight_decay between steps. Appending
  // parameters to a group is allowed; reordering or removing them misaligns the state with the parameters.
  std::vector<ParamGroup>& param_groups() { return groups_; }
  const std::vector<ParamGroup>& param_groups() const { return groups_; }
  // All parameters of all groups, in group order (e.g. for clip_grad_norm).
  std::vector<Tensor> params() const;

  virtual std::map<std::string, Tensor> state() const = 0;
  virtual void load_state(const std::map<std::string, Tensor>& state) = 0;

 protected:
  // Checks the groups (non-empty overall, defined float32 leaves, no parameter twice, lr/wd valid).
  Optimizer(std::vector<ParamGroup> groups, const char* name);
  // Throws unless group `g` has a valid lr and weight decay.
  void check_group(std::size_t g) const;
  // check_group for every group and check_grad for every parameter with a gradient: step() calls it before
  // updating anything, so a bad group or gradient leaves all parameters untouched.
  void check_all() const;
  // Throws unless p's gradient matches p in shape, device and dtype.
  void check_grad(const Tensor& p, const Tensor& grad, std::size_t g, std::size_t i) const;
  static std::string key(std::size_t g, std::size_t i, const char* what);

  std::vector<ParamGroup> groups_;
  const char* name_;
};

// torch.optim.SGD. nesterov needs momentum > 0 and dampening == 0.
struct SGDOptions {
  float lr = 0.01f;            // only for the one-list constructor (groups carry their own)
  float momentum = 0.f;
  float dampening = 0.f;
  float weight_decay = 0.f;    // only for the one-list constructor (groups carry their own)
  bool nesterov = false;
};

class SGD : public Optimizer {
 public:
  // One group holding `params`, with options.lr and options.weight_decay.
  SGD(std::vector<Tensor> params, const SGDOptions& options);
  // Several groups, each with its own lr and weight decay; options.lr and options.weight_decay are not used.
  SGD(std::vector<ParamGroup> groups, const SGDOptions& options);

  void step() override;
  std::map<std::string, Tensor> state() const override;
  void load_state(const std::map<std::string, Tensor>& state) override;
  const SGDOptions& options() const { return options_; }

 private:
  SGDOptions options_;
  std::vector<std::vector<Tensor>> momentum_;  // [group][param], undefined until the first step
};

// torch.optim.Adam (weight_decay is L2: added to the gradient) and torch.optim.AdamW (decoupled: p -= lr*wd*p).
struct AdamOptions {
  float lr = 1e-3f;            // only for the one-list constructor
  float beta1 = 0.9f;
  float beta2 = 0.999f;
  float eps = 1e-8f;
  float weight_decay = 0.f;    // only for the one-list constructor
};
struct AdamWOptions {          // AdamOptions with torch.optim.AdamW's default weight decay
  float lr = 1e-3f;
  float beta1 = 0.9f;
  float beta2 = 0.999f;
  float eps = 1e-8f;
  float weight_decay = 1e-2f;
};

class Adam : public Optimizer {
 public:
  Adam(std::vector<Tensor> params, const AdamOptions& options);
  Adam(std::vector<ParamGroup> groups, const AdamOptions& options);

  void step() override;
  std::map<std::string, Tensor> state() const override;
  void load_state(const std::map<std::string, Tensor>& state) override;
  const AdamOptions& options() const { return options_; }
  bool decoupled() const { return decoupled_; }

 protected:
  Adam(std::vector<ParamGroup> groups, const AdamOptions& options, bool decoupled, const char* name);

 private:
  struct Slot {
    Tensor exp_avg, exp_avg_sq;  // undefined until the first step
    std::int64_t step = 0;
  };
  AdamOptions options_;
  bool decoupled_;
  std::vector<std::vector<Slot>> slots_;  // [group][param]
};

class AdamW : public Adam {
 public:
  AdamW(std::vector<Tensor> params, const AdamWOptions& options);
  AdamW(std::vector<ParamGroup> groups, const AdamWOptions& options);
};

// torch.nn.utils.clip_grad_norm_ (2-norm): total = sqrt(sum over grads of sum(g*g)); when
// max_norm / (total + 1e-6) < 1, every grad is scaled in place by that factor. Returns total (0 when no
// parameter has a grad). Parameters without a grad are skipped. Runs on any device with graft ops (one
// temporary the size of the largest gradient); reading the total back synchronizes with the device once.
// A non-finite total (inf/NaN gradients) leaves the grads unscaled and is returned, so the caller can skip the
// step (torch would scale them by 0 or NaN). Throws graft::Error when max_norm is negative or NaN.
float clip_grad_norm(const std::vector<Tensor>& params, float max_norm);
// Every parameter's grad *= factor, in place, on its own device (parameters without a grad are skipped).
void scale_grads(const std::vector<Tensor>& params, float factor);

}  // namespace graft
