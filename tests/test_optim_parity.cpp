// CPU vs CUDA parity of the optimizer steps (kernels/optimizer_{cpu,cuda}) and of clip_grad_norm. The optimizers
// step CUDA parameters with the multi-tensor launchers; the MultiTensor* tests below compare those bit for bit.
// Each run steps the same parameters on both devices with the same fresh random gradients for 5 steps:
// p0 has 1,000,003 elements (odd: the grid-stride tail), p1 is a 37-element view at an odd float offset.
// Every element of every parameter moves at every step (random gradients, lr > 0), so an element the CUDA
// kernel skipped keeps its old value and fails the comparison; the optimizer state is compared too.
// Tolerance: the CUDA kernels spell out the CPU reference's float operations in the same order with
// round-to-nearest intrinsics (no FMA contraction), so the results should be bit-identical; rtol 1e-6 is the
// required agreement and atol 1e-7 (1e-6 of the parameter scale |p| <= ~1) only covers elements that cancel
// to near zero.
#include <gtest/gtest.h>

#include <cstring>
#include <functional>
#include <memory>

#include "core/optim.h"
#include "kernels/optimizer.h"
#include "tests/check.h"

namespace graft {
namespace {

using testing::all_close;

constexpr std::int64_t kBig = 1'000'003;
constexpr float kRtol = 1e-6f;
constexpr float kAtol = 1e-7f;

struct Params {
  std::vector<Tensor> cpu, gpu;
};

Params make_params(Generator& gen) {
  Params p;
  Tensor big = Tensor::uniform({kBig}, gen, -1.f, 1.f);
  Tensor base = Tensor::uniform({38}, gen, -1.f, 1.f);
  Tensor base_gpu = base.to(kCUDA);
  p.cpu = {big.clone().set_requires_grad(true), base.slice(1, 38).set_requires_grad(true)};
  p.gpu = {big.to(kCUDA).set_requires_grad(true), base_gpu.slice(1, 38).set_requires_grad(true)};
  return p;
}

std::vector<ParamGroup> two_groups(const std::vector<Tensor>& params, float lr, float weight_decay) {
  return {{{params[0]}, lr, weight_decay, "big"}, {{params[1]}, 0.5f * lr, 0.f, "view"}};
}

using MakeOptimizer = std::function<std::unique_ptr<Optimizer>(std::vector<ParamGroup>)>;

void expect_parity(const MakeOptimizer& make, float lr, float weight_decay) {
  Generator gen(4242);
  Params p = make_params(gen);
  auto cpu = make(two_groups(p.cpu, lr, weight_decay));
  auto gpu = make(two_groups(p.gpu, lr, weight_decay));
  for (int s = 0; s < 5; ++s) {
    for (std::size_t k = 0; k < p.cpu.size(); ++k) {
      Tensor g = Tensor::randn(p.cpu[k].shape(), gen);
      p.cpu[k].set_grad(g);
      p.gpu[k].set_grad(g.to(kCUDA));
    }
    cpu->step();
    gpu->step();
    for (std::size_t k = 0; k < p.cpu.size(); ++k) {
      ASSERT_TRUE(p.gpu[k].is_cuda());
      EXPECT_TRUE(all_close(p.gpu[k], p.cpu[k], kAtol, kRtol)) << "step " << s << " param " << k;
    }
  }
  auto state_cpu = cpu->state(), state_gpu = gpu->state();
  ASSERT_EQ(state_cpu.size(), state_gpu.size());
  for (const auto& [key, t] : state_cpu) {
    ASSERT_EQ(state_gpu.count(key), 1u) << key;
    EXPECT_TRUE(all_close(state_gpu.at(key), t, kAtol, kRtol)) << key;
  }
}

TEST(OptimParity, SGDWeightDecay) {
  GRAFT_REQUIRE_CUDA();
  expect_parity([](std::vector<ParamGroup> g) { return std::make_unique<SGD>(std::move(g), SGDOptions{}); }, 0.1f,
                0.05f);
}

TEST(OptimParity, SGDMomentumDampening) {
  GRAFT_REQUIRE_CUDA();
  expect_parity(
      [](std::vector<ParamGroup> g) {
        return std::make_unique<SGD>(std::move(g), SGDOptions{.momentum = 0.9f, .dampening = 0.3f});
      },
      0.05f, 0.05f);
}

TEST(OptimParity, SGDNesterov) {
  GRAFT_REQUIRE_CUDA();
  expect_parity(
      [](std::vector<ParamGroup> g) {
        return std::make_unique<SGD>(std::move(g), SGDOptions{.momentum = 0.9f, .nesterov = true});
      },
      0.1f, 0.01f);
}

TEST(OptimParity, AdamL2) {
  GRAFT_REQUIRE_CUDA();
  expect_parity(
      [](std::vector<ParamGroup> g) {
        return std::make_unique<Adam>(std::move(g), AdamOptions{.beta1 = 0.8f, .beta2 = 0.99f, .eps = 1e-6f});
      },
      0.01f, 0.1f);
}

TEST(OptimParity, AdamW) {
  GRAFT_REQUIRE_CUDA();
  expect_parity([](std::vector<ParamGroup> g) { return std::make_unique<AdamW>(std::move(g), AdamWOptions{}); },
                0.01f, 0.1f);
}

// A CPU checkpoint of the state loads onto CUDA parameters and continues like the CPU optimizer.
TEST(OptimParity, AdamStateLoadsAcrossDevices) {
  GRAFT_REQUIRE_CUDA();
  Generator gen(99);
  Params p = make_params(gen);
  AdamW cpu(two_groups(p.cpu, 0.01f, 0.1f), AdamWOptions{});
  for (std::size_t k = 0; k < p.cpu.size(); ++k) p.cpu[k].set_grad(Tensor::randn(p.cpu[k].shape(), gen));
  cpu.step();
  // The CUDA side starts from the CPU parameters after that step, plus the CPU state.
  std::vector<Tensor> gpu_params;
  for (const Tensor& t : p.cpu) gpu_params.push_back(t.detach().to(kCUDA).set_requires_grad(true));
  AdamW gpu(two_groups(gpu_params, 0.01f, 0.1f), AdamWOptions{});
  gpu.load_state(cpu.state());
  for (const auto& [key, t] : gpu.state())
    if (key.find(".step") == std::string::npos) {
      EXPECT_TRUE(t.is_cuda()) << key;
    }
  for (int s = 0; s < 3; ++s) {
    for (std::size_t k = 0; k < p.cpu.size(); ++k) {
      Tensor g = Tensor::randn(p.cpu[k].shape(), gen);
      p.cpu[k].set_grad(g);
      gpu_params[k].set_grad(g.to(kCUDA));
    }
    cpu.step();
    gpu.step();
  }
  for (std::size_t k = 0; k < p.cpu.size(); ++k) EXPECT_TRUE(all_close(gpu_params[k], p.cpu[k], kAtol, kRtol)) << k;
}

// Sum of squares: float tree reduction on CUDA vs double accumulation on the CPU, over 1e6 elements: agreement
// to ~1e-6 relative, so the norm and the scaled gradients are compared at 1e-5.
TEST(OptimParity, ClipGradNorm) {
  GRAFT_REQUIRE_CUDA();
  Generator gen(5);
  Params p = make_params(gen);
  std::vector<Tensor> before;
  for (std::size_t k = 0; k < p.cpu.size(); ++k) {
    Tensor g = Tensor::randn(p.cpu[k].shape(), gen);
    before.push_back(g.clone());
    p.cpu[k].set_grad(g);
    p.gpu[k].set_grad(g.to(kCUDA));
  }
  const float norm_cpu = clip_grad_norm(p.cpu, 10.f);
  const float norm_gpu = clip_grad_norm(p.gpu, 10.f);
  EXPECT_NEAR(norm_gpu, norm_cpu, 1e-5f * norm_cpu);
  EXPECT_GT(norm_cpu, 100.f);  // ~sqrt(1e6): clipping happened
  for (std::size_t k = 0; k < p.cpu.size(); ++k) {
    ASSERT_TRUE(p.gpu[k].grad().is_cuda());
    EXPECT_TRUE(all_close(p.gpu[k].grad(), p.cpu[k].grad(), 0.f, 1e-5f)) << k;
    EXPECT_FALSE(all_close(p.cpu[k].grad(), before[k], 0.f, 1e-3f)) << "grads were not scaled";
  }
}

// ---- multi-tensor CUDA steps (one launch per group, kernels/optimizer.h) ----------------------------------------
// A list of 150 tensors of varied sizes (1 element, sizes not a multiple of 4, exactly one chunk, one more than a
// chunk, several chunks; more than kOptimizerMultiTensors tensors per group, so a group takes several launches)
// in two groups with different lr and weight decay, stepped 4 times and compared BITWISE with the CPU optimizer.
// Some tensors get their first gradient only at step 1 (SGD first-step buffers and Adam step counts then differ
// between tensors of one launch) and some get none at step 2 (skipped: untouched, step count not advanced).

std::vector<std::int64_t> multi_sizes() {
  std::vector<std::int64_t> sizes = {1, 3, 4, 7, 255, 1000, kOptimizerChunk - 1, kOptimizerChunk,
                                     kOptimizerChunk + 1, 3 * kOptimizerChunk + 17};
  for (std::int64_t k = 0; sizes.size() < 150; ++k) sizes.push_back((k * 131) % 997 + 1);
  return sizes;
}

// Exact equality of every bit (values as stored, so -0 vs +0 or two NaN payloads differ too).
::testing::AssertionResult bitwise_equal(const Tensor& gpu, const Tensor& cpu) {
  const Tensor a = gpu.to(kCPU);
  if (a.shape() != cpu.shape()) return ::testing::AssertionFailure() << "shape mismatch";
  const float* x = a.data<float>();
  const float* y = cpu.data<float>();
  for (std::int64_t i = 0; i < a.numel(); ++i)
    if (std::memcmp(&x[i], &y[i], sizeof(float)) != 0)
      return ::testing::AssertionFailure() << "element " << i << " of " << a.numel() << ": " << x[i] << " (cuda) vs "
                                           << y[i] << " (cpu)";
  return ::testing::AssertionSuccess();
}

void expect_multi_bitwise(const MakeOptimizer& make, float lr, float weight_decay) {
  Generator gen(777);
  std::vector<Tensor> cpu, gpu;
  for (std::int64_t n : multi_sizes()) {
    Tensor t = Tensor::uniform({n}, gen, -1.f, 1.f);
    cpu.push_back(t.clone().set_requires_grad(true));
    gpu.push_back(t.to(kCUDA).set_requires_grad(true));
  }
  // Group 0: two of every three tensors (100 > kOptimizerMultiTensors); group 1: the rest, half the lr.
  auto groups = [&](const std::vector<Tensor>& params) {
    std::vector<ParamGroup> g = {{{}, lr, weight_decay, "a"}, {{}, 0.5f * lr, 0.3f * weight_decay, "b"}};
    for (std::size_t k = 0; k < params.size(); ++k) g[k % 3 == 2 ? 1 : 0].params.push_back(params[k]);
    return g;
  };
  auto opt_cpu = make(groups(cpu));
  auto opt_gpu = make(groups(gpu));
  for (int s = 0; s < 4; ++s) {
    for (std::size_t k = 0; k < cpu.size(); ++k) {
      cpu[k].zero_grad();
      gpu[k].zero_grad();
      if ((s == 0 && k % 7 == 4) || (s == 2 && k % 5 == 3)) continue;  // late first step / skipped
      Tensor g = Tensor::randn(cpu[k].shape(), gen);
      cpu[k].set_grad(g);
      gpu[k].set_grad(g.to(kCUDA));
    }
    opt_cpu->step();
    opt_gpu->step();
    for (std::size_t k = 0; k < cpu.size(); ++k) {
      ASSERT_TRUE(gpu[k].is_cuda());
      ASSERT_TRUE(bitwise_equal(gpu[k], cpu[k])) << "step " << s << " tensor " << k << " (" << cpu[k].numel()
                                                 << " elements)";
    }
  }
  auto state_cpu = opt_cpu->state(), state_gpu = opt_gpu->state();
  ASSERT_EQ(state_cpu.size(), state_gpu.size());
  for (const auto& [key, t] : state_cpu) {
    ASSERT_EQ(state_gpu.count(key), 1u) << key;
    EXPECT_TRUE(bitwise_equal(state_gpu.at(key), t)) << key;
  }
}

TEST(OptimParity, MultiTensorSGDMomentumBitwise) {
  GRAFT_REQUIRE_CUDA();
  expect_multi_bitwise(
      [](std::vector<ParamGroup> g) {
        return std::make_unique<SGD>(std::move(g), SGDOptions{.momentum = 0.9f, .dampening = 0.1f});
      },
      0.05f, 1e-2f);
}

TEST(OptimParity, MultiTensorSGDNesterovBitwise) {
  GRAFT_REQUIRE_CUDA();
  expect_multi_bitwise(
      [](std::vector<ParamGroup> g) {
        return std::make_unique<SGD>(std::move(g), SGDOptions{.momentum = 0.9f, .nesterov = true});
      },
      0.1f, 1e-2f);
}

TEST(OptimParity, MultiTensorSGDPlainBitwise) {
  GRAFT_REQUIRE_CUDA();
  expect_multi_bitwise([](std::vector<ParamGroup> g) { return std::make_unique<SGD>(std::move(g), SGDOptions{}); },
                       0.1f, 5e-2f);
}

TEST(OptimParity, MultiTensorAdamBitwise) {
  GRAFT_REQUIRE_CUDA();
  expect_multi_bitwise(
      [](std::vector<ParamGroup> g) {
        return std::make_unique<Adam>(std::move(g), AdamOptions{.beta1 = 0.8f, .beta2 = 0.99f, .eps = 1e-6f});
      },
      1e-2f, 0.1f);
}

TEST(OptimParity, MultiTensorAdamWBitwise) {
  GRAFT_REQUIRE_CUDA();
  expect_multi_bitwise([](std::vector<ParamGroup> g) { return std::make_unique<AdamW>(std::move(g), AdamWOptions{}); },
                       1e-2f, 0.1f);
}

#if GRAFT_HAS_CUDA
// The launcher on raw pointers, without an optimizer: an empty list and zero-element entries launch nothing, and a
// list given in one call matches the same tensors stepped one by one with the single-tensor kernel (bitwise).
TEST(OptimParity, MultiTensorLauncherMatchesSingleTensorKernel) {
  GRAFT_REQUIRE_CUDA();
  sgd_step_multi_cuda({}, 0.1f, 0.9f, 0.f, 0.f, false);
  adam_step_multi_cuda({}, 0.1f, 0.9f, 0.999f, 1e-8f, 0.f, false);
  Generator gen(31);
  const std::vector<std::int64_t> sizes = {5, 2 * kOptimizerChunk + 3, 1};
  std::vector<Tensor> p1, p2, m1, m2, v1, v2, grads;
  for (std::int64_t n : sizes) {
    Tensor p = Tensor::uniform({n}, gen, -1.f, 1.f).to(kCUDA), m = Tensor::randn({n}, gen).to(kCUDA);
    Tensor v = Tensor::uniform({n}, gen, 0.f, 1.f).to(kCUDA);
    p1.push_back(p.clone()), p2.push_back(p.clone()), m1.push_back(m.clone()), m2.push_back(m.clone());
    v1.push_back(v.clone()), v2.push_back(v.clone()), grads.push_back(Tensor::randn({n}, gen).to(kCUDA));
  }
  std::vector<AdamMultiTensor> list;
  for (std::size_t k = 0; k < sizes.size(); ++k) {
    const std::int64_t step = static_cast<std::int64_t>(k) + 1;  // a different t per tensor
    list.push_back({p1[k].data<float>(), m1[k].data<float>(), v1[k].data<float>(), grads[k].data<float>(), sizes[k],
                    step});
    adam_step_cuda(p2[k].data<float>(), m2[k].data<float>(), v2[k].data<float>(), grads[k].data<float>(), sizes[k],
                   1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f, true, step);
    if (k == 0) list.push_back({nullptr, nullptr, nullptr, nullptr, 0, 1});  // skipped, never dereferenced
  }
  adam_step_multi_cuda(list, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f, true);
  for (std::size_t k = 0; k < sizes.size(); ++k) {
    EXPECT_TRUE(bitwise_equal(p1[k], p2[k].to(kCPU))) << k;
    EXPECT_TRUE(bitwise_equal(m1[k], m2[k].to(kCPU))) << k;
    EXPECT_TRUE(bitwise_equal(v1[k], v2[k].to(kCPU))) << k;
  }
}
#endif

// Parameters on different devices in one optimizer: each is stepped on its own device.
TEST(OptimParity, MixedDevicesInOneOptimizer) {
  GRAFT_REQUIRE_CUDA();
  Generator gen(8);
  Tensor a = Tensor::uniform({1001}, gen, -1.f, 1.f);
  Tensor ref = a.clone().set_requires_grad(true);
  Tensor on_gpu = a.to(kCUDA).set_requires_grad(true);
  Tensor on_cpu = Tensor::uniform({3}, gen, -1.f, 1.f).set_requires_grad(true);
  SGD mixed({on_gpu, on_cpu}, SGDOptions{.lr = 0.1f, .momentum = 0.9f});
  SGD single({ref}, SGDOptions{.lr = 0.1f, .momentum = 0.9f});
  for (int s = 0; s < 3; ++s) {
    Tensor g = Tensor::randn({1001}, gen);
    ref.set_grad(g);
    on_gpu.set_grad(g.to(kCUDA));
    on_cpu.set_grad(Tensor::randn({3}, gen));
    mixed.step();
    single.step();
  }
  EXPECT_TRUE(on_gpu.is_cuda());
  EXPECT_TRUE(all_close(on_gpu, ref, kAtol, kRtol));
}

}  // namespace
}  // namespace graft
