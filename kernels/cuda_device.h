// graft's CUDA context: one device, one compute stream, one cuBLAS handle, the stream-ordered memory pool.
// Every CUDA, cuBLAS and cuDNN call goes through a *_CHECK macro that throws graft::Error naming the call.
#pragma once
#if GRAFT_HAS_CUDA
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "core/error.h"

namespace graft::cuda {

// Number of usable CUDA devices (0 when no driver or device; never throws).
int device_count();
// Why no device can be used ("" when one can).
std::string unavailable_reason();

cudaStream_t stream();           // the compute stream every kernel and copy runs on
cublasHandle_t cublas_handle();  // bound to stream()

// Stream-ordered allocation from a pool that keeps freed memory (release threshold = max); while a CUDA graph is
// being captured, from that graph's own memory instead (kernels/cuda_graph.h).
void* malloc_async(std::size_t bytes);
void free_async(void* ptr);
// Plain device memory (cudaMalloc): the segments of a CUDA graph's own memory, reserved while it is captured (on out
// of memory the pool's cached memory goes back to the driver and the allocation is tried once more, as in
// malloc_async). free_segment waits for the stream first (a replay may still be using it) and never throws.
void* malloc_segment(std::size_t bytes);
void free_segment(void* ptr);
// Copies on the compute stream; a copy to the host waits for it.
void copy_to_device(void* dst, const void* src, std::size_t bytes);
void copy_to_host(void* dst, const void* src, std::size_t bytes);
void copy_device_to_device(void* dst, const void* src, std::size_t bytes);
void synchronize();

// TF32 tensor-core math for convolutions and GEMMs (default on; off = strict FP32).
bool tf32_allowed();
void set_tf32_allowed(bool allowed);
// A process-wide on/off switch (read with Get, set with Set) set for one scope: the previous setting is restored on
// exit (also when the scope throws).
template <bool (*Get)(), void (*Set)(bool)>
class ScopedSwitch {
 public:
  explicit ScopedSwitch(bool on) : saved_(Get()) { Set(on); }
  ~ScopedSwitch() { Set(saved_); }
  ScopedSwitch(const ScopedSwitch&) = delete;
  ScopedSwitch& operator=(const ScopedSwitch&) = delete;

 private:
  bool saved_;
};
// set_tf32_allowed for one scope.
using Tf32Scope = ScopedSwitch<tf32_allowed, set_tf32_allowed>;

// Deterministic mode (default off): cuDNN convolutions use only algorithms that cudnnFind reports as
// CUDNN_DETERMINISTIC (choices are cached per mode), so a training step gives bitwise identical results run after
// run on the same GPU and software. graft's own CUDA kernels need no switch: none uses floating-point atomics
// (reductions, batch-norm statistics, pooling backward and bias gradients add in a fixed order; checked: no
// atomicAdd in kernels/*.cu), and cuBLAS GEMMs on one stream are bitwise reproducible on the same GPU model and
// cuBLAS version (cuBLAS's documented guarantee). A CPU-only build: always false and setting is a no-op (the CPU
// path repeats bit for bit at a fixed OpenBLAS thread count: tests/test_determinism.cpp).
bool deterministic();
void set_deterministic(bool on);
// A printable report of the cuDNN algorithm chosen for every convolution seen so far, one line each (direction,
// geometry, math mode, algorithm, deterministic=yes|no, workspace, the time Find measured): what a run log records.
// "" in a CPU-only build.
std::string conv_algorithms_report();

// Threads per block and a grid size covering n elements (grid capped; kernels use grid-stride loops).
inline constexpr int kBlock = 256;
inline unsigned grid_for(long long n, int block = kBlock) {
  long long blocks = (n + block - 1) / block;
  if (blocks < 1) blocks = 1;
  return static_cast<unsigned>(blocks < 65535LL * 8 ? blocks : 65535LL * 8);
}

// True when p may be read and written as float4 / int4 (16-byte aligned): the kernels' vectorised paths check
// every pointer they would use that way and fall back to scalar access otherwise (views can start anywhere).
inline bool aligned16(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 16 == 0; }

const char* cublas_status_name(cublasStatus_t status);

}  // namespace graft::cuda

#define GRAFT_CUDA_CHECK(expr)                                                                        \
  do {                                                                                                \
    cudaError_t graft_err_ = (expr);                                                                  \
    if (graft_err_ != cudaSuccess) {                                                                  \
      cudaGetLastError(); /* clear a non-sticky error, so the next check does not report it again */ \
      GRAFT_FAIL("CUDA error in ", #expr, ": ", cudaGetErrorName(graft_err_), " (", cudaGetErrorString(graft_err_), ")"); \
    }                                                                                                 \
  } while (0)
#define GRAFT_CUDA_CHECK_LAUNCH(name) GRAFT_CUDA_CHECK(cudaGetLastError())
#define GRAFT_CUBLAS_CHECK(expr)                                                                      \
  do {                                                                                                \
    cublasStatus_t graft_st_ = (expr);                                                                \
    if (graft_st_ != CUBLAS_STATUS_SUCCESS) {                                                         \
      cudaGetLastError(); /* as GRAFT_CUDA_CHECK: a pending error is this call's, not the next one's */ \
      GRAFT_FAIL("cuBLAS error in ", #expr, ": ", ::graft::cuda::cublas_status_name(graft_st_));       \
    }                                                                                                 \
  } while (0)

#else  // CPU-only build: the switches other code may call unconditionally.
#include <string>

namespace graft::cuda {
inline bool deterministic() { return false; }
inline void set_deterministic(bool) {}
inline std::string conv_algorithms_report() { return ""; }
}  // namespace graft::cuda

#endif  // GRAFT_HAS_CUDA
