// The model zoo by name, and transfer-learning surgery on its models.
//   resnet18 resnet34 resnet50 resnet101 resnet152   (dialect torchvision | keras | keras-legacy)
//   resnext50_32x4d resnext101_32x8d resnext101_64x4d wide_resnet50_2 wide_resnet101_2   (torchvision only)
//   resnet50v2 resnet101v2 resnet152v2   (Keras applications' pre-activation ResNets; no dialect applies)
//   vgg11 vgg13 vgg16 vgg19, and vgg11_bn ... vgg19_bn
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "layers/module.h"
#include "models/resnet.h"
#include "models/resnet_v2.h"
#include "models/vgg.h"

namespace graft {

struct ModelOptions {
  int num_classes = 1000;
  bool include_top = true;
  Dialect dialect = Dialect::Torchvision;
  std::uint64_t seed = 0;
};

// For messages and --help: every name above, grouped.
inline constexpr const char* kArchitectures =
    "resnet18/34/50/101/152, resnext50_32x4d, resnext101_32x8d/64x4d, wide_resnet50_2/101_2, "
    "resnet50v2/101v2/152v2, vgg11/13/16/19[_bn]";

std::vector<std::string> model_names();
// True for the ResNet family (resnet*, resnext*, wide_resnet*, resnet*v2): BatchNorm networks with an "fc" head.
bool is_resnet_arch(const std::string& arch);
// True for resnet50v2, resnet101v2, resnet152v2 (Keras's pre-activation ResNets, models/resnet_v2.h).
bool is_resnet_v2_arch(const std::string& arch);
// True for resnet18 ... resnet152: the architectures built in a dialect of your choice (ModelOptions::dialect).
bool has_dialects(const std::string& arch);
// The dialect `arch` is built in: `requested` where it has dialects, else its only form: keras for the V2 ResNets,
// torchvision for ResNeXt, Wide ResNet and VGG (one architecture whether its weights came from Keras or torch).
Dialect dialect_of(const std::string& arch, Dialect requested);
std::shared_ptr<Module> make_model(const std::string& arch, const ModelOptions& options = {});

// Dotted path of the last classifier layer: "fc" for ResNets, "classifier.6" for VGGs.
std::string head_path(Module& model);
// Replaces the last classifier layer (e.g. with Linear(2048, 5) for 5 new classes).
void replace_head(Module& model, std::shared_ptr<Module> head);
// Puts every BatchNorm2d under `pattern` ("*" = all) into freeze_bn() mode; returns how many.
int freeze_batch_norm(Module& model, const std::string& pattern = "*");

}  // namespace graft
