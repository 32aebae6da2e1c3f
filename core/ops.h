// THE OP INDEX: every differentiable op graft has. Each one has a plain CPU reference and a CUDA kernel
// (kernels/<op>_cpu.cpp, kernels/<op>_cuda.cu), a forward and a backward (written together in core/ops_*.cpp),
// a gradient check, a PyTorch golden test and a CPU-vs-CUDA parity test.
// Activations are NHWC. All inputs of an op must live on the same device.
#pragma once
#include <optional>

#include "core/tensor.h"

namespace graft {

// ---- elementwise, with broadcasting --------------------------------------------------------------------------
// Binary ops accept: equal shapes; either side a one-element tensor (scalar); or either side a 1-D tensor whose
// length is the other's last axis (per-channel, e.g. a bias over NHWC channels). The result has the larger shape.
// Gradients are reduced back to each input's shape (summed over the broadcast axes).
Tensor add(const Tensor& a, const Tensor& b);  // a + b
Tensor sub(const Tensor& a, const Tensor& b);  // a - b
Tensor mul(const Tensor& a, const Tensor& b);  // a * b;  da = dout*b,  db = dout*a
Tensor div(const Tensor& a, const Tensor& b);  // a / b;  da = dout/b,  db = -dout*a/b^2
Tensor add(const Tensor& a, float b);          // a + b
Tensor mul(const Tensor& a, float b);          // a * b
Tensor neg(const Tensor& x);                   // -x
Tensor relu(const Tensor& x);                  // max(x,0), NaN stays NaN; dx = dout * [out > 0] (0 at a NaN)
Tensor exp(const Tensor& x);                   // e^x;      dx = dout * out
Tensor log(const Tensor& x);                   // ln x;     dx = dout / x

// ---- reductions ------------------------------------------------------------------------------------------------
Tensor sum(const Tensor& x);                                   // all elements -> shape ()
Tensor sum(const Tensor& x, int axis, bool keepdim = false);   // along one axis; dx = dout broadcast back
Tensor mean(const Tensor& x);
Tensor mean(const Tensor& x, int axis, bool keepdim = false);

// ---- matrix products (OpenBLAS sgemm on CPU, cuBLAS on CUDA) -------------------------------------------------------
Tensor matmul(const Tensor& a, const Tensor& b);  // (M,K) x (K,N) -> (M,N);  da = dout b^T,  db = a^T dout
// y = x W^T + b over the last axis: x (..., in), weight (out, in), bias (out) optional -> (..., out).
Tensor linear(const Tensor& x, const Tensor& weight, const std::optional<Tensor>& bias = std::nullopt);

// ---- softmax family (over the last axis) ---------------------------------------------------------------------------
Tensor softmax(const Tensor& x);      // y_i = e^{x_i} / sum_j e^{x_j};   dx = y * (dy - sum(dy*y))
Tensor log_softmax(const Tensor& x);  // y_i = x_i - logsumexp(x);       dx = dy - softmax(x) * sum(dy)
// Mean over rows of -sum_c q_c log softmax(logits)_c with q = (1-s) onehot(label) + s/C (label smoothing s).
// logits (N,C) float32, labels (N) int32 in [0,C). dlogits = (softmax(logits) - q) * dout / N.
// A label outside [0,C) is an error naming it on the CPU; on the GPU the kernel checks it and makes the loss (and
// its gradient) NaN instead, because reading labels on the host would synchronise every training step (and could
// not be captured in a CUDA graph). Trainer stops on a NaN loss, naming the step.
Tensor softmax_cross_entropy(const Tensor& logits, const Tensor& labels, float label_smoothing = 0.f);

// ---- convolution ---------------------------------------------------------------------------------------------------
// y[n,p,q,k] = b[k] + sum_{r,s,c} w[k,r,s,c] *
//              x[n, p*stride_h - pad_h + r*dilation_h, q*stride_w - pad_w + s*dilation_w, group(k)*C/groups + c]
// (cross-correlation with zero padding, like torch);  dx, dw, db: kernels/conv2d.h.
struct Conv2dOptions { int stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0, dilation_h = 1, dilation_w = 1, groups = 1; };
// x (N,H,W,C), weight (K,R,S,C/groups), bias (K) optional -> (N,P,Q,K), P = (H + 2 pad_h - dilation_h (R-1) - 1)/stride_h + 1
Tensor conv2d(const Tensor& x, const Tensor& weight, const std::optional<Tensor>& bias, const Conv2dOptions& options = {});
// relu(conv2d(x, weight, bias)) as one op (VGG's conv -> relu): on CUDA the bias add and the relu are one pass over
// the output after cuDNN's convolution, and the backward's mask dz = dout [y > 0] and the bias gradient sum(dz)
// are one pass; the CPU runs the unfused steps (bitwise equal to relu(conv2d(...))).
Tensor conv2d_relu(const Tensor& x, const Tensor& weight, const std::optional<Tensor>& bias,
                   const Conv2dOptions& options = {});

// ---- normalisation -------------------------------------------------------------------------------------------------
// Batch norm over the last (channel) axis, statistics over all other elements (M = numel / C):
//   y = gamma (x - mean) / sqrt(var + eps) + beta,  xhat = (x - mean) invstd
//   dgamma = sum(dy xhat), dbeta = sum(dy); batch stats: dx = gamma invstd / M (M dy - dbeta - xhat dgamma);
//   running stats: dx = gamma invstd dy.
// x (N,H,W,C) or (N,C); gamma/beta (C) optional (undefined = 1/0, i.e. affine off or frozen elsewhere);
// running_mean/var (C) updated in place when update_running (torch momentum: r = (1-m) r + m * batch_stat,
// variance unbiased (n/(n-1)) for the running update, biased for normalising). use_batch_stats picks batch vs running stats.
// update_running requires use_batch_stats; the running tensors may be undefined when use_batch_stats and
// !update_running. Batch statistics need M >= 2. Running stats are buffers: never recorded, never differentiated.
Tensor batch_norm(const Tensor& x, const std::optional<Tensor>& gamma, const std::optional<Tensor>& beta,
                  Tensor& running_mean, Tensor& running_var, bool use_batch_stats, bool update_running,
                  float momentum, float eps);
// batch_norm with ResNet's epilogue fused in (one pass forward, no extra pass backward):
//   y = relu(batch_norm(x) + residual)      (residual optional, relu optional)
//   dz = dy (y > 0) with relu, else dy;  d residual = dz;  then batch_norm's backward with dz.
//   Without a residual the mask y > 0 is recomputed from x as gamma xhat + beta > 0 (the forward's own expression,
//   the same bits) instead of kept and read: two passes over the activations fewer in the backward.
// Equal to relu(add(batch_norm(x), residual)) up to float rounding of the same operations in the same order.
Tensor batch_norm_add_relu(const Tensor& x, const std::optional<Tensor>& gamma, const std::optional<Tensor>& beta,
                           Tensor& running_mean, Tensor& running_var, bool use_batch_stats, bool update_running,
                           float momentum, float eps, const std::optional<Tensor>& residual, bool relu);

// ---- pooling -------------------------------------------------------------------------------------------------------
// NHWC (N,H,W,C) -> (N,P,Q,C), P = floor_or_ceil((H + 2 pad_h - kernel_h) / stride_h) + 1 (as torch: with
// ceil_mode the last window must start inside the image or the left padding). pad <= kernel/2.
//   max: y = max over the window (padding is -inf); dx scatters dy to the saved argmax (ties -> first, as torch)
//   avg: y = window sum / divisor (count_include_pad: window area clipped to the padded image, else the
//        in-image area); dx = sum over covering windows of dy / divisor
struct Pool2dOptions { int kernel_h, kernel_w, stride_h, stride_w, pad_h = 0, pad_w = 0; bool ceil_mode = false; bool count_include_pad = true; };
Tensor max_pool2d(const Tensor& x, const Pool2dOptions& options);  // NHWC; saves argmax for backward; padding is -inf
Tensor avg_pool2d(const Tensor& x, const Pool2dOptions& options);
// y[n,c] = mean over h,w of x[n,h,w,c];  dx = dy / (H W)
Tensor global_avg_pool(const Tensor& x);                           // (N,H,W,C) -> (N,C)
// bin (i,j) = mean of rows [floor(i H/out_h), ceil((i+1) H/out_h)) x columns alike; dx = sum over bins of dy/area
Tensor adaptive_avg_pool2d(const Tensor& x, int out_h, int out_w); // torch's bin edges floor(i*H/out), ceil((i+1)*H/out)

// ---- layout --------------------------------------------------------------------------------------------------------
// pad2d: y = x surrounded by zeros (paddings >= 0);  dx = the inner window of dy.
Tensor pad2d(const Tensor& x, int top, int bottom, int left, int right);  // zero padding of H and W
// concat: y = [x_0 | x_1 | ...] along the last axis (equal leading shapes);  dx_i = dy[..., offset_i : offset_i + C_i]
Tensor concat_channels(const std::vector<Tensor>& xs);                    // along the last axis

// ---- dropout -------------------------------------------------------------------------------------------------------
// y = x * keep / (1-p), keep_i = philox_uniform(i, seed, offset) >= p with (seed, offset) reserved from `gen`
// (uniform_counters(numel) counters); dx = dy * keep / (1-p) (the mask is recomputed, not stored).
// The same generator state gives the same mask on CPU and CUDA. p == 0 or !training: returns x itself.
Tensor dropout(const Tensor& x, float p, Generator& gen, bool training);  // inverted dropout, mask from Philox

}  // namespace graft
