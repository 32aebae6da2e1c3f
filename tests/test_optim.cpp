// Optimizers, gradient clipping and LR schedules (core/optim.h, core/lr_schedule.h) on the CPU:
// golden trajectories from torch.optim (tests/golden_optim.py), parameter groups, frozen parameters, state
// round trips, schedules and argument errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <memory>

#include "core/autograd.h"
#include "core/error.h"
#include "core/lr_schedule.h"
#include "core/optim.h"
#include "tests/check.h"
#include "tests/golden.h"

namespace graft {
namespace {

using testing::all_close;
using testing::GoldenFile;

const GoldenFile& golden() {
  static const GoldenFile file("optim.txt");
  return file;
}

// Float32 arithmetic in a different (non-fused) rounding order than torch's vectorized kernels: a few ulps of
// the parameter scale (|p| ~ 1) after 5 steps. atol covers elements that cancel to near zero.
constexpr float kRtol = 1e-6f;
constexpr float kAtol = 1e-7f;

bool bit_equal(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.to_vector() == b.to_vector();
}

std::vector<Tensor> fresh_params() {
  std::vector<Tensor> params;
  for (const char* k : {"p0", "p1"}) params.push_back(golden().get(k).clone().set_requires_grad(true));
  return params;
}

std::vector<float> hparams(const std::string& name) { return golden().get(name + ".hparams").to_vector(); }

SGDOptions sgd_options(const std::string& name) {
  std::vector<float> h = hparams(name);
  return {.lr = h[0], .momentum = h[1], .dampening = h[2], .weight_decay = h[3], .nesterov = h[4] != 0.f};
}

// Replays the fixture's gradients for 5 steps and compares the parameters after each step with torch's.
void replay(Optimizer& opt, std::vector<Tensor>& params, const std::string& name) {
  for (int s = 0; s < 5; ++s) {
    for (std::size_t k = 0; k < params.size(); ++k)
      params[k].set_grad(golden().get(detail::concat("g", s, ".p", k)));
    opt.step();
    for (std::size_t k = 0; k < params.size(); ++k) {
      std::string key = detail::concat(name, ".step", s, ".p", k);
      EXPECT_TRUE(all_close(params[k], golden().get(key), kAtol, kRtol)) << key;
    }
  }
}

class SGDGolden : public ::testing::TestWithParam<const char*> {};

TEST_P(SGDGolden, MatchesTorchTrajectoryAndMomentumBuffer) {
  const std::string name = GetParam();
  auto params = fresh_params();
  SGD opt(params, sgd_options(name));
  replay(opt, params, name);
  auto state = opt.state();
  for (int k = 0; k < 2; ++k) {
    std::string ref = detail::concat(name, ".state.p", k, ".momentum_buffer");
    std::string key = detail::concat("group0.param", k, ".momentum_buffer");
    ASSERT_EQ(golden().has(ref), state.count(key) == 1) << key;
    if (golden().has(ref)) {
      EXPECT_TRUE(all_close(state.at(key), golden().get(ref), kAtol, kRtol)) << key;
    }
  }
}
INSTANTIATE_TEST_SUITE_P(Optim, SGDGolden,
                         ::testing::Values("sgd_plain", "sgd_plain_wd", "sgd_momentum", "sgd_nesterov",
                                           "sgd_dampening"));

class AdamGolden : public ::testing::TestWithParam<const char*> {};

TEST_P(AdamGolden, MatchesTorchTrajectoryAndState) {
  const std::string name = GetParam();
  std::vector<float> h = hparams(name);
  auto params = fresh_params();
  std::unique_ptr<Optimizer> opt;
  if (name == "adamw")
    opt = std::make_unique<AdamW>(params, AdamWOptions{h[0], h[1], h[2], h[3], h[4]});
  else
    opt = std::make_unique<Adam>(params, AdamOptions{h[0], h[1], h[2], h[3], h[4]});
  replay(*opt, params, name);
  auto state = opt->state();
  EXPECT_EQ(state.size(), 6u);
  for (int k = 0; k < 2; ++k) {
    std::string prefix = detail::concat("group0.param", k, ".");
    for (const char* buffer : {"exp_avg", "exp_avg_sq"}) {
      std::string ref = detail::concat(name, ".state.p", k, ".", buffer);
      EXPECT_TRUE(all_close(state.at(prefix + buffer), golden().get(ref), 0.f, 1e-5f)) << ref;
    }
    EXPECT_EQ(state.at(prefix + "step").item(), 5.f);
  }
}
INSTANTIATE_TEST_SUITE_P(Optim, AdamGolden, ::testing::Values("adam", "adam_wd", "adamw"));

std::vector<ParamGroup> golden_groups(const std::string& name, const std::vector<Tensor>& params) {
  std::vector<ParamGroup> groups;
  for (std::size_t k = 0; k < params.size(); ++k) {
    std::vector<float> g = golden().get(detail::concat(name, ".group", k)).to_vector();
    groups.push_back({{params[k]}, g[0], g[1], detail::concat("g", k)});
  }
  return groups;
}

TEST(Optim, SGDParameterGroupsMatchTorch) {
  auto params = fresh_params();
  SGD opt(golden_groups("sgd_groups", params), sgd_options("sgd_groups"));
  replay(opt, params, "sgd_groups");
}

TEST(Optim, AdamWParameterGroupsMatchTorch) {
  std::vector<float> h = hparams("adamw_groups");
  auto params = fresh_params();
  AdamW opt(golden_groups("adamw_groups", params), AdamWOptions{.beta1 = h[1], .beta2 = h[2], .eps = h[3]});
  replay(opt, params, "adamw_groups");
}

// A parameter without a gradient (frozen, or unused this step) is not touched and gets no state.
TEST(Optim, FrozenAndUnusedParamsAreUntouched) {
  Generator gen(7);
  for (int which = 0; which < 3; ++which) {
    Tensor used = Tensor::randn({4, 3}, gen).set_requires_grad(true);
    Tensor unused = Tensor::randn({5}, gen).set_requires_grad(true);  // requires grad, but never gets one
    Tensor frozen = Tensor::randn({2, 2}, gen);                       // requires_grad false
    Tensor unused0 = unused.clone(), frozen0 = frozen.clone(), used0 = used.clone();
    std::unique_ptr<Optimizer> opt;
    std::vector<Tensor> params{used, unused, frozen};
    if (which == 0) opt = std::make_unique<SGD>(params, SGDOptions{.lr = 0.1f, .momentum = 0.9f, .weight_decay = 0.1f});
    if (which == 1) opt = std::make_unique<Adam>(params, AdamOptions{.weight_decay = 0.1f});
    if (which == 2) opt = std::make_unique<AdamW>(params, AdamWOptions{.weight_decay = 0.1f});
    for (int s = 0; s < 3; ++s) {
      used.set_grad(Tensor::randn({4, 3}, gen));
      opt->step();
    }
    EXPECT_TRUE(bit_equal(unused, unused0)) << which;
    EXPECT_TRUE(bit_equal(frozen, frozen0)) << which;
    EXPECT_FALSE(bit_equal(used, used0)) << which;
    for (const auto& [key, t] : opt->state()) EXPECT_EQ(key.rfind("group0.param0.", 0), 0u) << key;
  }
}

TEST(Optim, ZeroGradDropsAllGradients) {
  Tensor a = Tensor::ones({3}).set_requires_grad(true), b = Tensor::ones({2}).set_requires_grad(true);
  SGD opt(std::vector<ParamGroup>{{{a}, 0.1f, 0.f, "a"}, {{b}, 0.2f, 0.f, "b"}}, SGDOptions{});
  sum(mul(a, a)).backward();
  sum(b).backward();
  ASSERT_TRUE(a.grad().defined() && b.grad().defined());
  opt.zero_grad();
  EXPECT_FALSE(a.grad().defined());
  EXPECT_FALSE(b.grad().defined());
  EXPECT_EQ(opt.params().size(), 2u);
}

// The optimizer updates the tensors the model holds (shared impls), driven by a real backward.
TEST(Optim, StepUpdatesTheModelsTensorsInPlace) {
  Tensor w = Tensor::from_vector(std::vector<float>{1.f, -2.f, 3.f}, {3}).set_requires_grad(true);
  Tensor alias = w;  // what a layer would hold
  SGD opt({w}, SGDOptions{.lr = 0.25f});
  sum(mul(w, w)).backward();  // grad = 2w
  opt.step();
  EXPECT_EQ(alias.to_vector(), (std::vector<float>{0.5f, -1.f, 1.5f}));
}

TEST(Optim, ClipGradNormMatchesTorch) {
  for (int max_norm : {1, 100}) {
    Tensor q0 = Tensor::zeros({4, 3}).set_requires_grad(true), q1 = Tensor::zeros({5}).set_requires_grad(true);
    Tensor q2 = Tensor::zeros({2, 2}).set_requires_grad(true);  // no grad: skipped
    q0.set_grad(golden().get("clip.q0.grad").clone());
    q1.set_grad(golden().get("clip.q1.grad").clone());
    Tensor g0 = q0.grad();
    float norm = clip_grad_norm({q0, q1, q2}, static_cast<float>(max_norm));
    EXPECT_NEAR(norm, golden().get("clip.norm").item(), 1e-6f * norm) << max_norm;
    std::string prefix = detail::concat("clip.max", max_norm);
    EXPECT_TRUE(all_close(q0.grad(), golden().get(prefix + ".q0"), 0.f, 1e-6f)) << max_norm;
    EXPECT_TRUE(all_close(q1.grad(), golden().get(prefix + ".q1"), 0.f, 1e-6f)) << max_norm;
    EXPECT_EQ(q0.grad().impl(), g0.impl()) << "grads are scaled in place";
    EXPECT_FALSE(q2.grad().defined());
  }
  Tensor none = Tensor::ones({3}).set_requires_grad(true);
  EXPECT_EQ(clip_grad_norm({none}, 1.f), 0.f);
  EXPECT_THROW(clip_grad_norm({none}, -1.f), Error);
  // A non-finite norm is returned and the grads are left as they are.
  Tensor bad = Tensor::ones({2}).set_requires_grad(true);
  bad.set_grad(Tensor::from_vector(std::vector<float>{std::numeric_limits<float>::infinity(), 3.f}, {2}));
  EXPECT_TRUE(std::isinf(clip_grad_norm({bad}, 1.f)));
  EXPECT_EQ(bad.grad().to_vector()[1], 3.f);
}

// Saving the state after k steps and loading it into a fresh optimizer continues bit for bit.
void expect_bit_identical_resume(const std::function<std::unique_ptr<Optimizer>(std::vector<Tensor>)>& make) {
  Generator gen(11);
  std::vector<Tensor> params{Tensor::randn({6, 5}, gen).set_requires_grad(true),
                             Tensor::randn({7}, gen).set_requires_grad(true)};
  std::vector<std::vector<Tensor>> grads(6);
  for (auto& g : grads) g = {Tensor::randn({6, 5}, gen), Tensor::randn({7}, gen)};
  auto a = make(params);
  auto run = [&](Optimizer& opt, std::vector<Tensor>& ps, int from, int to) {
    for (int s = from; s < to; ++s) {
      for (std::size_t k = 0; k < ps.size(); ++k) ps[k].set_grad(grads[s][k]);
      opt.step();
    }
  };
  run(*a, params, 0, 3);
  // Snapshot: deep copies of params and state (state() shares storage with the optimizer).
  std::vector<Tensor> resumed;
  for (auto& p : params) resumed.push_back(p.detach().clone().set_requires_grad(true));
  std::map<std::string, Tensor> saved;
  for (const auto& [k, t] : a->state()) saved[k] = t.clone();
  ASSERT_FALSE(saved.empty());
  auto b = make(resumed);
  b->load_state(saved);
  for (auto& [k, t] : saved) std::fill(t.data<float>(), t.data<float>() + t.numel(), 99.f);  // must not matter
  run(*a, params, 3, 6);
  run(*b, resumed, 3, 6);
  for (std::size_t k = 0; k < params.size(); ++k) EXPECT_TRUE(bit_equal(resumed[k], params[k])) << k;
  auto sa = a->state(), sb = b->state();
  ASSERT_EQ(sa.size(), sb.size());
  for (const auto& [k, t] : sa) EXPECT_TRUE(bit_equal(sb.at(k), t)) << k;
}

TEST(Optim, StateRoundTripContinuesBitIdentically) {
  expect_bit_identical_resume([](std::vector<Tensor> ps) {
    return std::make_unique<SGD>(std::move(ps), SGDOptions{.lr = 0.1f, .momentum = 0.9f, .weight_decay = 0.01f});
  });
  expect_bit_identical_resume([](std::vector<Tensor> ps) {
    return std::make_unique<SGD>(std::move(ps), SGDOptions{.lr = 0.1f, .momentum = 0.9f, .nesterov = true});
  });
  expect_bit_identical_resume([](std::vector<Tensor> ps) {
    return std::make_unique<Adam>(std::move(ps), AdamOptions{.lr = 0.01f, .weight_decay = 0.1f});
  });
  expect_bit_identical_resume([](std::vector<Tensor> ps) {
    return std::make_unique<AdamW>(std::move(ps), AdamWOptions{.lr = 0.01f});
  });
}

TEST(Optim, LoadStateRejectsBadMaps) {
  Tensor a = Tensor::zeros({3, 2}).set_requires_grad(true);
  Adam adam({a}, AdamOptions{});
  a.set_grad(Tensor::ones({3, 2}));
  adam.step();
  auto good = adam.state();
  ASSERT_EQ(good.size(), 3u);
  auto with = [&](const std::string& key, const Tensor& t) {
    auto m = good;
    m[key] = t;
    return m;
  };
  EXPECT_THROW(adam.load_state(with("group0.param0.exp_avg", Tensor::zeros({2, 3}))), Error);  // shape
  EXPECT_THROW(adam.load_state(with("group0.param1.exp_avg", Tensor::zeros({3, 2}))), Error);  // no such param
  EXPECT_THROW(adam.load_state(with("group1.param0.step", Tensor::ones({1}))), Error);         // no such group
  EXPECT_THROW(adam.load_state(with("group0.param0.momentum", Tensor::zeros({3, 2}))), Error);  // unknown buffer
  EXPECT_THROW(adam.load_state(with("bogus", Tensor::zeros({1}))), Error);
  EXPECT_THROW(adam.load_state(with("group0.param0.step", Tensor::full({1}, 1.5f))), Error);
  auto partial = good;
  partial.erase("group0.param0.exp_avg_sq");
  EXPECT_THROW(adam.load_state(partial), Error);
  adam.load_state(good);  // still loads after the failures
  EXPECT_EQ(adam.state().at("group0.param0.step").item(), 1.f);
  adam.load_state({});  // an empty map resets the state
  EXPECT_TRUE(adam.state().empty());

  SGD plain({a}, SGDOptions{.lr = 0.1f});
  EXPECT_THROW(plain.load_state({{"group0.param0.momentum_buffer", Tensor::zeros({3, 2})}}), Error);
  SGD momentum({a}, SGDOptions{.lr = 0.1f, .momentum = 0.5f});
  EXPECT_THROW(momentum.load_state({{"group0.param0.momentum_buffer", Tensor::zeros({6})}}), Error);
  momentum.load_state({{"group0.param0.momentum_buffer", Tensor::zeros({3, 2})}});
  EXPECT_EQ(momentum.state().size(), 1u);
}

TEST(Optim, ConstructorRejectsInvalidArguments) {
  Tensor p = Tensor::zeros({2}).set_requires_grad(true);
  EXPECT_THROW(SGD({p}, SGDOptions{.lr = -0.1f}), Error);
  EXPECT_THROW(SGD({p}, SGDOptions{.lr = 0.1f, .momentum = -0.9f}), Error);
  EXPECT_THROW(SGD({p}, SGDOptions{.lr = 0.1f, .weight_decay = -1.f}), Error);
  EXPECT_THROW(SGD({p}, SGDOptions{.lr = 0.1f, .nesterov = true}), Error);  // no momentum
  EXPECT_THROW(SGD({p}, SGDOptions{.lr = 0.1f, .momentum = 0.9f, .dampening = 0.1f, .nesterov = true}), Error);
  EXPECT_THROW(Adam({p}, AdamOptions{.lr = -1e-3f}), Error);
  EXPECT_THROW(Adam({p}, AdamOptions{.beta1 = 1.f}), Error);
  EXPECT_THROW(Adam({p}, AdamOptions{.beta2 = -0.1f}), Error);
  EXPECT_THROW(Adam({p}, AdamOptions{.eps = -1e-8f}), Error);
  EXPECT_THROW(AdamW({p}, AdamWOptions{.weight_decay = -0.01f}), Error);
  EXPECT_THROW(SGD(std::vector<Tensor>{}, SGDOptions{}), Error);         // empty parameter list
  EXPECT_THROW(SGD({p, p}, SGDOptions{}), Error);                         // a parameter twice
  EXPECT_THROW(SGD({Tensor()}, SGDOptions{}), Error);                     // undefined
  EXPECT_THROW(SGD({mul(p, 2.f)}, SGDOptions{}), Error);                  // not a leaf
  EXPECT_THROW(SGD({Tensor::from_vector(std::vector<std::int32_t>{1}, {1})}, SGDOptions{}), Error);  // int32
  try {
    SGD(std::vector<ParamGroup>{{{p}, 0.1f, 0.f, "backbone"}, {{Tensor::zeros({1})}, -2.f, 0.f, "head"}}, SGDOptions{});
    ADD_FAILURE() << "negative group lr accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("group 1 ('head')"), std::string::npos) << e.what();
  }
}

// A bad group lr or gradient found at step() throws before any parameter is updated.
TEST(Optim, StepValidatesBeforeUpdating) {
  Tensor a = Tensor::ones({3}).set_requires_grad(true), b = Tensor::ones({2}).set_requires_grad(true);
  Adam opt(std::vector<ParamGroup>{{{a}, 0.1f, 0.f, "a"}, {{b}, 0.1f, 0.f, "b"}}, AdamOptions{});
  a.set_grad(Tensor::ones({3}));
  b.set_grad(Tensor::ones({2}));
  opt.param_groups()[1].lr = -1.f;
  EXPECT_THROW(opt.step(), Error);
  opt.param_groups()[1].lr = 0.1f;
  b.impl()->grad = Tensor::ones({5}).impl_ptr();  // bypasses set_grad's check: a mismatched gradient
  EXPECT_THROW(opt.step(), Error);
  EXPECT_EQ(a.to_vector(), std::vector<float>(3, 1.f));
  EXPECT_TRUE(opt.state().empty());
}

// ---- LR schedules -------------------------------------------------------------------------------------------

std::unique_ptr<SGD> two_group_sgd(std::vector<Tensor>& keep) {
  std::vector<float> base = golden().get("sched.base").to_vector();
  keep = {Tensor::zeros({1}).set_requires_grad(true), Tensor::zeros({1}).set_requires_grad(true)};
  return std::make_unique<SGD>(std::vector<ParamGroup>{{{keep[0]}, base[0], 0.f, ""}, {{keep[1]}, base[1], 0.f, ""}},
                               SGDOptions{});
}

// Compares the group lrs after construction and after every step() with torch's `<name>.lrs`.
void expect_schedule_matches(Optimizer& opt, LRSchedule& schedule, const std::string& name) {
  Tensor ref = golden().get(name + ".lrs");
  std::vector<float> lrs = ref.to_vector();
  for (std::int64_t s = 0; s < ref.dim(0); ++s) {
    if (s > 0) schedule.step();
    EXPECT_EQ(schedule.last_step(), s);
    for (std::size_t g = 0; g < 2; ++g) {
      const float want = lrs[static_cast<std::size_t>(s) * 2 + g];
      EXPECT_NEAR(opt.param_groups()[g].lr, want, 1e-6 * want) << name << " step " << s << " group " << g;
    }
  }
}

TEST(LRSchedule, StepLRMatchesTorch) {
  std::vector<Tensor> keep;
  auto opt = two_group_sgd(keep);
  StepLR schedule(*opt, 3, 0.5f);
  expect_schedule_matches(*opt, schedule, "steplr");
}

TEST(LRSchedule, MultiStepLRMatchesTorch) {
  std::vector<Tensor> keep;
  auto opt = two_group_sgd(keep);
  MultiStepLR schedule(*opt, {5, 2, 9, 5}, 0.1f);
  expect_schedule_matches(*opt, schedule, "multisteplr");
}

TEST(LRSchedule, CosineWithWarmupMatchesFormula) {
  for (const char* name : {"cosine_a", "cosine_b", "cosine_c"}) {
    std::vector<float> args = golden().get(std::string(name) + ".args").to_vector();
    std::vector<Tensor> keep;
    auto opt = two_group_sgd(keep);
    CosineWithWarmup schedule(*opt, static_cast<std::int64_t>(args[0]), static_cast<std::int64_t>(args[1]), args[2],
                              args[3]);
    expect_schedule_matches(*opt, schedule, name);
  }
}

TEST(LRSchedule, SetLastStepResumesPosition) {
  std::vector<Tensor> keep_a, keep_b;
  auto a = two_group_sgd(keep_a), b = two_group_sgd(keep_b);
  CosineWithWarmup sa(*a, 3, 10, 0.1f), sb(*b, 3, 10, 0.1f);
  for (int s = 0; s < 7; ++s) sa.step();
  sb.set_last_step(7);
  EXPECT_EQ(sb.last_step(), 7);
  for (std::size_t g = 0; g < 2; ++g) EXPECT_EQ(a->param_groups()[g].lr, b->param_groups()[g].lr);
  sa.step();
  sb.step();
  for (std::size_t g = 0; g < 2; ++g) EXPECT_EQ(a->param_groups()[g].lr, b->param_groups()[g].lr);
  EXPECT_EQ(sb.base_lrs(), golden().get("sched.base").to_vector());
  sb.set_last_step(0);  // back to the start: warm-up from 0
  EXPECT_EQ(b->param_groups()[0].lr, 0.f);
}

TEST(LRSchedule, RejectsInvalidArguments) {
  std::vector<Tensor> keep;
  auto opt = two_group_sgd(keep);
  EXPECT_THROW(StepLR(*opt, 0), Error);
  EXPECT_THROW(StepLR(*opt, 3, -0.5f), Error);
  EXPECT_THROW(MultiStepLR(*opt, {3, -1}), Error);
  EXPECT_THROW(CosineWithWarmup(*opt, 10, 10), Error);
  EXPECT_THROW(CosineWithWarmup(*opt, -1, 10), Error);
  EXPECT_THROW(CosineWithWarmup(*opt, 2, 10, 1.5f), Error);
  EXPECT_THROW(CosineWithWarmup(*opt, 2, 10, 0.f, -0.5f), Error);
  StepLR schedule(*opt, 2);
  EXPECT_THROW(schedule.set_last_step(-1), Error);
  opt->param_groups().push_back({{Tensor::zeros({1})}, 0.1f, 0.f, "late"});
  EXPECT_THROW(schedule.step(), Error);  // made for 2 groups, the optimizer now has 3
}

}  // namespace
}  // namespace graft
