#include "core/device.h"

#include "core/error.h"
#if GRAFT_HAS_CUDA
#include "kernels/cuda_device.h"
#endif

namespace graft {

Device parse_device(const std::string& name) {
  if (name == "cpu") return kCPU;
  if (name == "cuda") return kCUDA;
  GRAFT_FAIL("device: unknown device '", name, "' (expected cpu or cuda)");
}

bool cuda_available() { return cuda_unavailable_reason().empty(); }

std::string cuda_unavailable_reason() {
#if GRAFT_HAS_CUDA
  return cuda::unavailable_reason();
#else
  return "graft was built without CUDA (GRAFT_CUDA=OFF or no nvcc)";
#endif
}

}  // namespace graft
