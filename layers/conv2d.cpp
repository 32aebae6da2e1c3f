#include "layers/conv2d.h"

#include <cmath>

#include "core/error.h"
#include "layers/init.h"

namespace graft {

Conv2d::Conv2d(const Conv2dConfig& c, Generator& gen) : config_(c) {
  GRAFT_CHECK(c.in_channels > 0 && c.out_channels > 0 && c.kernel_h > 0 && c.kernel_w > 0 && c.stride > 0 &&
                  c.groups > 0 && c.in_channels % c.groups == 0 && c.out_channels % c.groups == 0,
              "Conv2d: invalid configuration ", c.in_channels, "->", c.out_channels, " kernel ", c.kernel_h, "x",
              c.kernel_w, " stride ", c.stride, " groups ", c.groups);
  Shape shape{c.out_channels, c.kernel_h, c.kernel_w, c.in_channels / c.groups};
  init::Fans fans = init::fans_of(shape);
  if (c.init == ConvInit::KaimingFanOut) {
    register_parameter("weight", init::kaiming_normal(shape, fans.out, gen));
    if (c.bias) register_parameter("bias", Tensor::zeros({c.out_channels}));
  } else {
    register_parameter("weight", init::kaiming_uniform(shape, fans.in, gen));
    if (c.bias) register_parameter("bias", init::uniform_bound({c.out_channels}, 1.f / std::sqrt(float(fans.in)), gen));
  }
}

Conv2dOptions Conv2d::options() const {
  Conv2dOptions o;
  o.stride_h = o.stride_w = config_.stride;
  o.pad_h = o.pad_w = config_.padding;
  o.dilation_h = o.dilation_w = config_.dilation;
  o.groups = config_.groups;
  return o;
}

Tensor Conv2d::forward(const Tensor& x) { return conv2d(x, parameter("weight"), bias(), options()); }

Tensor Conv2d::forward_relu(const Tensor& x) {
  Tensor y = conv2d_relu(x, parameter("weight"), bias(), options());
  set_last_output_shape(y.shape());
  return y;
}

std::string Conv2d::describe() const {
  const Conv2dConfig& c = config_;
  std::string s = std::to_string(c.in_channels) + "->" + std::to_string(c.out_channels) + ", " +
                  std::to_string(c.kernel_h) + "x" + std::to_string(c.kernel_w);
  if (c.stride != 1) s += ", stride " + std::to_string(c.stride);
  if (c.padding != 0) s += ", pad " + std::to_string(c.padding);
  if (c.dilation != 1) s += ", dilation " + std::to_string(c.dilation);
  if (c.groups != 1) s += ", groups " + std::to_string(c.groups);
  if (!c.bias) s += ", no bias";
  return s;
}

}  // namespace graft
