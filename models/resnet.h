// ResNet-18/34/50/101/152 in two dialects, with module names equal to torchvision's state_dict keys
// (conv1, bn1, layer{1..4}.{i}.conv{1,2,3}, .bn{1,2,3}, .downsample.{0,1}, fc).
//
//                      torchvision (v1.5)                    Keras applications (v1)
//   stage stride       on the 3x3 conv (conv2)               on the first 1x1 conv (conv1) and the shortcut
//   conv biases        none                                  every conv
//   BN eps / momentum  1e-5 / 0.1                            1.001e-5 (KerasLegacy 2016 file: 1e-3) / 0.01
//   stem padding       conv pad 3, max-pool pad 1            explicit ZeroPad2d(3) and ZeroPad2d(1), valid ops
//                                                            (KerasLegacy: no pool padding, 112 -> 55 as in 2016)
//                      (equal results: the pool's input is post-ReLU, so zero padding never wins the max)
//   head               avgpool + fc (logits)                 same (graft returns logits in both dialects)
// include_top = false drops fc: forward returns the pooled (N, 512 * expansion) features.
//
// The wider family (torchvision only: Keras applications has none) changes one thing, the bottleneck's width:
// its 1x1-3x3 part has width = planes * width_per_group / 64 * groups channels, and the 3x3 conv is grouped.
//   ResNet-50            groups 1,  width_per_group 64  -> layer1 width 64  (3x3 conv: 64 in, 64 out)
//   ResNeXt-50 32x4d     groups 32, width_per_group 4   -> layer1 width 128 (32 groups of 4 channels each)
//   Wide ResNet-50-2     groups 1,  width_per_group 128 -> layer1 width 128 (an ungrouped, twice as wide 3x3)
// The block's output (planes * 4) and therefore the features (2048) are the same in all three.
#pragma once
#include <memory>
#include <string>

#include "core/rng.h"
#include "layers/basic.h"
#include "layers/batch_norm.h"
#include "layers/conv2d.h"
#include "layers/linear.h"
#include "layers/sequential.h"

namespace graft {

enum class Dialect { Torchvision, Keras, KerasLegacy };
const char* dialect_name(Dialect d);
Dialect parse_dialect(const std::string& name);  // torchvision | keras | keras-legacy

struct ResNetOptions {
  int depth = 50;            // 18, 34, 50, 101, 152
  int groups = 1;            // the bottleneck 3x3 conv's groups: 32 or 64 for ResNeXt
  int width_per_group = 64;  // 4 or 8 for ResNeXt, 128 for Wide ResNet (see above)
  int num_classes = 1000;
  bool include_top = true;
  Dialect dialect = Dialect::Torchvision;
  std::uint64_t seed = 0;  // initial weights
};

// The zoo's name of a ResNet: "resnet50", "resnext50_32x4d", "wide_resnet50_2" (torchvision's function names).
std::string resnet_arch_name(const ResNetOptions& options);

// The residual unit of every ResNet: two 3x3 convs (BasicBlock, ResNet-18/34) or 1x1-3x3-1x1 (Bottleneck),
// whose 1x1-3x3 part is `width` channels wide with a 3x3 conv of `groups` groups (planes and 1 for ResNet-50).
class ResidualBlock : public Module {
 public:
  ResidualBlock(int in_channels, int planes, int stride, bool bottleneck, Dialect dialect, Generator& gen,
                int width = 0, int groups = 1);  // width 0: planes
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return bottleneck_ ? "Bottleneck" : "BasicBlock"; }

 private:
  bool bottleneck_;  // (forward looks its children up by name: a module put in by replace_module runs)
};

class ResNet : public Module {
 public:
  explicit ResNet(const ResNetOptions& options);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override;  // ResNet50, ResNeXt50_32x4d, WideResNet50_2
  const ResNetOptions& options() const { return options_; }
  std::string arch() const { return resnet_arch_name(options_); }
  int feature_channels() const { return feature_channels_; }  // as built (surgery on layer4 does not update it)

 private:
  ResNetOptions options_;
  int feature_channels_ = 0;  // (forward looks its children up by name: a module put in by replace_module runs)
};

}  // namespace graft
