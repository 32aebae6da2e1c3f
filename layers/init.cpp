#include "layers/init.h"

#include <cmath>

namespace graft::init {

Fans fans_of(const Shape& s) {
  if (s.size() == 2) return {s[1], s[0]};
  if (s.size() == 4) return {s[1] * s[2] * s[3], s[0] * s[1] * s[2]};
  std::int64_t n = shape_numel(s);
  return {n, n};
}

Tensor kaiming_normal(const Shape& shape, std::int64_t fan, Generator& gen, float gain) {
  return Tensor::randn(shape, gen, kCPU, 0.f, gain / std::sqrt(static_cast<float>(fan)));
}

Tensor kaiming_uniform(const Shape& shape, std::int64_t fan, Generator& gen, float a) {
  float bound = std::sqrt(6.f / ((1.f + a * a) * static_cast<float>(fan)));
  return uniform_bound(shape, bound, gen);
}

Tensor xavier_uniform(const Shape& shape, Generator& gen) {
  Fans f = fans_of(shape);
  return uniform_bound(shape, std::sqrt(6.f / static_cast<float>(f.in + f.out)), gen);
}

Tensor xavier_normal(const Shape& shape, Generator& gen) {
  Fans f = fans_of(shape);
  return normal(shape, std::sqrt(2.f / static_cast<float>(f.in + f.out)), gen);
}

Tensor normal(const Shape& shape, float stddev, Generator& gen) { return Tensor::randn(shape, gen, kCPU, 0.f, stddev); }

Tensor uniform_bound(const Shape& shape, float bound, Generator& gen) {
  return Tensor::uniform(shape, gen, -bound, bound);
}

}  // namespace graft::init
