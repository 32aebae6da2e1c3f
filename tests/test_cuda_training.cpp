// Issue 6, correctness on the GPU: 50 SGD steps of ResNet-50 on the GPU track the same 50 steps on the CPU
// (same initial weights, same batches, strict FP32 on both: only the order of floating-point additions differs,
// cuDNN/cuBLAS vs im2col + OpenBLAS). The curves, and a TF32 run's, are printed. Label `gpu`.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "core/ops.h"
#include "core/optim.h"
#include "layers/sequential.h"
#include "models/resnet.h"
#include "models/resnet_v2.h"
#include "models/zoo.h"
#include "tests/check.h"
#if GRAFT_HAS_CUDA
#include "kernels/conv2d.h"
#include "kernels/cuda_device.h"
#endif

namespace graft {
namespace {

#if GRAFT_HAS_CUDA
constexpr int kSteps = 50, kBatch = 16, kSize = 64, kClasses = 10, kBatches = 4;

// The loss after each of kSteps steps, cycling over kBatches fixed batches. Each image is its class's fixed
// random template plus noise: learnable, so the loss falls smoothly (2.35 -> 0.02 on the CPU) and both devices
// must follow the same descent. (On pure-noise images, or at lr 0.01, the loss wanders chaotically, where any
// rounding difference is amplified and no tolerance is meaningful.)
// With `nudge`, every image element is moved one ulp up first: the same run under a rounding-sized change, which
// measures how far rounding alone moves the curve (deep nets in train mode flip relu masks: chaotic from step 1).
std::vector<float> train_losses(Device device, int steps = kSteps, bool nudge = false) {
  auto model = make_model("resnet50", {.num_classes = kClasses, .seed = 11});
  model->to(device);
  model->train();
  SGD opt(model->trainable_parameters(), {.lr = 0.002f, .momentum = 0.9f, .weight_decay = 1e-4f});
  std::vector<Tensor> images, labels;
  for (int b = 0; b < kBatches; ++b) {
    Generator gen(300 + static_cast<std::uint64_t>(b));
    std::vector<std::int32_t> y(kBatch);
    for (int i = 0; i < kBatch; ++i) y[static_cast<std::size_t>(i)] = (b * kBatch + i) % kClasses;
    std::vector<float> x = Tensor::randn({kBatch, kSize, kSize, 3}, gen).to_vector();
    const std::size_t per = std::size_t{kSize} * kSize * 3;
    for (std::size_t i = 0; i < kBatch; ++i) {
      Generator class_gen(900 + static_cast<std::uint64_t>(y[i]));
      const std::vector<float> templ = Tensor::randn({kSize, kSize, 3}, class_gen).to_vector();
      for (std::size_t j = 0; j < per; ++j) x[i * per + j] = 0.5f * x[i * per + j] + templ[j];
    }
    if (nudge)
      for (float& e : x) e = std::nextafter(e, INFINITY);
    images.push_back(Tensor::from_vector(x, {kBatch, kSize, kSize, 3}).to(device));
    labels.push_back(Tensor::from_vector(y, {kBatch}, device));
  }
  std::vector<float> losses;
  for (int step = 0; step < steps; ++step) {
    Tensor loss = softmax_cross_entropy((*model)(images[step % kBatches]), labels[step % kBatches]);
    loss.backward();
    opt.step();
    opt.zero_grad();
    losses.push_back(loss.item());
  }
  return losses;
}

// The largest |a - b| over the steps, and over the first `first` steps (step 0 and the first update).
struct Gap {
  float all = 0, early = 0;
};
Gap gap(const std::vector<float>& a, const std::vector<float>& b, std::size_t first = 2) {
  Gap g;
  for (std::size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
    const float d = std::fabs(a[i] - b[i]);
    g.all = std::max(g.all, d);
    if (i < first) g.early = std::max(g.early, d);
  }
  return g;
}

// How far `run` strays outside the band that the `band` curves span, step by step (0 when it stays inside;
// infinitely far at a NaN or infinite loss).
float outside_band(const std::vector<float>& run, const std::vector<std::vector<float>>& band) {
  float worst = 0;
  for (std::size_t i = 0; i < run.size(); ++i) {
    if (!std::isfinite(run[i])) return INFINITY;
    float lo = INFINITY, hi = -INFINITY;
    for (const std::vector<float>& curve : band) {
      lo = std::min(lo, curve.at(i));
      hi = std::max(hi, curve.at(i));
    }
    worst = std::max({worst, lo - run[i], run[i] - hi});
  }
  return worst;
}

// The band check's limit: three times the larger of the two rounding spreads measured in the process (GPU run to
// run, CPU exact to one-ulp nudged), plus 0.05.
float band_limit(const std::vector<float>& cpu, const std::vector<float>& cpu_nudged, const std::vector<float>& gpu_a,
                 const std::vector<float>& gpu_b) {
  return 3.f * std::max(gap(gpu_a, gpu_b).all, gap(cpu, cpu_nudged).all) + 0.05f;
}

void print_curves(const std::vector<float>& cpu, const std::vector<float>& gpu_a, const std::vector<float>& gpu_b,
                  const std::vector<float>& gpu_tf32, const std::vector<float>& cpu_nudged) {
  std::printf("[ResNet-50, %d SGD steps, batch %d, %dx%d] loss by step: cpu | gpu FP32 run a | run b | gpu TF32\n",
              kSteps, kBatch, kSize, kSize);
  for (std::size_t i = 0; i < cpu.size(); i += (i < 5 ? 1 : 5))
    std::printf("  step %2zu: %.5f | %.5f | %.5f | %.5f\n", i, cpu[i], gpu_a[i], gpu_b[i], gpu_tf32[i]);
  std::printf("  the cpu with its images one ulp up:");
  for (std::size_t i = 0; i < cpu_nudged.size(); i += (i < 5 ? 1 : 5)) std::printf(" %.5f", cpu_nudged[i]);
  std::printf("\n  max |gpu a - cpu| %.5f, max |gpu a - gpu b| %.5f, max |cpu - cpu nudged| %.5f, "
              "max |tf32 - cpu| %.5f\n",
              gap(cpu, gpu_a).all, gap(gpu_a, gpu_b).all, gap(cpu, cpu_nudged).all, gap(cpu, gpu_tf32).all);
  std::printf("  gpu a outside the band of the two cpu curves by %.5f (limit %.5f); steps 0-1: |gpu a - cpu| "
              "%.5f, |nudged - cpu| %.5f\n",
              outside_band(gpu_a, {cpu, cpu_nudged}), band_limit(cpu, cpu_nudged, gpu_a, gpu_b),
              gap(cpu, gpu_a).early, gap(cpu, cpu_nudged).early);
}
#endif

// What "tracks" means here: step 0 (the forward pass alone, same weights, strict FP32) agrees to rounding; after
// that, ResNet-50 in train mode is chaotic (relu masks flip), so the test measures in the same process what
// rounding alone does: the CPU run again with every image element one ulp up, and the GPU run twice (cuDNN's
// fastest algorithms are not deterministic: their rounding differences grow through training the same way).
// - Step 1 (the first update) is within 0.01 + twice the nudged run's distance. (A fixed 0.01 failed on the H100
//   at 0.020; on H100 machines the GPU has been 0.002-0.018 from the CPU at step 1, the nudged CPU 0.016.) Step 2
//   is not held to it: there the GPU was 0.19 from the CPU in two of five runs on 2026-11-27, and on the
//   development VM the CPU's own step-2 loss moves by 0.13 between one-ulp nudges, by 0.07 between OpenBLAS kernels.
// - Both runs learn, and over all 50 steps the GPU curve stays inside the band of the two CPU curves (exact and
//   nudged), widened by three times the larger rounding spread (GPU run to run, CPU exact to nudged) plus 0.05.
//   The band, not the distance to the one CPU curve, which can be an outlier of the chaos. On the H100 machines of
//   2026-11-27 the CPU curves lagged the GPU's late in training (bench/RESULTS.md, fifth run): four GPU runs were
//   outside the band by 0.54-1.57 times the larger spread (0.29-0.46), and by at least 1.79 times in a fifth
//   that printed every fifth step only; six curves on the VM (0-5 ulp nudges) are 0.20-0.45 apart by pair, and none
//   strays outside the band of two others by more than 1.46x its gap to a third.
// This is a gross end-to-end check (optimizer, momentum, batch-norm statistics and memory reuse over 50 steps: a
// GPU run that stops learning ends ~2 above the band, one that diverges is infinitely far); exactness is the job
// of the gradient tests below (ResNet-18 whole, the other families as block chains), which compare every
// parameter's gradient with the CPU's to 1e-3 of its largest value.
TEST(CudaTraining, ResNet50FiftyStepsTrackTheCpuRun) {
  GRAFT_REQUIRE_CUDA();
#if GRAFT_HAS_CUDA
  const std::vector<float> cpu = train_losses(kCPU);
  const std::vector<float> cpu_nudged = train_losses(kCPU, kSteps, true);
  std::vector<float> gpu_a, gpu_b, gpu_tf32;
  {
    testing::Tf32Guard strict(false);
    gpu_a = train_losses(kCUDA);
    gpu_b = train_losses(kCUDA);
  }
  {
    testing::Tf32Guard tf32(true);
    gpu_tf32 = train_losses(kCUDA);
  }
  print_curves(cpu, gpu_a, gpu_b, gpu_tf32, cpu_nudged);

  ASSERT_EQ(cpu.size(), gpu_a.size());
  EXPECT_LT(cpu.back(), 0.5f * cpu.front()) << "the CPU run learns the fixed batches";
  EXPECT_LT(gpu_a.back(), 0.5f * gpu_a.front()) << "the GPU run learns them too";
  EXPECT_LT(gpu_tf32.back(), 0.5f * gpu_tf32.front()) << "and with TF32";
  EXPECT_NEAR(gpu_a.front(), cpu.front(), 1e-3f) << "step 0, the forward pass alone, agrees to rounding";
  EXPECT_LE(gap(cpu, gpu_a).early, 2.f * gap(cpu, cpu_nudged).early + 0.01f)
      << "the first update is as close as rounding alone keeps it";
  EXPECT_LE(outside_band(gpu_a, {cpu, cpu_nudged}), band_limit(cpu, cpu_nudged, gpu_a, gpu_b))
      << "the GPU curve stays within the CPU's two curves, widened by three times the rounding spread";
#endif
}

}  // namespace
}  // namespace graft

