// Format detection, strict matching against a model's state, and the all-or-nothing load.
#include "io/weights.h"

#include <cstring>
#include <map>
#include <sstream>

#include "core/autograd.h"
#include "core/error.h"
#include "io/checkpoint.h"
#include "io/weights_internal.h"
#include "models/resnet_v2.h"
#include "models/vgg.h"
#include "models/zoo.h"

namespace graft {

using weights_detail::Convert;
using weights_detail::Entry;
using weights_detail::Plan;

const char* weight_format_name(WeightFormat format) {
  switch (format) {
    case WeightFormat::Torchvision:
      return "torchvision";
    case WeightFormat::KerasLegacy:
      return "keras-legacy-h5";
    case WeightFormat::Keras3:
      return "keras3-weights-h5";
    case WeightFormat::Native:
      return "graft";
  }
  return "?";
}

namespace weights_detail {

std::string model_arch(const Module* model) {
  if (auto* r = dynamic_cast<const ResNet*>(model)) return r->arch();
  if (auto* r = dynamic_cast<const ResNetV2*>(model)) return r->arch();
  if (auto* v = dynamic_cast<const VGG*>(model))
    return "vgg" + std::to_string(v->options().depth) + (v->options().batch_norm ? "_bn" : "");
  return "";
}

}  // namespace weights_detail

namespace {

// Detects the format from the file's structure (never its name) and maps its tensors onto graft names.
Plan make_plan(const hdf5::File& file, const std::string& model_arch) {
  // A graft checkpoint holds /model and /optimizer, which would read as a torchvision export with foreign names.
  GRAFT_CHECK(!is_checkpoint(file), "weights: '", file.path(),
              "' is a graft checkpoint, not a weight file: load it with load_checkpoint (io/checkpoint.h), or give "
              "it to the CLI as --weights or --checkpoint");
  if (file.has_string_list_attribute("/", "layer_names"))
    return weights_detail::plan_keras_legacy(file, "/", model_arch);
  // A whole-model model.save("x.h5") file keeps the weights file's layout under /model_weights.
  if (file.has_group("/model_weights") && file.has_string_list_attribute("/model_weights", "layer_names"))
    return weights_detail::plan_keras_legacy(file, "/model_weights", model_arch);
  // Keras 3: /layers/<child>/vars (a torch export nested in groups could also have a /layers group).
  if (file.has_group("/layers"))
    for (const auto& child : file.children("/layers"))
      if (file.has_group("/layers/" + child + "/vars")) return weights_detail::plan_keras3(file, model_arch);
  std::vector<hdf5::DatasetInfo> datasets = file.datasets_below("/");
  for (const auto& d : datasets)
    for (const char* suffix : {".weight", ".bias", ".running_mean", ".running_var", "/weight", "/bias"})
      if (d.path.ends_with(suffix)) return weights_detail::plan_torchvision(file, model_arch);
  std::ostringstream holds;
  for (std::size_t i = 0; i < datasets.size() && i < 5; ++i) holds << (i ? ", " : "") << datasets[i].path;
  if (datasets.size() > 5) holds << ", ... (" << datasets.size() << " datasets)";
  GRAFT_FAIL("load_weights: '", file.path(),
             "' is an HDF5 file but not a weight file graft knows: no layer_names "
             "attribute (Keras .h5), no /layers group (Keras 3 .weights.h5) and no state_dict-style datasets "
             "(torchvision export); it holds ",
             datasets.empty() ? std::string("no datasets") : holds.str());
}

bool excluded(const std::vector<std::string>& patterns, const std::string& name) {
  if (name.empty()) return false;
  for (const auto& p : patterns)
    if (glob_match(p, name) || glob_match(p + ".*", name)) return true;
  return false;
}

std::string describe_dialect(const Plan& plan) {
  switch (plan.dialect) {
    case Dialect::Torchvision:
      return "torchvision ResNet weights (convs without biases)";
    case Dialect::Keras:
      return "Keras ResNet weights (convs with biases, stride on the first 1x1 conv)";
    case Dialect::KerasLegacy:
      return "Keras 2016 ResNet weights (res2a_branch2a names, BatchNorm eps 1e-3)";
  }
  return "?";
}

void check_dialect(const Plan& plan, Module& model, const std::string& path) {
  auto* resnet = dynamic_cast<ResNet*>(&model);
  if (!resnet || !plan.resnet) return;
  // Only between two dialects of one architecture: a V2, ResNeXt or Wide ResNet file or model is another
  // architecture, which the name check reports ("the file is a resnet50v2, the model a resnet50").
  const bool file_has_dialects = !is_resnet_arch(plan.arch_guess) || has_dialects(plan.arch_guess);  // unknown: maybe
  if (!file_has_dialects || !has_dialects(resnet->arch())) return;
  Dialect built = resnet->options().dialect;
  bool file_keras = plan.dialect != Dialect::Torchvision, model_keras = built != Dialect::Torchvision;
  // The two Keras dialects too (BatchNorm eps, the stem's pooling), where the layer names tell which the file is.
  const bool other = file_keras != model_keras || (plan.dialect_known && plan.dialect != built);
  GRAFT_CHECK(!other, "load_weights: '", path, "' holds ", describe_dialect(plan),
              " but the model was built with dialect ", dialect_name(built), ": build it with dialect ",
              dialect_name(plan.dialect), " (ModelOptions.dialect; on the command line: --dialect ",
              dialect_name(plan.dialect), ")");
}

std::string list_block(const char* label, const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) out += std::string("\n  ") + label + ": " + item;
  return out;
}

// Writes `value` (CPU, float32) into the model tensor without changing its identity: optimizers and other holders
// keep seeing it.
void assign(Tensor& dst, const Tensor& value) { dst.copy_from(value); }

Tensor read_converted(const hdf5::File& file, const Entry& e, const Shape& shape) {
  Tensor out = Tensor::empty(shape, kCPU);
  if (e.convert == Convert::None) {
    file.read_floats_into(e.dataset, out.data<float>(), out.numel());
  } else {
    std::vector<float> raw = file.read_floats(e.dataset);
    weights_detail::convert_layout(out.data<float>(), raw.data(), e.info.shape, e.convert);
  }
  return out;
}

}  // namespace

