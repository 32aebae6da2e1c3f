// cuDNN's graph ("backend") API for graft's convolutions: an alternative to the legacy cudnnFind*AlgorithmEx search
// of kernels/conv2d_cudnn.cpp, opt-in (conv2d_cudnn_set_engine_search in kernels/conv2d.h, or GRAFT_CUDNN_ENGINES=1).
//
// Why: the legacy API offers 6-8 "algorithms", each one engine picked for it; the graph API lists every engine
// configuration cuDNN's heuristics rank for the shape (modes A and FALLBACK, tens of them), which is what PyTorch's
// cudnn.benchmark times. The first time a (direction, geometry, math, determinism, alignment) is seen, the
// configurations whose numerical notes fit the requested math (the first 16 of them, in heuristics order) are
// built into execution plans and timed on the caller's buffers (CUDA events, fastest of 3 runs after a warm-up);
// the fastest plan is kept for the process. When no plan can
// be built (or anything in the search fails), the result is cached as "none" with the reason, and the caller
// falls back to the legacy path. Notes filtered out: DOWN_CONVERT_INPUTS and REDUCED_PRECISION_REDUCTION always
// (FP16 inside), TENSOR_CORE in strict FP32 mode (that is TF32 for float data), NONDETERMINISTIC in deterministic
// mode, and engines that need runtime compilation (NVRTC: seconds per plan, and optional on the device).
//
// Tensors, in cuDNN's NCHW-ordered dimensions with graft's NHWC strides: X (N,C,H,W), W (K,C/groups,R,S) stored
// KRSC, Y (N,K,P,Q). The three directions are three operations over the same tensors:
//   forward          Y  = conv(X, W)        backward data   dX = conv^T(dY, W)      backward filter  dW = (X, dY)
#pragma once
#if GRAFT_HAS_CUDA
#include <cudnn.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "kernels/conv2d.h"

namespace graft::cudnn_engines {

// The three convolution directions, shared with the legacy path (kernels/conv2d_cudnn.cpp).
enum class ConvOp { Forward, BackwardData, BackwardFilter };
inline const char* op_name(ConvOp op) {
  return op == ConvOp::Forward ? "forward" : op == ConvOp::BackwardData ? "backward-data" : "backward-filter";
}
using ConvKey = std::array<std::int64_t, 21>;  // conv2d_cudnn.cpp's cache key

// Runs the convolution with the fastest engine plan for `key` (searching first when it is new): out = op(a, b)
// with the operands of the direction (forward: out y, a x, b w; backward data: out dx, a dy, b w; backward filter:
// out dw, a dy, b x), or out += op(a, b) with `accumulate` (the plan's beta = 1; its search times the plans on a
// scratch output, so out keeps what it holds). Returns false, having run nothing, when no plan works for it (the
// caller then uses the legacy API). Throws when a search would start inside a CUDA graph capture.
bool run(cudnnHandle_t handle, ConvOp op, const ConvKey& key, const Conv2dGeometry& g, bool tf32,
         bool deterministic, std::int64_t alignment, bool accumulate, float* out, const float* a, const float* b);

// One line per searched key: the engine chosen (global index, notes, workspace, time) or why none was.
std::vector<std::string> choices();
// True when no chosen engine carries cuDNN's NONDETERMINISTIC note.
bool all_deterministic();

// Scratch memory from graft's stream-ordered pool, returned to it at scope exit (stream order keeps it alive
// until the kernels queued before the free have run). Shared with the legacy path.
class Workspace {
 public:
  explicit Workspace(std::size_t bytes);
  ~Workspace();
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;
  void* get() const { return ptr_; }
  std::size_t bytes() const { return bytes_; }

 private:
  std::size_t bytes_;
  void* ptr_;
};

}  // namespace graft::cudnn_engines
#endif  // GRAFT_HAS_CUDA
