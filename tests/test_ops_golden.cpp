// Golden tests of the foundation ops (core/ops.h) against PyTorch itself: tests/golden_ops.py stores inputs,
// outputs, a weight w and the input gradients of sum(out * w); graft runs the same numbers on the CPU.
// Tolerance atol 1e-5 / rtol 1e-4 unless a case says why it needs more: both sides compute in float32 and
// differ only in summation order and libm rounding, a few ulps on values of order 1.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "core/ops.h"
#include "tests/check.h"
#include "tests/golden.h"

namespace graft {
namespace {

using testing::all_close;
using testing::GoldenFile;

constexpr float kAtol = 1e-5f, kRtol = 1e-4f;

const GoldenFile& golden() {
  static const GoldenFile file("ops.txt");
  return file;
}

// A fresh leaf holding the fixture's values (detach: the stored tensor itself never collects gradients).
Tensor leaf(const std::string& key) {
  Tensor t = golden().get(key).detach();
  t.set_requires_grad(true);
  return t;
}

// Compares `out` with <key>.out, runs sum(out * <key>.w).backward() and compares each input's gradient with
// <key>.d<name>.
void expect_matches(const std::string& key, const Tensor& out, const std::vector<std::pair<std::string, Tensor>>& inputs,
                    float atol = kAtol, float rtol = kRtol) {
  SCOPED_TRACE(key);
  ASSERT_EQ(out.device(), kCPU);
  EXPECT_TRUE(all_close(out, golden().get(key + ".out"), atol, rtol)) << "forward";
  sum(mul(out, golden().get(key + ".w"))).backward();
  for (const auto& [name, input] : inputs) {
    ASSERT_TRUE(input.grad().defined()) << "input " << name << " got no gradient";
    EXPECT_TRUE(all_close(input.grad(), golden().get(key + ".d" + name), atol, rtol)) << "gradient of " << name;
  }
}

const std::vector<std::string> kBroadcastModes = {"same", "scalar_b", "scalar_a", "channel_b", "channel_a"};

void expect_binary(const std::string& op, Tensor (*fn)(const Tensor&, const Tensor&)) {
  for (const std::string& mode : kBroadcastModes) {
    const std::string key = op + "." + mode;
    Tensor a = leaf(key + ".a"), b = leaf(key + ".b");
    expect_matches(key, fn(a, b), {{"a", a}, {"b", b}});
  }
}

TEST(OpsGolden, Add) { expect_binary("add", static_cast<Tensor (*)(const Tensor&, const Tensor&)>(&add)); }
TEST(OpsGolden, Sub) { expect_binary("sub", &sub); }
TEST(OpsGolden, Mul) { expect_binary("mul", static_cast<Tensor (*)(const Tensor&, const Tensor&)>(&mul)); }
TEST(OpsGolden, Div) { expect_binary("div", &div); }

TEST(OpsGolden, AddScalar) {
  Tensor x = leaf("add_scalar.x");
  expect_matches("add_scalar", add(x, golden().get("add_scalar.s").item()), {{"x", x}});
}

TEST(OpsGolden, MulScalar) {
  Tensor x = leaf("mul_scalar.x");
  expect_matches("mul_scalar", mul(x, golden().get("mul_scalar.s").item()), {{"x", x}});
}

TEST(OpsGolden, Neg) {
  Tensor x = leaf("neg.x");
  expect_matches("neg", neg(x), {{"x", x}});
}

TEST(OpsGolden, Relu) {
  Tensor x = leaf("relu.x");
  expect_matches("relu", relu(x), {{"x", x}});
}

TEST(OpsGolden, Exp) {
  Tensor x = leaf("exp.x");
  expect_matches("exp", exp(x), {{"x", x}});
}

TEST(OpsGolden, Log) {
  Tensor x = leaf("log.x");
  expect_matches("log", log(x), {{"x", x}});
}

// A sum of 60 values of order 1: the float32 rounding of the two summation orders stays far below 1e-5.
TEST(OpsGolden, SumAll) {
  Tensor x = leaf("sum_all.x");
  Tensor out = sum(x);
  EXPECT_EQ(out.ndim(), 0);
  expect_matches("sum_all", out, {{"x", x}});
}

TEST(OpsGolden, MeanAll) {
  Tensor x = leaf("mean_all.x");
  Tensor out = mean(x);
  EXPECT_EQ(out.ndim(), 0);
  expect_matches("mean_all", out, {{"x", x}});
}

void expect_axis_reduction(const std::string& op, Tensor (*fn)(const Tensor&, int, bool)) {
  for (int axis : {0, 1, 2, -1}) {
    for (bool keepdim : {false, true}) {
      const std::string key = op + ".axis" + std::to_string(axis) + ".keep" + std::to_string(int(keepdim));
      Tensor x = leaf(key + ".x");
      Tensor out = fn(x, axis, keepdim);
      // The shape must be exactly PyTorch's (keepdim keeps a 1, otherwise the axis disappears).
      EXPECT_EQ(shape_str(out.shape()), shape_str(golden().get(key + ".out").shape())) << key;
      expect_matches(key, out, {{"x", x}});
    }
  }
}

TEST(OpsGolden, SumAxis) { expect_axis_reduction("sum", static_cast<Tensor (*)(const Tensor&, int, bool)>(&sum)); }
TEST(OpsGolden, MeanAxis) { expect_axis_reduction("mean", static_cast<Tensor (*)(const Tensor&, int, bool)>(&mean)); }

TEST(OpsGolden, Matmul) {
  Tensor a = leaf("matmul.a"), b = leaf("matmul.b");
  expect_matches("matmul", matmul(a, b), {{"a", a}, {"b", b}});
}

TEST(OpsGolden, Linear) {
  for (const std::string dims : {"2d", "3d"}) {
    const std::string with = "linear." + dims + "_bias", without = "linear." + dims + "_nobias";
    Tensor x = leaf(with + ".x"), w = leaf(with + ".weight"), b = leaf(with + ".bias");
    expect_matches(with, linear(x, w, b), {{"x", x}, {"weight", w}, {"bias", b}});
    Tensor x2 = leaf(without + ".x"), w2 = leaf(without + ".weight");
    expect_matches(without, linear(x2, w2), {{"x", x2}, {"weight", w2}});
  }
}

TEST(OpsGolden, Softmax) {
  for (const std::string key : {"softmax.2d", "softmax.3d"}) {
    Tensor x = leaf(key + ".x");
    expect_matches(key, softmax(x), {{"x", x}});
  }
}

TEST(OpsGolden, LogSoftmax) {
  for (const std::string key : {"log_softmax.2d", "log_softmax.3d"}) {
    Tensor x = leaf(key + ".x");
    expect_matches(key, log_softmax(x), {{"x", x}});
  }
}

// F.cross_entropy(logits, labels, reduction="mean", label_smoothing=s) for s = 0 and s = 0.1.
TEST(OpsGolden, SoftmaxCrossEntropy) {
  for (const std::string key : {"cross_entropy.s0", "cross_entropy.s01"}) {
    std::vector<std::int32_t> labels;
    for (float v : golden().get(key + ".labels").to_vector()) labels.push_back(static_cast<std::int32_t>(std::lround(v)));
    Tensor label_tensor = Tensor::from_vector(labels, {static_cast<std::int64_t>(labels.size())});
    const float smoothing = golden().get(key + ".smoothing").item();
    Tensor logits = leaf(key + ".logits");
    Tensor loss = softmax_cross_entropy(logits, label_tensor, smoothing);
    EXPECT_EQ(loss.numel(), 1);
    expect_matches(key, loss, {{"logits", logits}});
  }
}

// Masked logits (-inf), as an attention or class mask gives: PyTorch's loss stays finite without smoothing (0 * -inf
// would be NaN if the zero-target terms were added) and is +inf with it. Values from PyTorch 1.13:
//   F.cross_entropy([[0, -inf, 1], [2, -inf, -inf]], [0, 0]) = 0.65663081, grad [[-0.3655, 0, 0.3655], [0, 0, 0]].
TEST(OpsGolden, CrossEntropyWithMaskedLogitsIsFiniteAsInPyTorch) {
  const float inf = INFINITY;
  Tensor logits = Tensor::from_vector(std::vector<float>{0.f, -inf, 1.f, 2.f, -inf, -inf}, {2, 3});
  logits.set_requires_grad(true);
  const Tensor labels = Tensor::from_vector(std::vector<std::int32_t>{0, 0}, {2});
  Tensor loss = softmax_cross_entropy(logits, labels);
  EXPECT_NEAR(loss.item(), 0.65663081f, 1e-6f);
  loss.backward();
  const std::vector<float> grad = logits.grad().to_vector();
  const float p2 = 1.f / (1.f + std::exp(-1.f)) / 2.f;  // softmax([0, 1])[1] / rows
  const std::vector<float> want = {-p2, 0.f, p2, 0.f, 0.f, 0.f};
  for (std::size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(grad[i], want[i], 1e-6f) << "element " << i;
  EXPECT_EQ(softmax_cross_entropy(logits.detach(), labels, 0.1f).item(), inf);
  // Smoothing 1 with the label's own logit masked: PyTorch 1.13 gives NaN ((1 - s) * nll = 0 * inf),
  // F.cross_entropy([[-inf, 1]], [0], label_smoothing=1.0) = nan; with the label unmasked, +inf (the uniform target
  // puts weight on the masked class).
  const Tensor label_masked = Tensor::from_vector(std::vector<float>{-inf, 1.f}, {1, 2});
  const Tensor label_zero = Tensor::from_vector(std::vector<std::int32_t>{0}, {1});
  EXPECT_TRUE(std::isnan(softmax_cross_entropy(label_masked, label_zero, 1.f).item()));
  EXPECT_EQ(softmax_cross_entropy(logits.detach(), labels, 1.f).item(), inf);
}

}  // namespace
}  // namespace graft
