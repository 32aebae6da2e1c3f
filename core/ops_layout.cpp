// Layout ops: pad2d (zero padding of H and W, NHWC) and concat_channels (along the last axis), with backward.
#include <algorithm>
#include <climits>

#include "core/autograd.h"
#include "core/error.h"
#include "core/ops.h"
#include "kernels/layout.h"

namespace graft {
namespace {

// Concatenation of up to kConcatArity inputs as one recorded node (autograd::record takes an initializer list,
// so the arity is spelled out below); concat_channels folds longer lists group by group.
constexpr std::size_t kConcatArity = 8;

void record_concat(Tensor& out, const std::vector<Tensor>& xs, BackwardFn backward) {
  const Tensor* p[kConcatArity] = {};
  for (std::size_t i = 0; i < xs.size(); ++i) p[i] = &xs[i];
  switch (xs.size()) {
    case 1: return autograd::record(out, "concat_channels", {p[0]}, std::move(backward));
    case 2: return autograd::record(out, "concat_channels", {p[0], p[1]}, std::move(backward));
    case 3: return autograd::record(out, "concat_channels", {p[0], p[1], p[2]}, std::move(backward));
    case 4: return autograd::record(out, "concat_channels", {p[0], p[1], p[2], p[3]}, std::move(backward));
    case 5: return autograd::record(out, "concat_channels", {p[0], p[1], p[2], p[3], p[4]}, std::move(backward));
    case 6:
      return autograd::record(out, "concat_channels", {p[0], p[1], p[2], p[3], p[4], p[5]}, std::move(backward));
    case 7:
      return autograd::record(out, "concat_channels", {p[0], p[1], p[2], p[3], p[4], p[5], p[6]},
                              std::move(backward));
    case 8:
      return autograd::record(out, "concat_channels", {p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7]},
                              std::move(backward));
  }
  GRAFT_FAIL("concat_channels: internal error, ", xs.size(), " inputs in one node");
}

// One node over at most kConcatArity inputs (already checked).
Tensor concat_group(const std::vector<Tensor>& xs) {
  Shape out_shape = xs[0].shape();
  std::int64_t total = 0;
  std::vector<std::int64_t> widths;
  for (const Tensor& x : xs) widths.push_back(x.dim(-1)), total += x.dim(-1);
  out_shape.back() = total;
  const std::int64_t rows = shape_numel(Shape(out_shape.begin(), out_shape.end() - 1));
  Tensor out = Tensor::empty(out_shape, xs[0].device());
  std::int64_t offset = 0;
  for (std::size_t i = 0; i < xs.size(); ++i) {
#if GRAFT_HAS_CUDA
    if (out.is_cuda()) concat_channels_forward_cuda(out.data<float>(), xs[i].data<float>(), rows, widths[i], total, offset); else
#endif
    concat_channels_forward_cpu(out.data<float>(), xs[i].data<float>(), rows, widths[i], total, offset);
    offset += widths[i];
  }
  bool any = false;
  for (const Tensor& x : xs) any = any || autograd::needs_grad({&x});
  if (any) {
    std::vector<Shape> shapes;
    for (const Tensor& x : xs) shapes.push_back(x.shape());
    record_concat(out, xs, [shapes, widths, rows, total](const Tensor& dout, const std::vector<bool>& needs) {
      std::vector<Tensor> dxs(shapes.size());
      std::int64_t off = 0;
      for (std::size_t i = 0; i < shapes.size(); ++i) {
        if (needs[i]) {
          dxs[i] = Tensor::empty(shapes[i], dout.device());
#if GRAFT_HAS_CUDA
          if (dout.is_cuda()) slice_channels_cuda(dxs[i].data<float>(), dout.data<float>(), rows, widths[i], total, off); else
#endif
          slice_channels_cpu(dxs[i].data<float>(), dout.data<float>(), rows, widths[i], total, off);
        }
        off += widths[i];
      }
      return dxs;
    });
  }
  return out;
}

}  // namespace

Tensor pad2d(const Tensor& x, int top, int bottom, int left, int right) {
  check_float(x, "pad2d", "x");
  GRAFT_CHECK(x.ndim() == 4, "pad2d: x ", shape_str(x.shape()), " must be NHWC (N,H,W,C)");
  GRAFT_CHECK(top >= 0 && bottom >= 0 && left >= 0 && right >= 0, "pad2d: paddings (top ", top, ", bottom ", bottom,
              ", left ", left, ", right ", right, ") must be >= 0 (x ", shape_str(x.shape()), ")");
  GRAFT_CHECK(x.dim(1) + top + bottom <= INT_MAX && x.dim(2) + left + right <= INT_MAX, "pad2d: x ",
              shape_str(x.shape()), " padded is too large");
  const std::int64_t n = x.dim(0), c = x.dim(3);
  const int h = static_cast<int>(x.dim(1)), w = static_cast<int>(x.dim(2));
  Tensor out = Tensor::empty({n, h + top + bottom, w + left + right, c}, x.device());
#if GRAFT_HAS_CUDA
  if (x.is_cuda()) pad2d_forward_cuda(out.data<float>(), x.data<float>(), n, h, w, c, top, bottom, left, right); else
#endif
  pad2d_forward_cpu(out.data<float>(), x.data<float>(), n, h, w, c, top, bottom, left, right);
  if (autograd::needs_grad({&x})) {
    autograd::record(out, "pad2d", {&x}, [n, h, w, c, top, bottom, left, right](const Tensor& dout,
                                                                                const std::vector<bool>&) {
      Tensor dx = Tensor::empty({n, h, w, c}, dout.device());
#if GRAFT_HAS_CUDA
      if (dout.is_cuda()) pad2d_backward_cuda(dx.data<float>(), dout.data<float>(), n, h, w, c, top, bottom, left, right); else
#endif
      pad2d_backward_cpu(dx.data<float>(), dout.data<float>(), n, h, w, c, top, bottom, left, right);
      return std::vector<Tensor>{dx};
    });
  }
  return out;
}

Tensor concat_channels(const std::vector<Tensor>& xs) {
  GRAFT_CHECK(!xs.empty(), "concat_channels: no inputs");
  for (std::size_t i = 0; i < xs.size(); ++i) {
    check_float(xs[i], "concat_channels", "xs");
    GRAFT_CHECK(xs[i].ndim() >= 1, "concat_channels: input ", i, " is a scalar ", shape_str(xs[i].shape()));
    const Shape& a = xs[0].shape();
    const Shape& b = xs[i].shape();
    GRAFT_CHECK(a.size() == b.size() && std::equal(a.begin(), a.end() - 1, b.begin()), "concat_channels: input ", i,
                " ", shape_str(b), " does not match input 0 ", shape_str(a), " outside the last axis");
    GRAFT_CHECK(xs[i].device() == xs[0].device(), "concat_channels: input ", i, " ", shape_str(b), " is on ",
                xs[i].device().str(), ", input 0 ", shape_str(a), " on ", xs[0].device().str());
  }
  if (xs.size() <= kConcatArity) return concat_group(xs);
  std::vector<Tensor> groups;
  for (std::size_t begin = 0; begin < xs.size(); begin += kConcatArity) {
    std::size_t end = std::min(xs.size(), begin + kConcatArity);
    groups.push_back(concat_group(std::vector<Tensor>(xs.begin() + static_cast<std::ptrdiff_t>(begin),
                                                      xs.begin() + static_cast<std::ptrdiff_t>(end))));
  }
  return concat_channels(groups);
}

}  // namespace graft
