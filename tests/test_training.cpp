// End to end on the CPU: ops + autograd + a plain SGD written here train small networks; runs are reproducible.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "core/autograd.h"
#include "core/ops.h"
#include "core/rng.h"
#include "core/tensor.h"

namespace graft {
namespace {

// p -= lr * dp for every parameter, then drop the gradients (they accumulate otherwise).
void sgd_step(const std::vector<Tensor*>& params, float lr) {
  NoGradGuard no_grad;
  for (Tensor* p : params) {
    ASSERT_TRUE(p->grad().defined()) << "parameter " << shape_str(p->shape()) << " got no gradient";
    float* w = p->data<float>();
    const float* g = p->grad().data<float>();
    for (std::int64_t i = 0; i < p->numel(); ++i) w[i] -= lr * g[i];
    p->zero_grad();
  }
}

struct TwoLayerMlp {
  Tensor w1, b1, w2, b2;
  TwoLayerMlp(std::int64_t in, std::int64_t hidden, std::int64_t out, std::uint64_t seed) {
    Generator gen(seed);
    w1 = Tensor::randn({hidden, in}, gen, kCPU, 0.f, 1.f / std::sqrt(static_cast<float>(in)));
    b1 = Tensor::zeros({hidden});
    w2 = Tensor::randn({out, hidden}, gen, kCPU, 0.f, 1.f / std::sqrt(static_cast<float>(hidden)));
    b2 = Tensor::zeros({out});
    for (Tensor* p : params()) p->set_requires_grad(true);
  }
  std::vector<Tensor*> params() { return {&w1, &b1, &w2, &b2}; }
  Tensor logits(const Tensor& x) const { return linear(relu(linear(x, w1, b1)), w2, b2); }
};

float accuracy(const Tensor& logits, const Tensor& labels) {
  std::vector<float> l = logits.to_vector();
  std::vector<std::int32_t> y = labels.to_int_vector();
  const std::int64_t classes = logits.dim(1);
  int correct = 0;
  for (std::size_t r = 0; r < y.size(); ++r) {
    std::int64_t best = 0;
    for (std::int64_t c = 1; c < classes; ++c)
      if (l[r * classes + c] > l[r * classes + best]) best = c;
    correct += best == y[r];
  }
  return static_cast<float>(correct) / static_cast<float>(y.size());
}

TEST(Training, MlpOverfitsAFixedBatch) {
  Generator gen(1);
  Tensor x = Tensor::randn({16, 10}, gen);
  std::vector<std::int32_t> y(16);
  for (std::size_t i = 0; i < y.size(); ++i) y[i] = static_cast<std::int32_t>((i * 7 + 3) % 4);  // arbitrary labels
  Tensor labels = Tensor::from_vector(y, {16});
  TwoLayerMlp net(10, 32, 4, 2);
  float first = 0, last = 0;
  for (int step = 0; step < 400; ++step) {
    Tensor loss = softmax_cross_entropy(net.logits(x), labels);
    last = loss.item();
    if (step == 0) first = last;
    if (last < 0.005f) break;
    loss.backward();
    sgd_step(net.params(), 0.5f);
  }
  EXPECT_GT(first, 1.0f) << "4 classes start near ln 4";
  EXPECT_LT(last, 0.01f);
  NoGradGuard no_grad;
  EXPECT_EQ(accuracy(net.logits(x), labels), 1.f);
}

// Points of the plane labelled by the side of a line, with a margin: a linear classifier can separate them.
void separable_task(std::int64_t n, Tensor& x, Tensor& labels) {
  Generator gen(3);
  std::vector<float> all = Tensor::uniform({4 * n, 2}, gen, -1.f, 1.f).to_vector();
  std::vector<float> points;
  std::vector<std::int32_t> y;
  for (std::size_t i = 0; i < all.size() && static_cast<std::int64_t>(y.size()) < n; i += 2) {
    float side = all[i] - 2.f * all[i + 1] + 0.3f;
    if (std::fabs(side) < 0.2f) continue;
    points.push_back(all[i]), points.push_back(all[i + 1]);
    y.push_back(side > 0 ? 1 : 0);
  }
  ASSERT_EQ(static_cast<std::int64_t>(y.size()), n);
  x = Tensor::from_vector(points, {n, 2});
  labels = Tensor::from_vector(y, {n});
}

TEST(Training, LossDecreasesOnALinearlySeparableTask) {
  Tensor x, labels;
  separable_task(200, x, labels);
  Generator gen(4);
  Tensor w = Tensor::randn({2, 2}, gen, kCPU, 0.f, 0.1f).set_requires_grad(true);
  Tensor b = Tensor::zeros({2}).set_requires_grad(true);
  std::vector<float> losses;
  for (int step = 0; step < 150; ++step) {
    Tensor loss = softmax_cross_entropy(linear(x, w, b), labels);
    losses.push_back(loss.item());
    loss.backward();
    sgd_step({&w, &b}, 1.0f);
  }
  int increases = 0;
  for (std::size_t i = 1; i < losses.size(); ++i) increases += losses[i] > losses[i - 1] + 1e-6f;
  EXPECT_LE(increases, static_cast<int>(losses.size()) / 20) << "full-batch descent should rarely go up";
  for (std::size_t i = 10; i < losses.size(); i += 10) EXPECT_LT(losses[i], losses[i - 10]) << "step " << i;
  EXPECT_LT(losses.back(), 0.4f * losses.front());
  NoGradGuard no_grad;
  EXPECT_GE(accuracy(linear(x, w, b), labels), 0.97f);
}

struct RunResult {
  std::vector<float> losses;
  std::vector<std::vector<float>> params;
};

// A short minibatch run whose data and initial weights all come from `seed`.
RunResult train_run(std::uint64_t seed) {
  Generator gen(seed);
  Tensor x = Tensor::randn({24, 9}, gen);
  std::vector<float> scores = Tensor::uniform({24}, gen).to_vector();
  std::vector<std::int32_t> y(24);
  for (std::size_t i = 0; i < y.size(); ++i) y[i] = static_cast<std::int32_t>(scores[i] * 3.f);
  Tensor labels = Tensor::from_vector(y, {24});
  TwoLayerMlp net(9, 17, 3, seed + 1);
  RunResult result;
  for (int step = 0; step < 30; ++step) {
    const std::int64_t begin = (step % 3) * 8;  // minibatches of 8 as views of the batch
    Tensor loss = softmax_cross_entropy(net.logits(x.slice(begin, begin + 8)), labels.slice(begin, begin + 8), 0.1f);
    result.losses.push_back(loss.item());
    loss.backward();
    sgd_step(net.params(), 0.3f);
  }
  for (Tensor* p : net.params()) result.params.push_back(p->to_vector());
  return result;
}

bool bitwise_equal(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

TEST(Training, SameSeedGivesBitwiseIdenticalRuns) {
  RunResult a = train_run(10), b = train_run(10);
  EXPECT_TRUE(bitwise_equal(a.losses, b.losses));
  ASSERT_EQ(a.params.size(), b.params.size());
  for (std::size_t i = 0; i < a.params.size(); ++i) EXPECT_TRUE(bitwise_equal(a.params[i], b.params[i])) << i;
  EXPECT_LT(a.losses.back(), a.losses.front()) << "the run actually trains";
  RunResult c = train_run(11);
  EXPECT_FALSE(bitwise_equal(a.params[0], c.params[0])) << "a different seed gives a different run";
}

}  // namespace
}  // namespace graft
