// dropout on the CPU: the mask is the documented Philox draw, its statistics (kept fraction, scaling, mean),
// determinism for a generator state, the backward reusing the forward's mask, the identity cases and the errors.
#include <gtest/gtest.h>

#include <cmath>

#include "core/error.h"
#include "kernels/philox.h"
#include "kernels/random.h"
#include "tests/check.h"

namespace graft {
namespace {

using testing::all_close;

TEST(Dropout, MaskIsThePhiloxDrawAndKeptValuesAreScaled) {
  Generator gen(77);
  const float p = 0.3f;
  Tensor x = Tensor::uniform({3, 7, 5}, gen, 0.5f, 1.5f);  // never zero, so zero in y means dropped
  const std::uint64_t seed = gen.seed(), offset_after_x = gen.offset();
  ASSERT_GT(offset_after_x, 0u);
  Tensor y = dropout(x, p, gen, true);
  EXPECT_EQ(gen.offset(), offset_after_x + uniform_counters(x.numel())) << "dropout reserves ceil(n/4) counters";
  std::vector<float> xv = x.to_vector(), yv = y.to_vector();
  for (std::size_t i = 0; i < xv.size(); ++i) {
    bool keep = philox_uniform(i, seed, offset_after_x) >= p;
    EXPECT_EQ(yv[i], keep ? xv[i] * (1.f / (1.f - p)) : 0.f) << "element " << i;
  }
}

TEST(Dropout, Statistics) {
  Generator gen(3);
  const std::int64_t n = 200003;  // odd: the last Philox block is partly used
  for (float p : {0.1f, 0.5f, 0.8f}) {
    Tensor y = dropout(Tensor::ones({n}), p, gen, true);
    std::vector<float> v = y.to_vector();
    std::int64_t kept = 0;
    double total = 0;
    for (float e : v) {
      if (e != 0.f) {
        ++kept;
        EXPECT_FLOAT_EQ(e, 1.f / (1.f - p));
      }
      total += e;
    }
    const double fraction = static_cast<double>(kept) / n, sigma = std::sqrt(p * (1.0 - p) / n);
    EXPECT_NEAR(fraction, 1.0 - p, 5 * sigma) << "p " << p;
    EXPECT_NEAR(total / n, 1.0, 5 * sigma / (1.0 - p)) << "inverted dropout keeps the mean, p " << p;
  }
}

TEST(Dropout, DeterministicForAGeneratorState) {
  Generator a(9), b(9);
  Tensor x = Tensor::ones({1000});
  Tensor first = dropout(x, 0.5f, a, true), again = dropout(x, 0.5f, b, true);
  EXPECT_EQ(first.to_vector(), again.to_vector());
  Tensor next = dropout(x, 0.5f, a, true);  // the generator moved on: a different mask
  EXPECT_NE(first.to_vector(), next.to_vector());
  Generator other_seed(10);
  EXPECT_NE(first.to_vector(), dropout(x, 0.5f, other_seed, true).to_vector());
}

TEST(Dropout, BackwardUsesTheForwardMask) {
  Generator gen(4);
  Tensor x = Tensor::uniform({4, 9}, gen, 0.5f, 1.5f);
  x.set_requires_grad(true);
  const float p = 0.4f;
  Tensor y = dropout(x, p, gen, true);
  gen.advance(1000);  // later draws must not change the mask the backward sees
  Tensor dy = Tensor::uniform({4, 9}, gen, 1.f, 2.f);
  y.backward(dy);
  std::vector<float> yv = y.to_vector(), dyv = dy.to_vector(), dx = x.grad().to_vector();
  for (std::size_t i = 0; i < yv.size(); ++i)
    EXPECT_EQ(dx[i], yv[i] != 0.f ? dyv[i] * (1.f / (1.f - p)) : 0.f) << "element " << i;
}

TEST(Dropout, Gradcheck) {
  Generator gen(5);
  testing::expect_gradients_match(
      [](const std::vector<Tensor>& in) {
        Generator fixed(6);  // the same mask on every evaluation
        return dropout(in[0], 0.35f, fixed, true);
      },
      {Tensor::randn({3, 5}, gen)});
}

TEST(Dropout, IdentityWhenEvaluatingOrPZero) {
  Generator gen(8);
  Tensor x = Tensor::randn({5, 3}, gen);
  x.set_requires_grad(true);
  const std::uint64_t before = gen.offset();
  Tensor eval = dropout(x, 0.5f, gen, false), p0 = dropout(x, 0.f, gen, true);
  EXPECT_EQ(eval.impl(), x.impl());
  EXPECT_EQ(p0.impl(), x.impl());
  EXPECT_EQ(gen.offset(), before) << "no counters are used";
  Tensor plain = Tensor::randn({5, 3}, gen);
  EXPECT_FALSE(dropout(plain, 0.5f, gen, true).requires_grad());
}

TEST(DropoutErrors, ProbabilityOutsideRange) {
  Generator gen(1);
  Tensor x = Tensor::ones({2, 3});
  for (float p : {1.f, -0.1f, 1.5f, NAN}) {
    try {
      dropout(x, p, gen, true);
      ADD_FAILURE() << "p " << p << " accepted";
    } catch (const Error& e) {
      EXPECT_NE(e.message().find("dropout: probability p = "), std::string::npos) << e.message();
      EXPECT_NE(e.message().find("must be in [0,1) (x (2,3))"), std::string::npos) << e.message();
    }
  }
  EXPECT_THROW(dropout(Tensor::from_vector(std::vector<std::int32_t>{1}, {1}), 0.5f, gen, true), Error);
}

}  // namespace
}  // namespace graft
