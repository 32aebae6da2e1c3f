// The feature cache behind fit()'s feature-extraction mode (see TrainOptions::cache_features in train/trainer.h):
// the backbone's outputs for every example, computed once in eval mode, and the per-epoch shuffled batches the
// head trains on. Internal to train/, exposed for tests.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "io/loader.h"
#include "layers/module.h"
#include "train/trainer.h"

namespace graft {

struct TrainBatch {
  Tensor inputs, labels;    // on the model's device
  std::int64_t index = 0;   // the batch's number within the epoch
};

struct FeatureCache {
  Tensor features;                    // (N, F) on the model's device, dataset order (unreadable examples dropped)
  std::vector<std::int32_t> labels;   // N labels, on the host
  std::int64_t size() const { return static_cast<std::int64_t>(labels.size()); }
  std::int64_t batches(std::int64_t batch_size, bool drop_last) const;
  Tensor labels_tensor(std::int64_t begin, std::int64_t end) const;  // labels[begin, end) on the features' device
  // Rows order[begin..end) gathered into one (end-begin, F) batch (contiguous runs are copied at once).
  TrainBatch gather(const std::vector<std::int64_t>& order, std::int64_t begin, std::int64_t end) const;
};

// The head path when fit() may train on cached features (options.cache_features, a head that exists, every
// trainable parameter inside it, no BatchNorm outside it using batch statistics under train(), a train loader
// that does not augment); "" otherwise. Call after model.train().
std::string feature_cache_head(Module& model, const Loader& train, const TrainOptions& options);

// The module at a dotted path (shared, so it can be put back after a replacement).
std::shared_ptr<Module> module_at(Module& root, const std::string& path);

// Runs `model` with its head replaced by Identity (restored before returning, also on error) in eval mode without
// grad over `source`'s dataset in dataset order (no shuffle, no drop_last; the source's transform and batch size).
FeatureCache extract_features(Module& model, const std::string& head, const Loader& source, bool progress,
                              const std::string& label);

}  // namespace graft
