// GPU determinism (issue 7 item 4): in graft::cuda::deterministic() mode, two ResNet-18 training runs from the
// same seed and data give bitwise identical losses and weights, and every cuDNN algorithm chosen in that mode is
// one cudnnFind reports as CUDNN_DETERMINISTIC. (graft's hand-written kernels use no floating-point atomics, so
// cuDNN's algorithm choice is the only switch; see kernels/cuda_device.h.) Label `gpu`; skips without a device.
#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "core/ops.h"
#include "core/optim.h"
#include "kernels/conv2d.h"
#include "models/zoo.h"
#include "tests/check.h"
#if GRAFT_HAS_CUDA
#include "kernels/cuda_device.h"
#endif

namespace graft {
namespace {

using testing::bitwise_equal;

#if GRAFT_HAS_CUDA
using testing::DeterministicMode;

struct TrainResult {
  std::vector<float> losses;
  std::map<std::string, std::vector<float>> state;
};

TrainResult train_resnet18(int steps) {
  auto model = make_model("resnet18", {.num_classes = 10, .seed = 5});
  model->to(kCUDA);
  model->train();
  SGD opt(model->trainable_parameters(), {.lr = 0.01f, .momentum = 0.9f, .weight_decay = 1e-4f});
  TrainResult run;
  for (int step = 0; step < steps; ++step) {
    Generator data(100 + static_cast<std::uint64_t>(step));
    Tensor x = Tensor::randn({8, 64, 64, 3}, data, kCUDA);
    std::vector<std::int32_t> y{0, 1, 2, 3, 4, 5, 6, 7};
    Tensor loss = softmax_cross_entropy((*model)(x), Tensor::from_vector(y, {8}, kCUDA));
    loss.backward();
    opt.step();
    opt.zero_grad();
    run.losses.push_back(loss.item());
  }
  for (const auto& [name, t] : model->state()) run.state[name] = t.to_vector();
  return run;
}

#endif

TEST(CudaDeterminism, TwoResNet18TrainStepsAreBitwiseEqualInDeterministicMode) {
  GRAFT_REQUIRE_CUDA();
#if GRAFT_HAS_CUDA
  DeterministicMode mode;
  const TrainResult first = train_resnet18(2), second = train_resnet18(2);
  EXPECT_TRUE(bitwise_equal(first.losses, second.losses))
      << first.losses[0] << " " << first.losses[1] << " vs " << second.losses[0] << " " << second.losses[1];
  ASSERT_EQ(first.state.size(), second.state.size());
  int differing = 0;
  for (const auto& [name, values] : first.state)
    if (!bitwise_equal(values, second.state.at(name))) ADD_FAILURE() << name << " differs", ++differing;
  EXPECT_EQ(differing, 0);
  EXPECT_NE(first.state.at("fc.weight"), train_resnet18(1).state.at("fc.weight")) << "the steps change weights";
#endif
}

TEST(CudaDeterminism, DeterministicModeChoosesOnlyDeterministicCudnnAlgorithms) {
  GRAFT_REQUIRE_CUDA();
#if GRAFT_HAS_CUDA
  {
    DeterministicMode mode;
    train_resnet18(1);  // forward, backward-data and backward-filter of every ResNet-18 convolution
  }
  int lines = 0;
  for (const std::string& line : conv2d_cudnn_algorithms_used()) {
    if (line.find(" deterministic-mode") == std::string::npos) continue;
    ++lines;
    EXPECT_NE(line.find("deterministic=yes"), std::string::npos) << line;
  }
  // 11 distinct geometries x 3 directions, less conv1's backward-data (its input needs no gradient)
  EXPECT_GE(lines, 3 * 11 - 1);
  const std::string report = cuda::conv_algorithms_report();
  EXPECT_NE(report.find("deterministic-mode"), std::string::npos) << report;
  EXPECT_NE(report.find("backward-filter"), std::string::npos) << report;
#endif
}

}  // namespace
}  // namespace graft
