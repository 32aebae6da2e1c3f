// GRAFT_CUDNN_CHECK(expr): throws graft::Error naming the cuDNN call and cudnnGetErrorString of its status. Like
// GRAFT_CUDA_CHECK it first clears a CUDA error the failed call may have left pending (a kernel it launched), so
// the next check does not blame an unrelated call.
#pragma once
#if GRAFT_HAS_CUDA
#include <cuda_runtime.h>
#include <cudnn.h>

#include "core/error.h"

#define GRAFT_CUDNN_CHECK(expr)                                                         \
  do {                                                                                  \
    cudnnStatus_t graft_cudnn_st_ = (expr);                                             \
    if (graft_cudnn_st_ != CUDNN_STATUS_SUCCESS) {                                      \
      cudaGetLastError();                                                               \
      GRAFT_FAIL("cuDNN error in ", #expr, ": ", cudnnGetErrorString(graft_cudnn_st_)); \
    }                                                                                   \
  } while (0)

#endif  // GRAFT_HAS_CUDA
