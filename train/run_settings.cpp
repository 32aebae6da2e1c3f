// The settings a resumed run must repeat: see train/run_settings.h.
#include "train/run_settings.h"

#include <charconv>
#include <cstdio>

#include "core/error.h"
#include "core/fingerprint.h"
#include "io/preprocess.h"
#include "train/trainer.h"

namespace graft {

std::string shortest_text(float v) {
  char buf[64];
  return std::string(buf, std::to_chars(buf, buf + sizeof buf, v).ptr);
}
std::string shortest_text(double v) {
  char buf[64];
  return std::string(buf, std::to_chars(buf, buf + sizeof buf, v).ptr);
}

std::map<std::string, std::string> recorded_settings(const std::map<std::string, std::string>& train_state) {
  std::map<std::string, std::string> out;
  const std::string prefix = kSettingPrefix;
  for (const auto& [key, value] : train_state)
    if (key.rfind(prefix, 0) == 0) out[key.substr(prefix.size())] = value;
  return out;
}

std::map<std::string, std::string> run_settings(const Loader& train, const TrainOptions& options) {
  std::map<std::string, std::string> s = recorded_settings(options.checkpoint.train_state);
  const LoaderOptions& lo = train.options();
  const TransformOptions& t = lo.transform;
  // The training data by what it holds, not where it lies: a run may resume on another machine.
  const Dataset& data = *train.dataset();
  Fnv1a labels;  // the labels in order
  for (std::int64_t i = 0; i < data.size(); ++i) labels.add(static_cast<std::uint32_t>(data.label(i)));
  char hash[32];
  std::snprintf(hash, sizeof hash, "%016llx", static_cast<unsigned long long>(labels.value()));
  s["train-examples"] = std::to_string(data.size());
  s["train-classes"] = std::to_string(data.num_classes());
  s["train-labels"] = hash;
  Fnv1a names;  // the class names' bytes, each name ended by a 0 byte
  for (const std::string& name : data.class_names())
    for (const char ch : name + '\0') names.add(static_cast<unsigned char>(ch));
  std::snprintf(hash, sizeof hash, "%016llx", static_cast<unsigned long long>(names.value()));
  s["train-class-names"] = hash;
  s["batch"] = std::to_string(lo.batch_size);
  s["shuffle"] = lo.shuffle ? "on" : "off";
  s["drop-last"] = lo.drop_last ? "on" : "off";
  s["seed"] = std::to_string(lo.seed);
  s["size"] = std::to_string(t.size);
  s["random-crop"] = t.random_resized_crop
                         ? "scale " + shortest_text(t.crop_scale_min) + "-" + shortest_text(t.crop_scale_max)
                         : "off";
  s["random-flip"] = t.random_flip ? "on" : "off";
  s["antialias"] = t.antialias ? "on" : "off";
  s["preprocess"] = preprocess_name(t.normalize);
  s["epochs"] = std::to_string(options.epochs);
  s["accumulate"] = std::to_string(options.accumulate);
  std::string weights;
  for (float w : options.class_weights) weights += (weights.empty() ? "" : ",") + shortest_text(w);
  s["class-weights"] = weights.empty() ? "none" : weights;
  s["label-smoothing"] = shortest_text(options.label_smoothing);
  s["clip-grad-norm"] = shortest_text(options.clip_grad_norm);
  s["patience"] = std::to_string(options.patience);
  return s;
}

bool trained_with_antialias(const CheckpointMeta& meta) {
  auto it = meta.train_state.find(std::string(kSettingPrefix) + "antialias");
  if (it != meta.train_state.end()) return it->second == "on";
  return meta.train_state.count("batch_in_epoch") == 0;
}

void check_resume_settings(const std::string& what, const std::string& checkpoint,
                           const std::map<std::string, std::string>& settings) {
  const std::map<std::string, std::string> recorded = recorded_settings(read_checkpoint_meta(checkpoint).train_state);
  auto shown = [](const std::string& v) {  // long lists (a weight per class) shortened
    return v.empty()        ? std::string("(none)")
           : v.size() <= 80 ? v
                            : v.substr(0, 60) + "... (" + std::to_string(v.size()) + " characters)";
  };
  // Settings only one side knows (a checkpoint of an older graft, a setting the caller added later) are not compared.
  std::string differences;
  for (const auto& [key, now] : settings) {
    auto it = recorded.find(key);
    if (it != recorded.end() && it->second != now)
      differences += "\n  " + key + ": " + shown(it->second) + " in the checkpoint, " + shown(now) + " now";
  }
  GRAFT_CHECK(differences.empty(), what, ": cannot resume from '", checkpoint,
              "': it was written by a run with other settings (a resumed run continues the same run):", differences,
              "\nresume with the checkpoint's settings, or start a new run from its weights");
}

}  // namespace graft
