// Reductions: sum and mean over all elements or along one axis.
#include "core/autograd.h"
#include "core/error.h"
#include "core/ops.h"
#include "kernels/reduce.h"

namespace graft {
namespace {

// x viewed as (outer, len, inner) around `axis`.
struct AxisView {
  std::int64_t outer = 1, len = 1, inner = 1;
};

AxisView view_around(const Shape& shape, int axis) {
  AxisView v;
  for (int i = 0; i < static_cast<int>(shape.size()); ++i) {
    if (i < axis) v.outer *= shape[static_cast<std::size_t>(i)];
    else if (i == axis) v.len = shape[static_cast<std::size_t>(i)];
    else v.inner *= shape[static_cast<std::size_t>(i)];
  }
  return v;
}

void launch_sum(Tensor& out, const Tensor& x, const AxisView& v, float scale) {
#if GRAFT_HAS_CUDA
  if (x.is_cuda()) {
    std::size_t bytes = sum_axis_workspace_cuda(v.outer, v.len, v.inner);
    Tensor workspace = Tensor::empty({static_cast<std::int64_t>((bytes + 3) / 4)}, x.device());
    return sum_axis_cuda(out.data<float>(), x.data<float>(), v.outer, v.len, v.inner, scale,
                         bytes ? workspace.data<void>() : nullptr);
  }
#endif
  sum_axis_cpu(out.data<float>(), x.data<float>(), v.outer, v.len, v.inner, scale);
}

Tensor launch_broadcast(const Tensor& dout, const Shape& shape, const AxisView& v, float scale) {
  Tensor dx = Tensor::empty(shape, dout.device());
#if GRAFT_HAS_CUDA
  if (dout.is_cuda()) {
    broadcast_axis_cuda(dx.data<float>(), dout.data<float>(), v.outer, v.len, v.inner, scale);
    return dx;
  }
#endif
  broadcast_axis_cpu(dx.data<float>(), dout.data<float>(), v.outer, v.len, v.inner, scale);
  return dx;
}

// out = scale * sum of x over `v.len`, shaped `out_shape`.
Tensor reduce(const Tensor& x, const AxisView& v, const Shape& out_shape, float scale, const char* name) {
  Tensor out = Tensor::empty(out_shape, x.device());
  launch_sum(out, x, v, scale);
  if (autograd::needs_grad({&x})) {
    Shape in_shape = x.shape();
    autograd::record(out, name, {&x}, [in_shape, v, scale](const Tensor& dout, const std::vector<bool>&) {
      return std::vector<Tensor>{launch_broadcast(dout, in_shape, v, scale)};
    });
  }
  return out;
}

int normalize_axis(const Tensor& x, int axis, const char* name) {
  int n = x.ndim();
  int a = axis < 0 ? axis + n : axis;
  GRAFT_CHECK(a >= 0 && a < n, name, ": axis ", axis, " out of range for shape ", shape_str(x.shape()));
  return a;
}

Shape reduced_shape(const Shape& shape, int axis, bool keepdim) {
  Shape out = shape;
  if (keepdim) out[static_cast<std::size_t>(axis)] = 1;
  else out.erase(out.begin() + axis);
  return out;
}

}  // namespace

Tensor sum(const Tensor& x) {
  check_float(x, "sum", "x");
  return reduce(x, AxisView{1, x.numel(), 1}, {}, 1.f, "sum");
}

Tensor mean(const Tensor& x) {
  check_float(x, "mean", "x");
  GRAFT_CHECK(x.numel() > 0, "mean: tensor ", shape_str(x.shape()), " is empty");
  return reduce(x, AxisView{1, x.numel(), 1}, {}, 1.f / static_cast<float>(x.numel()), "mean");
}

Tensor sum(const Tensor& x, int axis, bool keepdim) {
  check_float(x, "sum", "x");
  int a = normalize_axis(x, axis, "sum");
  return reduce(x, view_around(x.shape(), a), reduced_shape(x.shape(), a, keepdim), 1.f, "sum");
}

Tensor mean(const Tensor& x, int axis, bool keepdim) {
  check_float(x, "mean", "x");
  int a = normalize_axis(x, axis, "mean");
  std::int64_t len = x.dim(a);
  GRAFT_CHECK(len > 0, "mean: axis ", axis, " of ", shape_str(x.shape()), " is empty");
  return reduce(x, view_around(x.shape(), a), reduced_shape(x.shape(), a, keepdim), 1.f / static_cast<float>(len),
                "mean");
}

}  // namespace graft
