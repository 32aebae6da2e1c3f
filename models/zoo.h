// The model zoo by name, and transfer-learning surgery on its models.
//   resnet18 resnet34 resnet50 resnet101 resnet152   (dialect torchvision | keras | keras-legacy)
//   vgg11 vgg13 vgg16 vgg19, and vgg11_bn ... vgg19_bn
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "layers/module.h"
#include "models/resnet.h"
#include "models/vgg.h"

namespace graft {

struct ModelOptions {
  int num_classes = 1000;
  bool include_top = true;
  Dialect dialect = Dialect::Torchvision;
  std::uint64_t seed = 0;
};

std::vector<std::string> model_names();
std::shared_ptr<Module> make_model(const std::string& arch, const ModelOptions& options = {});

// Dotted path of the last classifier layer: "fc" for ResNets, "classifier.6" for VGGs.
std::string head_path(Module& model);
// Replaces the last classifier layer (e.g. with Linear(2048, 5) for 5 new classes).
void replace_head(Module& model, std::shared_ptr<Module> head);
// Puts every BatchNorm2d under `pattern` ("*" = all) into freeze_bn() mode; returns how many.
int freeze_batch_norm(Module& model, const std::string& pattern = "*");

}  // namespace graft
