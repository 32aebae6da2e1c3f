#include <cblas.h>

#include <algorithm>

#include "kernels/gemm.h"

namespace graft {

void gemm_cpu(float* c, const float* a, const float* b, bool trans_a, bool trans_b, std::int64_t m, std::int64_t n,
              std::int64_t k, float alpha, float beta) {
  if (m == 0 || n == 0) return;
  if (k == 0) {  // BLAS leaves C untouched for k == 0 only when beta == 1
    for (std::int64_t i = 0; i < m * n; ++i) c[i] = beta == 0.f ? 0.f : c[i] * beta;
    return;
  }
  const blasint lda = static_cast<blasint>(trans_a ? m : k);
  const blasint ldb = static_cast<blasint>(trans_b ? k : n);
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
              static_cast<blasint>(m), static_cast<blasint>(n), static_cast<blasint>(k), alpha, a, lda, b, ldb, beta,
              c, static_cast<blasint>(n));
}

}  // namespace graft
