// Conv2d over NHWC activations; weight (out, kh, kw, in/groups), optional bias (out).
// Init: TorchDefault as nn.Conv2d (kaiming_uniform a=sqrt(5); bias U(-1/sqrt(fan_in), 1/sqrt(fan_in))), or
// KaimingFanOut as torchvision's ResNet/VGG (weight N(0, 2/fan_out), bias 0).
#pragma once
#include <optional>

#include "core/ops.h"
#include "core/rng.h"
#include "layers/module.h"

namespace graft {

enum class ConvInit { TorchDefault, KaimingFanOut };

struct Conv2dConfig {
  int in_channels = 0, out_channels = 0;
  int kernel_h = 1, kernel_w = 1;
  int stride = 1, padding = 0, dilation = 1, groups = 1;
  bool bias = true;
  ConvInit init = ConvInit::TorchDefault;
};

class Conv2d : public Module {
 public:
  Conv2d(const Conv2dConfig& config, Generator& gen = default_generator());
  Tensor forward(const Tensor& x) override;
  // relu(forward(x)) as one fused op (conv2d_relu); a model calls it for a conv followed by a ReLU module.
  Tensor forward_relu(const Tensor& x);
  std::string type_name() const override { return "Conv2d"; }
  std::string describe() const override;
  const Conv2dConfig& config() const { return config_; }
  Tensor weight() { return parameter("weight"); }
  std::optional<Tensor> bias() { return config_.bias ? std::optional<Tensor>(parameter("bias")) : std::nullopt; }

 private:
  Conv2dOptions options() const;
  Conv2dConfig config_;
};

}  // namespace graft
