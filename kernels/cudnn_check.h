// cuDNN helpers shared by the engine and the benchmarks: GRAFT_CUDNN_CHECK, and cudnn::Owned (RAII for cuDNN objects).
// GRAFT_CUDNN_CHECK(expr): throws graft::Error naming the cuDNN call, cudnnGetErrorString of its status and cuDNN's
// own reason (cudnnGetLastErrorString). Like
// GRAFT_CUDA_CHECK it first clears a CUDA error the failed call may have left pending (a kernel it launched), so
// the next check does not blame an unrelated call.
#pragma once
#if GRAFT_HAS_CUDA
#include <cuda_runtime.h>
#include <cudnn.h>

#include <string>

#include "core/error.h"

namespace graft::detail {
// cuDNN 9's own account of its last failure on this thread (which check failed, and why), in brackets, or "".
inline std::string cudnn_last_error() {
  char text[512] = {};
  cudnnGetLastErrorString(text, sizeof text);
  return text[0] != '\0' ? std::string(" [") + text + "]" : std::string();
}
}  // namespace graft::detail

#define GRAFT_CUDNN_CHECK(expr)                                                                        \
  do {                                                                                                 \
    cudnnStatus_t graft_cudnn_st_ = (expr);                                                            \
    if (graft_cudnn_st_ != CUDNN_STATUS_SUCCESS) {                                                     \
      const std::string graft_cudnn_why_ = ::graft::detail::cudnn_last_error();                       \
      cudaGetLastError();                                                                              \
      GRAFT_FAIL("cuDNN error in ", #expr, ": ", cudnnGetErrorString(graft_cudnn_st_), graft_cudnn_why_); \
    }                                                                                                  \
  } while (0)

namespace graft::cudnn {
// One cuDNN object (a handle, a tensor, filter or convolution descriptor, ...): created by Create when constructed,
// destroyed by Destroy with its owner (also when a later member's constructor throws). Not copyable.
template <typename T, cudnnStatus_t (*Create)(T*), cudnnStatus_t (*Destroy)(T)>
class Owned {
 public:
  Owned() { GRAFT_CUDNN_CHECK(Create(&value_)); }
  ~Owned() {
    if (value_ != nullptr) Destroy(value_);
  }
  Owned(const Owned&) = delete;
  Owned& operator=(const Owned&) = delete;
  T get() const { return value_; }

 private:
  T value_ = nullptr;
};
}  // namespace graft::cudnn

#endif  // GRAFT_HAS_CUDA
