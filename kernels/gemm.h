// General matrix multiply, row-major:  C (M,N) = alpha * op(A) op(B) + beta * C
// op(A) is (M,K): A is stored (M,K), or (K,M) when trans_a. op(B) is (K,N): B is (K,N), or (N,K) when trans_b.
//   gemm_cpu         OpenBLAS cblas_sgemm, single-threaded per block of a shape-only partition of C, the blocks
//                    spread over cpu_threads() threads (kernels/cpu_parallel.h): bitwise the same result for any
//                    thread count
//   gemm_cublas      cuBLAS sgemm (TF32 tensor-core math when allowed, see kernels/cuda_device.h)
//   gemm_cuda_tiled  hand-written shared-memory tiled SGEMM with register blocking, kept for study and for the
//                    benchmark against cuBLAS (strict FP32)
#pragma once
#include <cstdint>
#include <string>

namespace graft {

void gemm_cpu(float* c, const float* a, const float* b, bool trans_a, bool trans_b, std::int64_t m, std::int64_t n,
              std::int64_t k, float alpha, float beta);
// gemm_cpu with explicit leading dimensions (row strides) of C, A and B, e.g. a grouped conv's channel slices of
// NHWC rows; the same partition and the same bits for any thread count.
void gemm_cpu_ld(float* c, std::int64_t ldc, const float* a, std::int64_t lda, const float* b, std::int64_t ldb,
                 bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k, float alpha, float beta);

// The kernels gemm_cpu runs, e.g. "OpenBLAS/SkylakeX": OpenBLAS picks them for the CPU at start-up, or takes the
// ones OPENBLAS_CORETYPE names (graft bench prints them: the same machine gives ~1.5x different CPU timings with AVX2
// and AVX-512 kernels).
std::string cpu_gemm_kernels();

#if GRAFT_HAS_CUDA
void gemm_cublas(float* c, const float* a, const float* b, bool trans_a, bool trans_b, std::int64_t m,
                 std::int64_t n, std::int64_t k, float alpha, float beta);
void gemm_cuda_tiled(float* c, const float* a, const float* b, bool trans_a, bool trans_b, std::int64_t m,
                     std::int64_t n, std::int64_t k, float alpha, float beta);
#endif

}  // namespace graft
