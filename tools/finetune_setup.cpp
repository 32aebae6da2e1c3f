// graft finetune's argument-derived setup: see tools/finetune_setup.h.
#include "tools/finetune_setup.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "core/autograd.h"
#include "core/error.h"
#include "io/checkpoint.h"
#include "io/weights.h"
#include "train/class_weights.h"

namespace graft::cli {

std::vector<float> parse_class_weights(const std::string& text) {
  std::vector<float> out;
  std::stringstream ss(text);
  for (std::string item; std::getline(ss, item, ',');) {
    std::size_t used = 0;
    float w = NAN;
    try {
      w = std::stof(item, &used);
    } catch (const std::exception&) {
    }
    GRAFT_CHECK(used == item.size() && std::isfinite(w) && w >= 0, "finetune: --class-weights '", text, "': '", item,
                "' is not a weight >= 0 (expected balanced or W0,W1,... one per class)");
    out.push_back(w);
  }
  GRAFT_CHECK(!out.empty() && std::any_of(out.begin(), out.end(), [](float w) { return w > 0; }),
              "finetune: --class-weights '", text, "' needs a positive weight");
  return out;
}

std::vector<float> class_weights_for(const std::string& spec, const Dataset& train, int outputs) {
  if (spec.empty()) return {};
  std::vector<std::int64_t> counts(static_cast<std::size_t>(outputs), 0);
  for (std::int64_t i = 0; i < train.size(); ++i) ++counts[static_cast<std::size_t>(train.label(i))];
  if (spec == "balanced") return balanced_class_weights(counts);
  std::vector<float> w = parse_class_weights(spec);
  GRAFT_CHECK(static_cast<int>(w.size()) == outputs, "finetune: --class-weights has ", w.size(), " weights for ",
              outputs, " classes (one per class, in the order of the class names)");
  bool any = false;
  for (std::size_t c = 0; c < w.size(); ++c) any |= w[c] > 0 && counts[c] > 0;
  GRAFT_CHECK(any, "finetune: --class-weights '", spec, "' gives weight 0 to every class of ", train.describe(),
              ": nothing would train");
  return w;
}

std::vector<int> parse_classes(const std::string& text) {
  std::vector<int> out;
  std::stringstream ss(text);
  for (std::string item; std::getline(ss, item, ',');) {
    try {
      std::size_t used = 0;
      int v = std::stoi(item, &used);
      if (used == item.size() && v >= 0) {
        out.push_back(v);
        continue;
      }
    } catch (const std::exception&) {
    }
    GRAFT_FAIL("--classes '", text, "': '", item, "' is not a class index (expected e.g. 5,6,7)");
  }
  GRAFT_CHECK(!out.empty(), "--classes is empty");
  return out;
}

bool small_fixed_images(const std::string& spec) {
  return spec.rfind("fashion-mnist", 0) == 0 || spec.rfind("cifar", 0) == 0;
}

Preprocess preprocess_of_weights(const std::string& path, const std::string& arch, Dialect dialect) {
  if (path.empty()) return preprocess_for(arch, dialect);
  if (is_checkpoint(path)) {
    CheckpointMeta m = read_checkpoint_meta(path);
    auto it = m.train_state.find("preprocess");
    return it != m.train_state.end() ? parse_preprocess(it->second) : preprocess_for(m.arch, parse_dialect(m.dialect));
  }
  return preprocess_for(inspect_weights(path));
}

std::int64_t warmup_steps(const std::string& text, std::int64_t steps_per_epoch) {
  const std::string suffix = "steps";
  try {
    std::size_t used = 0;
    if (text.size() > suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0) {
      long long v = std::stoll(text, &used);
      if (used == text.size() - suffix.size() && v >= 0) return v;
    } else {
      double v = std::stod(text, &used);
      if (used == text.size() && v >= 0 && std::isfinite(v)) return std::llround(v * steps_per_epoch);
    }
  } catch (const std::exception&) {
  }
  GRAFT_FAIL("--warmup '", text, "': expected epochs (e.g. 1 or 0.5) or steps (e.g. 200steps)");
}

int take_all_but_the_head(Module& model, Module& from, const std::string& head, const std::vector<std::string>& names,
                          const std::vector<std::string>& from_names, int from_outputs) {
  NoGradGuard no_grad;
  auto fresh = model.state();
  auto source = from.state();
  for (auto& [name, t] : source)
    if (name.rfind(head + ".", 0) != 0) fresh.at(name).copy_from(t);
  int kept = 0;
  for (std::size_t i = 0; i < names.size(); ++i) {
    const auto found = std::find(from_names.begin(), from_names.end(), names[i]);
    if (found == from_names.end() || found - from_names.begin() >= from_outputs) continue;
    const std::int64_t j = found - from_names.begin();
    for (const char* part : {".weight", ".bias"}) {
      if (!fresh.count(head + part) || !source.count(head + part)) continue;
      Tensor to = fresh.at(head + part), from_rows = source.at(head + part);
      if (std::int64_t(i) >= to.dim(0)) continue;
      const std::int64_t row = to.numel() / to.dim(0);
      std::copy_n(from_rows.data<float>() + j * row, row, to.data<float>() + std::int64_t(i) * row);
    }
    ++kept;
  }
  return kept;
}

}  // namespace graft::cli
