#include "train/class_weights.h"

#include <cmath>

#include "core/error.h"
#include "core/ops.h"

namespace graft {

Tensor weighted_cross_entropy(const Tensor& logits, const Tensor& labels, const std::vector<float>& weights,
                              float label_smoothing) {
  WeightedLoss parts = weighted_cross_entropy_parts(logits, labels, weights, label_smoothing);
  GRAFT_CHECK(parts.label_weight > 0, "weighted_cross_entropy: the batch's labels all have weight 0");
  return mul(parts.sum, static_cast<float>(1.0 / parts.label_weight));
}

WeightedLoss weighted_cross_entropy_parts(const Tensor& logits, const Tensor& labels, const std::vector<float>& weights,
                                          float label_smoothing) {
  GRAFT_CHECK(logits.ndim() == 2 && labels.ndim() == 1 && labels.dim(0) == logits.dim(0), "weighted_cross_entropy: ",
              "logits ", shape_str(logits.shape()), " and labels ", shape_str(labels.shape()),
              " must be (N,C) and (N)");
  const std::int64_t n = logits.dim(0), classes = logits.dim(1);
  GRAFT_CHECK(static_cast<std::int64_t>(weights.size()) == classes, "weighted_cross_entropy: ", weights.size(),
              " class weights for logits ", shape_str(logits.shape()), " (one per class)");
  const std::vector<std::int32_t> y = labels.to_int_vector();
  const float off = label_smoothing / static_cast<float>(classes), on = 1.f - label_smoothing + off;
  std::vector<float> targets(static_cast<std::size_t>(n * classes));
  double label_weight = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    GRAFT_CHECK(y[i] >= 0 && y[i] < classes, "weighted_cross_entropy: label ", y[i], " at row ", i,
                " is outside [0, ", classes, ")");
    label_weight += weights[y[i]];
    for (std::int64_t c = 0; c < classes; ++c)
      targets[i * classes + c] = (c == y[i] ? on : off) * weights[static_cast<std::size_t>(c)];
  }
  const Tensor q = Tensor::from_vector(targets, {n, classes}, logits.device());
  return {neg(sum(mul(log_softmax(logits), q))), label_weight};
}

std::vector<float> balanced_class_weights(const std::vector<std::int64_t>& counts) {
  std::int64_t total = 0, present = 0;
  for (std::int64_t c : counts) total += c, present += c > 0;
  GRAFT_CHECK(total > 0, "balanced_class_weights: no examples in ", counts.size(), " classes");
  std::vector<float> w;
  for (std::int64_t c : counts)
    w.push_back(c > 0 ? static_cast<float>(static_cast<double>(total) / (static_cast<double>(present) * c)) : 0.f);
  return w;
}

}  // namespace graft
