// Plain CPU reference of batch normalisation (math in kernels/batch_norm.h). Rows outer, channels inner, so the
// loops walk memory in order; per-channel sums in double over chunks of rows fixed by the shape, added in chunk
// order (kernels/cpu_parallel.h row_chunk_sums). Threads take chunks in the sums and ranges of rows in the
// elementwise passes: the same bits for any thread count.
#include <cmath>
#include <type_traits>
#include <vector>

#include "kernels/batch_norm.h"
#include "kernels/cpu_parallel.h"
#include "kernels/cpu_select.h"
#include "kernels/host_device.h"

namespace graft {
namespace {

// gamma xhat + beta: the forward's pre-activation, and (with ReluMask::of_input) the backward's recomputed relu mask,
// the same expression in both so that the mask is the forward's y > 0 bit for bit (this file is compiled with
// -ffp-contract=off: no fused multiply-add in one and not the other). A null gamma or beta is 1 or 0 (the same bits).
inline float affine(float xhat, float gamma, float beta) { return gamma * xhat + beta; }

// The kind of relu mask a backward loop applies is a template argument so that each loop is branch-free and
// vectorizes (a test inside the loop, even one that never changes, kept GCC from vectorizing it).
using Mask = ReluMask::Kind;

// The mask resolved once per call: its kind, and for a mask from the input the per-channel gamma and beta with
// the nulls replaced by 1 and 0.
struct MaskTerms {
  Mask kind = Mask::None;
  const float* out = nullptr;
  std::vector<float> gamma, beta;
  MaskTerms(const ReluMask& relu, std::int64_t c) : kind(relu.kind()), out(relu.out) {
    if (kind != Mask::FromInput) return;
    gamma.assign(static_cast<std::size_t>(c), 1.f), beta.assign(static_cast<std::size_t>(c), 0.f);
    for (std::int64_t j = 0; j < c; ++j) {
      if (relu.gamma) gamma[static_cast<std::size_t>(j)] = relu.gamma[j];
      if (relu.beta) beta[static_cast<std::size_t>(j)] = relu.beta[j];
    }
  }
};

// dy = dout at element e (channel j, normalised input xhat) masked, branch-free (kernels/cpu_select.h).
template <Mask K>
inline float masked_gradient(const float* dout, const float* out, const float* mask_gamma, const float* mask_beta,
                             std::int64_t e, std::int64_t j, float xhat) {
  if constexpr (K == Mask::FromInput) return keep_if(affine(xhat, mask_gamma[j], mask_beta[j]) > 0.f, dout[e]);
  else if constexpr (K == Mask::FromOutput) return keep_if(out[e] > 0.f, dout[e]);
  else return dout[e];
}

// Calls body(std::integral_constant<Mask, K>{}) for the mask's kind K.
template <typename Body>
void with_mask(Mask kind, Body body) {
  switch (kind) {
    case Mask::None: return body(std::integral_constant<Mask, Mask::None>{});
    case Mask::FromOutput: return body(std::integral_constant<Mask, Mask::FromOutput>{});
    case Mask::FromInput: return body(std::integral_constant<Mask, Mask::FromInput>{});
  }
}

}  // namespace

void batch_norm_stats_cpu(float* mean, float* invstd, float* running_mean, float* running_var, const float* inp,
                          std::int64_t m, std::int64_t c, float eps, float momentum) {
  std::vector<double> mu(static_cast<std::size_t>(c)), sq(static_cast<std::size_t>(c));
  row_chunk_sums(m, c, 1, mu.data(), [&](std::int64_t r0, std::int64_t r1, double* sum) {
    for (std::int64_t r = r0; r < r1; ++r)
      for (std::int64_t j = 0; j < c; ++j) sum[j] += inp[r * c + j];
  });
  for (std::int64_t j = 0; j < c; ++j) mu[j] /= static_cast<double>(m);
  row_chunk_sums(m, c, 1, sq.data(), [&](std::int64_t r0, std::int64_t r1, double* sum) {
    for (std::int64_t r = r0; r < r1; ++r)
      for (std::int64_t j = 0; j < c; ++j) {
        double d = inp[r * c + j] - mu[j];
        sum[j] += d * d;
      }
  });
  for (std::int64_t j = 0; j < c; ++j) {
    double var = sq[j] / static_cast<double>(m);
    mean[j] = static_cast<float>(mu[j]);
    invstd[j] = static_cast<float>(1.0 / std::sqrt(var + static_cast<double>(eps)));
    if (running_mean) {
      double unbiased = m > 1 ? var * static_cast<double>(m) / static_cast<double>(m - 1) : var;
      running_mean[j] = static_cast<float>((1.0 - momentum) * running_mean[j] + momentum * mu[j]);
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
  parallel_for(m, c, [&](std::int64_t r0, std::int64_t r1) {
    for (std::int64_t r = r0; r < r1; ++r)
      for (std::int64_t j = 0; j < c; ++j) {
        const float xhat = (inp[r * c + j] - mean[j]) * invstd[j];
        float y = affine(xhat, gamma ? gamma[j] : 1.f, beta ? beta[j] : 0.f);
        if (residual) y += residual[r * c + j];
        out[r * c + j] = relu ? relu_value(y) : y;
      }
  });
}

void batch_norm_backward_reduce_cpu(float* dgamma, float* dbeta, const float* dout, const float* inp,
                                    const float* mean, const float* invstd, std::int64_t m, std::int64_t c,
                                    const ReluMask& relu) {
  std::vector<double> sums(static_cast<std::size_t>(2 * c));  // [0, c) sum dy, [c, 2c) sum dy * xhat
  const MaskTerms mask(relu, c);
  const float *out = mask.out, *mg = mask.gamma.data(), *mb = mask.beta.data();
  with_mask(mask.kind, [&](auto kind) {
    constexpr Mask K = decltype(kind)::value;
    row_chunk_sums(m, c, 2, sums.data(), [&](std::int64_t r0, std::int64_t r1, double* sum) {
      for (std::int64_t r = r0; r < r1; ++r)
        for (std::int64_t j = 0; j < c; ++j) {
          const float xhat = (inp[r * c + j] - mean[j]) * invstd[j];
          const float dy = masked_gradient<K>(dout, out, mg, mb, r * c + j, j, xhat);
          sum[j] += dy;
          sum[c + j] += static_cast<double>(dy) * xhat;
        }
    });
  });
  for (std::int64_t j = 0; j < c; ++j) {
    dgamma[j] = static_cast<float>(sums[c + j]);
    dbeta[j] = static_cast<float>(sums[j]);
  }
}

void batch_norm_backward_input_cpu(float* dinp, const float* dout, const float* inp, const float* mean,
                                   const float* invstd, const float* gamma, const float* sum_dy,
                                   const float* sum_dy_xhat, std::int64_t m, std::int64_t c, bool batch_stats,
                                   const ReluMask& relu) {
  // Per channel, the factors of dx = scale * (dy - inv_m * sum_dy - xhat * (inv_m * sum_dy_xhat)), each the same
  // float operation as inline, so the rows below are a vectorizable multiply-add chain.
  const float inv_m = 1.f / static_cast<float>(m);
  std::vector<float> scale(static_cast<std::size_t>(c)), mean_dy(static_cast<std::size_t>(c)),
      mean_dy_xhat(static_cast<std::size_t>(c));
  for (std::int64_t j = 0; j < c; ++j) {
    scale[j] = (gamma ? gamma[j] : 1.f) * invstd[j];
    if (batch_stats) mean_dy[j] = inv_m * sum_dy[j], mean_dy_xhat[j] = inv_m * sum_dy_xhat[j];
  }
  const float* sc = scale.data();
  const float* a = mean_dy.data();
  const float* b = mean_dy_xhat.data();
  const MaskTerms mask(relu, c);
  const float *out = mask.out, *mg = mask.gamma.data(), *mb = mask.beta.data();
  with_mask(mask.kind, [&](auto kind) {
    constexpr Mask K = decltype(kind)::value;
    parallel_for(m, c, [=](std::int64_t r0, std::int64_t r1) {
      for (std::int64_t r = r0; r < r1; ++r) {
        const std::int64_t row = r * c;
        if (batch_stats)
          for (std::int64_t j = 0; j < c; ++j) {
            const float xhat = (inp[row + j] - mean[j]) * invstd[j];
            const float dy = masked_gradient<K>(dout, out, mg, mb, row + j, j, xhat);
            dinp[row + j] = sc[j] * (dy - a[j] - xhat * b[j]);
          }
        else  // running statistics: x is read only for a mask recomputed from it
          for (std::int64_t j = 0; j < c; ++j) {
            const float xhat = K == Mask::FromInput ? (inp[row + j] - mean[j]) * invstd[j] : 0.f;
            dinp[row + j] = sc[j] * masked_gradient<K>(dout, out, mg, mb, row + j, j, xhat);
          }
      }
    });
  });
}

}  // namespace graft
