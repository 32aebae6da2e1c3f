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
Tensor relu(const Tensor& x);                  // max(x,0); dx = dout * [out > 0]
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
Tensor softmax_cross_entropy(const Tensor& logits, const Tensor& labels, float label_smoothing = 0.f);

}  // namespace graft
