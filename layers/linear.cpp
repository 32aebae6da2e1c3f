#include "layers/linear.h"

#include <cmath>

#include "core/error.h"
#include "core/ops.h"
#include "layers/init.h"

namespace graft {

Linear::Linear(int in_features, int out_features, bool bias, Generator& gen, LinearInit init)
    : in_(in_features), out_(out_features), has_bias_(bias) {
  GRAFT_CHECK(in_features > 0 && out_features > 0, "Linear: invalid size ", in_features, "->", out_features);
  float bound = 1.f / std::sqrt(static_cast<float>(in_features));
  if (init == LinearInit::Normal001) {
    register_parameter("weight", init::normal({out_features, in_features}, 0.01f, gen));
    if (bias) register_parameter("bias", Tensor::zeros({out_features}));
  } else {
    register_parameter("weight", init::uniform_bound({out_features, in_features}, bound, gen));
    if (bias) register_parameter("bias", init::uniform_bound({out_features}, bound, gen));
  }
}

Tensor Linear::forward(const Tensor& x) {
  return linear(x, parameter("weight"), has_bias_ ? std::optional<Tensor>(parameter("bias")) : std::nullopt);
}

std::string Linear::describe() const {
  return std::to_string(in_) + "->" + std::to_string(out_) + (has_bias_ ? "" : ", no bias");
}

}  // namespace graft
