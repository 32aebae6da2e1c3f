// conv2d: checks, forward and backward. NHWC activations, weights (K,R,S,C/groups); the math is in kernels/conv2d.h.
// CPU: im2col + OpenBLAS GEMMs (a plain GEMM for 1x1 stride-1 convs, direct loops for ResNeXt's grouped convs);
// CUDA: cuDNN.
#include "core/autograd.h"
#include "core/error.h"
#include "core/ops.h"
#include "kernels/batch_norm.h"
#include "kernels/conv2d.h"
#include "kernels/elementwise.h"
#include "kernels/reduce.h"

namespace graft {
namespace {

std::string options_str(const Conv2dOptions& o) {
  return detail::concat("stride ", o.stride_h, "x", o.stride_w, ", pad ", o.pad_h, "x", o.pad_w, ", dilation ",
                        o.dilation_h, "x", o.dilation_w, ", groups ", o.groups);
}

// Validates every argument and returns the sizes of the convolution.
Conv2dGeometry make_geometry(const Tensor& x, const Tensor& weight, const Tensor& bias, const Conv2dOptions& o) {
  check_float(x, "conv2d", "input");
  check_float(weight, "conv2d", "weight");
  if (bias.defined()) check_float(bias, "conv2d", "bias");
  const std::string xs = shape_str(x.shape()), ws = shape_str(weight.shape());
  GRAFT_CHECK(x.ndim() == 4, "conv2d: input ", xs, " must be 4-D (N,H,W,C)");
  GRAFT_CHECK(weight.ndim() == 4, "conv2d: weight ", ws, " must be 4-D (K,R,S,C/groups)");
  GRAFT_CHECK(o.stride_h >= 1 && o.stride_w >= 1 && o.dilation_h >= 1 && o.dilation_w >= 1 && o.pad_h >= 0 &&
                  o.pad_w >= 0 && o.groups >= 1,
              "conv2d: invalid options (", options_str(o),
              "): strides, dilations and groups must be >= 1, paddings >= 0");
  GRAFT_CHECK(weight.numel() > 0, "conv2d: weight ", ws, " has a zero dimension");
  const std::int64_t c = x.dim(3), k = weight.dim(0);
  GRAFT_CHECK(c % o.groups == 0, "conv2d: input ", xs, " has ", c, " channels, not divisible by groups ", o.groups);
  GRAFT_CHECK(k % o.groups == 0, "conv2d: weight ", ws, " has ", k, " output channels, not divisible by groups ",
              o.groups);
  GRAFT_CHECK(
      weight.dim(3) * o.groups == c, "conv2d: input ", xs, " has ", c, " channels, weight ", ws, " expects ",
      weight.dim(3) * o.groups,
      o.groups > 1 ? detail::concat(" (", weight.dim(3), " per group x groups ", o.groups, ")") : std::string());
  if (bias.defined())
    GRAFT_CHECK(bias.shape() == Shape{k}, "conv2d: bias ", shape_str(bias.shape()), " must be (", k, ") for weight ",
                ws);
  check_same_device("conv2d", {&x, &weight, &bias});

  Conv2dGeometry g;
  g.n = x.dim(0), g.h = x.dim(1), g.w = x.dim(2), g.c = c;
  g.k = k, g.r = weight.dim(1), g.s = weight.dim(2);
  g.stride_h = o.stride_h, g.stride_w = o.stride_w, g.pad_h = o.pad_h, g.pad_w = o.pad_w;
  g.dilation_h = o.dilation_h, g.dilation_w = o.dilation_w, g.groups = o.groups;
  // P - 1 = span / stride: a negative span means the dilated kernel does not fit the padded input
  const std::int64_t span_h = g.h + 2 * g.pad_h - std::int64_t(g.dilation_h) * (g.r - 1) - 1;
  const std::int64_t span_w = g.w + 2 * g.pad_w - std::int64_t(g.dilation_w) * (g.s - 1) - 1;
  GRAFT_CHECK(span_h >= 0 && span_w >= 0, "conv2d: input ", xs, " padded by ", o.pad_h, "x", o.pad_w,
              " is smaller than the kernel of weight ", ws, " dilated by ", o.dilation_h, "x", o.dilation_w,
              " (the output would be empty)");
  g.p = span_h / g.stride_h + 1;
  g.q = span_w / g.stride_w + 1;
  return g;
}

// CPU column buffer for the im2col path (empty for pointwise and grouped convs).
Tensor cpu_workspace(const Conv2dGeometry& g) {
  const std::size_t bytes = conv2d_workspace_bytes_cpu(g);
  return Tensor::empty({static_cast<std::int64_t>((bytes + sizeof(float) - 1) / sizeof(float))}, kCPU);
}

// dx (N,H,W,C) from dout (N,P,Q,K) and the weight. On CUDA, when the input's gradient from its other uses is
// already collected (a residual block's input: the shortcut's gradient arrives first), cuDNN adds dx into it in
// its own output pass (autograd::accumulation_buffer) and that tensor is returned: no separate add pass.
Tensor input_gradient(const Tensor& dout, const Tensor& weight, const Conv2dGeometry& g) {
#if GRAFT_HAS_CUDA
  if (dout.is_cuda()) {
    Tensor into = autograd::accumulation_buffer(0);
    const bool accumulate = into.defined() && into.is_cuda() && into.shape() == Shape{g.n, g.h, g.w, g.c};
    Tensor dx = accumulate ? into : Tensor::empty({g.n, g.h, g.w, g.c}, dout.device());
    conv2d_backward_data_cudnn(dx.data<float>(), dout.data<float>(), weight.data<float>(), g, accumulate);
    return dx;
  }
#endif
  Tensor dx = Tensor::empty({g.n, g.h, g.w, g.c}, dout.device());
  Tensor ws = cpu_workspace(g);
  conv2d_backward_data_cpu(dx.data<float>(), dout.data<float>(), weight.data<float>(), g, ws.data<float>(),
                           ws.nbytes());
  return dx;
}

// dweight (K,R,S,C/groups) from dout (N,P,Q,K) and the input.
Tensor weight_gradient(const Tensor& dout, const Tensor& x, const Conv2dGeometry& g) {
  Tensor dw = Tensor::empty({g.k, g.r, g.s, g.c / g.groups}, dout.device());
#if GRAFT_HAS_CUDA
  if (dout.is_cuda()) {
    conv2d_backward_filter_cudnn(dw.data<float>(), dout.data<float>(), x.data<float>(), g);
    return dw;
  }
#endif
  Tensor ws = cpu_workspace(g);
  conv2d_backward_filter_cpu(dw.data<float>(), dout.data<float>(), x.data<float>(), g, ws.data<float>(), ws.nbytes());
  return dw;
}

// db[k] = sum over the N*P*Q output pixels of dout[.., k].
Tensor bias_gradient(const Tensor& dout, std::int64_t k) {
  Tensor db = Tensor::empty({k}, dout.device());
  const std::int64_t rows = dout.numel() / k;
#if GRAFT_HAS_CUDA
  if (dout.is_cuda()) {
    const std::size_t bytes = sum_axis_workspace_cuda(1, rows, k);
    Tensor ws = Tensor::empty({static_cast<std::int64_t>((bytes + sizeof(float) - 1) / sizeof(float))}, kCUDA);
    sum_axis_cuda(db.data<float>(), dout.data<float>(), 1, rows, k, 1.f, ws.data<void>());
    return db;
  }
#endif
  sum_axis_cpu(db.data<float>(), dout.data<float>(), 1, rows, k, 1.f);
  return db;
}

// conv2d, and with relu = true conv2d_relu: relu(conv + bias), the bias add and the relu as one pass over the
// output, and in the backward the mask and the bias gradient as one pass (CUDA; the CPU runs the same steps
// as the unfused ops, so there the two are bitwise equal).
Tensor conv2d_impl(const Tensor& x, const Tensor& weight, const Tensor& bias, const Conv2dOptions& options, bool relu) {
  const Conv2dGeometry g = make_geometry(x, weight, bias, options);
  Tensor out = Tensor::empty({g.n, g.p, g.q, g.k}, x.device());
  const float* bias_ptr = bias.defined() ? bias.data<float>() : nullptr;
#if GRAFT_HAS_CUDA
  if (x.is_cuda()) {
    conv2d_forward_cudnn(out.data<float>(), x.data<float>(), weight.data<float>(), relu ? nullptr : bias_ptr, g);
    if (relu) bias_relu_forward_cuda(out.data<float>(), bias_ptr, g.n * g.p * g.q, g.k);
  } else
#endif
  {
    Tensor ws = cpu_workspace(g);
    conv2d_forward_cpu(out.data<float>(), x.data<float>(), weight.data<float>(), bias_ptr, g, ws.data<float>(),
                       ws.nbytes());
    if (relu) unary_forward_cpu(out.data<float>(), out.data<float>(), UnaryOp::Relu, out.numel());
  }

  if (autograd::needs_grad({&x, &weight, &bias})) {
    // dx needs the weight and dweight needs the input: each is saved only if the other side can ask for it, so a
    // frozen conv inside a trainable region keeps no activation alive.
    Tensor saved_x = weight.requires_grad() ? x.detach() : Tensor();
    Tensor saved_w = x.requires_grad() ? weight.detach() : Tensor();
    Tensor saved_y = relu ? out.detach() : Tensor();  // relu's mask: y > 0
    autograd::record(out, relu ? "conv2d_relu" : "conv2d", {&x, &weight, &bias},
                     [saved_x, saved_w, saved_y, g](const Tensor& dout_arg, const std::vector<bool>& needs) {
                       std::vector<Tensor> grads(3);
                       Tensor dout = dout_arg;
                       if (saved_y.defined()) {  // dz = dout [y > 0], and the bias gradient from it
                         dout = Tensor::empty(saved_y.shape(), saved_y.device());
#if GRAFT_HAS_CUDA
                         if (dout.is_cuda()) {
                           if (needs[2]) grads[2] = Tensor::empty({g.k}, dout.device());
                           const std::int64_t rows = g.n * g.p * g.q;
                           const std::size_t bytes = bias_relu_workspace_cuda(rows, g.k);
                           Tensor ws = Tensor::empty({static_cast<std::int64_t>((bytes + 3) / 4)}, kCUDA);
                           bias_relu_backward_cuda(dout.data<float>(), needs[2] ? grads[2].data<float>() : nullptr,
                                                   dout_arg.data<float>(), saved_y.data<float>(), rows, g.k,
                                                   ws.data<void>());
                         } else
#endif
                           relu_backward_cpu(dout.data<float>(), dout_arg.data<float>(), saved_y.data<float>(),
                                             dout.numel());
                       }
                       if (needs[0]) grads[0] = input_gradient(dout, saved_w, g);
                       if (needs[1]) grads[1] = weight_gradient(dout, saved_x, g);
                       if (needs[2] && !grads[2].defined()) grads[2] = bias_gradient(dout, g.k);
                       return grads;
                     });
  }
  return out;
}

}  // namespace

Tensor conv2d(const Tensor& x, const Tensor& weight, const std::optional<Tensor>& bias,
              const Conv2dOptions& options) {
  return conv2d_impl(x, weight, bias ? *bias : Tensor(), options, false);
}

Tensor conv2d_relu(const Tensor& x, const Tensor& weight, const std::optional<Tensor>& bias,
                   const Conv2dOptions& options) {
  return conv2d_impl(x, weight, bias ? *bias : Tensor(), options, true);
}

}  // namespace graft
