// CPU vs CUDA parity of the optimizer steps (kernels/optimizer_{cpu,cuda}) and of clip_grad_norm.
// Each run steps the same parameters on both devices with the same fresh random gradients for 5 steps:
// p0 has 1,000,003 elements (odd: the grid-stride tail), p1 is a 37-element view at an odd float offset.
// Every element of every parameter moves at every step (random gradients, lr > 0), so an element the CUDA
// kernel skipped keeps its old value and fails the comparison; the optimizer state is compared too.
// Tolerance: the CUDA kernels spell out the CPU reference's float operations in the same order with
// round-to-nearest intrinsics (no FMA contraction), so the results should be bit-identical; rtol 1e-6 is the
// required agreement and atol 1e-7 (1e-6 of the parameter scale |p| <= ~1) only covers elements that cancel
// to near zero.
#include <gtest/gtest.h>

#include <functional>
#include <memory>

#include "core/optim.h"
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
