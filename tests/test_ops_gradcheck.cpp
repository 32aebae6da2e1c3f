// Central-difference gradient checks (tests/check.h) for every foundation op in core/ops.h, on odd sizes, with
// every broadcasting mode both ways. Inputs stay away from kinks (relu) and poles (div, log).
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/ops.h"
#include "core/rng.h"
#include "core/tensor.h"
#include "tests/check.h"

namespace graft {
namespace {

using graft::testing::expect_gradients_match;
using Inputs = std::vector<Tensor>;

Tensor rand(const Shape& shape, std::uint64_t seed, float low = -1.f, float high = 1.f) {
  Generator gen(seed);
  return Tensor::uniform(shape, gen, low, high);
}

// Values with |x| in [0.2, 1.2]: a step of eps = 1e-2 never crosses relu's kink.
Tensor away_from_zero(const Shape& shape, std::uint64_t seed) {
  std::vector<float> v = rand(shape, seed).to_vector();
  for (float& x : v) x = x < 0 ? x - 0.2f : x + 0.2f;
  return Tensor::from_vector(v, shape);
}

const Shape kBig{3, 5, 7};

// ---- binary ops, each broadcasting mode both ways -----------------------------------------------------------------------

using BinaryFn = Tensor (*)(const Tensor&, const Tensor&);

// a and b drawn from [-1,1] except a divisor, drawn from [1,2].
void check_binary(BinaryFn op, const Shape& sa, const Shape& sb, bool b_is_divisor = false) {
  SCOPED_TRACE(shape_str(sa) + " with " + shape_str(sb));
  Tensor a = rand(sa, 1), b = b_is_divisor ? rand(sb, 2, 1.f, 2.f) : rand(sb, 2);
  expect_gradients_match([op](const Inputs& in) { return op(in[0], in[1]); }, {a, b});
}

BinaryFn op_add() { return static_cast<BinaryFn>(&add); }
BinaryFn op_mul() { return static_cast<BinaryFn>(&mul); }

TEST(Gradcheck, AddFull) { check_binary(op_add(), kBig, kBig); }
TEST(Gradcheck, AddScalarBothWays) {
  check_binary(op_add(), kBig, {});
  check_binary(op_add(), {}, kBig);
  check_binary(op_add(), {1}, kBig);
}
TEST(Gradcheck, AddChannelBothWays) {
  check_binary(op_add(), kBig, {7});
  check_binary(op_add(), {7}, kBig);
}

TEST(Gradcheck, SubFull) { check_binary(&graft::sub, kBig, kBig); }
TEST(Gradcheck, SubScalarBothWays) {
  check_binary(&graft::sub, kBig, {1});
  check_binary(&graft::sub, {}, kBig);
}
TEST(Gradcheck, SubChannelBothWays) {
  check_binary(&graft::sub, kBig, {7});
  check_binary(&graft::sub, {7}, kBig);
}

TEST(Gradcheck, MulFull) { check_binary(op_mul(), kBig, kBig); }
TEST(Gradcheck, MulScalarBothWays) {
  check_binary(op_mul(), kBig, {});
  check_binary(op_mul(), {1, 1}, kBig);
}
TEST(Gradcheck, MulChannelBothWays) {
  check_binary(op_mul(), kBig, {7});
  check_binary(op_mul(), {7}, kBig);
}

TEST(Gradcheck, DivFull) { check_binary(&graft::div, kBig, kBig, true); }
TEST(Gradcheck, DivScalarBothWays) {
  check_binary(&graft::div, kBig, {}, true);
  check_binary(&graft::div, {1}, kBig, true);
}
TEST(Gradcheck, DivChannelBothWays) {
  check_binary(&graft::div, kBig, {7}, true);
  check_binary(&graft::div, {7}, kBig, true);
}

TEST(Gradcheck, SameTensorOnBothSides) {
  expect_gradients_match([](const Inputs& in) { return mul(in[0], in[0]); }, {rand(kBig, 3)});
  expect_gradients_match([](const Inputs& in) { return div(in[0], in[0]); }, {rand({5, 3}, 4, 1.f, 2.f)});
}

// ---- scalar and unary ops ---------------------------------------------------------------------------------------------------

TEST(Gradcheck, AddFloat) {
  expect_gradients_match([](const Inputs& in) { return add(in[0], 2.5f); }, {rand(kBig, 5)});
}
TEST(Gradcheck, MulFloat) {
  expect_gradients_match([](const Inputs& in) { return mul(in[0], -1.75f); }, {rand(kBig, 6)});
}
TEST(Gradcheck, Neg) {
  expect_gradients_match([](const Inputs& in) { return neg(in[0]); }, {rand(kBig, 7)});
}
TEST(Gradcheck, Relu) {
  expect_gradients_match([](const Inputs& in) { return relu(in[0]); }, {away_from_zero(kBig, 8)});
}
TEST(Gradcheck, Exp) {
  expect_gradients_match([](const Inputs& in) { return exp(in[0]); }, {rand(kBig, 9)});
}
TEST(Gradcheck, Log) {
  expect_gradients_match([](const Inputs& in) { return log(in[0]); }, {rand(kBig, 10, 0.5f, 2.f)});
}

// ---- reductions -------------------------------------------------------------------------------------------------------------

TEST(Gradcheck, SumAll) {
  expect_gradients_match([](const Inputs& in) { return sum(in[0]); }, {rand(kBig, 11)});
}
TEST(Gradcheck, MeanAll) {
  expect_gradients_match([](const Inputs& in) { return mean(in[0]); }, {rand(kBig, 12)}, 1e-2f, 2e-4f, 2e-2f);
}

void check_axis_reduction(bool use_mean, bool keepdim) {
  for (int axis : {0, 1, 2, -1, -3}) {
    SCOPED_TRACE(::testing::Message() << (use_mean ? "mean" : "sum") << " axis " << axis << " keepdim " << keepdim);
    expect_gradients_match(
        [=](const Inputs& in) { return use_mean ? mean(in[0], axis, keepdim) : sum(in[0], axis, keepdim); },
        {rand(kBig, 13 + static_cast<std::uint64_t>(axis + 3))}, 1e-2f, 5e-4f, 2e-2f);
  }
}

TEST(Gradcheck, SumAlongEachAxis) { check_axis_reduction(false, false); }
TEST(Gradcheck, SumAlongEachAxisKeepdim) { check_axis_reduction(false, true); }
TEST(Gradcheck, MeanAlongEachAxis) { check_axis_reduction(true, false); }
TEST(Gradcheck, MeanAlongEachAxisKeepdim) { check_axis_reduction(true, true); }

// ---- matrix products --------------------------------------------------------------------------------------------------------

TEST(Gradcheck, Matmul) {
  expect_gradients_match([](const Inputs& in) { return matmul(in[0], in[1]); }, {rand({3, 5}, 20), rand({5, 7}, 21)});
}
TEST(Gradcheck, MatmulVectorShapes) {
  expect_gradients_match([](const Inputs& in) { return matmul(in[0], in[1]); }, {rand({1, 9}, 22), rand({9, 1}, 23)});
  expect_gradients_match([](const Inputs& in) { return matmul(in[0], in[1]); }, {rand({5, 1}, 24), rand({1, 3}, 25)});
}
TEST(Gradcheck, Linear2DWithBias) {
  expect_gradients_match([](const Inputs& in) { return linear(in[0], in[1], in[2]); },
                         {rand({5, 7}, 26), rand({3, 7}, 27), rand({3}, 28)});
}
TEST(Gradcheck, Linear2DWithoutBias) {
  expect_gradients_match([](const Inputs& in) { return linear(in[0], in[1]); }, {rand({5, 7}, 29), rand({3, 7}, 30)});
}
TEST(Gradcheck, Linear3DWithBias) {
  expect_gradients_match([](const Inputs& in) { return linear(in[0], in[1], in[2]); },
                         {rand(kBig, 31), rand({4, 7}, 32), rand({4}, 33)});
}
TEST(Gradcheck, Linear3DWithoutBias) {
  expect_gradients_match([](const Inputs& in) { return linear(in[0], in[1]); }, {rand(kBig, 34), rand({4, 7}, 35)});
}

// ---- softmax family -----------------------------------------------------------------------------------------------------------

TEST(Gradcheck, Softmax) {
  expect_gradients_match([](const Inputs& in) { return softmax(in[0]); }, {rand(kBig, 40, -2.f, 2.f)}, 1e-2f, 5e-4f,
                         2e-2f);
}
TEST(Gradcheck, SoftmaxOf2D) {
  expect_gradients_match([](const Inputs& in) { return softmax(in[0]); }, {rand({4, 9}, 41, -3.f, 3.f)}, 1e-2f,
                         5e-4f, 2e-2f);
}
TEST(Gradcheck, LogSoftmax) {
  expect_gradients_match([](const Inputs& in) { return log_softmax(in[0]); }, {rand(kBig, 42, -2.f, 2.f)});
}

Tensor ce_labels() { return Tensor::from_vector(std::vector<std::int32_t>{0, 6, 3, 2, 6}, {5}); }

TEST(Gradcheck, SoftmaxCrossEntropy) {
  Tensor labels = ce_labels();
  expect_gradients_match([labels](const Inputs& in) { return softmax_cross_entropy(in[0], labels); },
                         {rand({5, 7}, 43, -2.f, 2.f)}, 1e-2f, 2e-4f, 2e-2f);
}
TEST(Gradcheck, SoftmaxCrossEntropyLabelSmoothing) {
  Tensor labels = ce_labels();
  for (float s : {0.1f, 0.5f, 1.f}) {
    SCOPED_TRACE(::testing::Message() << "smoothing " << s);
    expect_gradients_match([labels, s](const Inputs& in) { return softmax_cross_entropy(in[0], labels, s); },
                           {rand({5, 7}, 44, -2.f, 2.f)}, 1e-2f, 2e-4f, 2e-2f);
  }
}

// ---- views and compositions ------------------------------------------------------------------------------------------------------

TEST(Gradcheck, ViewsAndClone) {
  expect_gradients_match([](const Inputs& in) { return mul(in[0].reshape({7, -1}), in[0].reshape({7, 15})); },
                         {rand(kBig, 50)});
  expect_gradients_match([](const Inputs& in) { return exp(in[0].flatten(1)); }, {rand(kBig, 51)});
  expect_gradients_match([](const Inputs& in) { return add(in[0].slice(1, 3), in[0].slice(0, 2)); },
                         {rand(kBig, 52)});
  expect_gradients_match([](const Inputs& in) { return mul(in[0].clone(), in[0]); }, {rand(kBig, 53)});
}

TEST(Gradcheck, SmallMlpWithCrossEntropy) {
  Tensor labels = Tensor::from_vector(std::vector<std::int32_t>{1, 0, 2}, {3});
  expect_gradients_match(
      [labels](const Inputs& in) {
        Tensor h = relu(linear(in[0], in[1], in[2]));
        return softmax_cross_entropy(linear(h, in[3]), labels, 0.1f);
      },
      {rand({3, 5}, 54), rand({7, 5}, 55), rand({7}, 56, 0.3f, 0.6f), rand({3, 7}, 57)}, 1e-3f, 3e-4f, 3e-2f);
}

TEST(Gradcheck, ChainOfElementwiseAndReductions) {
  expect_gradients_match(
      [](const Inputs& in) {
        Tensor centered = sub(in[0], mean(in[0]));  // scalar broadcast of a reduction
        Tensor scaled = div(exp(centered), add(sum(mul(in[1], in[1])), 1.f));
        return add(scaled, in[1]);  // channel broadcast
      },
      {rand(kBig, 58), rand({7}, 59)});
}

}  // namespace
}  // namespace graft
