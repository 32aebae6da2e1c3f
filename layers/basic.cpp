#include "layers/basic.h"

#include <sstream>

#include "core/error.h"

namespace graft {

static Pool2dOptions pool_options(int kernel, int stride, int padding, bool ceil_mode, bool count_include_pad) {
  GRAFT_CHECK(kernel > 0 && stride > 0 && padding >= 0 && 2 * padding <= kernel, "pool: invalid kernel ", kernel,
              " stride ", stride, " padding ", padding);
  Pool2dOptions o;
  o.kernel_h = o.kernel_w = kernel;
  o.stride_h = o.stride_w = stride;
  o.pad_h = o.pad_w = padding;
  o.ceil_mode = ceil_mode;
  o.count_include_pad = count_include_pad;
  return o;
}

static std::string pool_describe(const Pool2dOptions& o) {
  std::ostringstream s;
  s << o.kernel_h << "x" << o.kernel_w << ", stride " << o.stride_h;
  if (o.pad_h) s << ", pad " << o.pad_h;
  if (o.ceil_mode) s << ", ceil";
  return s.str();
}

MaxPool2d::MaxPool2d(int kernel, int stride, int padding, bool ceil_mode)
    : options_(pool_options(kernel, stride, padding, ceil_mode, true)) {}
std::string MaxPool2d::describe() const { return pool_describe(options_); }

AvgPool2d::AvgPool2d(int kernel, int stride, int padding, bool ceil_mode, bool count_include_pad)
    : options_(pool_options(kernel, stride, padding, ceil_mode, count_include_pad)) {}
std::string AvgPool2d::describe() const { return pool_describe(options_); }

Tensor AdaptiveAvgPool2d::forward(const Tensor& x) {
  if (out_h_ == 1 && out_w_ == 1 && x.ndim() == 4) return global_avg_pool(x).reshape({x.dim(0), 1, 1, x.dim(3)});
  return adaptive_avg_pool2d(x, out_h_, out_w_);
}

std::string ZeroPad2d::describe() const {
  std::ostringstream s;
  s << "top " << top_ << ", bottom " << bottom_ << ", left " << left_ << ", right " << right_;
  return s.str();
}

Dropout::Dropout(float p, std::uint64_t seed) : p_(p), gen_(seed) {
  GRAFT_CHECK(p >= 0.f && p < 1.f, "Dropout: probability ", p, " outside [0,1)");
}

std::string Dropout::describe() const {
  std::ostringstream s;
  s << "p " << p_;
  return s.str();
}

}  // namespace graft
