// Scoring a classifier: evaluate() over a Loader's batches, and the pieces fit() (train/trainer.h) shares with it -
// the same scoring over cached backbone features, top-1 counting, the outputs-versus-classes check.
#pragma once
#include <cstdint>
#include <vector>

#include "core/tensor.h"
#include "io/loader.h"
#include "layers/module.h"

namespace graft {

struct FeatureCache;

struct EvalResult {
  double loss = 0, top1 = 0, top5 = 0;  // accuracies in [0, 1]
  std::int64_t images = 0;
  std::vector<std::vector<std::int64_t>> confusion;  // [true class][predicted class]
  std::vector<double> per_class_accuracy() const;
};

// Runs the model in eval mode without grad over every batch of `loader` (epoch 0, in order). The confusion matrix
// has one row per dataset class and one column per model output; a model with fewer outputs than the dataset
// has classes is an error. top5 counts a hit within the min(5, outputs) best.
EvalResult evaluate(Module& model, Loader& loader);

// evaluate() over cached backbone features (train/feature_cache.h), through `head` alone, `batch` rows at a time:
// fit's validation on its feature-cache path.
EvalResult evaluate_features(Module& head, const FeatureCache& cache, int classes, std::int64_t batch);

// The top-1 hits of one batch: logits (n, outputs), labels (n) int32 (an argmax tie goes to the lower index). A label
// outside [0, outputs) is an error.
std::int64_t count_top1(const Tensor& logits, const Tensor& labels);

// Refuses (graft::Error "<what>: the data has ... classes ...") a model with fewer outputs than the data has classes.
void check_outputs(std::int64_t outputs, int classes, const char* what);

}  // namespace graft
