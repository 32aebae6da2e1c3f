// Determinism on the CPU (issue 7 item 4): the same seed and data give bitwise identical losses and weights run
// after run (graft's own CPU kernels are single-threaded with fixed loop orders; dropout masks come from counter-
// based Philox streams). Checked on a small conv net with BatchNorm, Dropout and SGD (momentum, weight decay).
//
// Across thread counts too: OpenBLAS's own threading gives different bits for 1 and 2 threads (Debian's 0.3.21,
// Zen kernels, even with K = 16), so gemm_cpu runs it single-threaded on a partition of C that depends only on the
// shape (kernels/gemm_cpu.cpp) and spreads the blocks over cpu_threads() threads. graft's own CPU loops split rows
// of elementwise passes and channels of per-channel sums over the same threads (kernels/cpu_parallel.h).
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "core/ops.h"
#include "core/rng.h"
#include "kernels/batch_norm.h"
#include "kernels/conv2d.h"
#include "kernels/cpu_parallel.h"
#include "kernels/elementwise.h"
#include "kernels/gemm.h"
#include "kernels/pool.h"
#include "kernels/random.h"
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

// Sets the CPU backend's thread count for a scope.
class CpuThreads {
 public:
  explicit CpuThreads(int n) : saved_(cpu_threads()) { set_cpu_threads(n); }
  ~CpuThreads() { set_cpu_threads(saved_); }

 private:
  int saved_;
};

