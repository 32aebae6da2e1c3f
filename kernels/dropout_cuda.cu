// CUDA inverted dropout (math in kernels/dropout.h): one thread per Philox counter, i.e. per four consecutive
// elements, so the mask is the CPU's bit for bit.
#include <cuda_runtime.h>

#include "kernels/cuda_device.h"
#include "kernels/dropout.h"
#include "kernels/philox.h"

namespace graft {
namespace {

__global__ void dropout_forward_kernel(float* out, const float* inp, std::int64_t n, float p, float scale,
                                       std::uint64_t seed, std::uint64_t offset, std::int64_t blocks) {
  for (std::int64_t k = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; k < blocks;
       k += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const Philox4 r = philox4x32_10(offset + static_cast<std::uint64_t>(k), seed);
    const std::int64_t base = 4 * k;
#pragma unroll
    for (int lane = 0; lane < 4; ++lane) {
      const std::int64_t i = base + lane;
      if (i < n) out[i] = philox_unit_float(r.x[lane]) >= p ? inp[i] * scale : 0.f;
    }
  }
}

}  // namespace

void dropout_forward_cuda(float* out, const float* inp, std::int64_t n, float p, std::uint64_t seed,
                          std::uint64_t offset) {
  if (n == 0) return;
  const std::int64_t blocks = (n + 3) / 4;
  dropout_forward_kernel<<<cuda::grid_for(blocks), cuda::kBlock, 0, cuda::stream()>>>(out, inp, n, p, 1.f / (1.f - p),
                                                                                      seed, offset, blocks);
  GRAFT_CUDA_CHECK_LAUNCH("dropout_forward_kernel");
}

}  // namespace graft
