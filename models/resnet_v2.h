// ResNet-50/101/152 V2 as Keras applications builds them (ResNet50V2, ResNet101V2, ResNet152V2): the
// pre-activation ResNet of He et al. 2016, "Identity Mappings in Deep Residual Networks". Keras only: torchvision
// has no V2. Module names follow graft's ResNet (conv1, layer{1..4}.{i}.conv{1,2,3}, fc); io/weights_keras.cpp maps
// Keras's layer names onto them.
//
//   stem        ZeroPad2d(3), conv1 7x7/2 with bias, ZeroPad2d(1), max-pool 3x3/2: no BatchNorm and no ReLU
//               before the pool (its zero padding can win the max over negative inputs)
//   block       p = relu(preact_bn(x))                                    (Keras: <block>_preact_bn)
//               y = relu(bn1(conv1(p)))            1x1, no bias           (_1_conv, _1_bn)
//               y = relu(bn2(conv2(y)))            3x3, stride s, no bias (_2_pad + _2_conv, _2_bn)
//               out = conv3(y) + shortcut          1x1 with bias          (_3_conv, _out)
//   shortcut    first block of a stage: downsample(p), a 1x1 conv with bias to 4 * planes (stride 1)  (_0_conv)
//               the stage's last block, stride 2: x subsampled, every second row and column (Keras's 1x1 max-pool)
//               otherwise: x
//   stride      2 on the 3x3 conv of the LAST block of stages 1-3 (V1 strides the first block); stage 4 keeps 1
//   head        post_bn, ReLU, global average pool, fc (logits; Keras's "predictions" with its softmax removed)
//   BatchNorm   eps 1.001e-5, momentum 0.01 (Keras's 0.99)
// include_top = false drops fc: forward returns the pooled (N, 2048) features (Keras's pooling="avg").
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

struct ResNetV2Options {
  int depth = 50;  // 50, 101, 152
  int num_classes = 1000;
  bool include_top = true;
  std::uint64_t seed = 0;  // initial weights
};

class PreActBottleneck : public Module {
 public:
  // projection: the stage's first block (a conv shortcut); stride 2: the last block of stages 1-3.
  PreActBottleneck(int in_channels, int planes, int stride, bool projection, Generator& gen);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "PreActBottleneck"; }

  // (forward looks its children up by name: a module put in by replace_module runs)
};

class ResNetV2 : public Module {
 public:
  explicit ResNetV2(const ResNetV2Options& options);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "ResNet" + std::to_string(options_.depth) + "V2"; }
  const ResNetV2Options& options() const { return options_; }
  std::string arch() const { return "resnet" + std::to_string(options_.depth) + "v2"; }  // the zoo's name

 private:
  ResNetV2Options options_;  // (forward looks its children up by name: a module put in by replace_module runs)
};

}  // namespace graft
