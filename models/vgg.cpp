#include "models/vgg.h"

#include <vector>

#include "core/error.h"
#include "layers/batch_norm.h"
#include "layers/conv2d.h"
#include "layers/linear.h"

namespace graft {

namespace {
constexpr int M = 0;  // max-pool marker in a configuration
std::vector<int> vgg_config(int depth) {
  switch (depth) {
    case 11: return {64, M, 128, M, 256, 256, M, 512, 512, M, 512, 512, M};
    case 13: return {64, 64, M, 128, 128, M, 256, 256, M, 512, 512, M, 512, 512, M};
    case 16: return {64, 64, M, 128, 128, M, 256, 256, 256, M, 512, 512, 512, M, 512, 512, 512, M};
    case 19: return {64, 64, M, 128, 128, M, 256, 256, 256, 256, M, 512, 512, 512, 512, M, 512, 512, 512, 512, M};
  }
  GRAFT_FAIL("VGG: unsupported depth ", depth, " (11, 13, 16 or 19)");
}
}  // namespace

VGG::VGG(const VGGOptions& o) : options_(o) {
  GRAFT_CHECK(!o.include_top || o.num_classes > 0, "VGG: num_classes must be positive, got ", o.num_classes);
  Generator gen(o.seed);
  auto features = register_module("features", std::make_shared<Sequential>());
  int in = 3;
  for (int width : vgg_config(o.depth)) {
    if (width == M) {
      features->push_back(std::make_shared<MaxPool2d>(2, 2));
      continue;
    }
    Conv2dConfig c;
    c.in_channels = in, c.out_channels = width, c.kernel_h = c.kernel_w = 3, c.padding = 1;
    c.init = ConvInit::KaimingFanOut;
    features->push_back(std::make_shared<Conv2d>(c, gen));
    if (o.batch_norm) features->push_back(std::make_shared<BatchNorm2d>(width));
    features->push_back(std::make_shared<ReLU>());
    in = width;
  }
  if (!o.include_top) return;
  register_module("avgpool", std::make_shared<AdaptiveAvgPool2d>(7, 7));
  auto classifier = register_module("classifier", std::make_shared<Sequential>());
  classifier->push_back(std::make_shared<Linear>(512 * 7 * 7, 4096, true, gen, LinearInit::Normal001));
  classifier->push_back(std::make_shared<ReLU>());
  classifier->push_back(std::make_shared<Dropout>(o.dropout, o.seed + 1));
  classifier->push_back(std::make_shared<Linear>(4096, 4096, true, gen, LinearInit::Normal001));
  classifier->push_back(std::make_shared<ReLU>());
  classifier->push_back(std::make_shared<Dropout>(o.dropout, o.seed + 2));
  classifier->push_back(std::make_shared<Linear>(4096, o.num_classes, true, gen, LinearInit::Normal001));
}

std::string VGG::type_name() const {
  return "VGG" + std::to_string(options_.depth) + (options_.batch_norm ? "_BN" : "");
}

// The features run module by module, fusing what follows a convolution: conv -> relu as one conv2d_relu op,
// conv -> batch norm -> relu as the batch-norm op with its relu epilogue. Same math as the modules one by one,
// fewer passes over the activations. A replaced module (replace_module) breaks the pattern and runs as itself, and so
// does a replaced "features" that is not a Sequential (looked up by name at each call).
Tensor VGG::run_features(const Tensor& x) {
  Module& features = required_child("features");
  if (!dynamic_cast<Sequential*>(&features)) return features(x);
  const auto& layers = features.children();
  auto is_relu = [&](std::size_t i) { return i < layers.size() && dynamic_cast<ReLU*>(layers[i].second.get()); };
  Tensor y = x;
  for (std::size_t i = 0; i < layers.size(); ++i) {
    auto* conv = dynamic_cast<Conv2d*>(layers[i].second.get());
    auto* bn = i + 1 < layers.size() ? dynamic_cast<BatchNorm2d*>(layers[i + 1].second.get()) : nullptr;
    if (conv && is_relu(i + 1)) {
      y = conv->forward_relu(y);
      layers[++i].second->set_last_output_shape(y.shape());
    } else if (conv && bn && is_relu(i + 2)) {
      y = bn->forward_add_relu((*conv)(y), std::nullopt, true);
      layers[i + 2].second->set_last_output_shape(y.shape());
      i += 2;
    } else {
      y = (*layers[i].second)(y);
    }
  }
  features.set_last_output_shape(y.shape());
  return y;
}

Tensor VGG::forward(const Tensor& x) {
  GRAFT_CHECK(x.ndim() == 4 && x.dim(3) == 3, type_name(), ": input ", shape_str(x.shape()),
              " must be NHWC images (N,H,W,3)");
  Tensor y = run_features(x);
  if (!options_.include_top) return y;
  y = (*child("avgpool"))(y).flatten(1);
  return (*child("classifier"))(y);
}

}  // namespace graft
