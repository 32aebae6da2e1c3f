// Optimizers and gradient clipping (contracts in core/optim.h, update math in kernels/optimizer.h).
#include "core/optim.h"

#include <charconv>
#include <cmath>
#include <set>

#include "core/autograd.h"
#include "core/error.h"
#include "core/ops.h"
#include "kernels/cuda_graph.h"
#include "kernels/elementwise.h"
#include "kernels/optimizer.h"

namespace graft {
namespace {

std::string describe_group(const std::vector<ParamGroup>& groups, std::size_t g) {
  std::string s = "group " + std::to_string(g);
  if (!groups[g].name.empty()) s += " ('" + groups[g].name + "')";
  return s;
}

// Parses "group<g>.param<i>.<what>"; false when the key does not have that form.
bool parse_key(const std::string& key, std::size_t& g, std::size_t& i, std::string& what) {
  auto number = [&](std::size_t& pos, const char* prefix, std::size_t& value) {
    const std::string p(prefix);
    if (key.compare(pos, p.size(), p) != 0) return false;
    pos += p.size();
    const char* begin = key.data() + pos;
    const char* end = key.data() + key.size();
    auto [next, ec] = std::from_chars(begin, end, value);
    if (ec != std::errc() || next == begin) return false;
    pos += static_cast<std::size_t>(next - begin);
    return true;
  };
  std::size_t pos = 0;
  if (!number(pos, "group", g) || !number(pos, ".param", i)) return false;
  if (pos >= key.size() || key[pos] != '.') return false;
  what = key.substr(pos + 1);
  return !what.empty();
}

// A private copy of a state tensor on `device` (never aliasing the caller's map).
Tensor copy_to(const Tensor& t, Device device) {
  Tensor src = t.detach();
  return src.device() == device ? src.clone() : src.to(device);
}

}  // namespace

// ---- Optimizer ----------------------------------------------------------------------------------------------------

Optimizer::Optimizer(std::vector<ParamGroup> groups, const char* name) : groups_(std::move(groups)), name_(name) {
  std::size_t total = 0;
  std::set<const TensorImpl*> seen;
  for (std::size_t g = 0; g < groups_.size(); ++g) {
    check_group(g);
    const auto& params = groups_[g].params;
    for (std::size_t i = 0; i < params.size(); ++i) {
      const Tensor& p = params[i];
      const std::string where = describe_group(groups_, g) + " param " + std::to_string(i);
      GRAFT_CHECK(p.defined(), name_, ": ", where, " is an undefined tensor");
      GRAFT_CHECK(p.dtype() == DType::Float32, name_, ": ", where, " ", shape_str(p.shape()), " is ",
                  dtype_name(p.dtype()), ", expected float32");
      GRAFT_CHECK(p.is_leaf(), name_, ": ", where, " ", shape_str(p.shape()),
                  " is not a leaf tensor (it is the output of an op); optimizers update leaves only");
      GRAFT_CHECK(seen.insert(p.impl()).second, name_, ": ", where, " ", shape_str(p.shape()),
                  " appears more than once in the parameter groups");
    }
    total += params.size();
  }
  GRAFT_CHECK(total > 0, name_, ": got an empty parameter list (", groups_.size(), " groups, no parameters)");
}

void Optimizer::check_group(std::size_t g) const {
  const ParamGroup& group = groups_[g];
  GRAFT_CHECK(std::isfinite(group.lr) && group.lr >= 0.f, name_, ": invalid learning rate ", group.lr, " in ",
              describe_group(groups_, g), " (must be finite and >= 0)");
  GRAFT_CHECK(std::isfinite(group.weight_decay) && group.weight_decay >= 0.f, name_, ": invalid weight_decay ",
              group.weight_decay, " in ", describe_group(groups_, g), " (must be finite and >= 0)");
}

void Optimizer::check_grad(const Tensor& p, const Tensor& grad, std::size_t g, std::size_t i) const {
  GRAFT_CHECK(grad.dtype() == DType::Float32 && grad.shape() == p.shape() && grad.device() == p.device(), name_,
              ": gradient ", shape_str(grad.shape()), " ", dtype_name(grad.dtype()), " on ", grad.device().str(),
              " of ", describe_group(groups_, g), " param ", i, " does not match the parameter ",
              shape_str(p.shape()), " float32 on ", p.device().str());
}

std::string Optimizer::key(std::size_t g, std::size_t i, const char* what) {
  return "group" + std::to_string(g) + ".param" + std::to_string(i) + "." + what;
}

void Optimizer::zero_grad() {
  for (auto& group : groups_)
    for (auto& p : group.params) p.zero_grad();
}

std::vector<Tensor> Optimizer::params() const {
  std::vector<Tensor> all;
  for (const auto& group : groups_) all.insert(all.end(), group.params.begin(), group.params.end());
  return all;
}

// ---- SGD ----------------------------------------------------------------------------------------------------------

SGD::SGD(std::vector<Tensor> params, const SGDOptions& options)
    : SGD(std::vector<ParamGroup>{ParamGroup{std::move(params), options.lr, options.weight_decay, ""}}, options) {}

SGD::SGD(std::vector<ParamGroup> groups, const SGDOptions& options)
    : Optimizer(std::move(groups), "SGD"), options_(options) {
  GRAFT_CHECK(std::isfinite(options.momentum) && options.momentum >= 0.f, "SGD: invalid momentum ",
              options.momentum, " (must be finite and >= 0)");
  GRAFT_CHECK(std::isfinite(options.dampening), "SGD: invalid dampening ", options.dampening);
  GRAFT_CHECK(!options.nesterov || (options.momentum > 0.f && options.dampening == 0.f),
              "SGD: nesterov momentum requires a momentum > 0 and zero dampening (got momentum ", options.momentum,
              ", dampening ", options.dampening, ")");
  momentum_.resize(groups_.size());
}

void Optimizer::check_all() const {
  for (std::size_t g = 0; g < groups_.size(); ++g) {
    check_group(g);
    for (std::size_t i = 0; i < groups_[g].params.size(); ++i) {
      const Tensor& p = groups_[g].params[i];
      if (Tensor grad = p.grad(); grad.defined()) check_grad(p, grad, g, i);
    }
  }
}

void SGD::step() {
  NoGradGuard no_grad;
  check_all();
  momentum_.resize(groups_.size());
  const bool use_momentum = options_.momentum != 0.f;
  for (std::size_t g = 0; g < groups_.size(); ++g) {
    const ParamGroup& group = groups_[g];
    momentum_[g].resize(group.params.size());
#if GRAFT_HAS_CUDA
    std::vector<SGDMultiTensor> on_cuda;  // this group's CUDA parameters: one multi-tensor step below
#endif
    for (std::size_t i = 0; i < group.params.size(); ++i) {
      const Tensor& p = group.params[i];
      const Tensor grad = p.grad();
      if (!grad.defined()) continue;
      Tensor& buf = momentum_[g][i];
      const bool first = use_momentum && !buf.defined();
      if (first) buf = Tensor::empty(p.shape(), p.device());  // written, not read, by the first step
      float* buf_data = use_momentum ? buf.data<float>() : nullptr;
#if GRAFT_HAS_CUDA
      if (p.is_cuda()) {
        on_cuda.push_back({p.data<float>(), buf_data, grad.data<float>(), p.numel(), first});
        continue;
      }
#endif
      sgd_step_cpu(p.data<float>(), buf_data, grad.data<float>(), p.numel(), group.lr, options_.momentum,
                   options_.dampening, group.weight_decay, options_.nesterov, first);
    }
#if GRAFT_HAS_CUDA
    sgd_step_multi_cuda(on_cuda, group.lr, options_.momentum, options_.dampening, group.weight_decay,
                        options_.nesterov);
#endif
  }
}

std::map<std::string, Tensor> SGD::state() const {
  std::map<std::string, Tensor> out;
  for (std::size_t g = 0; g < momentum_.size(); ++g)
    for (std::size_t i = 0; i < momentum_[g].size(); ++i)
      if (momentum_[g][i].defined()) out[key(g, i, "momentum_buffer")] = momentum_[g][i].detach();
  return out;
}

void SGD::load_state(const std::map<std::string, Tensor>& state) {
  NoGradGuard no_grad;
  std::vector<std::vector<Tensor>> fresh(groups_.size());
  for (std::size_t g = 0; g < groups_.size(); ++g) fresh[g].resize(groups_[g].params.size());
  for (const auto& [k, t] : state) {
    std::size_t g = 0, i = 0;
    std::string what;
    GRAFT_CHECK(parse_key(k, g, i, what) && what == "momentum_buffer", "SGD: load_state: unknown key '", k,
                "' (expected group<g>.param<i>.momentum_buffer)");
    GRAFT_CHECK(options_.momentum != 0.f, "SGD: load_state: key '", k, "' given, but SGD without momentum has no state");
    GRAFT_CHECK(g < groups_.size() && i < groups_[g].params.size(), "SGD: load_state: key '", k,
                "' names a parameter that does not exist (", groups_.size(), " groups)");
    const Tensor& p = groups_[g].params[i];
    GRAFT_CHECK(t.defined() && t.dtype() == DType::Float32 && t.shape() == p.shape(), "SGD: load_state: '", k, "' ",
                t.defined() ? shape_str(t.shape()) : std::string("undefined"), " does not match the parameter ",
                shape_str(p.shape()), " float32");
    fresh[g][i] = copy_to(t, p.device());
  }
  momentum_ = std::move(fresh);
}

// ---- Adam / AdamW -------------------------------------------------------------------------------------------------

Adam::Adam(std::vector<Tensor> params, const AdamOptions& options)
    : Adam(std::vector<ParamGroup>{ParamGroup{std::move(params), options.lr, options.weight_decay, ""}}, options,
           false, "Adam") {}

Adam::Adam(std::vector<ParamGroup> groups, const AdamOptions& options) : Adam(std::move(groups), options, false, "Adam") {}

Adam::Adam(std::vector<ParamGroup> groups, const AdamOptions& options, bool decoupled, const char* name)
    : Optimizer(std::move(groups), name), options_(options), decoupled_(decoupled) {
  GRAFT_CHECK(options.beta1 >= 0.f && options.beta1 < 1.f, name_, ": invalid beta1 ", options.beta1,
              " (must be in [0, 1))");
  GRAFT_CHECK(options.beta2 >= 0.f && options.beta2 < 1.f, name_, ": invalid beta2 ", options.beta2,
              " (must be in [0, 1))");
  GRAFT_CHECK(std::isfinite(options.eps) && options.eps >= 0.f, name_, ": invalid eps ", options.eps,
              " (must be finite and >= 0)");
  slots_.resize(groups_.size());
}

void Adam::step() {
  GRAFT_CHECK(!cuda::capturing(), name_, ": step inside a CUDA graph capture would replay this step's bias "
              "corrections (they change every step); capture the forward and backward only, or use SGD");
  NoGradGuard no_grad;
  check_all();
  slots_.resize(groups_.size());
  for (std::size_t g = 0; g < groups_.size(); ++g) {
    const ParamGroup& group = groups_[g];
    slots_[g].resize(group.params.size());
#if GRAFT_HAS_CUDA
    std::vector<AdamMultiTensor> on_cuda;  // this group's CUDA parameters: one multi-tensor step below
#endif
    for (std::size_t i = 0; i < group.params.size(); ++i) {
      const Tensor& p = group.params[i];
      const Tensor grad = p.grad();
      if (!grad.defined()) continue;
      Slot& s = slots_[g][i];
      if (!s.exp_avg.defined()) {
        s.exp_avg = Tensor::zeros(p.shape(), p.device());
        s.exp_avg_sq = Tensor::zeros(p.shape(), p.device());
        s.step = 0;
      }
      s.step += 1;
#if GRAFT_HAS_CUDA
      if (p.is_cuda()) {
        on_cuda.push_back({p.data<float>(), s.exp_avg.data<float>(), s.exp_avg_sq.data<float>(), grad.data<float>(),
                           p.numel(), s.step});
        continue;
      }
#endif
      adam_step_cpu(p.data<float>(), s.exp_avg.data<float>(), s.exp_avg_sq.data<float>(), grad.data<float>(),
                    p.numel(), group.lr, options_.beta1, options_.beta2, options_.eps, group.weight_decay, decoupled_,
                    s.step);
    }
#if GRAFT_HAS_CUDA
    adam_step_multi_cuda(on_cuda, group.lr, options_.beta1, options_.beta2, options_.eps, group.weight_decay,
                         decoupled_);
#endif
  }
}

std::map<std::string, Tensor> Adam::state() const {
  std::map<std::string, Tensor> out;
  for (std::size_t g = 0; g < slots_.size(); ++g) {
    for (std::size_t i = 0; i < slots_[g].size(); ++i) {
      const Slot& s = slots_[g][i];
      if (!s.exp_avg.defined()) continue;
      out[key(g, i, "exp_avg")] = s.exp_avg.detach();
      out[key(g, i, "exp_avg_sq")] = s.exp_avg_sq.detach();
      out[key(g, i, "step")] = Tensor::from_vector(std::vector<float>{static_cast<float>(s.step)}, {1});
    }
  }
  return out;
}

void Adam::load_state(const std::map<std::string, Tensor>& state) {
  NoGradGuard no_grad;
  // Which of exp_avg / exp_avg_sq / step each parameter received.
  struct Seen {
    bool exp_avg = false, exp_avg_sq = false, step = false;
  };
  std::vector<std::vector<Slot>> fresh(groups_.size());
  std::vector<std::vector<Seen>> seen(groups_.size());
  for (std::size_t g = 0; g < groups_.size(); ++g) {
    fresh[g].resize(groups_[g].params.size());
    seen[g].resize(groups_[g].params.size());
  }
  for (const auto& [k, t] : state) {
    std::size_t g = 0, i = 0;
    std::string what;
    GRAFT_CHECK(parse_key(k, g, i, what) && (what == "exp_avg" || what == "exp_avg_sq" || what == "step"), name_,
                ": load_state: unknown key '", k, "' (expected group<g>.param<i>.{exp_avg,exp_avg_sq,step})");
    GRAFT_CHECK(g < groups_.size() && i < groups_[g].params.size(), name_, ": load_state: key '", k,
                "' names a parameter that does not exist (", groups_.size(), " groups)");
    const Tensor& p = groups_[g].params[i];
    GRAFT_CHECK(t.defined() && t.dtype() == DType::Float32, name_, ": load_state: '", k,
                "' is not a defined float32 tensor");
    if (what == "step") {
      GRAFT_CHECK(t.numel() == 1, name_, ": load_state: '", k, "' ", shape_str(t.shape()),
                  " must hold one element");
      const float v = t.item();
      GRAFT_CHECK(v >= 0.f && v == std::floor(v) && v <= 16777216.f, name_, ": load_state: '", k, "' = ", v,
                  " is not a step count");
      fresh[g][i].step = static_cast<std::int64_t>(v);
      seen[g][i].step = true;
      continue;
    }
    GRAFT_CHECK(t.shape() == p.shape(), name_, ": load_state: '", k, "' ", shape_str(t.shape()),
                " does not match the parameter ", shape_str(p.shape()));
    if (what == "exp_avg") fresh[g][i].exp_avg = copy_to(t, p.device()), seen[g][i].exp_avg = true;
    else fresh[g][i].exp_avg_sq = copy_to(t, p.device()), seen[g][i].exp_avg_sq = true;
  }
  for (std::size_t g = 0; g < groups_.size(); ++g) {
    for (std::size_t i = 0; i < groups_[g].params.size(); ++i) {
      const Seen& s = seen[g][i];
      GRAFT_CHECK(s.exp_avg == s.exp_avg_sq && s.exp_avg == s.step, name_, ": load_state: incomplete state for ",
                  describe_group(groups_, g), " param ", i, " (needs exp_avg, exp_avg_sq and step together)");
    }
  }
  slots_ = std::move(fresh);
}

static AdamOptions as_adam(const AdamWOptions& o) { return {o.lr, o.beta1, o.beta2, o.eps, o.weight_decay}; }

AdamW::AdamW(std::vector<Tensor> params, const AdamWOptions& options)
    : Adam(std::vector<ParamGroup>{ParamGroup{std::move(params), options.lr, options.weight_decay, ""}},
           as_adam(options), true, "AdamW") {}

AdamW::AdamW(std::vector<ParamGroup> groups, const AdamWOptions& options)
    : Adam(std::move(groups), as_adam(options), true, "AdamW") {}

// ---- gradient clipping --------------------------------------------------------------------------------------------

float clip_grad_norm(const std::vector<Tensor>& params, float max_norm) {
  GRAFT_CHECK(max_norm >= 0.f, "clip_grad_norm: max_norm must be >= 0, got ", max_norm);
  NoGradGuard no_grad;
  std::vector<Tensor> grads;
  for (const Tensor& p : params) {
    GRAFT_CHECK(p.defined(), "clip_grad_norm: parameter ", grads.size(), " is an undefined tensor");
    if (Tensor grad = p.grad(); grad.defined()) {
      check_float(grad, "clip_grad_norm", "grad");
      grads.push_back(grad);
    }
  }
  if (grads.empty()) return 0.f;
  // Sums of squares accumulate on the GPU when any gradient lives there (CPU partials are copied up, no wait),
  // so item() is the one synchronization.
  Device device = kCPU;
  for (const Tensor& grad : grads)
    if (grad.is_cuda()) device = grad.device();
  Tensor total;
  for (const Tensor& grad : grads) {
    Tensor squares = sum(mul(grad, grad)).to(device);
    total = total.defined() ? add(total, squares) : squares;
  }
  const float norm = static_cast<float>(std::sqrt(static_cast<double>(total.item())));
  const float coef = max_norm / (norm + 1e-6f);
  if (std::isfinite(norm) && coef < 1.f) scale_grads(params, coef);  // a non-finite norm leaves the grads as they are
  return norm;
}

void scale_grads(const std::vector<Tensor>& params, float factor) {
  for (const Tensor& p : params) {
    Tensor grad = p.grad();
    if (!grad.defined()) continue;
    check_float(grad, "scale_grads", "grad");
#if GRAFT_HAS_CUDA
    if (grad.is_cuda()) {
      scale_shift_cuda(grad.data<float>(), grad.data<float>(), factor, 0.f, grad.numel());
      continue;
    }
#endif
    scale_shift_cpu(grad.data<float>(), grad.data<float>(), factor, 0.f, grad.numel());
  }
}

}  // namespace graft
