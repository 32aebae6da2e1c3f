// Plain CPU reference of batch normalisation (math in kernels/batch_norm.h). Rows outer, channels inner, so the
// loops walk memory in order; per-channel sums in double.
#include <cmath>
#include <vector>

#include "kernels/batch_norm.h"

namespace graft {

void batch_norm_stats_cpu(float* mean, float* invstd, float* running_mean, float* running_var, const float* inp,
                          std::int64_t m, std::int64_t c, float eps, float momentum) {
  std::vector<double> sum(static_cast<std::size_t>(c), 0.0), sq(static_cast<std::size_t>(c), 0.0);
  for (std::int64_t r = 0; r < m; ++r)
    for (std::int64_t j = 0; j < c; ++j) sum[j] += inp[r * c + j];
  for (std::int64_t j = 0; j < c; ++j) sum[j] /= static_cast<double>(m);  // now the mean
  for (std::int64_t r = 0; r < m; ++r)
    for (std::int64_t j = 0; j < c; ++j) {
      double d = inp[r * c + j] - sum[j];
      sq[j] += d * d;
    }
  for (std::int64_t j = 0; j < c; ++j) {
    double var = sq[j] / static_cast<double>(m);
    mean[j] = static_cast<float>(sum[j]);
    invstd[j] = static_cast<float>(1.0 / std::sqrt(var + static_cast<double>(eps)));
    if (running_mean) {
      double unbiased = m > 1 ? var * static_cast<double>(m) / static_cast<double>(m - 1) : var;
      running_mean[j] = static_cast<float>((1.0 - momentum) * running_mean[j] + momentum * sum[j]);
      running_var[j] = static_cast<float>((1.0 - momentum) * running_var[j] + momentum * unbiased);
    }
  }
}

void batch_norm_invstd_cpu(float* invstd, const float* var, std::int64_t c, float eps) {
  for (std::int64_t j = 0; j < c; ++j)
    invstd[j] = static_cast<float>(1.0 / std::sqrt(static_cast<double>(var[j]) + static_cast<double>(eps)));
}

void batch_norm_forward_cpu(float* out, const float* inp, const float* mean, const float* invstd,
                            const float* gamma, const float* beta, std::int64_t m, std::int64_t c,
                            const float* residual, bool relu) {
  for (std::int64_t r = 0; r < m; ++r)
    for (std::int64_t j = 0; j < c; ++j) {
      float xhat = (inp[r * c + j] - mean[j]) * invstd[j];
      float y = (gamma ? gamma[j] : 1.f) * xhat + (beta ? beta[j] : 0.f);
      if (residual) y += residual[r * c + j];
      out[r * c + j] = relu ? (y > 0.f ? y : 0.f) : y;
    }
}

void batch_norm_backward_reduce_cpu(float* dgamma, float* dbeta, const float* dout, const float* inp,
                                    const float* mean, const float* invstd, std::int64_t m, std::int64_t c,
                                    const float* relu_out) {
  std::vector<double> sum_dy(static_cast<std::size_t>(c), 0.0), sum_dy_xhat(static_cast<std::size_t>(c), 0.0);
  for (std::int64_t r = 0; r < m; ++r)
    for (std::int64_t j = 0; j < c; ++j) {
      float dy = relu_out && !(relu_out[r * c + j] > 0.f) ? 0.f : dout[r * c + j];
      float xhat = (inp[r * c + j] - mean[j]) * invstd[j];
      sum_dy[j] += dy;
      sum_dy_xhat[j] += static_cast<double>(dy) * xhat;
    }
  for (std::int64_t j = 0; j < c; ++j) {
    dgamma[j] = static_cast<float>(sum_dy_xhat[j]);
    dbeta[j] = static_cast<float>(sum_dy[j]);
  }
}

void batch_norm_backward_input_cpu(float* dinp, const float* dout, const float* inp, const float* mean,
                                   const float* invstd, const float* gamma, const float* sum_dy,
                                   const float* sum_dy_xhat, std::int64_t m, std::int64_t c, bool batch_stats,
                                   const float* relu_out) {
  const float inv_m = 1.f / static_cast<float>(m);
  for (std::int64_t r = 0; r < m; ++r)
    for (std::int64_t j = 0; j < c; ++j) {
      float scale = (gamma ? gamma[j] : 1.f) * invstd[j];
      float dy = relu_out && !(relu_out[r * c + j] > 0.f) ? 0.f : dout[r * c + j];
      if (batch_stats) {
        float xhat = (inp[r * c + j] - mean[j]) * invstd[j];
        dinp[r * c + j] = scale * (dy - inv_m * sum_dy[j] - xhat * (inv_m * sum_dy_xhat[j]));
      } else {
        dinp[r * c + j] = scale * dy;
      }
    }
}

}  // namespace graft