// GEMMs large enough to be split into blocks: conv1's im2col GEMM is (16*32*32) x 16 x 27; conv1's output,
// (16*32*32) rows x 16 channels, is large enough for the batch-norm, relu and pooling loops to split too.
TrainingRun train(std::uint64_t seed, int cpu_thread_count, int steps = 4) {
  CpuThreads threads(cpu_thread_count);
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
          CpuThreads scope(threads);
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
// parallel_for hands out every index exactly once, in contiguous parts, for any thread count, and keeps small loops
// on the caller's thread.
TEST(Determinism, ParallelForCoversEveryIndexOnce) {
  for (int threads : {1, 2, 3, 7}) {
    CpuThreads scope(threads);
    for (std::int64_t n : {std::int64_t{0}, std::int64_t{1}, std::int64_t{5}, std::int64_t{1000003}}) {
      std::vector<int> hits(static_cast<std::size_t>(n), 0);
      std::atomic<int> parts{0};
      parallel_for(n, 1, [&](std::int64_t lo, std::int64_t hi) {
        ASSERT_LT(lo, hi);
        for (std::int64_t i = lo; i < hi; ++i) ++hits[static_cast<std::size_t>(i)];
        ++parts;
      });
      SCOPED_TRACE(::testing::Message() << threads << " threads, n " << n);
      EXPECT_EQ(std::count(hits.begin(), hits.end(), 1), n);
      EXPECT_EQ(parts.load(), n == 0 ? 0 : n < kMinWorkPerThread ? 1 : threads);
    }
  }
}

// Every CPU kernel that splits its loops gives the same bits for 1, 2 and 3 threads, at shapes where each thread
// gets an uneven share (odd channel and row counts).
TEST(Determinism, CpuKernelsAreBitwiseEqualForAnyThreadCount) {
  const std::int64_t n = 3, h = 45, w = 47, c = 37, m = n * h * w;
  Generator gen(5);
  const Tensor x = Tensor::randn({n, h, w, c}, gen), dout = Tensor::randn({n, h, w, c}, gen);
  const Tensor residual = Tensor::randn({n, h, w, c}, gen), chan = Tensor::uniform({c}, gen, 0.5f, 1.5f);
  const float* px = x.data<float>();
  const float* pd = dout.data<float>();
  const float* pr = residual.data<float>();
  const float* pc = chan.data<float>();
  const Pool2dShape pool{.n = n, .h = 45, .w = 47, .c = 37, .p = 23, .q = 24,
                         .kernel_h = 3, .kernel_w = 3, .stride_h = 2, .stride_w = 2, .pad_h = 1, .pad_w = 1};
  const std::int64_t pooled = n * pool.p * pool.q * c;
  Conv2dGeometry conv{.n = n, .h = h, .w = w, .c = c, .k = 9, .r = 3, .s = 3, .p = h, .q = w};
  conv.pad_h = conv.pad_w = 1;
  const Tensor weight = Tensor::randn({9, 3, 3, c}, gen), conv_dy = Tensor::randn({n, h, w, 9}, gen);
  const std::size_t conv_workspace = conv2d_workspace_bytes_cpu_im2col(conv);
  // per group a (6560 x 8 x 144) GEMM: above gemm_cpu's split threshold (2^21), so the blocks use the strides
  Conv2dGeometry grouped{.n = 4, .h = 40, .w = 41, .c = 48, .k = 24, .r = 3, .s = 3, .p = 40, .q = 41};
  grouped.pad_h = grouped.pad_w = 1, grouped.groups = 3;
  const Tensor grouped_x = Tensor::randn({4, 40, 41, 48}, gen), grouped_w = Tensor::randn({24, 3, 3, 16}, gen);
  const Tensor grouped_dy = Tensor::randn({4, 40, 41, 24}, gen);
  const std::size_t grouped_workspace = conv2d_workspace_bytes_cpu_im2col(grouped);
  auto run = [&](int threads) {
    CpuThreads scope(threads);
    std::map<std::string, std::vector<float>> out;
    auto buffer = [&](const std::string& name, std::int64_t size) {
      out[name].assign(static_cast<std::size_t>(size), 0.f);
      return out[name].data();
    };
    float* mean = buffer("mean", c);
    float* invstd = buffer("invstd", c);
    float* running_mean = buffer("running_mean", c);
    float* running_var = buffer("running_var", c);
    batch_norm_stats_cpu(mean, invstd, running_mean, running_var, px, m, c, 1e-5f, 0.1f);
    float* y = buffer("bn_forward", m * c);
    batch_norm_forward_cpu(y, px, mean, invstd, pc, pc, m, c, pr, true);
    float* dgamma = buffer("dgamma", c);
    float* dbeta = buffer("dbeta", c);
    batch_norm_backward_reduce_cpu(dgamma, dbeta, pd, px, mean, invstd, m, c, ReluMask::of_output(y));
    batch_norm_backward_input_cpu(buffer("bn_dx", m * c), pd, px, mean, invstd, pc, dbeta, dgamma, m, c, true,
                                  ReluMask::of_output(y));
    // the mask recomputed from x (a forward without the residual)
    batch_norm_backward_reduce_cpu(buffer("dgamma_mask_from_x", c), buffer("dbeta_mask_from_x", c), pd, px, mean,
                                   invstd, m, c, ReluMask::of_input(pc, pc));
    batch_norm_backward_input_cpu(buffer("bn_dx_mask_from_x", m * c), pd, px, mean, invstd, pc, dbeta, dgamma, m, c,
                                  true, ReluMask::of_input(pc, pc));
    relu_backward_cpu(buffer("relu_backward", m * c), pd, px, m * c);
    unary_forward_cpu(buffer("exp", m * c), px, UnaryOp::Exp, m * c);
    binary_forward_cpu(buffer("mul_channel", m * c), px, Broadcast::Full, pc, Broadcast::Channel, BinaryOp::Mul, m * c,
                       c);
    binary_forward_cpu(buffer("add", m * c), px, Broadcast::Full, pd, Broadcast::Full, BinaryOp::Add, m * c, c);
    std::vector<std::int32_t> argmax(static_cast<std::size_t>(pooled));
    float* pooled_max = buffer("max_pool", pooled);
    max_pool2d_forward_cpu(pooled_max, argmax.data(), px, pool);
    max_pool2d_backward_cpu(buffer("max_pool_dx", m * c), pd, argmax.data(), pool);
    avg_pool2d_forward_cpu(buffer("avg_pool", pooled), px, pool, false);
    avg_pool2d_backward_cpu(buffer("avg_pool_dx", m * c), pd, pool, true);
    std::vector<float> workspace(conv_workspace / sizeof(float));
    conv2d_forward_cpu_im2col(buffer("conv", m * 9), px, weight.data<float>(), pc, conv, workspace.data(),
                              conv_workspace);
    conv2d_backward_data_cpu_im2col(buffer("conv_dx", m * c), conv_dy.data<float>(), weight.data<float>(), conv,
                                    workspace.data(), conv_workspace);
    uniform_cpu(buffer("uniform", m * c + 3), m * c + 3, 17, 5, -2.f, 3.f);  // a partial last Philox block
    normal_cpu(buffer("normal", m * c + 2), m * c + 2, 17, 5, 1.f, 2.f);
    // a grouped conv: its GEMMs work on channel slices (leading dimensions), in all three directions
    std::vector<float> grouped_ws(grouped_workspace / sizeof(float));
    const float* pgx = grouped_x.data<float>();
    const float* pgw = grouped_w.data<float>();
    const float* pgy = grouped_dy.data<float>();
    conv2d_forward_cpu_im2col(buffer("grouped_conv", grouped_dy.numel()), pgx, pgw, nullptr, grouped, grouped_ws.data(),
                              grouped_workspace);
    conv2d_backward_data_cpu_im2col(buffer("grouped_dx", grouped_x.numel()), pgy, pgw, grouped, grouped_ws.data(),
                                    grouped_workspace);
    conv2d_backward_filter_cpu_im2col(buffer("grouped_dw", grouped_w.numel()), pgy, pgx, grouped, grouped_ws.data(),
                                      grouped_workspace);
    // the same conv through the grouped kernels (rows split for dx and the forward, groups for dW)
    conv2d_forward_cpu_grouped(buffer("grouped_direct", grouped_dy.numel()), pgx, pgw, pc, grouped);
    conv2d_backward_data_cpu_grouped(buffer("grouped_direct_dx", grouped_x.numel()), pgy, pgw, grouped);
    conv2d_backward_filter_cpu_grouped(buffer("grouped_direct_dw", grouped_w.numel()), pgy, pgx, grouped);
    return out;
  };
  const auto one = run(1);
  for (int threads : {2, 3, 7}) {
    const auto many = run(threads);
    for (const auto& [name, values] : one) {
      const std::vector<float>& other = many.at(name);
      EXPECT_EQ(0, std::memcmp(values.data(), other.data(), values.size() * sizeof(float)))
          << name << " differs with " << threads << " threads";
    }
  }
}

// Batch norm's per-channel sums over several row chunks (kernels/cpu_parallel.h row_chunk_sums): the chunks are
// fixed by the shape and added in order, so 1, 2, 3 and 7 threads give the same bits.
TEST(Determinism, BatchNormSumsOverSeveralRowChunksAreExactForAnyThreadCount) {
  const std::int64_t m = 40000, c = 17;
  ASSERT_GE(row_chunks(m, c).chunks, 3) << "the shape must split into several chunks for this test to mean anything";
  Generator gen(6);
  const Tensor x = Tensor::randn({m, c}, gen, kCPU, 3.f, 2.f), dout = Tensor::randn({m, c}, gen);
  const Tensor relu_out = Tensor::randn({m, c}, gen), gamma = Tensor::uniform({c}, gen, 0.5f, 1.5f);
  auto run = [&](int threads) {
    CpuThreads scope(threads);
    std::vector<float> mean(c), invstd(c), dgamma(c), dbeta(c), dx(static_cast<std::size_t>(m * c));
    std::vector<float> dx_running(dx.size());
    batch_norm_stats_cpu(mean.data(), invstd.data(), nullptr, nullptr, x.data<float>(), m, c, 1e-5f, 0.1f);
    batch_norm_backward_reduce_cpu(dgamma.data(), dbeta.data(), dout.data<float>(), x.data<float>(), mean.data(),
                                   invstd.data(), m, c, ReluMask::of_output(relu_out.data<float>()));
    batch_norm_backward_input_cpu(dx.data(), dout.data<float>(), x.data<float>(), mean.data(), invstd.data(),
                                  gamma.data<float>(), dbeta.data(), dgamma.data(), m, c, true,
                                  ReluMask::of_output(relu_out.data<float>()));
    batch_norm_backward_input_cpu(dx_running.data(), dout.data<float>(), x.data<float>(), mean.data(), invstd.data(),
                                  nullptr, nullptr, nullptr, m, c, false, ReluMask::of_input(nullptr, nullptr));
    std::vector<float> all = mean;
    for (const std::vector<float>* v : {&invstd, &dgamma, &dbeta, &dx, &dx_running})
      all.insert(all.end(), v->begin(), v->end());
    return all;
  };
  const std::vector<float> one = run(1);
  for (int threads : {2, 3, 7}) {
    const std::vector<float> many = run(threads);
    EXPECT_EQ(0, std::memcmp(one.data(), many.data(), one.size() * sizeof(float))) << threads << " threads";
  }
  // and the chunked sums are accurate: the mean against a double-precision sum over all rows
  const std::vector<float> xs = x.to_vector();
  for (std::int64_t j = 0; j < c; ++j) {
    double sum = 0;
    for (std::int64_t r = 0; r < m; ++r) sum += xs[static_cast<std::size_t>(r * c + j)];
    EXPECT_NEAR(one[static_cast<std::size_t>(j)], sum / m, 1e-6 * std::fabs(sum / m) + 1e-7) << "channel " << j;
  }
}

TEST(Determinism, ADifferentSeedIsDetected) {
  EXPECT_FALSE(bitwise_equal(train(7, 1, 2), train(8, 1, 2)));
}

}  // namespace
}  // namespace graft
