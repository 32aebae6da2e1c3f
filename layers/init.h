// Parameter initialisers, as torchvision uses them. fan_in / fan_out of a conv weight (K,R,S,C) are C*R*S and
// K*R*S; of a linear weight (out,in) they are in and out.
//   kaiming_normal(fan, gain=sqrt(2)):    N(0, gain^2 / fan)                (ResNet/VGG convs: fan_out, relu)
//   kaiming_uniform(fan, a):              U(-b, b), b = sqrt(6 / ((1 + a^2) fan))  (nn.Linear/Conv2d default: a=sqrt(5))
//   xavier_uniform:                       U(-b, b), b = sqrt(6 / (fan_in + fan_out))
//   xavier_normal:                        N(0, 2 / (fan_in + fan_out))
// All draw from a graft::Generator, so a seed fixes a model's initial weights on every device.
#pragma once
#include "core/rng.h"
#include "core/tensor.h"

namespace graft::init {

struct Fans {
  std::int64_t in = 1, out = 1;
};
Fans fans_of(const Shape& weight_shape);  // conv (K,R,S,C/groups) or linear (out,in)

Tensor kaiming_normal(const Shape& shape, std::int64_t fan, Generator& gen, float gain = 1.41421356f);
Tensor kaiming_uniform(const Shape& shape, std::int64_t fan, Generator& gen, float a = 2.23606798f);
Tensor xavier_uniform(const Shape& shape, Generator& gen);
Tensor xavier_normal(const Shape& shape, Generator& gen);
Tensor normal(const Shape& shape, float stddev, Generator& gen);
Tensor uniform_bound(const Shape& shape, float bound, Generator& gen);  // U(-bound, bound)

}  // namespace graft::init
