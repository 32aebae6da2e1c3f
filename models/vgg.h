// VGG-11/13/16/19, with and without BatchNorm, module names equal to torchvision's state_dict keys:
// features.{i} (conv 3x3 pad 1 with bias, [BN], ReLU, ..., MaxPool 2x2), avgpool (adaptive 7x7),
// classifier.{0,3,6} (Linear 25088->4096->4096->classes with ReLU and Dropout between).
// The classifier's input is flattened NHWC, i.e. in (H, W, C) order - Keras's order; torchvision weights need
// their classifier.0 columns permuted from (C, H, W) on import.
// include_top = false drops avgpool and classifier: forward returns the (N, H/32, W/32, 512) feature map.
#pragma once
#include <memory>

#include "layers/basic.h"
#include "layers/sequential.h"

namespace graft {

struct VGGOptions {
  int depth = 16;  // 11, 13, 16, 19
  bool batch_norm = false;
  int num_classes = 1000;
  bool include_top = true;
  float dropout = 0.5f;
  std::uint64_t seed = 0;
};

class VGG : public Module {
 public:
  explicit VGG(const VGGOptions& options);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override;
  const VGGOptions& options() const { return options_; }

 private:
  Tensor run_features(const Tensor& x);
  VGGOptions options_;  // (forward looks its children up by name: a module put in by replace_module runs)
};

}  // namespace graft
