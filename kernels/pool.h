// 2-D pooling of NHWC activations: inp (N,H,W,C) -> out (N,P,Q,C).
// Window of output (p,q): rows h0 = p*stride_h - pad_h .. h0 + kernel_h - 1 (same for columns).
//   max:      out = max over the in-image part of the window (padding counts as -inf; NaN propagates);
//             argmax = h*W + w of the first maximum in row-major window order (PyTorch's tie rule).
//             dinp[n,h,w,c] = sum over the windows (p,q) with argmax[n,p,q,c] == h*W+w of dout[n,p,q,c]
//   avg:      out = sum over the in-image part / divisor, with (as PyTorch) the window first clipped to the
//             padded image [-pad, H+pad): count_include_pad -> divisor = its area, else the in-image area.
//             dinp[n,h,w,c] = sum over windows covering (h,w) of dout / divisor
//   adaptive: output bin (i,j) covers rows floor(i*H/P) .. ceil((i+1)*H/P)-1 (columns alike), out = window mean;
//             dinp = sum over the bins covering (h,w) of dout / bin area. Global average pooling is P = Q = 1.
// Every backward is a gather (each input element collects from the output windows that cover it, in increasing
// (p,q) order), so the CPU and CUDA backward add in the same order and no atomics are needed.
#pragma once
#include <cstdint>

#include "kernels/host_device.h"  // the window arithmetic below is shared by host and device

namespace graft {

struct Pool2dShape {
  std::int64_t n;
  int h, w, c;  // input (N,H,W,C)
  int p, q;     // output (N,P,Q,C)
  int kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w;
};

// Average-pool window of output index o along one axis: the in-image range [lo, hi) and the extent of the window
// clipped to the padded image (PyTorch's count_include_pad divisor).
struct PoolWindow {
  int lo, hi, padded;
};
GRAFT_HOST_DEVICE PoolWindow pool_window(int o, int size, int kernel, int stride, int pad) {
  int start = o * stride - pad;
  int end = start + kernel < size + pad ? start + kernel : size + pad;
  return PoolWindow{start > 0 ? start : 0, end < size ? end : size, end - start};
}
// The output indices [*first, *last] whose windows (before clipping) contain input index x.
GRAFT_HOST_DEVICE void pool_covering(int x, int kernel, int stride, int pad, int out_size, int* first, int* last) {
  int num = x + pad - kernel + 1;
  *first = num <= 0 ? 0 : (num + stride - 1) / stride;
  int l = (x + pad) / stride;
  *last = l < out_size - 1 ? l : out_size - 1;
}
// Adaptive bin i of `out` bins over `size`: [floor(i*size/out), ceil((i+1)*size/out)).
GRAFT_HOST_DEVICE int adaptive_start(int i, int size, int out) {
  return static_cast<int>((static_cast<std::int64_t>(i) * size) / out);
}
GRAFT_HOST_DEVICE int adaptive_end(int i, int size, int out) {
  return static_cast<int>((static_cast<std::int64_t>(i + 1) * size + out - 1) / out);
}
// The bins [*first, *last] that contain input index x.
GRAFT_HOST_DEVICE void adaptive_covering(int x, int size, int out, int* first, int* last) {
  *first = static_cast<int>((static_cast<std::int64_t>(x) * out) / size);
  int l = static_cast<int>((static_cast<std::int64_t>(x + 1) * out + size - 1) / size) - 1;
  *last = l < out - 1 ? l : out - 1;
}

void max_pool2d_forward_cpu(float* out, std::int32_t* argmax, const float* inp, const Pool2dShape& s);
void max_pool2d_backward_cpu(float* dinp, const float* dout, const std::int32_t* argmax, const Pool2dShape& s);
void avg_pool2d_forward_cpu(float* out, const float* inp, const Pool2dShape& s, bool count_include_pad);
void avg_pool2d_backward_cpu(float* dinp, const float* dout, const Pool2dShape& s, bool count_include_pad);
// inp (N,H,W,C) -> out (N,P,Q,C)
void adaptive_avg_pool2d_forward_cpu(float* out, const float* inp, std::int64_t n, int h, int w, int c, int p, int q);
void adaptive_avg_pool2d_backward_cpu(float* dinp, const float* dout, std::int64_t n, int h, int w, int c, int p,
                                      int q);

#if GRAFT_HAS_CUDA
void max_pool2d_forward_cuda(float* out, std::int32_t* argmax, const float* inp, const Pool2dShape& s);
void max_pool2d_backward_cuda(float* dinp, const float* dout, const std::int32_t* argmax, const Pool2dShape& s);
void avg_pool2d_forward_cuda(float* out, const float* inp, const Pool2dShape& s, bool count_include_pad);
void avg_pool2d_backward_cuda(float* dinp, const float* dout, const Pool2dShape& s, bool count_include_pad);
void adaptive_avg_pool2d_forward_cuda(float* out, const float* inp, std::int64_t n, int h, int w, int c, int p,
                                      int q);
void adaptive_avg_pool2d_backward_cuda(float* dinp, const float* dout, std::int64_t n, int h, int w, int c, int p,
                                       int q);
#endif

}  // namespace graft