WeightFileInfo inspect_weights(const std::string& path) {
  hdf5::File file(path);
  Plan plan = make_plan(file, "");
  WeightFileInfo info;
  info.format = plan.format;
  info.dialect = plan.dialect;
  info.arch_guess = plan.arch_guess;
  info.root = plan.root;
  info.keras_version = plan.keras_version;
  info.backend = plan.backend;
  info.matched_by_order = plan.matched_by_order;
  for (const Entry& e : plan.entries) {
    WeightTensorInfo t;
    t.name = e.source;
    t.graft_name = e.target;
    t.shape = e.info.shape;
    t.dtype = e.info.dtype;
    if (e.info.value_class == hdf5::ValueClass::Float) {
      std::vector<float> values = file.read_floats(e.dataset);
      std::tie(t.nan_count, t.inf_count) = count_nonfinite(values.data(), static_cast<std::int64_t>(values.size()));
    }
    info.tensors.push_back(std::move(t));
  }
  return info;
}

Preprocess preprocess_for(const WeightFileInfo& info) {
  return info.format == WeightFormat::Torchvision ? Preprocess::Torch : preprocess_for(info.arch_guess, info.dialect);
}

std::string WeightFileInfo::str() const {
  std::ostringstream out;
  std::int64_t values = 0;
  for (const auto& t : tensors) values += shape_numel(t.shape);
  out << "format " << weight_format_name(format) << ", architecture "
      << (arch_guess.empty() ? std::string("unknown") : arch_guess) << ", dialect " << dialect_name(dialect) << ", "
      << tensors.size() << " tensors, " << values << " values";
  if (!keras_version.empty()) out << ", keras " << keras_version;
  if (!backend.empty()) out << " (" << backend << ")";
  if (root != "/") out << ", weights under " << root;
  if (matched_by_order) out << ", layers matched by position";
  out << "\n";
  for (const auto& t : tensors) {
    out << "  " << t.name << " " << shape_str(t.shape) << " " << t.dtype << " -> "
        << (t.graft_name.empty() ? std::string("(no graft tensor)") : t.graft_name);
    if (t.nan_count || t.inf_count) out << "  [" << t.nan_count << " NaN, " << t.inf_count << " Inf]";
    out << "\n";
  }
  return out.str();
}

