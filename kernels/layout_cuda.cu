// CUDA layout kernels (math in kernels/layout.h): one thread per element of the tensor written, consecutive
// threads on consecutive channels, so reads and writes are coalesced. Pure copies: results equal the CPU's exactly.
#include <cuda_runtime.h>

#include "kernels/cuda_device.h"
#include "kernels/layout.h"

namespace graft {
namespace {

// one thread per output element; the input element it copies, or zero in the border
__global__ void pad2d_forward_kernel(float* out, const float* inp, int h, int w, std::int64_t c, int top, int left,
                                     int ho, int wo, std::int64_t total) {
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const std::int64_t j = i % c;
    std::int64_t rest = i / c;
    const int x = static_cast<int>(rest % wo);
    rest /= wo;
    const int y = static_cast<int>(rest % ho);
    const std::int64_t b = rest / ho;
    const int iy = y - top, ix = x - left;
    out[i] = (iy >= 0 && iy < h && ix >= 0 && ix < w) ? inp[((b * h + iy) * w + ix) * c + j] : 0.f;
  }
}

// one thread per input-gradient element
__global__ void pad2d_backward_kernel(float* dinp, const float* dout, int h, int w, std::int64_t c, int top, int left,
                                      int ho, int wo, std::int64_t total) {
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const std::int64_t j = i % c;
    std::int64_t rest = i / c;
    const int x = static_cast<int>(rest % w);
    rest /= w;
    const int y = static_cast<int>(rest % h);
    const std::int64_t b = rest / h;
    dinp[i] = dout[((b * ho + y + top) * wo + x + left) * c + j];
  }
}

// one thread per element of the narrow (rows, c_in) side; to_wide copies narrow -> wide, else wide -> narrow
__global__ void channel_block_copy_kernel(float* dst, const float* src, std::int64_t c_in, std::int64_t c_out,
                                          std::int64_t offset, bool to_wide, std::int64_t total) {
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const std::int64_t r = i / c_in, j = i % c_in;
    const std::int64_t wide = r * c_out + offset + j;
    if (to_wide)
      dst[wide] = src[i];
    else
      dst[i] = src[wide];
  }
}

}  // namespace

void pad2d_forward_cuda(float* out, const float* inp, std::int64_t n, int h, int w, std::int64_t c, int top,
                        int bottom, int left, int right) {
  const int ho = h + top + bottom, wo = w + left + right;
  const std::int64_t total = n * ho * wo * c;
  if (total == 0) return;
  pad2d_forward_kernel<<<cuda::grid_for(total), cuda::kBlock, 0, cuda::stream()>>>(out, inp, h, w, c, top, left, ho,
                                                                                   wo, total);
  GRAFT_CUDA_CHECK_LAUNCH("pad2d_forward_kernel");
}

void pad2d_backward_cuda(float* dinp, const float* dout, std::int64_t n, int h, int w, std::int64_t c, int top,
                         int bottom, int left, int right) {
  const int ho = h + top + bottom, wo = w + left + right;
  const std::int64_t total = n * h * w * c;
  if (total == 0) return;
  pad2d_backward_kernel<<<cuda::grid_for(total), cuda::kBlock, 0, cuda::stream()>>>(dinp, dout, h, w, c, top, left,
                                                                                    ho, wo, total);
  GRAFT_CUDA_CHECK_LAUNCH("pad2d_backward_kernel");
}

void concat_channels_forward_cuda(float* out, const float* inp, std::int64_t rows, std::int64_t c_in,
                                  std::int64_t c_out, std::int64_t offset) {
  const std::int64_t total = rows * c_in;
  if (total == 0) return;
  channel_block_copy_kernel<<<cuda::grid_for(total), cuda::kBlock, 0, cuda::stream()>>>(out, inp, c_in, c_out,
                                                                                        offset, true, total);
  GRAFT_CUDA_CHECK_LAUNCH("channel_block_copy_kernel");
}

void slice_channels_cuda(float* dinp, const float* dout, std::int64_t rows, std::int64_t c_in, std::int64_t c_out,
                         std::int64_t offset) {
  const std::int64_t total = rows * c_in;
  if (total == 0) return;
  channel_block_copy_kernel<<<cuda::grid_for(total), cuda::kBlock, 0, cuda::stream()>>>(dinp, dout, c_in, c_out,
                                                                                        offset, false, total);
  GRAFT_CUDA_CHECK_LAUNCH("channel_block_copy_kernel");
}

}  // namespace graft
