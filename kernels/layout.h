// Layout kernels on NHWC activations: zero padding of H and W, and concatenation along the channel axis.
//   pad2d:   out (N, H+top+bottom, W+left+right, C);  out[n,y,x,c] = inp[n,y-top,x-left,c] inside, 0 outside
//            dinp[n,h,w,c] = dout[n,h+top,w+left,c]   (the gradient is the inner window of dout)
//   concat:  out (rows, C_total); the input (rows, C_in) fills channels [offset, offset+C_in)
//            dinp = dout[:, offset:offset+C_in]       (slice_channels)
// The CUDA versions run on graft's compute stream.
#pragma once
#include <cstdint>

namespace graft {

// inp (N,H,W,C) -> out (N,H+top+bottom,W+left+right,C)
void pad2d_forward_cpu(float* out, const float* inp, std::int64_t n, int h, int w, std::int64_t c, int top,
                       int bottom, int left, int right);
// dout (N,H+top+bottom,W+left+right,C) -> dinp (N,H,W,C)
void pad2d_backward_cpu(float* dinp, const float* dout, std::int64_t n, int h, int w, std::int64_t c, int top,
                        int bottom, int left, int right);
// inp (rows, c_in) -> out[:, offset:offset+c_in] of out (rows, c_out)
void concat_channels_forward_cpu(float* out, const float* inp, std::int64_t rows, std::int64_t c_in,
                                 std::int64_t c_out, std::int64_t offset);
// dout[:, offset:offset+c_in] of dout (rows, c_out) -> dinp (rows, c_in)
void slice_channels_cpu(float* dinp, const float* dout, std::int64_t rows, std::int64_t c_in, std::int64_t c_out,
                        std::int64_t offset);

#if GRAFT_HAS_CUDA
void pad2d_forward_cuda(float* out, const float* inp, std::int64_t n, int h, int w, std::int64_t c, int top,
                        int bottom, int left, int right);
void pad2d_backward_cuda(float* dinp, const float* dout, std::int64_t n, int h, int w, std::int64_t c, int top,
                         int bottom, int left, int right);
void concat_channels_forward_cuda(float* out, const float* inp, std::int64_t rows, std::int64_t c_in,
                                  std::int64_t c_out, std::int64_t offset);
void slice_channels_cuda(float* dinp, const float* dout, std::int64_t rows, std::int64_t c_in, std::int64_t c_out,
                         std::int64_t offset);
#endif

}  // namespace graft