LoadReport load_weights(Module& model, const std::string& path, const LoadOptions& options) {
  hdf5::File file(path);
  const std::string arch = weights_detail::model_arch(&model);
  Plan plan = make_plan(file, arch);
  check_dialect(plan, model, path);

  LoadReport report;
  report.warnings = plan.notes;
  std::map<std::string, Tensor> state = model.state();
  std::map<std::string, const Entry*> chosen;  // graft name -> file tensor
  std::vector<std::string> missing, unexpected, wrong_shape, not_float;
  for (const Entry& e : plan.entries) {
    if (excluded(options.exclude, e.target) || excluded(options.exclude, e.source)) {
      report.skipped.push_back(e.target.empty() ? e.source : e.target);
      continue;
    }
    if (e.target.empty()) {
      unexpected.push_back(e.source + " (" + e.why_unmatched + ")");
      continue;
    }
    auto it = state.find(e.target);
    if (it == state.end()) {
      unexpected.push_back(e.source + (e.source == e.target ? "" : " -> " + e.target) + " (not in " +
                           model.type_name() + ")");
      continue;
    }
    if (e.info.value_class != hdf5::ValueClass::Float) {
      not_float.push_back(e.source + " is " + e.info.dtype + " " + shape_str(e.info.shape));
      continue;
    }
    GRAFT_CHECK(!chosen.count(e.target), "load_weights: '", path, "' has two tensors for ", e.target, ": ",
                chosen[e.target]->source, " and ", e.source);
    Shape got = weights_detail::converted_shape(e.info.shape, e.convert), want = it->second.shape();
    if (got != want) {
      wrong_shape.push_back(e.target + ": file " + e.source + " " + shape_str(e.info.shape) +
                            (e.convert == Convert::None ? "" : " (graft layout " + shape_str(got) + ")") + ", model " +
                            shape_str(want));
      continue;
    }
    chosen[e.target] = &e;
  }
  GRAFT_CHECK(not_float.empty(), "load_weights: '", path,
              "' holds integer or non-float weights (graft reads "
              "float16/32/64 only; integer data where a weight belongs means a wrong or damaged file):",
              list_block("refused", not_float));
  for (const auto& [name, tensor] : state) {
    if (chosen.count(name)) continue;
    bool skip = excluded(options.exclude, name);
    bool shape_reported = false;
    for (const auto& w : wrong_shape) shape_reported |= w.rfind(name + ":", 0) == 0;
    if (skip)
      report.left_at_init.push_back(name);
    else if (!shape_reported)
      missing.push_back(name + " " + shape_str(tensor.shape()));
  }
  if (options.strict && (!missing.empty() || !unexpected.empty() || !wrong_shape.empty())) {
    std::string guess = plan.arch_guess.empty() ? "" : ", looks like " + plan.arch_guess;
    std::string hint = !plan.arch_guess.empty() && !arch.empty() && plan.arch_guess != arch
                           ? " - the file is a " + plan.arch_guess + ", the model a " + arch
                           : "";
    GRAFT_FAIL("load_weights: '", path, "' (", weight_format_name(plan.format), guess, ") does not fit ",
               model.type_name(), hint, ": ", missing.size(), " missing, ", unexpected.size(), " unexpected, ",
               wrong_shape.size(), " wrong-shaped tensors", list_block("missing", missing),
               list_block("unexpected", unexpected), list_block("wrong shape", wrong_shape),
               "\n(LoadOptions.exclude skips tensors, e.g. {\"fc.*\"} for a new head; strict = false loads what fits)");
  }
  for (const auto& m : missing) report.warnings.push_back("missing in the file, left at init: " + m);
  for (const auto& u : unexpected) report.warnings.push_back("not loaded: " + u);
  for (const auto& w : wrong_shape) report.warnings.push_back("wrong shape, not loaded: " + w);
  for (const auto& m : missing) report.left_at_init.push_back(m.substr(0, m.find(' ')));
  for (const auto& w : wrong_shape) report.left_at_init.push_back(w.substr(0, w.find(':')));
  for (const auto& u : unexpected) report.skipped.push_back(u.substr(0, u.find(' ')));

  // Read everything before touching the model: a failure leaves it unchanged.
  std::vector<std::pair<std::string, Tensor>> staged;
  for (const auto& [name, e] : chosen) {
    Tensor value = read_converted(file, *e, state[name].shape());
    auto [nan, inf] = count_nonfinite(value.data<float>(), value.numel());
    if (nan || inf)
      report.warnings.push_back(name + " has " + std::to_string(nan) + " NaN and " + std::to_string(inf) +
                                " Inf values (file tensor " + e->source + ")");
    staged.emplace_back(name, std::move(value));
  }
  for (auto& [name, value] : staged) {
    GRAFT_CHECK(state[name].dtype() == DType::Float32, "load_weights: model tensor ", name, " is not float32");
    assign(state[name], value);
    report.loaded.push_back(name);
  }
  return report;
}

std::string LoadReport::str() const {
  auto join = [](const std::vector<std::string>& items) {
    std::string out;
    for (std::size_t i = 0; i < items.size(); ++i) out += (i ? ", " : "") + items[i];
    return out;
  };
  std::ostringstream out;
  out << "loaded " << loaded.size() << " tensors";
  if (!skipped.empty()) out << "\nskipped " << skipped.size() << ": " << join(skipped);
  if (!left_at_init.empty()) out << "\nleft at init " << left_at_init.size() << ": " << join(left_at_init);
  for (const auto& w : warnings) out << "\nwarning: " << w;
  return out.str();
}

}  // namespace graft
