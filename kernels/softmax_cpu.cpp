#include <algorithm>
#include <cmath>

#include "kernels/softmax.h"

namespace graft {

void softmax_forward_cpu(float* out, const float* inp, std::int64_t rows, std::int64_t cols, bool log) {
  for (std::int64_t r = 0; r < rows; ++r) {
    const float* x = inp + r * cols;
    float* y = out + r * cols;
    float max = x[0];
    for (std::int64_t c = 1; c < cols; ++c) max = std::max(max, x[c]);
    double total = 0;
    for (std::int64_t c = 0; c < cols; ++c) total += std::exp(double(x[c]) - max);
    if (log) {
      const double log_total = std::log(total);
      for (std::int64_t c = 0; c < cols; ++c) y[c] = static_cast<float>(x[c] - max - log_total);
    } else {
      for (std::int64_t c = 0; c < cols; ++c) y[c] = static_cast<float>(std::exp(double(x[c]) - max) / total);
    }
  }
}

void softmax_backward_cpu(float* dinp, const float* dout, const float* out, std::int64_t rows, std::int64_t cols,
                          bool log) {
  for (std::int64_t r = 0; r < rows; ++r) {
    const float* dy = dout + r * cols;
    const float* y = out + r * cols;
    float* dx = dinp + r * cols;
    double dot = 0;
    if (log) {
      for (std::int64_t c = 0; c < cols; ++c) dot += dy[c];
      for (std::int64_t c = 0; c < cols; ++c) dx[c] = static_cast<float>(dy[c] - std::exp(double(y[c])) * dot);
    } else {
      for (std::int64_t c = 0; c < cols; ++c) dot += double(dy[c]) * y[c];
      for (std::int64_t c = 0; c < cols; ++c) dx[c] = static_cast<float>(y[c] * (dy[c] - dot));
    }
  }
}

void cross_entropy_forward_cpu(float* losses, float* probs, const float* logits, const std::int32_t* labels,
                               std::int64_t rows, std::int64_t cols, float smoothing) {
  for (std::int64_t r = 0; r < rows; ++r) {
    const float* x = logits + r * cols;
    float* p = probs + r * cols;
    float max = x[0];
    for (std::int64_t c = 1; c < cols; ++c) max = std::max(max, x[c]);
    double total = 0, sum_shifted = 0;
    for (std::int64_t c = 0; c < cols; ++c) {
      total += std::exp(double(x[c]) - max);
      sum_shifted += double(x[c]) - max;
    }
    const double log_total = std::log(total);
    for (std::int64_t c = 0; c < cols; ++c) p[c] = static_cast<float>(std::exp(double(x[c]) - max - log_total));
    // -sum_c q_c log p_c with q = (1-s) onehot + s/C, and log p_c = x_c - max - log_total
    const double nll = -(double(x[labels[r]]) - max - log_total);
    const double uniform = -(sum_shifted / cols - log_total);
    // Without smoothing the loss is nll alone (as PyTorch's): a masked logit (-inf) makes `uniform` infinite, and
    // 0 * inf would turn a finite loss into NaN. With smoothing it is +inf, as PyTorch's.
    losses[r] = smoothing == 0.f ? static_cast<float>(nll)
                                 : static_cast<float>((1.0 - smoothing) * nll + smoothing * uniform);
  }
}

void cross_entropy_backward_cpu(float* dlogits, const float* probs, const std::int32_t* labels, const float* dloss,
                                std::int64_t rows, std::int64_t cols, float smoothing, float scale) {
  const float g = dloss[0] * scale;
  const float off = smoothing / static_cast<float>(cols);
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t c = 0; c < cols; ++c) {
      float q = off + (c == labels[r] ? 1.f - smoothing : 0.f);
      dlogits[r * cols + c] = (probs[r * cols + c] - q) * g;
    }
}

}  // namespace graft
