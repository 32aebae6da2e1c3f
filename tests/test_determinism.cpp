// Determinism on the CPU (issue 7 item 4): the same seed and data give bitwise identical losses and weights run
// after run (graft's own CPU kernels are single-threaded with fixed loop orders; dropout masks come from counter-
// based Philox streams). Checked on a small conv net with BatchNorm, Dropout and SGD (momentum, weight decay).
//
// NOT YET TRUE across OpenBLAS thread counts: Debian's OpenBLAS 0.3.21 (DYNAMIC_ARCH, Zen kernels here) gives
// different bits for the same sgemm with 1 and 2 threads - even with K = 16, so it is not K blocking but different
// micro-kernels for the row ranges each thread gets (checked with a plain C program: M=16384 N=27 K=16 and
// M=32 N=144 K=2048 differ; cutting K into 256-chunks did not help). The test below documents the requirement and
// is disabled until graft partitions GEMM rows itself (fixed blocks, single-threaded OpenBLAS per block) or pins
// the thread count; run it with --gtest_also_run_disabled_tests.
#include <cblas.h>
#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "core/ops.h"
#include "core/optim.h"
#include "layers/basic.h"
#include "layers/batch_norm.h"
#include "layers/conv2d.h"
#include "layers/linear.h"
#include "layers/sequential.h"

namespace graft {
namespace {

struct TrainingRun {
  std::vector<float> losses;
  std::map<std::string, std::vector<float>> state;  // parameters and BatchNorm running statistics
};

// Restores OpenBLAS's thread count when a test ends.
class BlasThreads {
 public:
  explicit BlasThreads(int n) : saved_(openblas_get_num_threads()) { openblas_set_num_threads(n); }
  ~BlasThreads() { openblas_set_num_threads(saved_); }

 private:
  int saved_;
};

// GEMMs large enough for OpenBLAS to use its threads: conv1's im2col GEMM is (16*32*32) x 27 x 16.
TrainingRun train(std::uint64_t seed, int blas_threads, int steps = 4) {
  BlasThreads threads(blas_threads);
  Generator init(seed);
  auto net = std::make_shared<Sequential>();
  net->push_back(std::make_shared<Conv2d>(
      Conv2dConfig{.in_channels = 3, .out_channels = 16, .kernel_h = 3, .kernel_w = 3, .padding = 1}, init));
  net->push_back(std::make_shared<BatchNorm2d>(16));
  net->push_back(std::make_shared<ReLU>());
  net->push_back(std::make_shared<MaxPool2d>(2, 2));
  net->push_back(std::make_shared<Conv2d>(
      Conv2dConfig{.in_channels = 16, .out_channels = 32, .kernel_h = 3, .kernel_w = 3, .stride = 2, .padding = 1},
      init));
  net->push_back(std::make_shared<BatchNorm2d>(32));
  net->push_back(std::make_shared<ReLU>());
  net->push_back(std::make_shared<AdaptiveAvgPool2d>(1, 1));
  net->push_back(std::make_shared<Flatten>());
  net->push_back(std::make_shared<Dropout>(0.25f, seed + 1));
  net->push_back(std::make_shared<Linear>(32, 5, true, init));
  net->train();
  SGD opt(net->trainable_parameters(), {.lr = 0.05f, .momentum = 0.9f, .weight_decay = 1e-4f});
  TrainingRun run;
  for (int step = 0; step < steps; ++step) {
    Generator data(seed * 1000 + static_cast<std::uint64_t>(step));
    Tensor x = Tensor::randn({16, 32, 32, 3}, data);
    std::vector<std::int32_t> y(16);
    for (int i = 0; i < 16; ++i) y[static_cast<std::size_t>(i)] = (i * 7 + step) % 5;
    Tensor loss = softmax_cross_entropy((*net)(x), Tensor::from_vector(y, {16}));
    loss.backward();
    opt.step();
    opt.zero_grad();
    run.losses.push_back(loss.item());
  }
  for (const auto& [name, t] : net->state()) run.state[name] = t.to_vector();
  return run;
}

// Bitwise, not approximate: memcmp also tells -0 from +0 and compares NaN payloads.
::testing::AssertionResult bitwise_equal(const TrainingRun& a, const TrainingRun& b) {
  if (a.losses.size() != b.losses.size() ||
      std::memcmp(a.losses.data(), b.losses.data(), a.losses.size() * sizeof(float)) != 0) {
    auto failure = ::testing::AssertionFailure() << "losses differ:";
    for (std::size_t i = 0; i < a.losses.size() && i < b.losses.size(); ++i)
      failure << " " << a.losses[i] << "/" << b.losses[i];
    return failure;
  }
  if (a.state.size() != b.state.size()) return ::testing::AssertionFailure() << "different state keys";
  for (const auto& [name, values] : a.state) {
    auto it = b.state.find(name);
    if (it == b.state.end()) return ::testing::AssertionFailure() << name << " missing";
    const std::vector<float>& other = it->second;
    if (values.size() != other.size() ||
        std::memcmp(values.data(), other.data(), values.size() * sizeof(float)) != 0)
      return ::testing::AssertionFailure() << name << " differs";
  }
  return ::testing::AssertionSuccess();
}

TEST(Determinism, SameSeedSameDataGivesBitwiseEqualLossesAndWeights) {
  const TrainingRun first = train(7, 1), second = train(7, 1);
  ASSERT_EQ(first.losses.size(), 4u);
  EXPECT_TRUE(bitwise_equal(first, second));
  EXPECT_NE(first.losses.front(), first.losses.back()) << "the net trains (weights change between steps)";
}

TEST(Determinism, DISABLED_OpenBlasThreadCountDoesNotChangeOneBit) {
  const TrainingRun one = train(11, 1), two = train(11, 2);
  EXPECT_TRUE(bitwise_equal(one, two));
}

// The comparison is sensitive: another seed (other weights, data and dropout masks) differs.
TEST(Determinism, ADifferentSeedIsDetected) {
  EXPECT_FALSE(bitwise_equal(train(7, 1, 2), train(8, 1, 2)));
}

}  // namespace
}  // namespace graft
