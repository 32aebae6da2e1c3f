// evaluate() and the scoring fit() shares with it: see train/evaluate.h.
#include "train/evaluate.h"

#include <algorithm>
#include <cmath>

#include "core/autograd.h"
#include "core/error.h"
#include "core/ops.h"
#include "train/feature_cache.h"

namespace graft {
namespace {

// Adds one batch to the running totals; returns the number of top-1 hits.
std::int64_t score(const Tensor& logits, const Tensor& labels, EvalResult* result) {
  std::vector<float> v = logits.to_vector();
  std::vector<std::int32_t> y = labels.to_int_vector();
  const std::size_t c = static_cast<std::size_t>(logits.dim(1));
  std::int64_t top1 = 0;
  for (std::size_t i = 0; i < y.size(); ++i) {
    GRAFT_CHECK(y[i] >= 0 && static_cast<std::size_t>(y[i]) < c, "evaluate: label ", y[i], " at row ", i,
                " is outside [0, ", c, ") for logits ", shape_str(logits.shape()));
    const float* row = &v[i * c];
    const auto label = static_cast<std::size_t>(y[i]);
    // rank of the true class: entries above it, ties broken by index (as argmax takes the first maximum)
    std::size_t rank = 0, best = 0;
    for (std::size_t j = 0; j < c; ++j) {
      if (row[j] > row[label] || (row[j] == row[label] && j < label)) ++rank;
      if (row[j] > row[best]) best = j;
    }
    top1 += rank == 0;
    if (result) {
      result->top1 += rank == 0;
      result->top5 += rank < 5;
      if (label < result->confusion.size()) ++result->confusion[label][best];
    }
  }
  return top1;
}

void finish(EvalResult& r, double loss_sum) {
  if (r.images == 0) return;
  r.loss = loss_sum / static_cast<double>(r.images);
  r.top1 /= static_cast<double>(r.images);
  r.top5 /= static_cast<double>(r.images);
}

void add_batch(EvalResult& r, double& loss_sum, const Tensor& logits, const Tensor& labels, int classes) {
  if (r.confusion.empty()) {
    check_outputs(logits.dim(1), classes, "evaluate");
    r.confusion.assign(static_cast<std::size_t>(classes), std::vector<std::int64_t>(logits.dim(1), 0));
  }
  loss_sum += static_cast<double>(softmax_cross_entropy(logits, labels).item()) * labels.numel();
  r.images += labels.numel();
  score(logits, labels, &r);
}

}  // namespace

void check_outputs(std::int64_t outputs, int classes, const char* what) {
  GRAFT_CHECK(outputs >= classes, what, ": the data has ", classes, " classes (labels 0..", classes - 1,
              ") but the model has ", outputs, " outputs; build it with num_classes >= ", classes);
}

std::int64_t count_top1(const Tensor& logits, const Tensor& labels) { return score(logits, labels, nullptr); }

std::vector<double> EvalResult::per_class_accuracy() const {
  std::vector<double> out;
  for (std::size_t r = 0; r < confusion.size(); ++r) {
    std::int64_t total = 0;
    for (std::int64_t v : confusion[r]) total += v;
    out.push_back(total ? static_cast<double>(confusion[r][r < confusion[r].size() ? r : 0]) / total : NAN);
    if (r >= confusion[r].size()) out.back() = total ? 0.0 : NAN;
  }
  return out;
}

EvalResult evaluate(Module& model, Loader& loader) {
  bool was_training = model.is_training();
  model.eval();
  NoGradGuard no_grad;
  EvalResult r;
  double loss_sum = 0;
  const int classes = loader.dataset()->num_classes();
  loader.start_epoch(0);
  while (auto batch = loader.next()) {
    if (batch->labels.numel() == 0) continue;
    add_batch(r, loss_sum, model(batch->images), batch->labels, classes);
  }
  finish(r, loss_sum);
  model.train(was_training);
  return r;
}

EvalResult evaluate_features(Module& head, const FeatureCache& cache, int classes, std::int64_t batch) {
  bool was_training = head.is_training();
  head.eval();
  NoGradGuard no_grad;
  EvalResult r;
  double loss_sum = 0;
  for (std::int64_t begin = 0; begin < cache.size(); begin += batch) {
    std::int64_t end = std::min(begin + batch, cache.size());
    add_batch(r, loss_sum, head(cache.features.slice(begin, end)), cache.labels_tensor(begin, end), classes);
  }
  finish(r, loss_sum);
  head.train(was_training);
  return r;
}

}  // namespace graft
