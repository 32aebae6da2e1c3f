// Module: a stateful layer. Owns named parameters (trainable leaf tensors), named buffers (e.g. BatchNorm running
// statistics) and named child modules; every parameter has a dotted path ("layer4.2.conv3.weight") equal to the
// torchvision state_dict key of the same model.
//
// Identity is stable: to(Device) moves a parameter's storage inside its TensorImpl, so optimizers and other
// holders of a parameter keep seeing it after the move.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"
#include "core/tensor.h"

namespace graft {

class Module {
 public:
  virtual ~Module() = default;
  Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  virtual Tensor forward(const Tensor& x) = 0;
  virtual std::string type_name() const = 0;
  // Hyper-parameters shown in summaries, e.g. "3x3, stride 2, 64->128".
  virtual std::string describe() const { return ""; }

  // Runs forward and remembers the output shape (for summaries).
  Tensor operator()(const Tensor& x);
  const Shape& last_output_shape() const { return last_output_shape_; }
  // For parents that run a child's computation fused into another call (ResNet's bn + relu): keeps summaries right.
  void set_last_output_shape(const Shape& shape) { last_output_shape_ = shape; }

  // ---- structure ----
  std::vector<std::pair<std::string, Tensor>> named_parameters() const;  // dotted paths, model order
  std::vector<std::pair<std::string, Tensor>> named_buffers() const;
  std::vector<Tensor> parameters() const;
  std::vector<Tensor> trainable_parameters() const;  // requires_grad ones
  // Parameters and buffers by dotted path: what checkpoints and weight import read and write.
  std::map<std::string, Tensor> state() const;
  // Children and all descendants, by dotted path (the root itself is "").
  const std::vector<std::pair<std::string, std::shared_ptr<Module>>>& children() const { return children_; }
  std::vector<std::pair<std::string, Module*>> named_modules();
  Module* find_module(const std::string& path);         // nullptr when absent
  Module* child(const std::string& name) const;         // a direct child, nullptr when absent
  // A direct child that the module's forward needs: graft::Error naming both when absent. Looked up at every call,
  // so that a child swapped by replace_module is the one that runs.
  Module& required_child(const std::string& name) const;
  // Replaces the child at a dotted path (e.g. "fc", "classifier.6"); throws graft::Error when absent.
  void replace_module(const std::string& path, std::shared_ptr<Module> replacement);
  std::int64_t parameter_count() const;
  std::int64_t trainable_parameter_count() const;

  // ---- modes ----
  // Sets training mode recursively. Layers with pinned behaviour (BatchNorm after freeze_bn) ignore it.
  virtual void train(bool training = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }
  // Moves every parameter and buffer (in place, identity kept).
  void to(Device device);
  Device device() const;

  // ---- transfer-learning surgery ----
  // Glob patterns over dotted parameter paths: '*' matches any run of characters (dots included), '?' one.
  // A pattern naming a module ("layer4" or "layer4.*") covers its parameters. Returns how many changed state
  // and throws graft::Error when the pattern matches no parameter (a typo must not silently freeze nothing).
  int freeze(const std::string& pattern);
  int unfreeze(const std::string& pattern);
  void zero_grad();

 protected:
  Tensor& register_parameter(const std::string& name, Tensor value);
  Tensor& register_buffer(const std::string& name, Tensor value);
  template <typename M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> module) {
    GRAFT_CHECK(module != nullptr, type_name(), ": register_module('", name, "') was given no module (null)");
    children_.emplace_back(name, module);
    return module;
  }
  Tensor& parameter(const std::string& name);
  Tensor& buffer(const std::string& name);

  bool training_ = true;

 private:
  int set_requires_grad(const std::string& pattern, bool value, const char* verb);
  void visit(const std::string& prefix, const std::function<void(const std::string&, Module&)>& fn);

  std::vector<std::pair<std::string, Tensor>> parameters_;
  std::vector<std::pair<std::string, Tensor>> buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  Shape last_output_shape_;
};

// '*' matches any run of characters, '?' any one character.
bool glob_match(const std::string& pattern, const std::string& text);

// Which of a module's values state_fingerprint covers. Frozen: the parameters that do not require grad, and every
// buffer (BatchNorm's running statistics: a frozen backbone's must not move either).
enum class StateSubset { Trainable, Frozen, All };

// An exact fingerprint of values: 64-bit FNV-1a over each element's bits, in named_parameters / named_buffers order
// (device tensors are read back). Two fingerprints are equal when not one bit of those values differs (up to the hash's
// 2^-64 collisions): a check that training left a frozen backbone and its statistics as they were and moved the rest,
// or that a model written out reads back bit for bit.
std::uint64_t state_fingerprint(const Module& model, StateSubset subset = StateSubset::All);

// Every float parameter or buffer holding NaN or Inf values, as "NAME has N NaN and M Inf values" (model order):
// what a checkpoint of a diverged run, or a damaged one, brings with it. Empty when all are finite.
std::vector<std::string> nonfinite_tensors(const Module& model);

}  // namespace graft
