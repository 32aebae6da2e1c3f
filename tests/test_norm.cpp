// batch_norm on the CPU: gradient checks in both modes, PyTorch golden values (F.batch_norm, training and eval,
// incl. the updated running statistics), which gradients a frozen parameter costs, and the error messages.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "tests/check.h"
#include "tests/golden.h"

namespace graft {
namespace {

using testing::all_close;
using testing::expect_gradients_match;

constexpr float kMomentum = 0.1f, kEps = 1e-5f;

Tensor bn_train(const Tensor& x, const std::optional<Tensor>& g, const std::optional<Tensor>& b) {
  Tensor rm, rv;  // not read: batch statistics, no running update
  return batch_norm(x, g, b, rm, rv, true, false, kMomentum, kEps);
}

TEST(BatchNormGradcheck, TrainingNHWC) {
  Generator gen(1);
  Tensor x = Tensor::randn({2, 3, 3, 4}, gen), g = Tensor::uniform({4}, gen, 0.5f, 1.5f), b = Tensor::randn({4}, gen);
  expect_gradients_match([](const std::vector<Tensor>& in) { return bn_train(in[0], in[1], in[2]); }, {x, g, b});
}

TEST(BatchNormGradcheck, TrainingNC) {
  Generator gen(2);
  Tensor x = Tensor::randn({6, 5}, gen), g = Tensor::uniform({5}, gen, 0.5f, 1.5f), b = Tensor::randn({5}, gen);
  expect_gradients_match([](const std::vector<Tensor>& in) { return bn_train(in[0], in[1], in[2]); }, {x, g, b});
}

TEST(BatchNormGradcheck, TrainingWithoutAffine) {
  Generator gen(3);
  Tensor x = Tensor::randn({3, 2, 2, 3}, gen);
  expect_gradients_match(
      [](const std::vector<Tensor>& in) { return bn_train(in[0], std::nullopt, std::nullopt); }, {x});
}

TEST(BatchNormGradcheck, RunningStatsNHWCAndNC) {
  Generator gen(4);
  for (Shape shape : {Shape{2, 3, 2, 4}, Shape{5, 4}}) {
    Tensor x = Tensor::randn(shape, gen), g = Tensor::uniform({4}, gen, 0.5f, 1.5f), b = Tensor::randn({4}, gen);
    Tensor rm = mul(Tensor::randn({4}, gen), 0.3f), rv = Tensor::uniform({4}, gen, 0.5f, 1.5f);
    expect_gradients_match(
        [&](const std::vector<Tensor>& in) {
          return batch_norm(in[0], in[1], in[2], rm, rv, false, false, kMomentum, kEps);
        },
        {x, g, b});
  }
}

// Runs one golden case: forward, running statistics, backward with the fixture's upstream gradient.
void check_golden_case(const std::string& name, bool training) {
  testing::GoldenFile golden("layers.txt");
  Tensor x = golden.get(name + ".x"), g = golden.get(name + ".gamma"), b = golden.get(name + ".beta");
  Tensor rm = golden.get(name + ".running_mean0"), rv = golden.get(name + ".running_var0");
  x.set_requires_grad(true), g.set_requires_grad(true), b.set_requires_grad(true);
  Tensor y = batch_norm(x, g, b, rm, rv, training, training, kMomentum, kEps);
  EXPECT_TRUE(all_close(y, golden.get(name + ".y"), 1e-5f, 1e-4f)) << name << " y";
  EXPECT_TRUE(all_close(rm, golden.get(name + ".running_mean"), 1e-6f, 1e-5f)) << name << " running_mean";
  EXPECT_TRUE(all_close(rv, golden.get(name + ".running_var"), 1e-6f, 1e-5f)) << name << " running_var";
  y.backward(golden.get(name + ".dy"));
  EXPECT_TRUE(all_close(x.grad(), golden.get(name + ".dx"), 1e-5f, 1e-4f)) << name << " dx";
  EXPECT_TRUE(all_close(g.grad(), golden.get(name + ".dgamma"), 1e-5f, 1e-4f)) << name << " dgamma";
  EXPECT_TRUE(all_close(b.grad(), golden.get(name + ".dbeta"), 1e-5f, 1e-4f)) << name << " dbeta";
}

TEST(BatchNormGolden, TrainingNHWC) { check_golden_case("bn_train", true); }
TEST(BatchNormGolden, EvalNHWC) { check_golden_case("bn_eval", false); }
TEST(BatchNormGolden, TrainingNC) { check_golden_case("bn2d_train", true); }

TEST(BatchNorm, RunningUpdateFollowsTorchMomentum) {
  // channel 0 holds 1,2,3,4 (mean 2.5, biased var 1.25, unbiased 5/3); channel 1 is constant 7
  Tensor x = Tensor::from_vector(std::vector<float>{1, 7, 2, 7, 3, 7, 4, 7}, {4, 2});
  Tensor rm = Tensor::from_vector(std::vector<float>{1.f, -1.f}, {2}), rv = Tensor::from_vector(std::vector<float>{2.f, 0.5f}, {2});
  Tensor y = batch_norm(x, std::nullopt, std::nullopt, rm, rv, true, true, 0.25f, kEps);
  std::vector<float> m = rm.to_vector(), v = rv.to_vector();
  EXPECT_NEAR(m[0], 0.75f * 1.f + 0.25f * 2.5f, 1e-6f);
  EXPECT_NEAR(m[1], 0.75f * -1.f + 0.25f * 7.f, 1e-6f);
  EXPECT_NEAR(v[0], 0.75f * 2.f + 0.25f * (5.f / 3.f), 1e-6f);
  EXPECT_NEAR(v[1], 0.75f * 0.5f, 1e-6f);
  std::vector<float> out = y.to_vector();
  EXPECT_NEAR(out[0], (1.f - 2.5f) / std::sqrt(1.25f + kEps), 1e-5f);  // normalised with the biased variance
  EXPECT_NEAR(out[1], 0.f, 1e-6f);
}

TEST(BatchNorm, BatchStatsWithoutUpdateLeaveRunningStats) {
  Generator gen(5);
  Tensor x = Tensor::randn({4, 3}, gen);
  Tensor rm = Tensor::from_vector(std::vector<float>{1.f, 2.f, 3.f}, {3}), rv = Tensor::from_vector(std::vector<float>{4.f, 5.f, 6.f}, {3});
  batch_norm(x, std::nullopt, std::nullopt, rm, rv, true, false, kMomentum, kEps);
  EXPECT_EQ(rm.to_vector(), (std::vector<float>{1.f, 2.f, 3.f}));
  EXPECT_EQ(rv.to_vector(), (std::vector<float>{4.f, 5.f, 6.f}));
}

TEST(BatchNorm, FrozenParametersGetNoGradient) {
  Generator gen(6);
  Tensor x = Tensor::randn({3, 2, 2, 4}, gen), g = Tensor::uniform({4}, gen, 0.5f, 1.5f), b = Tensor::randn({4}, gen);
  b.set_requires_grad(true);  // gamma frozen, x a constant input
  sum(bn_train(x, g, b)).backward();
  EXPECT_FALSE(g.grad().defined());
  EXPECT_FALSE(x.grad().defined());
  ASSERT_TRUE(b.grad().defined());
  // d sum(y) / d beta = M for every channel
  EXPECT_TRUE(all_close(b.grad(), Tensor::full({4}, 12.f), 1e-5f, 1e-6f));

  // nothing requires grad: nothing is recorded
  Tensor plain = Tensor::randn({3, 4}, gen);
  EXPECT_FALSE(bn_train(plain, Tensor::ones({4}), Tensor::zeros({4})).requires_grad());
}

TEST(BatchNorm, RunningModeInputGradientIsScaledUpstream) {
  // dx = dy * gamma / sqrt(running_var + eps), independent of the batch
  Tensor x = Tensor::from_vector(std::vector<float>{0.5f, -1.f, 2.f, 3.f}, {2, 2});
  x.set_requires_grad(true);
  Tensor g = Tensor::from_vector(std::vector<float>{2.f, -1.f}, {2});
  Tensor rm = Tensor::from_vector(std::vector<float>{0.f, 1.f}, {2}), rv = Tensor::from_vector(std::vector<float>{4.f, 0.25f}, {2});
  batch_norm(x, g, std::nullopt, rm, rv, false, false, kMomentum, 0.f).backward(Tensor::ones({2, 2}));
  EXPECT_TRUE(all_close(x.grad(), Tensor::from_vector(std::vector<float>{1.f, -2.f, 1.f, -2.f}, {2, 2}), 1e-6f, 1e-6f));
}

TEST(BatchNormErrors, NameOpAndShapes) {
  Tensor x = Tensor::zeros({2, 4, 4, 3}), rm = Tensor::zeros({3}), rv = Tensor::ones({3}), none;
  auto message_of = [](const std::function<void()>& f) {
    try {
      f();
    } catch (const Error& e) {
      return e.message();
    }
    return std::string("no error");
  };
  std::string m = message_of([&] { batch_norm(x, Tensor::ones({4}), std::nullopt, rm, rv, true, true, 0.1f, kEps); });
  EXPECT_NE(m.find("batch_norm: gamma (4)"), std::string::npos) << m;
  EXPECT_NE(m.find("(2,4,4,3)"), std::string::npos) << m;
  m = message_of([&] { batch_norm(x, std::nullopt, std::nullopt, rm, rv, false, true, 0.1f, kEps); });
  EXPECT_NE(m.find("update_running needs use_batch_stats"), std::string::npos) << m;
  m = message_of([&] { batch_norm(x, std::nullopt, std::nullopt, none, none, false, false, 0.1f, kEps); });
  EXPECT_NE(m.find("running_mean/running_var"), std::string::npos) << m;
  Tensor one_row = Tensor::zeros({1, 3});
  m = message_of([&] { batch_norm(one_row, std::nullopt, std::nullopt, rm, rv, true, false, 0.1f, kEps); });
  EXPECT_NE(m.find("more than one value per channel"), std::string::npos) << m;
  EXPECT_THROW(batch_norm(Tensor::zeros({3}), std::nullopt, std::nullopt, rm, rv, true, false, 0.1f, kEps), Error);
  EXPECT_THROW(batch_norm(x, std::nullopt, Tensor::zeros({2}), rm, rv, true, false, 0.1f, kEps), Error);
  Tensor rm_bad = Tensor::zeros({5});
  EXPECT_THROW(batch_norm(x, std::nullopt, std::nullopt, rm_bad, rv, false, false, 0.1f, kEps), Error);
  EXPECT_THROW(batch_norm(x, std::nullopt, std::nullopt, rm, rv, true, false, 0.1f, -1.f), Error);
  Tensor labels = Tensor::from_vector(std::vector<std::int32_t>{1, 2, 3, 4}, {2, 2});
  EXPECT_THROW(batch_norm(labels, std::nullopt, std::nullopt, none, none, true, false, 0.1f, kEps), Error);
}


// ---- batch_norm_add_relu: the fused epilogue equals the composition it replaces -----------------------------------
// relu(add(batch_norm(x), r)) computed with separate ops vs the fused op: the same float operations in the same
// order, so forward values and every gradient (x, gamma, beta, residual) must agree bitwise, in both statistics
// modes, with and without the residual, with and without relu, and with the residual frozen (the masking path).
void expect_fused_matches_composition(bool use_batch_stats, bool with_residual, bool relu, bool residual_needs_grad) {
  Generator gen(40 + use_batch_stats * 4 + with_residual * 2 + relu);
  const Shape shape{3, 4, 5, 6};
  Tensor x0 = Tensor::randn(shape, gen, kCPU, 0.f, 1.5f), r0 = Tensor::randn(shape, gen);
  Tensor g0 = Tensor::uniform({6}, gen, 0.5f, 1.5f), b0 = Tensor::randn({6}, gen);
  Tensor rm0 = mul(Tensor::randn({6}, gen), 0.3f), rv0 = Tensor::uniform({6}, gen, 0.5f, 1.5f);
  Tensor dy = Tensor::randn(shape, gen);
  auto run = [&](bool fused) {
    std::vector<Tensor> in{x0.clone(), g0.clone(), b0.clone(), r0.clone()};
    for (int i = 0; i < 3; ++i) in[static_cast<std::size_t>(i)].set_requires_grad(true);
    in[3].set_requires_grad(residual_needs_grad);
    Tensor rm = rm0.clone(), rv = rv0.clone();
    std::optional<Tensor> res = with_residual ? std::optional<Tensor>(in[3]) : std::nullopt;
    Tensor y;
    if (fused) {
      y = batch_norm_add_relu(in[0], in[1], in[2], rm, rv, use_batch_stats, use_batch_stats, kMomentum, kEps, res,
                              relu);
    } else {
      y = batch_norm(in[0], in[1], in[2], rm, rv, use_batch_stats, use_batch_stats, kMomentum, kEps);
      if (with_residual) y = add(y, in[3]);
      if (relu) y = graft::relu(y);
    }
    y.backward(dy);
    std::vector<Tensor> out{y.detach(), rm, rv};
    for (auto& t : in) out.push_back(t.grad().defined() ? t.grad() : Tensor());
    return out;
  };
  std::vector<Tensor> fused = run(true), plain = run(false);
  const char* names[] = {"y", "running_mean", "running_var", "dx", "dgamma", "dbeta", "dresidual"};
  for (std::size_t i = 0; i < fused.size(); ++i) {
    ASSERT_EQ(fused[i].defined(), plain[i].defined()) << names[i];
    if (fused[i].defined()) {
      EXPECT_TRUE(all_close(fused[i], plain[i], 0.f, 0.f)) << names[i];
    }
  }
  if (relu) {  // the case must exercise the mask: some outputs clipped, some not
    std::vector<float> y = fused[0].to_vector();
    EXPECT_GT(std::count(y.begin(), y.end(), 0.f), 10);
    EXPECT_LT(std::count(y.begin(), y.end(), 0.f), static_cast<long>(y.size()) - 10);
  }
}

TEST(BatchNormAddRelu, EqualsCompositionBitwise) {
  for (bool stats : {true, false})
    for (bool residual : {true, false})
      for (bool relu : {true, false}) {
        SCOPED_TRACE(::testing::Message() << "batch_stats " << stats << " residual " << residual << " relu " << relu);
        expect_fused_matches_composition(stats, residual, relu, true);
        if (residual) expect_fused_matches_composition(stats, residual, relu, false);
      }
}

TEST(BatchNormAddRelu, GradientCheck) {
  Generator gen(48);
  Tensor x = Tensor::randn({2, 3, 3, 4}, gen), g = Tensor::uniform({4}, gen, 0.5f, 1.5f), b = Tensor::randn({4}, gen);
  Tensor r = Tensor::randn({2, 3, 3, 4}, gen);
  expect_gradients_match(
      [](const std::vector<Tensor>& in) {
        Tensor rm, rv;
        return batch_norm_add_relu(in[0], in[1], in[2], rm, rv, true, false, kMomentum, kEps, in[3], true);
      },
      {x, g, b, r});
}

TEST(BatchNormAddRelu, ResidualShapeMismatchIsAnError) {
  Generator gen(49);
  Tensor x = Tensor::randn({2, 3, 3, 4}, gen), r = Tensor::randn({2, 3, 4, 4}, gen), rm, rv;
  testing::expect_error(
      [&] { batch_norm_add_relu(x, std::nullopt, std::nullopt, rm, rv, true, false, kMomentum, kEps, r, true); },
      {"batch_norm", "residual", "(2,3,4,4)", "(2,3,3,4)"});
}

}  // namespace
}  // namespace graft
