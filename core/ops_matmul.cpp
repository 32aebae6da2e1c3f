// Matrix products: matmul and linear (OpenBLAS on CPU, cuBLAS on CUDA).
#include "core/autograd.h"
#include "core/error.h"
#include "core/ops.h"
#include "kernels/elementwise.h"
#include "kernels/gemm.h"

namespace graft {
namespace {

// c (m,n) = alpha op(a) op(b) + beta c, on the tensors' device.
void gemm(Tensor& c, const Tensor& a, const Tensor& b, bool trans_a, bool trans_b, std::int64_t m, std::int64_t n,
          std::int64_t k, float beta) {
#if GRAFT_HAS_CUDA
  if (c.is_cuda())
    return gemm_cublas(c.data<float>(), a.data<float>(), b.data<float>(), trans_a, trans_b, m, n, k, 1.f, beta);
#endif
  gemm_cpu(c.data<float>(), a.data<float>(), b.data<float>(), trans_a, trans_b, m, n, k, 1.f, beta);
}

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b) {
  check_float(a, "matmul", "a");
  check_float(b, "matmul", "b");
  check_same_device("matmul", {&a, &b});
  GRAFT_CHECK(a.ndim() == 2 && b.ndim() == 2 && a.dim(1) == b.dim(0), "matmul: cannot multiply ",
              shape_str(a.shape()), " by ", shape_str(b.shape()), " (need (M,K) x (K,N))");
  const std::int64_t m = a.dim(0), k = a.dim(1), n = b.dim(1);
  Tensor out = Tensor::empty({m, n}, a.device());
  gemm(out, a, b, false, false, m, n, k, 0.f);
  if (autograd::needs_grad({&a, &b})) {
    Tensor sa = a.detach(), sb = b.detach();
    autograd::record(out, "matmul", {&a, &b}, [sa, sb, m, n, k](const Tensor& dout, const std::vector<bool>& needs) {
      Tensor da, db;
      if (needs[0]) {  // da (m,k) = dout (m,n) b^T
        da = Tensor::empty({m, k}, dout.device());
        gemm(da, dout, sb, false, true, m, k, n, 0.f);
      }
      if (needs[1]) {  // db (k,n) = a^T dout
        db = Tensor::empty({k, n}, dout.device());
        gemm(db, sa, dout, true, false, k, n, m, 0.f);
      }
      return std::vector<Tensor>{da, db};
    });
  }
  return out;
}

Tensor linear(const Tensor& x, const Tensor& weight, const std::optional<Tensor>& bias) {
  check_float(x, "linear", "x");
  check_float(weight, "linear", "weight");
  const Tensor* b = bias && bias->defined() ? &*bias : nullptr;
  if (b) check_float(*b, "linear", "bias");
  check_same_device("linear", {&x, &weight, b});
  GRAFT_CHECK(weight.ndim() == 2, "linear: weight ", shape_str(weight.shape()), " must be (out, in)");
  GRAFT_CHECK(x.ndim() >= 1 && x.dim(-1) == weight.dim(1), "linear: input ", shape_str(x.shape()), " has ",
              x.ndim() ? x.dim(-1) : 0, " features, weight ", shape_str(weight.shape()), " expects ", weight.dim(1));
  const std::int64_t in = weight.dim(1), out_features = weight.dim(0), rows = x.numel() / std::max<std::int64_t>(in, 1);
  if (b)
    GRAFT_CHECK(b->ndim() == 1 && b->dim(0) == out_features, "linear: bias ", shape_str(b->shape()),
                " does not match weight ", shape_str(weight.shape()));
  Shape out_shape = x.shape();
  out_shape.back() = out_features;
  Tensor out = Tensor::empty(out_shape, x.device());
  gemm(out, x, weight, false, true, rows, out_features, in, 0.f);  // out = x W^T
  if (b) {
#if GRAFT_HAS_CUDA
    if (out.is_cuda())
      binary_forward_cuda(out.data<float>(), out.data<float>(), Broadcast::Full, b->data<float>(), Broadcast::Channel,
                          BinaryOp::Add, out.numel(), out_features);
    else
#endif
      binary_forward_cpu(out.data<float>(), out.data<float>(), Broadcast::Full, b->data<float>(), Broadcast::Channel,
                         BinaryOp::Add, out.numel(), out_features);
  }
  if (autograd::needs_grad({&x, &weight, b})) {
    Tensor sx = x.detach(), sw = weight.detach();
    Shape x_shape = x.shape();
    auto backward = [sx, sw, x_shape, rows, in, out_features](const Tensor& dout, const std::vector<bool>& needs) {
      std::vector<Tensor> grads(needs.size());
      if (needs[0]) {  // dx (rows,in) = dout (rows,out) W (out,in)
        grads[0] = Tensor::empty(x_shape, dout.device());
        gemm(grads[0], dout, sw, false, false, rows, in, out_features, 0.f);
      }
      if (needs[1]) {  // dW (out,in) = dout^T x
        grads[1] = Tensor::empty({out_features, in}, dout.device());
        gemm(grads[1], dout, sx, true, false, out_features, in, rows, 0.f);
      }
      if (needs[2]) grads[2] = sum(dout.reshape({rows, out_features}), 0);
      return grads;
    };
    autograd::record(out, "linear", {&x, &weight, b}, backward);  // b may be null: an inactive edge
  }
  return out;
}

}  // namespace graft