namespace graft {
namespace {

// |a - b| <= 1e-3 of the tensor's largest |b|, plus 1e-3 relative, for every gradient: FP32 sums in other orders
// through many layers of batch norm at batch 4 (a wrong gradient is off by its own size).
void expect_same_gradients(const std::vector<std::pair<std::string, Tensor>>& a,
                           const std::vector<std::pair<std::string, Tensor>>& b, const std::string& what) {
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < b.size(); ++i) {
    float scale = 0.f;
    for (float v : b[i].second.to_vector()) scale = std::max(scale, std::fabs(v));
    EXPECT_TRUE(testing::all_close(a[i].second, b[i].second, 1e-3f * scale, 1e-3f)) << what << " " << b[i].first;
  }
}

// One training step's gradients of ResNet-18 (BasicBlocks with identity and downsample shortcuts), GPU against CPU,
// every parameter, strict FP32. A block input's gradient is the sum of its shortcut's and its first conv's; on the
// GPU the convolution adds its part into the shortcut's already collected gradient (cuDNN beta = 1,
// autograd::accumulation_buffer), on the CPU a separate add does: both must give the same sums. Run with the
// legacy cuDNN algorithms and with the graph-API engine search (whose accumulating plans have beta = 1).
void expect_gradients_match_the_cpu(const std::string& arch, bool engine_search) {
#if GRAFT_HAS_CUDA
  testing::Tf32Guard strict(false);
  testing::EngineSearchGuard search(engine_search);
  Generator data(77);
  const Tensor images = Tensor::randn({4, 48, 48, 3}, data);
  const Tensor labels = Tensor::from_vector(std::vector<std::int32_t>{1, 7, 3, 9}, {4});
  auto gradients = [&](Device device) {
    auto model = make_model(arch, {.num_classes = 10, .seed = 5});
    model->to(device);
    model->train();
    Tensor loss = softmax_cross_entropy((*model)(images.to(device)), labels.to(device));
    loss.backward();
    std::vector<std::pair<std::string, Tensor>> grads;
    for (auto& [name, p] : model->named_parameters()) grads.emplace_back(name, p.grad().to(kCPU));
    return std::make_pair(loss.item(), grads);
  };
  const auto [loss_cpu, cpu] = gradients(kCPU);
  const auto [loss_gpu, gpu] = gradients(kCUDA);
  EXPECT_NEAR(loss_gpu, loss_cpu, 1e-4f);
  expect_same_gradients(gpu, cpu, arch);
#else
  (void)arch, (void)engine_search;
#endif
}

TEST(CudaTraining, ResNet18GradientsOfOneStepMatchTheCpu) {
  GRAFT_REQUIRE_CUDA();
  expect_gradients_match_the_cpu("resnet18", false);
}

// The rest of the ResNet family, a short chain of blocks each (whole ResNeXt-50 and ResNet50V2 are too sensitive for
// an elementwise comparison: in train mode one ulp changed at one input element moved ResNeXt-50's CPU gradients by
// up to 22% of a tensor's maximum, through relu masks that flip; ResNet-18 moved 1e-5):
//   ResNeXt: a grouped bottleneck (32 groups of 4, identity shortcut), then a stride-2 one with a downsample;
//   ResNet50V2: Keras's pre-activation blocks - the stage's first (conv shortcut on the pre-activation), an identity
//   one, and the stage's last (stride 2, subsampled identity).
// Loss sum(chain(x) * w) for a fixed random w; the gradients of x (the shortcut's and the first conv's sum) and of
// every parameter, GPU against CPU in strict FP32, with the tolerance of the ResNet-18 test.
std::shared_ptr<Module> resnext_chain() {
  Generator gen(21);
  auto chain = std::make_shared<Sequential>();
  chain->push_back(std::make_shared<ResidualBlock>(256, 64, 1, true, Dialect::Torchvision, gen, 128, 32));
  chain->push_back(std::make_shared<ResidualBlock>(256, 128, 2, true, Dialect::Torchvision, gen, 256, 32));
  return chain;
}
std::shared_ptr<Module> resnet_v2_chain() {
  Generator gen(22);
  auto chain = std::make_shared<Sequential>();
  chain->push_back(std::make_shared<PreActBottleneck>(64, 64, 1, true, gen));
  chain->push_back(std::make_shared<PreActBottleneck>(256, 64, 1, false, gen));
  chain->push_back(std::make_shared<PreActBottleneck>(256, 64, 2, false, gen));
  return chain;
}

// {"input", dL/dx} then every parameter's gradient, on `device`, for the loss sum(chain(x) * w) in train mode.
std::vector<std::pair<std::string, Tensor>> chain_gradients(std::shared_ptr<Module> (*build)(), const Tensor& x,
                                                            Device device) {
  auto chain = build();
  chain->to(device);
  chain->train();
  Tensor input = x.to(device).detach();
  input.set_requires_grad(true);
  Tensor y = (*chain)(input);
  Generator gen(23);
  const Tensor w = Tensor::uniform(y.shape(), gen, -1.f, 1.f).to(device);
  sum(mul(y, w)).backward();
  std::vector<std::pair<std::string, Tensor>> grads{{"input", input.grad().to(kCPU)}};
  for (auto& [name, p] : chain->named_parameters()) grads.emplace_back(name, p.grad().to(kCPU));
  return grads;
}

Tensor chain_input(int channels) {
  Generator gen(24);
  return Tensor::randn({4, 12, 12, channels}, gen);
}

// Every input element one ulp up.
Tensor nudged(const Tensor& x) {
  std::vector<float> v = x.to_vector();
  for (float& e : v) e = std::nextafter(e, INFINITY);
  return Tensor::from_vector(v, x.shape());
}

// The comparison below is meaningful: on the CPU alone, moving every input by one ulp keeps each chain's gradients
// within the tolerance (rounding-level differences are what the GPU brings).
TEST(CudaTraining, BlockChainGradientsAreStableUnderRoundingOnTheCpu) {
  for (auto [build, channels, name] : {std::tuple{&resnext_chain, 256, "resnext"}, std::tuple{&resnet_v2_chain, 64, "v2"}}) {
    const Tensor x = chain_input(channels);
    expect_same_gradients(chain_gradients(build, nudged(x), kCPU), chain_gradients(build, x, kCPU), name);
  }
}

TEST(CudaTraining, ResNeXtAndResNetV2BlockGradientsMatchTheCpu) {
  GRAFT_REQUIRE_CUDA();
#if GRAFT_HAS_CUDA
  testing::Tf32Guard strict(false);
  for (auto [build, channels, name] : {std::tuple{&resnext_chain, 256, "resnext"}, std::tuple{&resnet_v2_chain, 64, "v2"}}) {
    const Tensor x = chain_input(channels);
    expect_same_gradients(chain_gradients(build, x, kCUDA), chain_gradients(build, x, kCPU), name);
  }
#endif
}

TEST(CudaTraining, ResNet18GradientsOfOneStepMatchTheCpuWithTheEngineSearch) {
  GRAFT_REQUIRE_CUDA();
  expect_gradients_match_the_cpu("resnet18", true);
}

}  // namespace
}  // namespace graft
