// Elementwise ops with broadcasting: add, sub, mul, div, scalar add/mul, neg, relu, exp, log.
#include "core/autograd.h"
#include "core/error.h"
#include "core/ops.h"
#include "kernels/elementwise.h"
#include "kernels/reduce.h"
#if GRAFT_HAS_CUDA
#include "kernels/cuda_device.h"
#endif

namespace graft {
namespace {

const char* binary_name(BinaryOp op) {
  switch (op) {
    case BinaryOp::Add: return "add";
    case BinaryOp::Sub: return "sub";
    case BinaryOp::Mul: return "mul";
    case BinaryOp::Div: return "div";
  }
  return "?";
}

// How two shapes broadcast: the output shape and how each operand is indexed.
struct BroadcastPlan {
  Shape out_shape;
  Broadcast ia = Broadcast::Full, ib = Broadcast::Full;
  std::int64_t channels = 1;
};

BroadcastPlan plan_broadcast(const Tensor& a, const Tensor& b, const char* op) {
  BroadcastPlan plan;
  const Shape &sa = a.shape(), &sb = b.shape();
  auto is_channel_of = [](const Shape& small, const Shape& big) {
    return small.size() == 1 && !big.empty() && small[0] == big.back();
  };
  if (sa == sb) {
    plan.out_shape = sa;
  } else if (b.numel() == 1) {
    plan.out_shape = sa, plan.ib = Broadcast::Scalar;
  } else if (a.numel() == 1) {
    plan.out_shape = sb, plan.ia = Broadcast::Scalar;
  } else if (is_channel_of(sb, sa)) {
    plan.out_shape = sa, plan.ib = Broadcast::Channel, plan.channels = sb[0];
  } else if (is_channel_of(sa, sb)) {
    plan.out_shape = sb, plan.ia = Broadcast::Channel, plan.channels = sa[0];
  } else {
    GRAFT_FAIL(op, ": shapes ", shape_str(sa), " and ", shape_str(sb),
               " do not broadcast (need equal shapes, a one-element operand, or a 1-D operand matching the last axis)");
  }
  if (plan.channels == 0) plan.channels = 1;
  return plan;
}

// Sums a gradient of the output's shape back to an operand that was broadcast in mode `mode`.
Tensor reduce_to_operand(const Tensor& grad, Broadcast mode, const Shape& operand_shape, std::int64_t channels) {
  if (mode == Broadcast::Full) return grad;
  if (mode == Broadcast::Scalar) return sum(grad).reshape(operand_shape);
  return sum(grad.reshape({-1, channels}), 0).reshape(operand_shape);
}

void launch_binary(Tensor& out, const Tensor& a, const Tensor& b, const BroadcastPlan& p, BinaryOp op) {
  std::int64_t n = out.numel();
#if GRAFT_HAS_CUDA
  if (out.is_cuda())
    return binary_forward_cuda(out.data<float>(), a.data<float>(), p.ia, b.data<float>(), p.ib, op, n, p.channels);
#endif
  binary_forward_cpu(out.data<float>(), a.data<float>(), p.ia, b.data<float>(), p.ib, op, n, p.channels);
}

Tensor binary(const Tensor& a, const Tensor& b, BinaryOp op) {
  const char* name = binary_name(op);
  check_float(a, name, "a");
  check_float(b, name, "b");
  check_same_device(name, {&a, &b});
  BroadcastPlan plan = plan_broadcast(a, b, name);
  Tensor out = Tensor::empty(plan.out_shape, a.device());
  launch_binary(out, a, b, plan, op);
  if (!autograd::needs_grad({&a, &b})) return out;

  // Saved tensors: only what the gradient formula reads.
  Tensor sa = (op == BinaryOp::Mul || op == BinaryOp::Div) ? a.detach() : Tensor();
  Tensor sb = (op == BinaryOp::Mul || op == BinaryOp::Div) ? b.detach() : Tensor();
  Shape shape_a = a.shape(), shape_b = b.shape();
  autograd::record(out, name, {&a, &b},
                   [=](const Tensor& dout, const std::vector<bool>& needs) {
                     Tensor da, db;
                     switch (op) {
                       case BinaryOp::Add:
                         if (needs[0]) da = dout;
                         if (needs[1]) db = dout;
                         break;
                       case BinaryOp::Sub:
                         if (needs[0]) da = dout;
                         if (needs[1]) db = neg(dout);
                         break;
                       case BinaryOp::Mul:
                         if (needs[0]) da = mul(dout, sb);
                         if (needs[1]) db = mul(dout, sa);
                         break;
                       case BinaryOp::Div:
                         if (needs[0]) da = div(dout, sb);
                         if (needs[1]) db = neg(div(mul(dout, sa), mul(sb, sb)));
                         break;
                     }
                     if (da.defined()) da = reduce_to_operand(da, plan.ia, shape_a, plan.channels);
                     if (db.defined()) db = reduce_to_operand(db, plan.ib, shape_b, plan.channels);
                     return std::vector<Tensor>{da, db};
                   });
  return out;
}

Tensor scale_shift(const Tensor& x, float scale, float shift, const char* name) {
  check_float(x, name, "x");
  Tensor out = Tensor::empty(x.shape(), x.device());
#if GRAFT_HAS_CUDA
  if (x.is_cuda()) scale_shift_cuda(out.data<float>(), x.data<float>(), scale, shift, x.numel()); else
#endif
  scale_shift_cpu(out.data<float>(), x.data<float>(), scale, shift, x.numel());
  if (autograd::needs_grad({&x})) {
    autograd::record(out, name, {&x}, [scale](const Tensor& dout, const std::vector<bool>&) {
      return std::vector<Tensor>{scale == 1.f ? dout : mul(dout, scale)};
    });
  }
  return out;
}

Tensor unary(const Tensor& x, UnaryOp op, const char* name) {
  check_float(x, name, "x");
  Tensor out = Tensor::empty(x.shape(), x.device());
#if GRAFT_HAS_CUDA
  if (x.is_cuda()) unary_forward_cuda(out.data<float>(), x.data<float>(), op, x.numel()); else
#endif
  unary_forward_cpu(out.data<float>(), x.data<float>(), op, x.numel());
  return out;
}

}  // namespace

Tensor add(const Tensor& a, const Tensor& b) { return binary(a, b, BinaryOp::Add); }
Tensor sub(const Tensor& a, const Tensor& b) { return binary(a, b, BinaryOp::Sub); }
Tensor mul(const Tensor& a, const Tensor& b) { return binary(a, b, BinaryOp::Mul); }
Tensor div(const Tensor& a, const Tensor& b) { return binary(a, b, BinaryOp::Div); }
Tensor add(const Tensor& a, float b) { return scale_shift(a, 1.f, b, "add"); }
Tensor mul(const Tensor& a, float b) { return scale_shift(a, b, 0.f, "mul"); }

Tensor neg(const Tensor& x) {
  Tensor out = unary(x, UnaryOp::Neg, "neg");
  if (autograd::needs_grad({&x}))
    autograd::record(out, "neg", {&x}, [](const Tensor& dout, const std::vector<bool>&) {
      return std::vector<Tensor>{neg(dout)};
    });
  return out;
}

Tensor relu(const Tensor& x) {
  Tensor out = unary(x, UnaryOp::Relu, "relu");
  if (autograd::needs_grad({&x})) {
    Tensor y = out.detach();
    autograd::record(out, "relu", {&x}, [y](const Tensor& dout, const std::vector<bool>&) {
      Tensor dx = Tensor::empty(y.shape(), y.device());
#if GRAFT_HAS_CUDA
      if (y.is_cuda()) relu_backward_cuda(dx.data<float>(), dout.data<float>(), y.data<float>(), y.numel()); else
#endif
      relu_backward_cpu(dx.data<float>(), dout.data<float>(), y.data<float>(), y.numel());
      return std::vector<Tensor>{dx};
    });
  }
  return out;
}

Tensor exp(const Tensor& x) {
  Tensor out = unary(x, UnaryOp::Exp, "exp");
  if (autograd::needs_grad({&x})) {
    Tensor y = out.detach();
    autograd::record(out, "exp", {&x}, [y](const Tensor& dout, const std::vector<bool>&) {
      return std::vector<Tensor>{mul(dout, y)};
    });
  }
  return out;
}

Tensor log(const Tensor& x) {
  Tensor out = unary(x, UnaryOp::Log, "log");
  if (autograd::needs_grad({&x})) {
    Tensor saved = x.detach();
    autograd::record(out, "log", {&x}, [saved](const Tensor& dout, const std::vector<bool>&) {
      return std::vector<Tensor>{div(dout, saved)};
    });
  }
  return out;
}

}  // namespace graft
