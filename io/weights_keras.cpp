// Keras weight files: legacy `.h5` (layer_names / weight_names) and Keras 3 `.weights.h5` (layers/<class>/vars).
// Layers map to graft modules by name (ResNet 2018 and 2016 names, VGG names) or, when no name is recognised,
// by position per layer kind in Keras's model.layers order (keras_layer_order below).
#include <algorithm>
#include <cstdlib>
#include <map>
#include <regex>
#include <set>

#include "core/error.h"
#include "io/hdf5_write.h"
#include "io/weights_internal.h"
#include "models/resnet.h"
#include "models/vgg.h"
#include "models/zoo.h"

namespace graft::weights_detail {

namespace {

enum class Kind { None, Conv, Dense, BatchNorm, Other };

struct KerasLayer {
  std::string name;        // the Keras layer name; "" when the file does not record it
  std::string class_hint;  // Keras 3 group name without its counter ("conv2d"); "" for legacy files
  std::vector<std::pair<std::string, hdf5::DatasetInfo>> weights;  // (source name, dataset) in Keras order
};

Kind kind_of(const KerasLayer& layer) {
  if (layer.weights.empty()) return Kind::None;
  if (layer.class_hint == "conv2d") return Kind::Conv;
  if (layer.class_hint == "dense") return Kind::Dense;
  if (layer.class_hint == "batch_normalization") return Kind::BatchNorm;
  std::size_t rank = layer.weights.front().second.shape.size();
  if (rank == 4) return Kind::Conv;
  if (rank == 2) return Kind::Dense;
  bool all_vectors =
      std::all_of(layer.weights.begin(), layer.weights.end(), [](const auto& w) { return w.second.shape.size() == 1; });
  return all_vectors && layer.weights.size() == 4 ? Kind::BatchNorm : Kind::Other;
}

struct Target {
  std::string path;  // graft module path
  Kind kind = Kind::None;
};

const std::regex kResNetName(R"(conv(\d)_block(\d+)_(\d)_(conv|bn))");
const std::regex kResNet2016(R"((res|bn)(\d)([a-z])_branch(1|2[abc]))");
const std::regex kVggName(R"(block(\d)_conv(\d+))");

const std::regex kResNetV2Preact(R"(conv(\d)_block(\d+)_preact_bn)");

bool is_2016_name(const std::string& name) { return name == "bn_conv1" || std::regex_match(name, kResNet2016); }
// Names only the pre-activation ResNets (ResNet50V2, ...) have.
bool is_v2_name(const std::string& name) { return name == "post_bn" || std::regex_match(name, kResNetV2Preact); }
bool is_resnet_name(const std::string& name) {
  return name == "conv1_conv" || name == "conv1_bn" || name == "fc1000" || name == "probs" ||
         std::regex_match(name, kResNetName) || is_2016_name(name) || is_v2_name(name);
}

// Keras layer name -> graft module. vgg_convs[b] = convolutions in VGG block b (for features.{i}); v2: the
// pre-activation ResNet's modules (models/resnet_v2.h), whose shortcut conv is `downsample` itself.
std::optional<Target> map_name(const std::string& name, bool vgg, const std::map<int, int>& vgg_convs,
                               bool v2 = false) {
  std::smatch m;
  if (v2) {
    if (name == "post_bn") return Target{"post_bn", Kind::BatchNorm};
    if (name == "conv1_bn" || name == "bn_conv1" || std::regex_match(name, kResNet2016)) return std::nullopt;
    const bool preact = std::regex_match(name, m, kResNetV2Preact);
    if (preact || (std::regex_match(name, m, kResNetName) && m[3] == "0")) {
      const std::string block =
          "layer" + std::to_string(std::stoi(m[1]) - 1) + "." + std::to_string(std::stoi(m[2]) - 1);
      if (preact) return Target{block + ".preact_bn", Kind::BatchNorm};
      return m[4] == "conv" ? std::optional<Target>(Target{block + ".downsample", Kind::Conv}) : std::nullopt;
    }
  }
  if (vgg) {
    if (name == "fc1") return Target{"classifier.0", Kind::Dense};
    if (name == "fc2") return Target{"classifier.3", Kind::Dense};
    if (name == "predictions") return Target{"classifier.6", Kind::Dense};
    if (!std::regex_match(name, m, kVggName)) return std::nullopt;
    // features = per block: (conv, ReLU) * n, MaxPool
    int block = std::stoi(m[1]), conv = std::stoi(m[2]), index = 0;
    for (int b = 1; b < block; ++b) index += 2 * (vgg_convs.count(b) ? vgg_convs.at(b) : 0) + 1;
    return Target{"features." + std::to_string(index + 2 * (conv - 1)), Kind::Conv};
  }
  if (name == "conv1_conv" || name == "conv1") return Target{"conv1", Kind::Conv};
  if (name == "conv1_bn" || name == "bn_conv1") return Target{"bn1", Kind::BatchNorm};
  if (name == "probs" || name == "predictions" || name == "fc1000") return Target{"fc", Kind::Dense};
  if (std::regex_match(name, m, kResNetName)) {
    int stage = std::stoi(m[1]), block = std::stoi(m[2]), k = std::stoi(m[3]);
    bool conv = m[4] == "conv";
    std::string prefix = "layer" + std::to_string(stage - 1) + "." + std::to_string(block - 1) + ".";
    if (k == 0) return Target{prefix + (conv ? "downsample.0" : "downsample.1"), conv ? Kind::Conv : Kind::BatchNorm};
    return Target{prefix + (conv ? "conv" : "bn") + std::to_string(k), conv ? Kind::Conv : Kind::BatchNorm};
  }
  if (std::regex_match(name, m, kResNet2016)) {  // res2a_branch2b: stage 2, block a, branch 2 conv b
    bool conv = m[1] == "res";
    int stage = std::stoi(m[2]), block = m[3].str()[0] - 'a';
    std::string branch = m[4], prefix = "layer" + std::to_string(stage - 1) + "." + std::to_string(block) + ".";
    if (branch == "1")
      return Target{prefix + (conv ? "downsample.0" : "downsample.1"), conv ? Kind::Conv : Kind::BatchNorm};
    std::string k = std::to_string(branch[1] - 'a' + 1);
    return Target{prefix + (conv ? "conv" : "bn") + k, conv ? Kind::Conv : Kind::BatchNorm};
  }
  return std::nullopt;
}

std::vector<int> resnet_blocks(int depth) {
  switch (depth) {
    case 18:
      return {2, 2, 2, 2};
    case 34:
    case 50:
      return {3, 4, 6, 3};
    case 101:
      return {3, 4, 23, 3};
    case 152:
      return {3, 8, 36, 3};
  }
  return {};
}

std::vector<int> vgg_blocks(int depth) {
  switch (depth) {
    case 11:
      return {1, 1, 2, 2, 2};
    case 13:
      return {2, 2, 2, 2, 2};
    case 16:
      return {2, 2, 3, 3, 3};
    case 19:
      return {2, 2, 4, 4, 4};
  }
  return {};
}

// The weighted layers of Keras's application model in model.layers order (2018 names). Keras sorts a functional
// model's layers by depth from the output, ties by first visit from the output, inputs in call order: in a block
// with a projection shortcut, Add([shortcut, x]) puts _0_conv before _3_conv and _0_bn before _3_bn.
std::vector<std::pair<std::string, Kind>> keras_layer_order(const std::string& arch) {
  std::vector<std::pair<std::string, Kind>> order;
  if (is_resnet_v2_arch(arch)) {  // per block: preact_bn, 1_conv, 1_bn, 2_conv, 2_bn, [0_conv], 3_conv
    std::vector<int> blocks = resnet_blocks(std::atoi(arch.c_str() + 6));
    if (blocks.empty()) return order;
    order = {{"conv1_conv", Kind::Conv}};
    for (int s = 0; s < 4; ++s)
      for (int b = 1; b <= blocks[static_cast<std::size_t>(s)]; ++b) {
        std::string p = "conv" + std::to_string(s + 2) + "_block" + std::to_string(b) + "_";
        order.emplace_back(p + "preact_bn", Kind::BatchNorm);
        for (const char* k : {"1", "2"}) {
          order.emplace_back(p + k + "_conv", Kind::Conv);
          order.emplace_back(p + k + "_bn", Kind::BatchNorm);
        }
        if (b == 1) order.emplace_back(p + "0_conv", Kind::Conv);
        order.emplace_back(p + "3_conv", Kind::Conv);
      }
    order.emplace_back("post_bn", Kind::BatchNorm);
    order.emplace_back("predictions", Kind::Dense);
  } else if (arch.rfind("resnet", 0) == 0) {
    int depth = std::atoi(arch.c_str() + 6);
    std::vector<int> blocks = resnet_blocks(depth);
    if (blocks.empty()) return order;
    const int last = depth >= 50 ? 3 : 2;
    order = {{"conv1_conv", Kind::Conv}, {"conv1_bn", Kind::BatchNorm}};
    for (int s = 0; s < 4; ++s)
      for (int b = 1; b <= blocks[static_cast<std::size_t>(s)]; ++b) {
        std::string p = "conv" + std::to_string(s + 2) + "_block" + std::to_string(b) + "_";
        for (int k = 1; k < last; ++k) {
          order.emplace_back(p + std::to_string(k) + "_conv", Kind::Conv);
          order.emplace_back(p + std::to_string(k) + "_bn", Kind::BatchNorm);
        }
        bool projection = b == 1 && (s > 0 || depth >= 50);
        if (projection) order.emplace_back(p + "0_conv", Kind::Conv);
        order.emplace_back(p + std::to_string(last) + "_conv", Kind::Conv);
        if (projection) order.emplace_back(p + "0_bn", Kind::BatchNorm);
        order.emplace_back(p + std::to_string(last) + "_bn", Kind::BatchNorm);
      }
    order.emplace_back("predictions", Kind::Dense);
  } else if (arch.rfind("vgg", 0) == 0 && arch.find("_bn") == std::string::npos) {
    std::vector<int> blocks = vgg_blocks(std::atoi(arch.c_str() + 3));
    for (std::size_t b = 0; b < blocks.size(); ++b)
      for (int c = 1; c <= blocks[b]; ++c)
        order.emplace_back("block" + std::to_string(b + 1) + "_conv" + std::to_string(c), Kind::Conv);
    if (!blocks.empty())
      for (const char* name : {"fc1", "fc2", "predictions"}) order.emplace_back(name, Kind::Dense);
  }
  return order;
}

std::string guess_arch(const std::vector<KerasLayer>& layers, bool vgg, const std::map<int, int>& vgg_convs) {
  std::map<Kind, int> kinds;
  std::map<int, int> stage_blocks;  // ResNet stage -> highest block number
  std::smatch m;
  bool v2 = false;
  for (const auto& l : layers) {
    ++kinds[kind_of(l)];
    v2 = v2 || is_v2_name(l.name);
    if (std::regex_match(l.name, m, kResNetName))
      stage_blocks[std::stoi(m[1])] = std::max(stage_blocks[std::stoi(m[1])], std::stoi(m[2]));
    else if (std::regex_match(l.name, m, kResNet2016))
      stage_blocks[std::stoi(m[2])] = std::max(stage_blocks[std::stoi(m[2])], m[3].str()[0] - 'a' + 1);
  }
  if (vgg) {
    int convs = 0;
    for (auto& [b, n] : vgg_convs) convs += n;
    if (convs == 0) convs = kinds[Kind::Conv];
    const std::map<int, int> depths = {{8, 11}, {10, 13}, {13, 16}, {16, 19}};
    return depths.count(convs) ? "vgg" + std::to_string(depths.at(convs)) : "";
  }
  for (int depth : {50, 101, 152}) {
    std::vector<int> blocks = resnet_blocks(depth);
    bool by_names = stage_blocks.size() == 4;
    for (int s = 0; s < 4 && by_names; ++s) by_names = stage_blocks[s + 2] == blocks[static_cast<std::size_t>(s)];
    int convs = 1 + 4;
    for (int n : blocks) convs += 3 * n;
    // Unnamed: V1 has a BatchNorm per conv; V2 has as many convs, and 3 BatchNorms per block plus post_bn.
    const bool v1_counts = kinds[Kind::Conv] == convs && kinds[Kind::BatchNorm] == convs;
    const bool v2_counts = kinds[Kind::Conv] == convs && kinds[Kind::BatchNorm] == convs - 4;
    if ((by_names && !v2) || (stage_blocks.empty() && v1_counts)) return "resnet" + std::to_string(depth);
    if ((by_names && v2) || (stage_blocks.empty() && v2_counts)) return "resnet" + std::to_string(depth) + "v2";
  }
  if (stage_blocks.empty() && kinds[Kind::BatchNorm] == 0) {  // an unnamed VGG
    const std::map<int, int> depths = {{8, 11}, {10, 13}, {13, 16}, {16, 19}};
    if (depths.count(kinds[Kind::Conv])) return "vgg" + std::to_string(depths.at(kinds[Kind::Conv]));
  }
  return "";
}

// A Keras layer's weights in Keras's order, and the graft tensor of the module each one is.
struct Slot {
  const char* graft;
  const char* keras;
};
const std::vector<Slot>& slots(Kind kind) {
  static const std::vector<Slot> kernel_bias = {{"weight", "kernel"}, {"bias", "bias"}};
  static const std::vector<Slot> batch_norm = {
      {"weight", "gamma"}, {"bias", "beta"}, {"running_mean", "moving_mean"}, {"running_var", "moving_variance"}};
  static const std::vector<Slot> none;
  return kind == Kind::BatchNorm ? batch_norm : kind == Kind::Conv || kind == Kind::Dense ? kernel_bias : none;
}

// The layout conversion of a Keras layer's weight `i`: the kernels are transposed, everything else is as is.
Convert keras_convert(Kind kind, std::size_t i) {
  if (i > 0) return Convert::None;
  return kind == Kind::Conv ? Convert::ConvHWIO : kind == Kind::Dense ? Convert::DenseInOut : Convert::None;
}

void add_entries(Plan& plan, const KerasLayer& layer, const std::optional<Target>& target, const std::string& why) {
  Kind kind = kind_of(layer);
  for (std::size_t i = 0; i < layer.weights.size(); ++i) {
    Entry e;
    e.source = layer.weights[i].first;
    e.dataset = layer.weights[i].second.path;
    e.info = layer.weights[i].second;
    if (!target) {
      e.why_unmatched = why;
    } else if (target->kind != kind) {
      e.why_unmatched = "layer '" + layer.name + "' has the weights of another layer kind than " + target->path;
    } else if (i >= slots(kind).size()) {
      e.why_unmatched = "an extra weight in layer '" + layer.name + "'";
    } else {
      e.target = target->path + "." + slots(kind)[i].graft;
      e.convert = keras_convert(kind, i);
    }
    plan.entries.push_back(std::move(e));
  }
}

void build_plan(Plan& plan, const std::vector<KerasLayer>& layers, const std::string& model_arch) {
  std::map<int, int> vgg_convs;
  bool any_named = false, vgg = false, legacy_2016 = false;
  std::smatch m;
  for (const auto& l : layers) {
    if (std::regex_match(l.name, m, kVggName)) {
      vgg = true;
      vgg_convs[std::stoi(m[1])] = std::max(vgg_convs[std::stoi(m[1])], std::stoi(m[2]));
    }
    legacy_2016 = legacy_2016 || is_2016_name(l.name);
    any_named =
        any_named || (kind_of(l) != Kind::None && (is_resnet_name(l.name) || std::regex_match(l.name, kVggName)));
  }
  plan.arch_guess = guess_arch(layers, vgg, vgg_convs);
  const std::string arch = model_arch.empty() ? plan.arch_guess : model_arch;
  if (!any_named) vgg = arch.rfind("vgg", 0) == 0;
  plan.resnet = !vgg && (any_named || arch.rfind("resnet", 0) == 0);
  if (plan.resnet) {
    plan.dialect = legacy_2016 ? Dialect::KerasLegacy : Dialect::Keras;
    plan.dialect_known = any_named;
  } else {
    plan.dialect = Dialect::Keras;
  }

  // Names when any is recognised; otherwise position per kind in Keras's layer order of the architecture.
  std::vector<std::string> names;
  for (const auto& l : layers) names.push_back(l.name);
  if (!any_named) {
    auto order = keras_layer_order(arch);
    std::map<Kind, std::vector<std::string>> expected;
    for (auto& [name, kind] : order) expected[kind].push_back(name);
    std::map<Kind, std::size_t> next;
    int matched = 0;
    for (std::size_t i = 0; i < layers.size(); ++i) {
      Kind kind = kind_of(layers[i]);
      if (kind == Kind::None) continue;
      std::size_t& k = next[kind];
      names[i] = k < expected[kind].size() ? expected[kind][k] : "";
      matched += !names[i].empty();
      ++k;
    }
    if (matched > 0) {
      plan.matched_by_order = true;
      plan.notes.push_back("no Keras layer name was recognised: matched " + std::to_string(matched) +
                           " layers by their position in Keras's " + arch + " layer order");
    }
    vgg_convs.clear();
    for (const auto& name : names)
      if (std::regex_match(name, m, kVggName))
        vgg_convs[std::stoi(m[1])] = std::max(vgg_convs[std::stoi(m[1])], std::stoi(m[2]));
  }
  bool v2 = is_resnet_v2_arch(arch);
  for (const auto& name : names) v2 = v2 || is_v2_name(name);
  for (std::size_t i = 0; i < layers.size(); ++i) {
    const KerasLayer& l = layers[i];
    std::optional<Target> target = names[i].empty() ? std::nullopt : map_name(names[i], vgg, vgg_convs, v2);
    std::string why = names[i].empty() ? "no layer name and no position in a known Keras architecture"
                                       : "Keras layer '" + names[i] + "' has no graft counterpart";
    add_entries(plan, l, target, why);
  }
}

std::string first_string(const hdf5::File& file, const std::string& object, const std::string& attr) {
  if (!file.has_attribute(object, attr)) return "";
  auto values = file.string_list_attribute(object, attr);
  return values.empty() ? "" : values.front();
}

}  // namespace

Plan plan_keras_legacy(const hdf5::File& file, const std::string& root, const std::string& model_arch) {
  Plan plan;
  plan.format = WeightFormat::KerasLegacy;
  plan.root = root;
  for (const std::string& object : {root, std::string("/")}) {
    if (plan.keras_version.empty()) plan.keras_version = first_string(file, object, "keras_version");
    if (plan.backend.empty()) plan.backend = first_string(file, object, "backend");
  }
  std::vector<KerasLayer> layers;
  // layer_names gives the model order; group iteration order is alphabetical.
  for (const auto& name : file.string_list_attribute(root, "layer_names")) {
    std::string group = hdf5::join(root, name);
    GRAFT_CHECK(file.has_group(group), "load_weights: '", file.path(), "': layer_names lists '", name,
                "' but there is no group ", group);
    KerasLayer layer;
    layer.name = name;
    if (!file.has_string_list_attribute(group, "weight_names")) {
      GRAFT_CHECK(file.datasets_below(group).empty(), "load_weights: '", file.path(), "': layer group ", group,
                  " holds datasets but no weight_names attribute giving their order");
    } else {
      // Weight names may contain '/' (nested groups): open them relative to the layer group.
      for (const auto& weight : file.string_list_attribute(group, "weight_names")) {
        std::string path = hdf5::join(group, weight);
        GRAFT_CHECK(file.has_dataset(path), "load_weights: '", file.path(), "': weight_names of layer '", name,
                    "' lists '", weight, "' but there is no dataset ", path);
        layer.weights.emplace_back(name + "/" + weight, file.dataset_info(path));
      }
    }
    layers.push_back(std::move(layer));
  }
  build_plan(plan, layers, model_arch);
  return plan;
}

Plan plan_keras3(const hdf5::File& file, const std::string& model_arch) {
  Plan plan;
  plan.format = WeightFormat::Keras3;
  plan.root = "/layers";
  static const std::regex counter(R"((.*)_(\d+))");
  struct Keyed {
    std::string cls;
    int index;
    KerasLayer layer;
  };
  std::vector<Keyed> keyed;
  for (const auto& child : file.children("/layers")) {
    std::string group = "/layers/" + child, vars = group + "/vars";
    GRAFT_CHECK(!file.has_group(group + "/layers"), "load_weights: '", file.path(), "': ", group,
                " is a nested model; graft reads flat application models only");
    if (!file.has_group(vars)) continue;
    Keyed k;
    std::smatch m;
    k.cls = std::regex_match(child, m, counter) ? m[1].str() : child;
    k.index = std::regex_match(child, m, counter) ? std::stoi(m[2]) : 0;
    k.layer.class_hint = k.cls;
    k.layer.name = first_string(file, vars, "name");  // Keras >= 3.6
    std::vector<std::string> var_names = file.children(vars);
    for (const auto& v : var_names)
      GRAFT_CHECK(!v.empty() && std::all_of(v.begin(), v.end(), ::isdigit), "load_weights: '", file.path(),
                  "': unexpected variable '", v, "' in ", vars, " (Keras 3 numbers them 0, 1, ...)");
    std::sort(var_names.begin(), var_names.end(),
              [](const std::string& a, const std::string& b) { return std::stoi(a) < std::stoi(b); });
    for (const auto& v : var_names) {
      std::string path = vars + "/" + v;
      GRAFT_CHECK(file.has_dataset(path), "load_weights: '", file.path(), "': ", path, " is not a dataset");
      std::string source = "layers/" + child + "/vars/" + v;
      if (!k.layer.name.empty()) source += " (" + k.layer.name + ")";
      k.layer.weights.emplace_back(source, file.dataset_info(path));
    }
    keyed.push_back(std::move(k));
  }
  // The counter numbers each class in model.layers order; name order would put conv2d_10 before conv2d_2.
  std::stable_sort(keyed.begin(), keyed.end(),
                   [](const Keyed& a, const Keyed& b) { return a.cls != b.cls ? a.cls < b.cls : a.index < b.index; });
  std::vector<KerasLayer> layers;
  for (auto& k : keyed) layers.push_back(std::move(k.layer));
  build_plan(plan, layers, model_arch);
  return plan;
}

}  // namespace graft::weights_detail

