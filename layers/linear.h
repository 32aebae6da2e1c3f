// Linear: y = x W^T + b over the last axis; weight (out, in).
// Init: TorchDefault as nn.Linear (W, b ~ U(-1/sqrt(in), 1/sqrt(in))), or Normal001 as torchvision's VGG
// classifier (W ~ N(0, 0.01^2), b = 0).
#pragma once
#include <optional>

#include "core/rng.h"
#include "layers/module.h"

namespace graft {

enum class LinearInit { TorchDefault, Normal001 };

class Linear : public Module {
 public:
  Linear(int in_features, int out_features, bool bias = true, Generator& gen = default_generator(),
         LinearInit init = LinearInit::TorchDefault);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Linear"; }
  std::string describe() const override;
  int in_features() const { return in_; }
  int out_features() const { return out_; }

 private:
  int in_, out_;
  bool has_bias_;
};

}  // namespace graft
