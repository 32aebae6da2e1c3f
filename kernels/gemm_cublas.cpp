// Row-major GEMM on cuBLAS (math in kernels/gemm.h).
// cuBLAS is column-major, and a row-major (R, S) matrix read column-major is its transpose (S, R). So instead of
// C = op(A) op(B) we ask cuBLAS for C^T = op(B)^T op(A)^T: pass B as the first operand and A as the second, with
// the same transpose flags, and swap m and n. No data is copied or transposed.
// The math mode is set on every call because the TF32 switch can change between calls; graft drives cuBLAS
// from one host thread on one stream, so the shared handle's mode cannot race.
#include <climits>
#include <cstdint>

#include "kernels/cuda_device.h"
#include "kernels/elementwise.h"
#include "kernels/gemm.h"

namespace graft {

void gemm_cublas(float* c, const float* a, const float* b, bool trans_a, bool trans_b, std::int64_t m, std::int64_t n,
                 std::int64_t k, float alpha, float beta) {
  if (m <= 0 || n <= 0) return;
  if (k <= 0) {
    // cuBLAS rejects a leading dimension of 0, and BLAS semantics are simply C = beta C (C unread for beta 0).
    if (beta == 0.f) {
      fill_cuda(c, 0.f, m * n);
    } else if (beta != 1.f) {
      scale_shift_cuda(c, c, beta, 0.f, m * n);
    }
    return;
  }
  GRAFT_CHECK(m <= INT_MAX && n <= INT_MAX && k <= INT_MAX, "gemm_cublas: sizes m=", m, " n=", n, " k=", k,
              " exceed cuBLAS's 32-bit dimensions");
  const int mi = static_cast<int>(m), ni = static_cast<int>(n), ki = static_cast<int>(k);
  // Leading dimensions of the row-major storage: A is (M,K) or (K,M), B is (K,N) or (N,K), C is (M,N).
  const int lda = trans_a ? mi : ki;
  const int ldb = trans_b ? ki : ni;
  cublasHandle_t handle = cuda::cublas_handle();
  GRAFT_CUBLAS_CHECK(
      cublasSetMathMode(handle, cuda::tf32_allowed() ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
  GRAFT_CUBLAS_CHECK(cublasSgemm(handle, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, ni,
                                 mi, ki, &alpha, b, ldb, a, lda, &beta, c, ni));
}

}  // namespace graft
