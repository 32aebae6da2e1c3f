// CPU GEMM on OpenBLAS, made independent of the thread count.
// OpenBLAS's own threading partitions the work by the number of threads, and its kernels round differently at
// different block edges: the same sgemm gives different bits with 1 and 2 threads (measured with Debian's 0.3.21,
// even with K = 16). graft therefore runs OpenBLAS single-threaded and splits C itself into a partition that
// depends only on (M, N, K) - column blocks when N >= M, else row blocks, each at least kMinBlock wide, at most
// kMaxBlocks of them - and hands the blocks to however many threads it has. Every block is then the same
// single-threaded sgemm whatever the thread count, so results are bitwise identical across runs and thread counts
// (the blocks are handed out by parallel_for, kernels/cpu_parallel.h).
// Splitting the larger of M and N keeps the repacking of the other operand (once per block) small next to the
// block's arithmetic.
#include <cblas.h>

#include <algorithm>
#include <climits>
#include <mutex>
#include <string>

#include "core/error.h"
#include "kernels/cpu_parallel.h"
#include "kernels/gemm.h"

extern "C" void openblas_set_num_threads(int);
extern "C" char* openblas_get_corename(void);

namespace graft {
namespace {

constexpr std::int64_t kMinBlock = 64, kMaxBlocks = 16;
constexpr std::int64_t kSplitFlops = std::int64_t{1} << 22;  // below ~4 MFLOP a GEMM is one block

void make_openblas_single_threaded() {
  static std::once_flag once;
  std::call_once(once, [] { openblas_set_num_threads(1); });
}

void sgemm(float* c, std::int64_t ldc, const float* a, std::int64_t lda, const float* b, std::int64_t ldb,
           bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k, float alpha, float beta) {
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
              static_cast<blasint>(m), static_cast<blasint>(n), static_cast<blasint>(k), alpha, a,
              static_cast<blasint>(lda), b, static_cast<blasint>(ldb), beta, c, static_cast<blasint>(ldc));
}

}  // namespace

std::string cpu_gemm_kernels() {
  return std::string("OpenBLAS/") + openblas_get_corename();
}

void gemm_cpu(float* c, const float* a, const float* b, bool trans_a, bool trans_b, std::int64_t m, std::int64_t n,
              std::int64_t k, float alpha, float beta) {
  gemm_cpu_ld(c, n, a, trans_a ? m : k, b, trans_b ? k : n, trans_a, trans_b, m, n, k, alpha, beta);
}

void gemm_cpu_ld(float* c, std::int64_t ldc, const float* a, std::int64_t lda, const float* b, std::int64_t ldb,
                 bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k, float alpha, float beta) {
  if (m == 0 || n == 0) return;
  if (k == 0) {  // BLAS leaves C untouched for k == 0 only when beta == 1
    for (std::int64_t i = 0; i < m; ++i)
      for (std::int64_t j = 0; j < n; ++j) c[i * ldc + j] = beta == 0.f ? 0.f : c[i * ldc + j] * beta;
    return;
  }
  GRAFT_CHECK(std::max({m, n, k, lda, ldb, ldc}) <= INT_MAX, "gemm_cpu: size (", m, ",", n, ",", k,
              ") or leading dimension exceeds the BLAS integer range");
  make_openblas_single_threaded();
  // The partition: a function of the shape only.
  const bool split_columns = n >= m;
  const std::int64_t extent = split_columns ? n : m;
  std::int64_t block = extent;
  if (m * n * k >= kSplitFlops / 2)
    block = std::max(kMinBlock, (extent + kMaxBlocks - 1) / kMaxBlocks);
  const std::int64_t blocks = (extent + block - 1) / block;
  parallel_for(blocks, m * n * k / blocks, [&](std::int64_t first, std::int64_t last) {
    for (std::int64_t i = first; i < last; ++i) {
      const std::int64_t lo = i * block, len = std::min(block, extent - lo);
      if (split_columns)  // C[:, lo:lo+len] = op(A) op(B)[:, lo:lo+len]
        sgemm(c + lo, ldc, a, lda, trans_b ? b + lo * ldb : b + lo, ldb, trans_a, trans_b, m, len, k, alpha, beta);
      else                // C[lo:lo+len, :] = op(A)[lo:lo+len, :] op(B)
        sgemm(c + lo * ldc, ldc, trans_a ? a + lo : a + lo * lda, lda, b, ldb, trans_a, trans_b, len, n, k, alpha,
              beta);
    }
  });
}

}  // namespace graft
