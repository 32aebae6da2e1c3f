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
  register_module("preact_bn", make_bn(in));
  register_module("conv1", make_conv(in, planes, 1, 1, 0, false, gen));
  register_module("bn1", make_bn(planes));
  // Keras pads explicitly (ZeroPadding2D(1)) before a valid 3x3 conv: the same as padding 1, also at stride 2.
  register_module("conv2", make_conv(planes, planes, 3, stride, 1, false, gen));
  register_module("bn2", make_bn(planes));
  register_module("conv3", make_conv(planes, out, 1, 1, 0, true, gen));
  if (projection) register_module("downsample", make_conv(in, out, 1, 1, 0, true, gen));
  if (stride > 1) register_module("subsample", std::make_shared<MaxPool2d>(1, stride, 0));
  GRAFT_CHECK(projection || in == out, "PreActBottleneck: ", in, " input channels need a projection shortcut to ", out);
  GRAFT_CHECK(!(projection && stride > 1), "PreActBottleneck: Keras strides the stage's last block, not its first");
}

// Every child looked up by name at each call: a module put in by replace_module is the one that runs.
Tensor PreActBottleneck::forward(const Tensor& x) {
  Tensor preact = norm_add_relu(required_child("preact_bn"), nullptr, x, std::nullopt);
  Module* downsample = child("downsample");
  Module* subsample = child("subsample");
  Tensor shortcut = downsample ? (*downsample)(preact) : subsample ? (*subsample)(x) : x;
  Tensor y = norm_add_relu(required_child("bn1"), nullptr, required_child("conv1")(preact), std::nullopt);
  y = norm_add_relu(required_child("bn2"), nullptr, required_child("conv2")(y), std::nullopt);
  return add(required_child("conv3")(y), shortcut);
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
  register_module("conv1_pad", std::make_shared<ZeroPad2d>(3));
  register_module("conv1", make_conv(3, 64, 7, 2, 0, true, gen));
  register_module("pool1_pad", std::make_shared<ZeroPad2d>(1));
  register_module("maxpool", std::make_shared<MaxPool2d>(3, 2, 0));
  int in = 64;
  for (int stage = 0; stage < 4; ++stage) {
    const int planes = 64 << stage;
    auto layer = register_module("layer" + std::to_string(stage + 1), std::make_shared<Sequential>());
    for (int b = 0; b < blocks[stage]; ++b) {
      const bool last = b == blocks[stage] - 1;
      const int stride = last && stage < 3 ? 2 : 1;
      layer->push_back(std::make_shared<PreActBottleneck>(in, planes, stride, b == 0, gen));
      in = planes * 4;
    }
  }
  register_module("post_bn", make_bn(in));
  register_module("relu", std::make_shared<ReLU>());
  register_module("avgpool", std::make_shared<AdaptiveAvgPool2d>(1, 1));
  if (o.include_top) register_module("fc", std::make_shared<Linear>(in, o.num_classes, true, gen));
}

Tensor ResNetV2::forward(const Tensor& x) {
  GRAFT_CHECK(x.ndim() == 4 && x.dim(3) == 3, type_name(), ": input ", shape_str(x.shape()),
              " must be NHWC images (N,H,W,3)");
  // Every child looked up by name at each call: a module put in by replace_module is the one that runs.
  Tensor y = required_child("conv1")(required_child("conv1_pad")(x));
  y = required_child("maxpool")(required_child("pool1_pad")(y));
  for (const char* layer : {"layer1", "layer2", "layer3", "layer4"}) y = required_child(layer)(y);
  y = norm_add_relu(required_child("post_bn"), &required_child("relu"), y, std::nullopt);
  y = required_child("avgpool")(y).flatten(1);
  if (Module* head = child("fc")) y = (*head)(y);
  return y;
}

}  // namespace graft
