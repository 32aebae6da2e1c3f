#include "models/resnet_v2.h"

#include "core/error.h"

namespace graft {

namespace {

std::shared_ptr<BatchNorm2d> make_bn(int channels) { return std::make_shared<BatchNorm2d>(channels, 1.001e-5f, 0.01f); }

std::shared_ptr<Conv2d> make_conv(int in, int out, int kernel, int stride, int padding, bool bias, Generator& gen) {
  Conv2dConfig c;
  c.in_channels = in, c.out_channels = out, c.kernel_h = c.kernel_w = kernel;
  c.stride = stride, c.padding = padding, c.bias = bias, c.init = ConvInit::KaimingFanOut;
  return std::make_shared<Conv2d>(c, gen);
}

}  // namespace

PreActBottleneck::PreActBottleneck(int in, int planes, int stride, bool projection, Generator& gen) {
  const int out = planes * 4;
  preact_bn_ = register_module("preact_bn", make_bn(in));
  conv1_ = register_module("conv1", make_conv(in, planes, 1, 1, 0, false, gen));
  bn1_ = register_module("bn1", make_bn(planes));
  // Keras pads explicitly (ZeroPadding2D(1)) before a valid 3x3 conv: the same as padding 1, also at stride 2.
  conv2_ = register_module("conv2", make_conv(planes, planes, 3, stride, 1, false, gen));
  bn2_ = register_module("bn2", make_bn(planes));
  conv3_ = register_module("conv3", make_conv(planes, out, 1, 1, 0, true, gen));
  if (projection) downsample_ = register_module("downsample", make_conv(in, out, 1, 1, 0, true, gen));
  if (stride > 1) subsample_ = register_module("subsample", std::make_shared<MaxPool2d>(1, stride, 0));
  GRAFT_CHECK(projection || in == out, "PreActBottleneck: ", in, " input channels need a projection shortcut to ", out);
  GRAFT_CHECK(!(projection && stride > 1), "PreActBottleneck: Keras strides the stage's last block, not its first");
}

Tensor PreActBottleneck::forward(const Tensor& x) {
  Tensor preact = preact_bn_->forward_add_relu(x, std::nullopt, true);
  Tensor shortcut = downsample_ ? (*downsample_)(preact) : subsample_ ? (*subsample_)(x) : x;
  Tensor y = bn1_->forward_add_relu((*conv1_)(preact), std::nullopt, true);
  y = bn2_->forward_add_relu((*conv2_)(y), std::nullopt, true);
  return add((*conv3_)(y), shortcut);
}

ResNetV2::ResNetV2(const ResNetV2Options& o) : options_(o) {
  int blocks[4];
  switch (o.depth) {
    case 50:
      blocks[0] = 3, blocks[1] = 4, blocks[2] = 6, blocks[3] = 3;
      break;
    case 101:
      blocks[0] = 3, blocks[1] = 4, blocks[2] = 23, blocks[3] = 3;
      break;
    case 152:
      blocks[0] = 3, blocks[1] = 8, blocks[2] = 36, blocks[3] = 3;
      break;
    default:
      GRAFT_FAIL("ResNetV2: unsupported depth ", o.depth, " (50, 101 or 152, as Keras applications)");
  }
  GRAFT_CHECK(!o.include_top || o.num_classes > 0, "ResNetV2: num_classes must be positive, got ", o.num_classes);
  Generator gen(o.seed);
  stem_pad_ = register_module("conv1_pad", std::make_shared<ZeroPad2d>(3));
  conv1_ = register_module("conv1", make_conv(3, 64, 7, 2, 0, true, gen));
  pool_pad_ = register_module("pool1_pad", std::make_shared<ZeroPad2d>(1));
  maxpool_ = register_module("maxpool", std::make_shared<MaxPool2d>(3, 2, 0));
  int in = 64;
  for (int stage = 0; stage < 4; ++stage) {
    const int planes = 64 << stage;
    layers_[stage] = register_module("layer" + std::to_string(stage + 1), std::make_shared<Sequential>());
    for (int b = 0; b < blocks[stage]; ++b) {
      const bool last = b == blocks[stage] - 1;
      const int stride = last && stage < 3 ? 2 : 1;
      layers_[stage]->push_back(std::make_shared<PreActBottleneck>(in, planes, stride, b == 0, gen));
      in = planes * 4;
    }
  }
  post_bn_ = register_module("post_bn", make_bn(in));
  relu_ = register_module("relu", std::make_shared<ReLU>());
  avgpool_ = register_module("avgpool", std::make_shared<AdaptiveAvgPool2d>(1, 1));
  if (o.include_top) register_module("fc", std::make_shared<Linear>(in, o.num_classes, true, gen));
}

Tensor ResNetV2::forward(const Tensor& x) {
  GRAFT_CHECK(x.ndim() == 4 && x.dim(3) == 3, type_name(), ": input ", shape_str(x.shape()),
              " must be NHWC images (N,H,W,3)");
  Tensor y = (*conv1_)((*stem_pad_)(x));
  y = (*maxpool_)((*pool_pad_)(y));
  for (auto& layer : layers_) y = (*layer)(y);
  y = post_bn_->forward_add_relu(y, std::nullopt, true);
  relu_->set_last_output_shape(y.shape());
  y = (*avgpool_)(y).flatten(1);
  // The head is looked up by name so replace_module("fc", ...) takes effect.
  if (Module* head = child("fc")) y = (*head)(y);
  return y;
}

}  // namespace graft
