#include "models/resnet.h"

#include "core/error.h"

namespace graft {

const char* dialect_name(Dialect d) {
  switch (d) {
    case Dialect::Torchvision: return "torchvision";
    case Dialect::Keras: return "keras";
    case Dialect::KerasLegacy: return "keras-legacy";
  }
  return "?";
}

Dialect parse_dialect(const std::string& name) {
  if (name == "torchvision" || name == "torch") return Dialect::Torchvision;
  if (name == "keras") return Dialect::Keras;
  if (name == "keras-legacy") return Dialect::KerasLegacy;
  GRAFT_FAIL("dialect: unknown dialect '", name, "' (expected torchvision, keras or keras-legacy)");
}

namespace {

bool is_keras(Dialect d) { return d != Dialect::Torchvision; }

std::shared_ptr<BatchNorm2d> make_bn(int channels, Dialect d) {
  switch (d) {
    case Dialect::Torchvision: return std::make_shared<BatchNorm2d>(channels, 1e-5f, 0.1f);
    case Dialect::Keras: return std::make_shared<BatchNorm2d>(channels, 1.001e-5f, 0.01f);
    case Dialect::KerasLegacy: return std::make_shared<BatchNorm2d>(channels, 1e-3f, 0.01f);
  }
  return nullptr;
}

// torchvision's ResNet init: convs kaiming_normal(fan_out, relu).
std::shared_ptr<Conv2d> make_conv(int in, int out, int kernel, int stride, int padding, Dialect d, Generator& gen,
                                  int groups = 1) {
  Conv2dConfig c;
  c.in_channels = in, c.out_channels = out, c.kernel_h = c.kernel_w = kernel;
  c.stride = stride, c.padding = padding, c.bias = is_keras(d), c.init = ConvInit::KaimingFanOut, c.groups = groups;
  return std::make_shared<Conv2d>(c, gen);
}

bool is_plain(const ResNetOptions& o) { return o.groups == 1 && o.width_per_group == 64; }

// The family's name and its shape suffix, in one spelling or the other: (resnet, wide_resnet, resnext) for the zoo,
// (ResNet, WideResNet, ResNeXt) for type_name. "50", "50_2", "50_32x4d".
std::string family_name(const ResNetOptions& o, const char* plain, const char* wide, const char* resnext) {
  const std::string depth = std::to_string(o.depth);
  if (is_plain(o)) return plain + depth;
  if (o.groups == 1 && o.width_per_group % 64 == 0) return wide + depth + "_" + std::to_string(o.width_per_group / 64);
  return resnext + depth + "_" + std::to_string(o.groups) + "x" + std::to_string(o.width_per_group) + "d";
}

}  // namespace

std::string resnet_arch_name(const ResNetOptions& o) { return family_name(o, "resnet", "wide_resnet", "resnext"); }

std::string ResNet::type_name() const { return family_name(options_, "ResNet", "WideResNet", "ResNeXt"); }

ResidualBlock::ResidualBlock(int in, int planes, int stride, bool bottleneck, Dialect d, Generator& gen, int width,
                             int groups)
    : bottleneck_(bottleneck) {
  const int expansion = bottleneck ? 4 : 1, out = planes * expansion;
  if (width == 0) width = planes;
  GRAFT_CHECK(bottleneck || (width == planes && groups == 1), "BasicBlock: width ", width, " and groups ", groups,
              " need a bottleneck block (as in torchvision)");
  if (bottleneck) {
    // Where the stage's stride goes is the difference between the dialects (see resnet.h).
    int stride_1x1 = is_keras(d) ? stride : 1, stride_3x3 = is_keras(d) ? 1 : stride;
    register_module("conv1", make_conv(in, width, 1, stride_1x1, 0, d, gen));
    register_module("bn1", make_bn(width, d));
    register_module("conv2", make_conv(width, width, 3, stride_3x3, 1, d, gen, groups));
    register_module("bn2", make_bn(width, d));
    register_module("conv3", make_conv(width, out, 1, 1, 0, d, gen));
    register_module("bn3", make_bn(out, d));
  } else {
    register_module("conv1", make_conv(in, planes, 3, stride, 1, d, gen));
    register_module("bn1", make_bn(planes, d));
    register_module("conv2", make_conv(planes, planes, 3, 1, 1, d, gen));
    register_module("bn2", make_bn(planes, d));
  }
  register_module("relu", std::make_shared<ReLU>());
  if (stride != 1 || in != out) {
    auto downsample = register_module("downsample", std::make_shared<Sequential>());
    downsample->push_back(make_conv(in, out, 1, stride, 0, d, gen));
    downsample->push_back(make_bn(out, d));
  }
}

// relu(bn(conv(x))) and relu(bn(conv(y)) + shortcut) run as fused batch-norm epilogues (norm_add_relu): the same
// math as the separate relu/add modules, without their extra passes over the activations. Every child is looked up
// by name at each call, so a module put in by replace_module is the one that runs.
Tensor ResidualBlock::forward(const Tensor& x) {
  Module& relu = required_child("relu");
  Tensor y = norm_add_relu(required_child("bn1"), &relu, required_child("conv1")(x), std::nullopt);
  if (bottleneck_) y = norm_add_relu(required_child("bn2"), &relu, required_child("conv2")(y), std::nullopt);
  Module* downsample = child("downsample");
  Tensor shortcut = downsample ? (*downsample)(x) : x;
  const char* last = bottleneck_ ? "3" : "2";
  return norm_add_relu(required_child(std::string("bn") + last), &relu, required_child(std::string("conv") + last)(y),
                       shortcut);
}

ResNet::ResNet(const ResNetOptions& o) : options_(o) {
  int blocks[4];
  bool bottleneck = o.depth >= 50;
  switch (o.depth) {
    case 18: blocks[0] = 2, blocks[1] = 2, blocks[2] = 2, blocks[3] = 2; break;
    case 34: blocks[0] = 3, blocks[1] = 4, blocks[2] = 6, blocks[3] = 3; break;
    case 50: blocks[0] = 3, blocks[1] = 4, blocks[2] = 6, blocks[3] = 3; break;
    case 101: blocks[0] = 3, blocks[1] = 4, blocks[2] = 23, blocks[3] = 3; break;
    case 152: blocks[0] = 3, blocks[1] = 8, blocks[2] = 36, blocks[3] = 3; break;
    default: GRAFT_FAIL("ResNet: unsupported depth ", o.depth, " (18, 34, 50, 101 or 152)");
  }
  GRAFT_CHECK(!o.include_top || o.num_classes > 0, "ResNet: num_classes must be positive, got ", o.num_classes);
  GRAFT_CHECK(o.groups > 0 && o.width_per_group > 0 && (is_plain(o) || bottleneck), "ResNet-", o.depth, ": groups ",
              o.groups, " and width_per_group ", o.width_per_group,
              " need a bottleneck ResNet (depth 50, 101 or 152; 18 and 34 take only 1 and 64, as in torchvision)");
  GRAFT_CHECK(is_plain(o) || o.dialect == Dialect::Torchvision, type_name(), ": ResNeXt and Wide ResNet exist in the ",
              "torchvision dialect only (Keras applications has neither), not ", dialect_name(o.dialect));
  Generator gen(o.seed);
  const Dialect d = o.dialect;
  if (is_keras(d)) {
    register_module("conv1_pad", std::make_shared<ZeroPad2d>(3));
    register_module("conv1", make_conv(3, 64, 7, 2, 0, d, gen));
  } else {
    register_module("conv1", make_conv(3, 64, 7, 2, 3, d, gen));
  }
  register_module("bn1", make_bn(64, d));
  register_module("relu", std::make_shared<ReLU>());
  if (d == Dialect::Keras) {
    register_module("pool1_pad", std::make_shared<ZeroPad2d>(1));
    register_module("maxpool", std::make_shared<MaxPool2d>(3, 2, 0));
  } else if (d == Dialect::KerasLegacy) {  // the 2016 model pools without padding: 112 -> 55, not 56
    register_module("maxpool", std::make_shared<MaxPool2d>(3, 2, 0));
  } else {
    register_module("maxpool", std::make_shared<MaxPool2d>(3, 2, 1));
  }
  int in = 64;
  const int expansion = bottleneck ? 4 : 1;
  for (int stage = 0; stage < 4; ++stage) {
    const int planes = 64 << stage;
    // torchvision's width: planes * (width_per_group / 64) * groups, in integer arithmetic in that order.
    const int width = planes * o.width_per_group / 64 * o.groups;
    auto layer = register_module("layer" + std::to_string(stage + 1), std::make_shared<Sequential>());
    for (int b = 0; b < blocks[stage]; ++b) {
      int stride = (b == 0 && stage > 0) ? 2 : 1;
      layer->push_back(
          std::make_shared<ResidualBlock>(in, planes, stride, bottleneck, d, gen, width, o.groups));
      in = planes * expansion;
    }
  }
  feature_channels_ = in;
  register_module("avgpool", std::make_shared<AdaptiveAvgPool2d>(1, 1));
  if (o.include_top) register_module("fc", std::make_shared<Linear>(in, o.num_classes, true, gen));
}

Tensor ResNet::forward(const Tensor& x) {
  GRAFT_CHECK(x.ndim() == 4 && x.dim(3) == 3, type_name(), ": input ", shape_str(x.shape()),
              " must be NHWC images (N,H,W,3)");
  // Every child looked up by name at each call: a module put in by replace_module is the one that runs.
  Tensor y = x;
  if (Module* pad = child("conv1_pad")) y = (*pad)(y);
  y = norm_add_relu(required_child("bn1"), &required_child("relu"), required_child("conv1")(y), std::nullopt);
  if (Module* pad = child("pool1_pad")) y = (*pad)(y);
  y = required_child("maxpool")(y);
  for (const char* layer : {"layer1", "layer2", "layer3", "layer4"}) y = required_child(layer)(y);
  y = required_child("avgpool")(y).flatten(1);
  if (Module* head = child("fc")) y = (*head)(y);
  return y;
}

}  // namespace graft
