// Pooling ops on NHWC activations: max_pool2d, avg_pool2d, global_avg_pool, adaptive_avg_pool2d, with backward.
#include <climits>

#include "core/autograd.h"
#include "core/error.h"
#include "core/ops.h"
#include "kernels/pool.h"

namespace graft {
namespace {

void check_nhwc(const Tensor& x, const char* op) {
  check_float(x, op, "x");
  GRAFT_CHECK(x.ndim() == 4, op, ": x ", shape_str(x.shape()), " must be NHWC (N,H,W,C)");
  GRAFT_CHECK(x.dim(1) <= INT_MAX && x.dim(2) <= INT_MAX && x.dim(3) <= INT_MAX, op, ": x ", shape_str(x.shape()),
              " is too large");
}

// PyTorch's output size: floor or ceil of (in + 2 pad - kernel) / stride, plus one; with ceil_mode the last window
// must start inside the image or its left padding.
std::int64_t pool_output_size(std::int64_t in, int kernel, int stride, int pad, bool ceil_mode) {
  std::int64_t span = in + 2 * static_cast<std::int64_t>(pad) - kernel;
  if (span < 0) return 0;
  std::int64_t out = (ceil_mode ? (span + stride - 1) / stride : span / stride) + 1;
  if (ceil_mode && (out - 1) * stride >= in + pad) --out;
  return out;
}

Pool2dShape plan_pool(const Tensor& x, const Pool2dOptions& o, const char* op) {
  check_nhwc(x, op);
  GRAFT_CHECK(o.kernel_h > 0 && o.kernel_w > 0, op, ": kernel ", o.kernel_h, "x", o.kernel_w, " must be positive");
  GRAFT_CHECK(o.stride_h > 0 && o.stride_w > 0, op, ": stride ", o.stride_h, "x", o.stride_w, " must be positive");
  GRAFT_CHECK(o.pad_h >= 0 && o.pad_w >= 0, op, ": padding ", o.pad_h, "x", o.pad_w, " must be >= 0");
  GRAFT_CHECK(o.pad_h <= o.kernel_h / 2 && o.pad_w <= o.kernel_w / 2, op, ": padding ", o.pad_h, "x", o.pad_w,
              " must be at most half the kernel ", o.kernel_h, "x", o.kernel_w);
  std::int64_t p = pool_output_size(x.dim(1), o.kernel_h, o.stride_h, o.pad_h, o.ceil_mode);
  std::int64_t q = pool_output_size(x.dim(2), o.kernel_w, o.stride_w, o.pad_w, o.ceil_mode);
  GRAFT_CHECK(p >= 1 && q >= 1, op, ": input ", shape_str(x.shape()), " is too small for kernel ", o.kernel_h, "x",
              o.kernel_w, " with padding ", o.pad_h, "x", o.pad_w, " (output would be ", p, "x", q, ")");
  Pool2dShape s;
  s.n = x.dim(0), s.h = static_cast<int>(x.dim(1)), s.w = static_cast<int>(x.dim(2)), s.c = static_cast<int>(x.dim(3));
  s.p = static_cast<int>(p), s.q = static_cast<int>(q);
  s.kernel_h = o.kernel_h, s.kernel_w = o.kernel_w, s.stride_h = o.stride_h, s.stride_w = o.stride_w;
  s.pad_h = o.pad_h, s.pad_w = o.pad_w;
  return s;
}

Tensor adaptive_avg_pool(const Tensor& x, int out_h, int out_w, const char* op) {
  check_nhwc(x, op);
  GRAFT_CHECK(out_h >= 1 && out_w >= 1, op, ": output size ", out_h, "x", out_w, " must be positive");
  GRAFT_CHECK(x.dim(1) >= 1 && x.dim(2) >= 1, op, ": input ", shape_str(x.shape()), " has an empty image");
  const std::int64_t n = x.dim(0);
  const int h = static_cast<int>(x.dim(1)), w = static_cast<int>(x.dim(2)), c = static_cast<int>(x.dim(3));
  Tensor out = Tensor::empty({n, out_h, out_w, c}, x.device());
#if GRAFT_HAS_CUDA
  if (x.is_cuda()) adaptive_avg_pool2d_forward_cuda(out.data<float>(), x.data<float>(), n, h, w, c, out_h, out_w); else
#endif
  adaptive_avg_pool2d_forward_cpu(out.data<float>(), x.data<float>(), n, h, w, c, out_h, out_w);
  if (autograd::needs_grad({&x})) {
    Shape in_shape = x.shape();
    autograd::record(out, op, {&x}, [in_shape, n, h, w, c, out_h, out_w](const Tensor& dout, const std::vector<bool>&) {
      Tensor dx = Tensor::empty(in_shape, dout.device());
#if GRAFT_HAS_CUDA
      if (dout.is_cuda()) adaptive_avg_pool2d_backward_cuda(dx.data<float>(), dout.data<float>(), n, h, w, c, out_h, out_w); else
#endif
      adaptive_avg_pool2d_backward_cpu(dx.data<float>(), dout.data<float>(), n, h, w, c, out_h, out_w);
      return std::vector<Tensor>{dx};
    });
  }
  return out;
}

}  // namespace

Tensor max_pool2d(const Tensor& x, const Pool2dOptions& options) {
  Pool2dShape s = plan_pool(x, options, "max_pool2d");
  Tensor out = Tensor::empty({s.n, s.p, s.q, s.c}, x.device());
  Tensor argmax = Tensor::empty({s.n, s.p, s.q, s.c}, x.device(), DType::Int32);
#if GRAFT_HAS_CUDA
  if (x.is_cuda()) max_pool2d_forward_cuda(out.data<float>(), argmax.data<std::int32_t>(), x.data<float>(), s); else
#endif
  max_pool2d_forward_cpu(out.data<float>(), argmax.data<std::int32_t>(), x.data<float>(), s);
  if (autograd::needs_grad({&x})) {
    Shape in_shape = x.shape();
    autograd::record(out, "max_pool2d", {&x}, [in_shape, argmax, s](const Tensor& dout, const std::vector<bool>&) {
      Tensor dx = Tensor::empty(in_shape, dout.device());
#if GRAFT_HAS_CUDA
      if (dout.is_cuda()) max_pool2d_backward_cuda(dx.data<float>(), dout.data<float>(), argmax.data<std::int32_t>(), s); else
#endif
      max_pool2d_backward_cpu(dx.data<float>(), dout.data<float>(), argmax.data<std::int32_t>(), s);
      return std::vector<Tensor>{dx};
    });
  }
  return out;
}

Tensor avg_pool2d(const Tensor& x, const Pool2dOptions& options) {
  Pool2dShape s = plan_pool(x, options, "avg_pool2d");
  const bool include_pad = options.count_include_pad;
  Tensor out = Tensor::empty({s.n, s.p, s.q, s.c}, x.device());
#if GRAFT_HAS_CUDA
  if (x.is_cuda()) avg_pool2d_forward_cuda(out.data<float>(), x.data<float>(), s, include_pad); else
#endif
  avg_pool2d_forward_cpu(out.data<float>(), x.data<float>(), s, include_pad);
  if (autograd::needs_grad({&x})) {
    Shape in_shape = x.shape();
    autograd::record(out, "avg_pool2d", {&x}, [in_shape, s, include_pad](const Tensor& dout, const std::vector<bool>&) {
      Tensor dx = Tensor::empty(in_shape, dout.device());
#if GRAFT_HAS_CUDA
      if (dout.is_cuda()) avg_pool2d_backward_cuda(dx.data<float>(), dout.data<float>(), s, include_pad); else
#endif
      avg_pool2d_backward_cpu(dx.data<float>(), dout.data<float>(), s, include_pad);
      return std::vector<Tensor>{dx};
    });
  }
  return out;
}

Tensor global_avg_pool(const Tensor& x) {
  Tensor pooled = adaptive_avg_pool(x, 1, 1, "global_avg_pool");
  return pooled.reshape({x.dim(0), x.dim(3)});
}

Tensor adaptive_avg_pool2d(const Tensor& x, int out_h, int out_w) {
  return adaptive_avg_pool(x, out_h, out_w, "adaptive_avg_pool2d");
}

}  // namespace graft
