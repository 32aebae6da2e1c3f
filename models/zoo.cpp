#include "models/zoo.h"

#include "core/error.h"
#include "layers/batch_norm.h"

namespace graft {

std::vector<std::string> model_names() {
  return {"resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "vgg11",    "vgg13",    "vgg16",
          "vgg19",    "vgg11_bn", "vgg13_bn", "vgg16_bn",  "vgg19_bn"};
}

std::shared_ptr<Module> make_model(const std::string& arch, const ModelOptions& o) {
  auto depth_of = [&](const std::string& prefix, const std::string& suffix) {
    return std::stoi(arch.substr(prefix.size(), arch.size() - prefix.size() - suffix.size()));
  };
  bool known = false;
  for (const auto& name : model_names()) known |= name == arch;
  GRAFT_CHECK(known, "model: unknown architecture '", arch, "' (known: resnet18/34/50/101/152, vgg11/13/16/19[_bn])");
  if (arch.rfind("resnet", 0) == 0) {
    ResNetOptions r;
    r.depth = depth_of("resnet", "");
    r.num_classes = o.num_classes, r.include_top = o.include_top, r.dialect = o.dialect, r.seed = o.seed;
    return std::make_shared<ResNet>(r);
  }
  bool bn = arch.size() > 3 && arch.substr(arch.size() - 3) == "_bn";
  VGGOptions v;
  v.depth = depth_of("vgg", bn ? "_bn" : "");
  v.batch_norm = bn, v.num_classes = o.num_classes, v.include_top = o.include_top, v.seed = o.seed;
  return std::make_shared<VGG>(v);
}

std::string head_path(Module& model) {
  if (model.child("fc")) return "fc";
  if (model.find_module("classifier.6")) return "classifier.6";
  GRAFT_FAIL("replace_head: ", model.type_name(), " has no classifier head (built with include_top = false?)");
}

void replace_head(Module& model, std::shared_ptr<Module> head) {
  Device device = model.device();
  head->to(device);
  model.replace_module(head_path(model), std::move(head));
}

int freeze_batch_norm(Module& model, const std::string& pattern) {
  int count = 0;
  for (auto& [name, m] : model.named_modules()) {
    auto* bn = dynamic_cast<BatchNorm2d*>(m);
    if (bn && (glob_match(pattern, name) || glob_match(pattern + ".*", name))) {
      bn->freeze_bn();
      ++count;
    }
  }
  GRAFT_CHECK(count > 0, "freeze_batch_norm: pattern '", pattern, "' matches no BatchNorm2d of ", model.type_name());
  return count;
}

}  // namespace graft
