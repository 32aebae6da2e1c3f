// Class weights for imbalanced data: the weighted cross-entropy fit() trains with (TrainOptions::class_weights), and
// the weights that balance a dataset's classes.
//
// Weighted cross-entropy, as torch's F.cross_entropy(logits, labels, weight=w, label_smoothing=s):
//   q_ic   = (1-s) [c == y_i] + s/C                          (the smoothed target of row i)
//   loss   = sum_i sum_c q_ic w_c (-log softmax(logits_i)_c) / sum_i w_{y_i}
// Without smoothing this is the mean of each row's loss weighted by its label's weight; with w = 1 it is
// softmax_cross_entropy (core/ops.h). Composed of log_softmax, mul and sum, so autograd differentiates it on either
// device; the labels are read on the host to build the (N,C) weighted targets.
#pragma once
#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace graft {

// logits (N,C) float32, labels (N) int32 in [0,C), weights: C values >= 0 whose sum over the batch's labels is > 0.
Tensor weighted_cross_entropy(const Tensor& logits, const Tensor& labels, const std::vector<float>& weights,
                              float label_smoothing = 0.f);

// The two parts of that loss: the weighted sum over the rows (a scalar tensor, differentiable) and its denominator
// sum_i w_{y_i} (0 when every label weighs 0). fit() adds both over the batches of an optimizer step, so the step
// is the one of all its batches as one (gradient accumulation).
struct WeightedLoss {
  Tensor sum;
  double label_weight = 0;
};
WeightedLoss weighted_cross_entropy_parts(const Tensor& logits, const Tensor& labels, const std::vector<float>& weights,
                                          float label_smoothing = 0.f);

// scikit-learn's "balanced" weights: w_c = N / (C * n_c) for the n_c examples of class c among N = sum(n), over
// the C classes that have examples; a class without any gets 0 (it is never a label; with smoothing its output
// then takes no share of the targets either). A balanced dataset gets 1 for every class it has.
std::vector<float> balanced_class_weights(const std::vector<std::int64_t>& counts);

}  // namespace graft
