#include "models/zoo.h"

#include "core/error.h"
#include "layers/batch_norm.h"

namespace graft {

namespace {

// Every ResNet of the zoo: torchvision's name and its shape.
struct ResNetShape {
  const char* name;
  int depth, groups, width_per_group;
};
constexpr ResNetShape kResNets[] = {
    {"resnet18", 18, 1, 64},           {"resnet34", 34, 1, 64},          {"resnet50", 50, 1, 64},
    {"resnet101", 101, 1, 64},         {"resnet152", 152, 1, 64},        {"resnext50_32x4d", 50, 32, 4},
    {"resnext101_32x8d", 101, 32, 8},  {"resnext101_64x4d", 101, 64, 4}, {"wide_resnet50_2", 50, 1, 128},
    {"wide_resnet101_2", 101, 1, 128},
};

const ResNetShape* find_resnet(const std::string& arch) {
  for (const auto& r : kResNets)
    if (arch == r.name) return &r;
  return nullptr;
}

// Keras's pre-activation ResNets, "resnet50v2" ...: their depth, 0 for other names.
int resnet_v2_depth(const std::string& arch) {
  for (int depth : {50, 101, 152})
    if (arch == "resnet" + std::to_string(depth) + "v2") return depth;
  return 0;
}

}  // namespace

std::vector<std::string> model_names() {
  std::vector<std::string> names;
  for (const auto& r : kResNets) names.push_back(r.name);
  for (const char* v2 : {"resnet50v2", "resnet101v2", "resnet152v2"}) names.push_back(v2);
  for (const char* vgg : {"vgg11", "vgg13", "vgg16", "vgg19", "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn"})
    names.push_back(vgg);
  return names;
}

bool is_resnet_arch(const std::string& arch) { return find_resnet(arch) != nullptr || resnet_v2_depth(arch) != 0; }

bool is_resnet_v2_arch(const std::string& arch) { return resnet_v2_depth(arch) != 0; }

bool has_dialects(const std::string& arch) {
  const ResNetShape* r = find_resnet(arch);
  return r && r->groups == 1 && r->width_per_group == 64;
}

Dialect dialect_of(const std::string& arch, Dialect requested) {
  if (has_dialects(arch)) return requested;
  return is_resnet_v2_arch(arch) ? Dialect::Keras : Dialect::Torchvision;
}

std::shared_ptr<Module> make_model(const std::string& arch, const ModelOptions& o) {
  auto depth_of = [&](const std::string& prefix, const std::string& suffix) {
    return std::stoi(arch.substr(prefix.size(), arch.size() - prefix.size() - suffix.size()));
  };
  bool known = false;
  for (const auto& name : model_names()) known |= name == arch;
  GRAFT_CHECK(known, "model: unknown architecture '", arch, "' (known: ", kArchitectures, ")");
  if (const ResNetShape* shape = find_resnet(arch)) {
    ResNetOptions r;
    r.depth = shape->depth, r.groups = shape->groups, r.width_per_group = shape->width_per_group;
    r.num_classes = o.num_classes, r.include_top = o.include_top, r.dialect = o.dialect, r.seed = o.seed;
    return std::make_shared<ResNet>(r);
  }
  if (const int depth = resnet_v2_depth(arch)) {  // Keras's architecture: the dialect does not apply
    ResNetV2Options r;
    r.depth = depth, r.num_classes = o.num_classes, r.include_top = o.include_top, r.seed = o.seed;
    return std::make_shared<ResNetV2>(r);
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
  GRAFT_CHECK(head != nullptr, "replace_head: ", model.type_name(), "'s new head is no module (null)");
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
