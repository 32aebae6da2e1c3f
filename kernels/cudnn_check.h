// GRAFT_CUDNN_CHECK(expr): throws graft::Error naming the cuDNN call and cudnnGetErrorString of its status.
#pragma once
#if GRAFT_HAS_CUDA
#include <cudnn.h>

#include "core/error.h"

#define GRAFT_CUDNN_CHECK(expr)                                                         \
  do {                                                                                  \
    cudnnStatus_t graft_cudnn_st_ = (expr);                                             \
    if (graft_cudnn_st_ != CUDNN_STATUS_SUCCESS)                                        \
      GRAFT_FAIL("cuDNN error in ", #expr, ": ", cudnnGetErrorString(graft_cudnn_st_)); \
  } while (0)

#endif  // GRAFT_HAS_CUDA
