// dropout: inverted dropout whose mask comes from Philox counters reserved from a Generator; the backward
// recomputes the mask from the same (seed, offset) instead of storing it.
#include "core/autograd.h"
#include "core/error.h"
#include "core/ops.h"
#include "core/rng.h"
#include "kernels/cuda_graph.h"
#include "kernels/dropout.h"
#include "kernels/random.h"

namespace graft {
namespace {

void launch_dropout(Tensor& out, const Tensor& inp, float p, std::uint64_t seed, std::uint64_t offset) {
#if GRAFT_HAS_CUDA
  if (inp.is_cuda()) return dropout_forward_cuda(out.data<float>(), inp.data<float>(), inp.numel(), p, seed, offset);
#endif
  dropout_forward_cpu(out.data<float>(), inp.data<float>(), inp.numel(), p, seed, offset);
}

}  // namespace

Tensor dropout(const Tensor& x, float p, Generator& gen, bool training) {
  check_float(x, "dropout", "x");
  GRAFT_CHECK(p >= 0.f && p < 1.f, "dropout: probability p = ", p, " must be in [0,1) (x ", shape_str(x.shape()), ")");
  if (!training || p == 0.f) return x;
  GRAFT_CHECK(!cuda::capturing(), "dropout: training-mode dropout inside a CUDA graph capture would replay the same "
              "random mask every step (its Philox offset is taken on the host); capture in eval mode, or run "
              "eagerly (x ", shape_str(x.shape()), ")");
  const std::uint64_t seed = gen.seed();
  const std::uint64_t offset = gen.advance(uniform_counters(x.numel()));
  Tensor out = Tensor::empty(x.shape(), x.device());
  launch_dropout(out, x, p, seed, offset);
  if (autograd::needs_grad({&x})) {
    autograd::record(out, "dropout", {&x}, [p, seed, offset](const Tensor& dout, const std::vector<bool>&) {
      Tensor dx = Tensor::empty(dout.shape(), dout.device());
      launch_dropout(dx, dout, p, seed, offset);  // the same counters: the same mask
      return std::vector<Tensor>{dx};
    });
  }
  return out;
}

}  // namespace graft