namespace graft {

void export_keras(const Module& model, const std::string& path) {
  using namespace weights_detail;
  const std::string arch = model_arch(&model);
  auto refuse = [&](const std::string& why) { GRAFT_FAIL("export_keras: '", path, "': ", why); };
  // Keras 3's load_weights reads the legacy format for names ending in .h5 or .hdf5, its own for .weights.h5.
  if (path.ends_with(".weights.h5") || !(path.ends_with(".h5") || path.ends_with(".hdf5")))
    refuse("Keras reads this legacy weights format (the one keras.applications downloads) only from a name ending "
           "in .h5 or .hdf5, and a name ending in .weights.h5 as its Keras 3 format: name it <something>.h5");
  const std::set<std::string> applications = {"resnet50",    "resnet101",   "resnet152", "resnet50v2",
                                              "resnet101v2", "resnet152v2", "vgg16",     "vgg19"};
  if (!applications.count(arch))
    refuse(arch.empty() ? "not a zoo ResNet or VGG: Keras's legacy loader matches layers by Keras's model order, "
                          "which only the application models have"
                        : "Keras has no application model for " + arch +
                              " (it has ResNet50/101/152, ResNet50V2/101V2/152V2, VGG16/19)");
  if (auto* resnet = dynamic_cast<const ResNet*>(&model); resnet && resnet->options().dialect != Dialect::Keras)
    refuse("the model is a " + arch + " in the " + dialect_name(resnet->options().dialect) +
           " dialect; Keras's ResNet is the keras dialect (" +
           (resnet->options().dialect == Dialect::KerasLegacy
                ? "the 2016 dialect's BatchNorm eps 1e-3 and unpadded stem pooling are not today's Keras's"
                : kKerasResNetDifference) +
           ")");
  const bool vgg = arch.rfind("vgg", 0) == 0, v2 = is_resnet_v2_arch(arch);
  std::map<int, int> vgg_convs;  // block -> convolutions, as map_name wants them
  if (vgg) {
    std::vector<int> blocks = vgg_blocks(std::atoi(arch.c_str() + 3));
    for (std::size_t b = 0; b < blocks.size(); ++b) vgg_convs[static_cast<int>(b) + 1] = blocks[b];
  }

  // The plan first (every model tensor placed, or an error before anything is written), then the file.
  struct Weight {
    std::string name;  // "<layer>/kernel:0", as Keras 2 wrote them
    Tensor tensor;
    Convert convert = Convert::None;
  };
  std::vector<std::pair<std::string, std::vector<Weight>>> layers;
  const std::map<std::string, Tensor> state = model.state();
  std::set<std::string> placed;
  for (const auto& [layer, kind] : keras_layer_order(arch)) {
    const std::optional<Target> target = map_name(layer, vgg, vgg_convs, v2);
    GRAFT_CHECK(target && target->kind == kind, "export_keras: Keras layer ", layer, " has no graft counterpart");
    // The V2 bottleneck's 1x1 and 3x3 convs have no bias in Keras either: their layers hold the kernel alone.
    const bool no_bias = v2 && (layer.ends_with("_1_conv") || layer.ends_with("_2_conv"));
    const bool top = target->path == "fc" || target->path.rfind("classifier.", 0) == 0;
    if (top && !state.count(target->path + ".weight")) continue;  // a model without its top (include_top=False)
    std::vector<Weight> weights;
    const std::vector<Slot>& layer_slots = slots(kind);
    for (std::size_t i = 0; i < (no_bias ? 1 : layer_slots.size()); ++i) {
      const std::string key = target->path + "." + layer_slots[i].graft;
      if (!state.count(key)) refuse("the model has no " + key + ", which Keras's layer " + layer + " holds");
      const Tensor& tensor = state.at(key);
      if (tensor.dtype() != DType::Float32)
        refuse(key + " holds " + dtype_name(tensor.dtype()) + " values; weight files hold float32 tensors");
      weights.push_back({layer + "/" + layer_slots[i].keras + ":0", tensor, keras_convert(kind, i)});
      placed.insert(key);
    }
    layers.emplace_back(layer, std::move(weights));
  }
  std::string unplaced;
  for (const auto& [key, tensor] : state)
    if (!placed.count(key)) unplaced += (unplaced.empty() ? "" : ", ") + key + " " + shape_str(tensor.shape());
  if (!unplaced.empty())
    refuse("Keras's " + arch + " has no place for the model's " + unplaced +
           " (a custom head? Keras's application has one dense layer, predictions)");

  hdf5::Writer writer(path);
  std::vector<std::string> layer_names;
  for (const auto& [layer, weights] : layers) {
    std::vector<std::string> weight_names;
    for (const Weight& w : weights) {
      writer.dataset(layer + "/" + w.name, to_file_layout(w.tensor.detach().to(kCPU), w.convert));
      weight_names.push_back(w.name);
    }
    writer.string_list_attribute(layer, "weight_names", weight_names);
    layer_names.push_back(layer);
  }
  writer.string_list_attribute("/", "layer_names", layer_names);
  writer.attribute("graft_format", "keras-legacy-h5");
  writer.commit();
}

}  // namespace graft
