// Pooling on the CPU: gradient checks (max pool away from ties), PyTorch golden values (F.max_pool2d with padding
// and ceil_mode, F.avg_pool2d incl. count_include_pad=False, F.adaptive_avg_pool2d to 7x7 from odd sizes, global
// pooling), the tie and NaN rules of max pooling, and the error messages.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "core/error.h"
#include "tests/check.h"
#include "tests/golden.h"

namespace graft {
namespace {

using testing::all_close;
using testing::expect_gradients_match;

// Distinct values 0.05 apart in shuffled order: a +-1e-2 perturbation never changes which element is the maximum.
Tensor distinct_values(const Shape& shape, unsigned seed) {
  std::vector<float> v(static_cast<std::size_t>(shape_numel(shape)));
  std::iota(v.begin(), v.end(), 0.f);
  std::shuffle(v.begin(), v.end(), std::mt19937(seed));
  for (float& x : v) x = 0.05f * x - 1.f;
  return Tensor::from_vector(v, shape);
}

Pool2dOptions pool(int k, int s, int pad = 0, bool ceil_mode = false, bool count_include_pad = true) {
  return Pool2dOptions{k, k, s, s, pad, pad, ceil_mode, count_include_pad};
}

TEST(PoolGradcheck, MaxPool) {
  for (Pool2dOptions o : {pool(2, 2), pool(3, 2, 1), pool(3, 2, 1, true), Pool2dOptions{3, 2, 2, 1, 1, 0, true}}) {
    Tensor x = distinct_values({2, 5, 6, 3}, 11);
    expect_gradients_match([o](const std::vector<Tensor>& in) { return max_pool2d(in[0], o); }, {x});
  }
}

TEST(PoolGradcheck, AvgPool) {
  Generator gen(12);
  for (Pool2dOptions o : {pool(2, 2), pool(3, 2, 1), pool(3, 2, 1, true, false), pool(3, 2, 1, true, true),
                          Pool2dOptions{3, 2, 2, 1, 1, 1, false, false}}) {
    Tensor x = Tensor::randn({2, 5, 6, 3}, gen);
    expect_gradients_match([o](const std::vector<Tensor>& in) { return avg_pool2d(in[0], o); }, {x});
  }
}

TEST(PoolGradcheck, AdaptiveAndGlobal) {
  Generator gen(13);
  expect_gradients_match([](const std::vector<Tensor>& in) { return adaptive_avg_pool2d(in[0], 3, 4); },
                         {Tensor::randn({2, 5, 7, 3}, gen)});
  expect_gradients_match([](const std::vector<Tensor>& in) { return adaptive_avg_pool2d(in[0], 4, 5); },
                         {Tensor::randn({1, 3, 2, 2}, gen)});  // more bins than pixels: bins overlap
  expect_gradients_match([](const std::vector<Tensor>& in) { return global_avg_pool(in[0]); },
                         {Tensor::randn({2, 3, 5, 4}, gen)});
}

// Forward and backward of one fixture case; `reshape` maps graft's output to the fixture's NHWC shape.
void check_golden(const std::string& name, const std::function<Tensor(const Tensor&)>& f) {
  testing::GoldenFile golden("layers.txt");
  Tensor x = golden.get(name + ".x");
  x.set_requires_grad(true);
  Tensor ref = golden.get(name + ".y");
  Tensor y = f(x);
  EXPECT_TRUE(all_close(y.reshape(ref.shape()), ref, 1e-6f, 1e-5f)) << name << " forward";
  y.backward(golden.get(name + ".dy").reshape(y.shape()));
  EXPECT_TRUE(all_close(x.grad(), golden.get(name + ".dx"), 1e-6f, 1e-5f)) << name << " backward";
}

TEST(PoolGolden, MaxPool) {
  check_golden("maxpool", [](const Tensor& x) { return max_pool2d(x, pool(3, 2, 1)); });
  check_golden("maxpool_ceil",
               [](const Tensor& x) { return max_pool2d(x, Pool2dOptions{3, 2, 2, 3, 1, 1, true}); });
}

TEST(PoolGolden, AvgPool) {
  check_golden("avgpool", [](const Tensor& x) { return avg_pool2d(x, pool(3, 2, 1)); });
  check_golden("avgpool_nopad_ceil",
               [](const Tensor& x) { return avg_pool2d(x, Pool2dOptions{3, 2, 2, 3, 1, 1, true, false}); });
}

TEST(PoolGolden, AdaptiveAndGlobal) {
  check_golden("adaptive_11x13", [](const Tensor& x) { return adaptive_avg_pool2d(x, 7, 7); });
  check_golden("adaptive_5x3", [](const Tensor& x) { return adaptive_avg_pool2d(x, 7, 7); });
  check_golden("global", [](const Tensor& x) { return global_avg_pool(x); });
}

TEST(MaxPool, TiesGoToTheFirstElementLikeTorch) {
  Tensor x = Tensor::ones({1, 4, 4, 1});
  x.set_requires_grad(true);
  max_pool2d(x, pool(2, 2)).backward(Tensor::ones({1, 2, 2, 1}));
  std::vector<float> expected = {1, 0, 1, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0};
  EXPECT_EQ(x.grad().to_vector(), expected);
  // overlapping windows that pick the same element add up
  Tensor y = Tensor::from_vector(std::vector<float>{0, 0, 0, 0, 9, 0, 0, 0, 0}, {1, 3, 3, 1});
  y.set_requires_grad(true);
  max_pool2d(y, pool(2, 1)).backward(Tensor::from_vector(std::vector<float>{1, 2, 3, 4}, {1, 2, 2, 1}));
  EXPECT_EQ(y.grad().to_vector(), (std::vector<float>{0, 0, 0, 0, 10, 0, 0, 0, 0}));
}

TEST(MaxPool, PaddingIsMinusInfinityAndNaNPropagates) {
  Tensor x = Tensor::full({1, 2, 2, 1}, -5.f);
  EXPECT_EQ(max_pool2d(x, pool(3, 2, 1)).to_vector(), std::vector<float>{-5.f});
  Tensor nan = Tensor::from_vector(std::vector<float>{1.f, NAN, 3.f, 2.f}, {1, 2, 2, 1});
  EXPECT_TRUE(std::isnan(max_pool2d(nan, pool(2, 2)).item()));
}

TEST(AvgPool, CountIncludePadDivisor) {
  // 2x2 image of ones, 3x3 window padded by 1: 4 in-image elements of a 9-element padded window
  Tensor x = Tensor::ones({1, 2, 2, 1});
  EXPECT_NEAR(avg_pool2d(x, pool(3, 1, 1, false, true)).to_vector()[0], 4.f / 9.f, 1e-7f);
  EXPECT_NEAR(avg_pool2d(x, pool(3, 1, 1, false, false)).to_vector()[0], 1.f, 1e-7f);
}

TEST(Pool, OutputShapes) {
  Tensor x = Tensor::zeros({2, 112, 112, 3});
  EXPECT_EQ(max_pool2d(x, pool(3, 2, 1)).shape(), (Shape{2, 56, 56, 3}));  // ResNet stem
  EXPECT_EQ(max_pool2d(Tensor::zeros({1, 5, 5, 1}), pool(2, 2, 0, true)).shape(), (Shape{1, 3, 3, 1}));
  EXPECT_EQ(max_pool2d(Tensor::zeros({1, 5, 5, 1}), pool(2, 2, 0, false)).shape(), (Shape{1, 2, 2, 1}));
  // ceil_mode never starts a window in the right padding: 5 with k2 s2 p1 gives 3, not 4
  EXPECT_EQ(avg_pool2d(Tensor::zeros({1, 5, 5, 1}), pool(2, 2, 1, true)).shape(), (Shape{1, 3, 3, 1}));
  EXPECT_EQ(avg_pool2d(Tensor::zeros({1, 6, 6, 1}), pool(3, 2, 1, true)).shape(), (Shape{1, 4, 4, 1}));
  EXPECT_EQ(adaptive_avg_pool2d(Tensor::zeros({2, 9, 5, 4}), 7, 7).shape(), (Shape{2, 7, 7, 4}));
  EXPECT_EQ(global_avg_pool(Tensor::zeros({2, 7, 7, 8})).shape(), (Shape{2, 8}));
}

TEST(Pool, NothingRecordedWithoutGrad) {
  Tensor x = Tensor::ones({1, 4, 4, 2});
  EXPECT_FALSE(max_pool2d(x, pool(2, 2)).requires_grad());
  EXPECT_FALSE(global_avg_pool(x).requires_grad());
}

TEST(PoolErrors, NameOpAndShapes) {
  auto message_of = [](const std::function<void()>& f) {
    try {
      f();
    } catch (const Error& e) {
      return e.message();
    }
    return std::string("no error");
  };
  Tensor x = Tensor::zeros({2, 4, 4, 3});
  std::string m = message_of([&] { max_pool2d(x, pool(2, 2, 2)); });
  EXPECT_NE(m.find("max_pool2d: padding 2x2 must be at most half the kernel 2x2"), std::string::npos) << m;
  m = message_of([&] { avg_pool2d(x, pool(5, 1)); });
  EXPECT_NE(m.find("avg_pool2d: input (2,4,4,3) is too small for kernel 5x5"), std::string::npos) << m;
  m = message_of([&] { max_pool2d(Tensor::zeros({4, 4, 3}), pool(2, 2)); });
  EXPECT_NE(m.find("max_pool2d: x (4,4,3) must be NHWC"), std::string::npos) << m;
  m = message_of([&] { adaptive_avg_pool2d(x, 0, 7); });
  EXPECT_NE(m.find("adaptive_avg_pool2d: output size 0x7"), std::string::npos) << m;
  m = message_of([&] { global_avg_pool(Tensor::zeros({2, 3})); });
  EXPECT_NE(m.find("global_avg_pool: x (2,3)"), std::string::npos) << m;
  EXPECT_THROW(max_pool2d(x, pool(0, 1)), Error);
  EXPECT_THROW(avg_pool2d(x, pool(2, 0)), Error);
  EXPECT_THROW(avg_pool2d(x, pool(3, 1, -1)), Error);
}

}  // namespace
}  // namespace graft
