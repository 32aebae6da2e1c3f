// Determinism on the CPU (issue 7 item 4): the same seed and data give bitwise identical losses and weights run
// after run (graft's own CPU kernels are single-threaded with fixed loop orders; dropout masks come from counter-
// based Philox streams). Checked on a small conv net with BatchNorm, Dropout and SGD (momentum, weight decay).
//
// Across thread counts too: OpenBLAS's own threading gives different bits for 1 and 2 threads (Debian's 0.3.21,
// Zen kernels, even with K = 16), so gemm_cpu runs it single-threaded on a partition of C that depends only on the
// shape (kernels/gemm_cpu.cpp) and spreads the blocks over gemm_cpu_threads() threads.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "core/ops.h"
#include "core/rng.h"
#include "kernels/gemm.h"
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

// Sets gemm_cpu's thread count for a scope.
class GemmThreads {
 public:
  explicit GemmThreads(int n) : saved_(gemm_cpu_threads()) { set_gemm_cpu_threads(n); }
  ~GemmThreads() { set_gemm_cpu_threads(saved_); }

 private:
  int saved_;
};

// GEMMs large enough to be split into blocks: conv1's im2col GEMM is (16*32*32) x 16 x 27.
TrainingRun train(std::uint64_t seed, int gemm_threads, int steps = 4) {
  GemmThreads threads(gemm_threads);
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

TEST(Determinism, ThreadCountDoesNotChangeOneBit) {
  const TrainingRun one = train(11, 1), two = train(11, 2), three = train(11, 3);
  EXPECT_TRUE(bitwise_equal(one, two));
  EXPECT_TRUE(bitwise_equal(one, three));
}

// gemm_cpu's partition itself: every transpose combination, shapes split by rows and by columns (and one too small
// to split), bitwise equal for 1, 2 and 5 threads, and equal to a double-precision reference within float rounding.
TEST(Determinism, GemmCpuBlocksAreExactForAnyThreadCount) {
  struct Case { std::int64_t m, n, k; };
  for (Case c : {Case{3000, 70, 90}, Case{70, 3000, 90}, Case{40, 30, 20}, Case{129, 1025, 300}})
    for (bool ta : {false, true})
      for (bool tb : {false, true}) {
        Generator gen(static_cast<std::uint64_t>(c.m * 7 + c.n + ta * 2 + tb));
        Tensor a = Tensor::randn({c.m * c.k}, gen), b = Tensor::randn({c.k * c.n}, gen);
        Tensor c0 = Tensor::randn({c.m * c.n}, gen);
        std::vector<std::vector<float>> results;
        for (int threads : {1, 2, 5}) {
          GemmThreads scope(threads);
          Tensor out = c0.clone();
          gemm_cpu(out.data<float>(), a.data<float>(), b.data<float>(), ta, tb, c.m, c.n, c.k, 0.5f, 0.25f);
          results.push_back(out.to_vector());
        }
        SCOPED_TRACE(::testing::Message() << c.m << "x" << c.n << "x" << c.k << " trans " << ta << tb);
        EXPECT_EQ(0, std::memcmp(results[0].data(), results[1].data(), results[0].size() * sizeof(float)));
        EXPECT_EQ(0, std::memcmp(results[0].data(), results[2].data(), results[0].size() * sizeof(float)));
        const float* pa = a.data<float>();
        const float* pb = b.data<float>();
        std::vector<float> init = c0.to_vector();
        double worst = 0;
        for (std::int64_t i = 0; i < c.m; ++i)
          for (std::int64_t j = 0; j < c.n; ++j) {
            double ref = 0.25 * init[static_cast<std::size_t>(i * c.n + j)];
            for (std::int64_t l = 0; l < c.k; ++l)
              ref += 0.5 * pa[ta ? l * c.m + i : i * c.k + l] * pb[tb ? j * c.k + l : l * c.n + j];
            worst = std::max(worst, std::abs(ref - results[0][static_cast<std::size_t>(i * c.n + j)]));
          }
        EXPECT_LT(worst, 1e-3);
      }
}

// The comparison is sensitive: another seed (other weights, data and dropout masks) differs.
TEST(Determinism, ADifferentSeedIsDetected) {
  EXPECT_FALSE(bitwise_equal(train(7, 1, 2), train(8, 1, 2)));
}

}  // namespace
}  // namespace graft
