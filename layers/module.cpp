#include "layers/module.h"

#include <cstring>

#include "core/autograd.h"
#include "core/error.h"
#include "core/fingerprint.h"

namespace graft {

bool glob_match(const std::string& pattern, const std::string& text) {
  // Iterative matcher with single-star backtracking: linear in practice for parameter paths.
  std::size_t p = 0, t = 0, star = std::string::npos, mark = 0;
  while (t < text.size()) {
    if (p < pattern.size() && (pattern[p] == '?' || pattern[p] == text[t])) {
      ++p, ++t;
    } else if (p < pattern.size() && pattern[p] == '*') {
      star = p++, mark = t;
    } else if (star != std::string::npos) {
      p = star + 1, t = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

Tensor Module::operator()(const Tensor& x) {
  Tensor y = forward(x);
  last_output_shape_ = y.shape();
  return y;
}

Tensor& Module::register_parameter(const std::string& name, Tensor value) {
  value.set_requires_grad(true);
  parameters_.emplace_back(name, value);
  return parameters_.back().second;
}

Tensor& Module::register_buffer(const std::string& name, Tensor value) {
  buffers_.emplace_back(name, value);
  return buffers_.back().second;
}

Tensor& Module::parameter(const std::string& name) {
  for (auto& [n, t] : parameters_)
    if (n == name) return t;
  GRAFT_FAIL(type_name(), ": no parameter '", name, "'");
}

Tensor& Module::buffer(const std::string& name) {
  for (auto& [n, t] : buffers_)
    if (n == name) return t;
  GRAFT_FAIL(type_name(), ": no buffer '", name, "'");
}

void Module::visit(const std::string& prefix, const std::function<void(const std::string&, Module&)>& fn) {
  fn(prefix, *this);
  for (auto& [name, child] : children_) child->visit(prefix.empty() ? name : prefix + "." + name, fn);
}

static std::string join(const std::string& prefix, const std::string& name) {
  return prefix.empty() ? name : prefix + "." + name;
}

std::vector<std::pair<std::string, Tensor>> Module::named_parameters() const {
  std::vector<std::pair<std::string, Tensor>> out;
  const_cast<Module*>(this)->visit("", [&](const std::string& prefix, Module& m) {
    for (auto& [name, t] : m.parameters_) out.emplace_back(join(prefix, name), t);
  });
  return out;
}

std::vector<std::pair<std::string, Tensor>> Module::named_buffers() const {
  std::vector<std::pair<std::string, Tensor>> out;
  const_cast<Module*>(this)->visit("", [&](const std::string& prefix, Module& m) {
    for (auto& [name, t] : m.buffers_) out.emplace_back(join(prefix, name), t);
  });
  return out;
}

std::vector<Tensor> Module::parameters() const {
  std::vector<Tensor> out;
  for (auto& [name, t] : named_parameters()) out.push_back(t);
  return out;
}

std::vector<Tensor> Module::trainable_parameters() const {
  std::vector<Tensor> out;
  for (auto& [name, t] : named_parameters())
    if (t.requires_grad()) out.push_back(t);
  return out;
}

std::map<std::string, Tensor> Module::state() const {
  std::map<std::string, Tensor> out;
  for (auto& [name, t] : named_parameters()) out[name] = t;
  for (auto& [name, t] : named_buffers()) out[name] = t;
  return out;
}

std::vector<std::pair<std::string, Module*>> Module::named_modules() {
  std::vector<std::pair<std::string, Module*>> out;
  visit("", [&](const std::string& prefix, Module& m) { out.emplace_back(prefix, &m); });
  return out;
}

Module* Module::find_module(const std::string& path) {
  for (auto& [name, m] : named_modules())
    if (name == path) return m;
  return nullptr;
}

Module* Module::child(const std::string& name) const {
  for (auto& [n, c] : children_)
    if (n == name) return c.get();
  return nullptr;
}

Module& Module::required_child(const std::string& name) const {
  Module* found = child(name);
  GRAFT_CHECK(found != nullptr, type_name(), ": has no child module '", name, "'");
  return *found;
}

void Module::replace_module(const std::string& path, std::shared_ptr<Module> replacement) {
  GRAFT_CHECK(replacement != nullptr, "replace_module: ", type_name(), ".", path,
              " would be replaced by no module (null); an Identity passes its input on");
  std::size_t dot = path.rfind('.');
  Module* parent = dot == std::string::npos ? this : find_module(path.substr(0, dot));
  std::string leaf = dot == std::string::npos ? path : path.substr(dot + 1);
  if (parent)
    for (auto& [name, child] : parent->children_)
      if (name == leaf) {
        child = std::move(replacement);
        return;
      }
  GRAFT_FAIL("replace_module: ", type_name(), " has no submodule '", path, "'");
}

std::int64_t Module::parameter_count() const {
  std::int64_t n = 0;
  for (auto& [name, t] : named_parameters()) n += t.numel();
  return n;
}

std::int64_t Module::trainable_parameter_count() const {
  std::int64_t n = 0;
  for (auto& [name, t] : named_parameters())
    if (t.requires_grad()) n += t.numel();
  return n;
}

void Module::train(bool training) {
  training_ = training;
  for (auto& [name, child] : children_) child->train(training);
}

// Moves the storage inside the existing TensorImpl, so every holder of the tensor sees the move.
static void move_in_place(Tensor& t, Device device) {
  if (!t.defined() || t.device() == device) return;
  NoGradGuard no_grad;
  Tensor moved = t.detach().to(device);
  TensorImpl* impl = t.impl();
  impl->storage = moved.impl()->storage;
  impl->offset = moved.impl()->offset;
  if (impl->grad) impl->grad = Tensor(impl->grad).to(device).impl_ptr();
}

void Module::to(Device device) {
  visit("", [&](const std::string&, Module& m) {
    for (auto& [name, t] : m.parameters_) move_in_place(t, device);
    for (auto& [name, t] : m.buffers_) move_in_place(t, device);
  });
}

Device Module::device() const {
  auto params = named_parameters();
  if (!params.empty()) return params.front().second.device();
  auto buffers = named_buffers();
  return buffers.empty() ? kCPU : buffers.front().second.device();
}

static bool covers(const std::string& pattern, const std::string& path) {
  // "layer4" and "layer4.*" both cover "layer4.0.conv1.weight".
  return glob_match(pattern, path) || glob_match(pattern + ".*", path);
}

int Module::set_requires_grad(const std::string& pattern, bool value, const char* verb) {
  int matched = 0, changed = 0;
  for (auto& [name, t] : named_parameters()) {
    if (!covers(pattern, name)) continue;
    ++matched;
    if (t.requires_grad() != value) {
      t.set_requires_grad(value);
      if (!value) t.zero_grad();
      ++changed;
    }
  }
  GRAFT_CHECK(matched > 0, verb, ": pattern '", pattern, "' matches no parameter of this ", type_name());
  return changed;
}

int Module::freeze(const std::string& pattern) { return set_requires_grad(pattern, false, "freeze"); }
int Module::unfreeze(const std::string& pattern) { return set_requires_grad(pattern, true, "unfreeze"); }

void Module::zero_grad() {
  for (auto& [name, t] : named_parameters()) t.zero_grad();
}

std::uint64_t state_fingerprint(const Module& model, StateSubset subset) {
  Fnv1a hash;
  auto mix = [&](const Tensor& t) {
    const Tensor host = t.detach().to(kCPU);  // (no autograd node for a parameter on the GPU)
    const auto* bytes = static_cast<const unsigned char*>(host.data<void>());
    for (std::int64_t i = 0; i < host.numel(); ++i) {  // float32 and int32 alike: one 4-byte word per element
      std::uint32_t word = 0;
      std::memcpy(&word, bytes + 4 * i, 4);
      hash.add(word);
    }
  };
  for (const auto& [name, p] : model.named_parameters())
    if (subset == StateSubset::All || (subset == StateSubset::Trainable) == p.requires_grad()) mix(p);
  if (subset != StateSubset::Trainable)
    for (const auto& [name, b] : model.named_buffers()) mix(b);
  return hash.value();
}

std::vector<std::string> nonfinite_tensors(const Module& model) {
  std::vector<std::string> found;
  auto check = [&](const std::string& name, const Tensor& t) {
    if (t.dtype() != DType::Float32) return;
    const Tensor host = t.detach().to(kCPU);
    const auto [nan, inf] = count_nonfinite(host.data<float>(), host.numel());
    if (nan || inf)
      found.push_back(name + " has " + std::to_string(nan) + " NaN and " + std::to_string(inf) + " Inf values");
  };
  for (const auto& [name, p] : model.named_parameters()) check(name, p);
  for (const auto& [name, b] : model.named_buffers()) check(name, b);
  return found;
}

}  // namespace graft
