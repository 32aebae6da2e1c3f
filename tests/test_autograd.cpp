// Autograd semantics: leaves, seeds, accumulation, grad mode, detach, released graphs, diamonds, views, memory of
// the tape (freed after backward; nothing saved for a frozen prefix) and the `needs` mask.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "core/allocator.h"
#include "core/autograd.h"
#include "core/error.h"
#include "core/ops.h"
#include "core/rng.h"
#include "core/tensor.h"
#include "tests/check.h"

namespace graft {
namespace {

using graft::testing::all_close;

using graft::testing::expect_error;

Tensor leaf(const Shape& shape, std::uint64_t seed, float low = -1.f, float high = 1.f) {
  Generator gen(seed);
  Tensor t = Tensor::uniform(shape, gen, low, high);
  t.set_requires_grad(true);
  return t;
}

std::int64_t cpu_bytes() { return memory_stats(kCPU).current_bytes; }

// ---- leaves and recording ----------------------------------------------------------------------------------------------

TEST(Autograd, RequiresGradOnlyOnLeaves) {
  Tensor x = leaf({2, 3}, 1);
  EXPECT_TRUE(x.requires_grad());
  EXPECT_TRUE(x.is_leaf());
  Tensor y = mul(x, 2.f);
  EXPECT_TRUE(y.requires_grad());
  EXPECT_FALSE(y.is_leaf());
  ASSERT_NE(y.impl()->grad_fn, nullptr);
  EXPECT_EQ(y.impl()->grad_fn->name, "mul");
  expect_error([&] { y.set_requires_grad(true); }, {"set_requires_grad", "leaf", "mul"});
  expect_error([&] { Tensor::zeros({2}, kCPU, DType::Int32).set_requires_grad(true); },
               {"set_requires_grad", "int32"});
  x.set_requires_grad(false);
  EXPECT_FALSE(x.requires_grad());
  EXPECT_FALSE(mul(x, 2.f).requires_grad());
}

TEST(Autograd, OpsOnPlainTensorsRecordNothing) {
  Tensor a = Tensor::ones({3}), b = Tensor::ones({3});
  Tensor c = add(a, b);
  EXPECT_FALSE(c.requires_grad());
  EXPECT_TRUE(c.is_leaf());
  EXPECT_EQ(c.impl()->grad_fn, nullptr);
}

TEST(Autograd, NodeNamesAndInputShapes) {
  Tensor x = leaf({4, 3}, 2), w = leaf({5, 3}, 3);
  Tensor y = linear(x, w);
  ASSERT_NE(y.impl()->grad_fn, nullptr);
  const Node& node = *y.impl()->grad_fn;
  EXPECT_EQ(node.name, "linear");
  ASSERT_EQ(node.input_shapes.size(), 3u);  // x, weight, (absent) bias
  EXPECT_EQ(node.input_shapes[0], (Shape{4, 3}));
  EXPECT_EQ(node.input_shapes[1], (Shape{5, 3}));
  EXPECT_TRUE(node.inputs[0].active());
  EXPECT_TRUE(node.inputs[1].active());
  EXPECT_FALSE(node.inputs[2].active());
  EXPECT_EQ(softmax(y).impl()->grad_fn->name, "softmax");
  EXPECT_EQ(sum(y, 1).impl()->grad_fn->name, "sum");
}

// ---- backward -------------------------------------------------------------------------------------------------------------

TEST(Autograd, BackwardOnScalar) {
  Tensor x = leaf({3, 4}, 4);
  sum(mul(x, x)).backward();
  ASSERT_TRUE(x.grad().defined());
  EXPECT_TRUE(all_close(x.grad(), mul(x.detach(), 2.f), 1e-6f, 1e-6f));
  EXPECT_FALSE(x.grad().requires_grad()) << "gradients carry no history";
  EXPECT_TRUE(x.grad().is_leaf());
}

// Gradients are float32: an int32 seed or gradient is refused where it is given (a leaf stored it as its .grad, and
// only the optimizer noticed; on a graph the error named an op the caller never called).
TEST(Autograd, AnInt32SeedOrGradientIsRefused) {
  Tensor leaf = Tensor::ones({3});
  leaf.set_requires_grad(true);
  const Tensor int_seed = Tensor::from_vector(std::vector<std::int32_t>{1, 1, 1}, {3});
  for (const Tensor& root : {leaf, mul(leaf, 2.f)})
    testing::expect_error([&] { root.backward(int_seed); }, {"backward: seed gradient int32", "gradients are float32"});
  EXPECT_FALSE(leaf.grad().defined());
  testing::expect_error([&] { leaf.set_grad(int_seed); }, {"set_grad: gradient (3) int32", "gradients are float32"});
}

TEST(Autograd, BackwardOfALeafItself) {
  Tensor x = leaf({}, 5);
  x.backward();
  ASSERT_TRUE(x.grad().defined());
  EXPECT_EQ(x.grad().item(), 1.f);
}

TEST(Autograd, BackwardWithSeed) {
  Tensor x = leaf({2, 3}, 6);
  Tensor y = mul(x, 3.f);
  Tensor seed = Tensor::from_vector(std::vector<float>{1, -2, 0.5f, 4, 0, -1}, {2, 3});
  y.backward(seed);
  EXPECT_EQ(x.grad().to_vector(), (std::vector<float>{3, -6, 1.5f, 12, 0, -3}));
  // the gradient is a copy, not an alias of the seed
  Tensor z = leaf({2, 3}, 7);
  z.backward(seed);
  seed.data<float>()[0] = 100.f;
  EXPECT_EQ(z.grad().to_vector()[0], 1.f);
}

TEST(Autograd, BackwardSeedErrors) {
  Tensor x = leaf({2, 3}, 8);
  Tensor y = mul(x, 3.f);
  expect_error([&] { y.backward(); }, {"backward", "(2,3)"});
  expect_error([&] { y.backward(Tensor::ones({3, 2})); }, {"backward", "(3,2)", "(2,3)"});
  expect_error([&] { y.backward(Tensor()); }, {"backward", "undefined"});
}

TEST(Autograd, BackwardOnTensorNotRequiringGradThrows) {
  expect_error([] { Tensor::ones({}).backward(); }, {"backward", "does not require grad"});
  Tensor x = leaf({3}, 9);
  Tensor y;
  {
    NoGradGuard no_grad;
    y = sum(x);
  }
  expect_error([&] { y.backward(); }, {"backward", "()", "does not require grad"});
}

TEST(Autograd, GradientsAccumulateAcrossBackwardCalls) {
  Tensor x = leaf({5}, 10);
  Tensor two_x = mul(x.detach(), 2.f);
  sum(mul(x, x)).backward();
  EXPECT_TRUE(all_close(x.grad(), two_x, 1e-6f, 1e-6f));
  sum(mul(x, x)).backward();
  EXPECT_TRUE(all_close(x.grad(), mul(two_x, 2.f), 1e-6f, 1e-6f));
  x.zero_grad();
  EXPECT_FALSE(x.grad().defined());
  sum(mul(x, x)).backward();
  EXPECT_TRUE(all_close(x.grad(), two_x, 1e-6f, 1e-6f));
}

TEST(Autograd, SetGradChecksShape) {
  Tensor x = leaf({2, 2}, 11);
  x.set_grad(Tensor::ones({2, 2}));
  EXPECT_EQ(x.grad().to_vector(), std::vector<float>(4, 1.f));
  sum(x).backward();  // accumulates into the set gradient
  EXPECT_EQ(x.grad().to_vector(), std::vector<float>(4, 2.f));
  expect_error([&] { x.set_grad(Tensor::ones({4})); }, {"set_grad", "(4)", "(2,2)"});
  x.set_grad(Tensor());
  EXPECT_FALSE(x.grad().defined());
}

TEST(Autograd, NoGradGuardRecordsNothing) {
  Tensor x = leaf({64, 64}, 12);
  EXPECT_TRUE(grad_mode_enabled());
  const std::int64_t base = cpu_bytes();
  {
    NoGradGuard no_grad;
    EXPECT_FALSE(grad_mode_enabled());
    Tensor y = exp(mul(x, x));  // would save x twice and exp's output with grad on
    EXPECT_FALSE(y.requires_grad());
    EXPECT_TRUE(y.is_leaf());
    EXPECT_EQ(cpu_bytes(), base + 64 * 64 * 4) << "only the output is alive";
    {
      NoGradGuard nested;
      EXPECT_FALSE(grad_mode_enabled());
    }
    EXPECT_FALSE(grad_mode_enabled()) << "a nested guard restores the outer state";
  }
  EXPECT_TRUE(grad_mode_enabled());
  EXPECT_TRUE(mul(x, x).requires_grad());
}

TEST(Autograd, DetachSharesStorageWithoutHistory) {
  Tensor x = leaf({4}, 13);
  Tensor d = x.detach();
  EXPECT_EQ(d.data<float>(), x.data<float>());
  EXPECT_FALSE(d.requires_grad());
  EXPECT_TRUE(d.is_leaf());
  Tensor h = mul(x, 2.f);
  Tensor hd = h.detach();
  EXPECT_TRUE(hd.is_leaf());
  EXPECT_FALSE(hd.requires_grad());
  // d(x.detach() * x)/dx = x: only the attached path contributes
  sum(mul(x.detach(), x)).backward();
  EXPECT_TRUE(all_close(x.grad(), x.detach(), 1e-6f, 1e-6f));
}

TEST(Autograd, SecondBackwardThroughFreedGraphThrows) {
  Tensor x = leaf({3}, 14);
  Tensor y = sum(mul(x, x));
  y.backward();
  EXPECT_TRUE(y.impl()->grad_fn->released);
  expect_error([&] { y.backward(); }, {"already freed", "sum"});
  // a second loss sharing a freed intermediate: the message names the freed op
  Tensor e = exp(x);
  Tensor l1 = sum(e), l2 = mean(e);
  l1.backward();
  expect_error([&] { l2.backward(); }, {"already freed", "exp"});
}

TEST(Autograd, DiamondGraphsSumGradients) {
  Tensor x = leaf({6}, 15);
  // x used twice by one op and once more by another: d/dx (x*x + e^x) = 2x + e^x
  sum(add(mul(x, x), exp(x))).backward();
  std::vector<float> xv = x.detach().to_vector(), g = x.grad().to_vector();
  for (std::size_t i = 0; i < xv.size(); ++i) EXPECT_NEAR(g[i], 2 * xv[i] + std::exp(xv[i]), 1e-5f);
  // an intermediate used twice: h = 3x, y = sum(h*h) + sum(h) -> dy/dx = 3 (2h + 1)
  Tensor z = leaf({6}, 16);
  Tensor h = mul(z, 3.f);
  add(sum(mul(h, h)), sum(h)).backward();
  std::vector<float> zv = z.detach().to_vector(), gz = z.grad().to_vector();
  for (std::size_t i = 0; i < zv.size(); ++i) EXPECT_NEAR(gz[i], 3 * (6 * zv[i] + 1), 1e-4f);
  // add(x, x): the pass-through gradient is summed, not aliased
  Tensor w = leaf({3}, 17);
  sum(add(w, w)).backward();
  EXPECT_EQ(w.grad().to_vector(), std::vector<float>(3, 2.f));
}

// An identity op whose backward adds its gradient into the input's already-collected gradient when autograd offers
// it (accumulation_buffer, as the CUDA convolution does), and says whether it was offered one. With pass_through it
// instead returns dout itself, as add's backward does.
Tensor identity_op(const Tensor& x, int* offered, bool pass_through = false) {
  Tensor out = x.detach().clone();
  autograd::record(out, "identity_op", {&x}, [offered, pass_through](const Tensor& dout, const std::vector<bool>&) {
    if (pass_through) return std::vector<Tensor>{dout};
    Tensor into = autograd::accumulation_buffer(0);
    if (offered != nullptr) *offered += into.defined() ? 1 : 0;
    if (!into.defined()) return std::vector<Tensor>{dout.clone()};
    float* acc = into.data<float>();
    const float* d = dout.data<float>();
    for (std::int64_t i = 0; i < into.numel(); ++i) acc[i] += d[i];
    return std::vector<Tensor>{into};
  });
  return out;
}

TEST(Autograd, AnOpMayAddItsGradientIntoTheOneAlreadyCollected) {
  // h = 2x feeds two ops; the one whose backward runs second (inputs[0] of the add runs second) is offered h's
  // gradient from the first and adds into it: dL/dx = 2 (3 + 5)
  Tensor x = leaf({4}, 30);
  Tensor h = mul(x, 2.f);
  int offered_first = 0, offered_second = 0;
  Tensor second = identity_op(h, &offered_second), first = identity_op(h, &offered_first);
  sum(add(mul(second, 5.f), mul(first, 3.f))).backward();
  EXPECT_EQ(offered_first, 0) << "nothing was collected for h yet";
  EXPECT_EQ(offered_second, 1);
  EXPECT_EQ(x.grad().to_vector(), std::vector<float>(4, 16.f));
}

TEST(Autograd, AGradientOthersCanSeeIsNeverOfferedForAccumulation) {
  // add's backward hands the same dout to both of its inputs; the first identity passes it through to h, so h's
  // collected gradient is the very tensor the second op still reads: it must not be offered (the second op would
  // add into its own dout), and the sum must still be right: dL/dx = 2 (1 + 1)
  Tensor x = leaf({4}, 31);
  Tensor h = mul(x, 2.f);
  int offered = 0;
  Tensor second = identity_op(h, &offered), first = identity_op(h, nullptr, /*pass_through=*/true);
  sum(add(second, first)).backward();
  EXPECT_EQ(offered, 0);
  EXPECT_EQ(x.grad().to_vector(), std::vector<float>(4, 4.f));
  // a leaf's gradient that the backward created for it alone (adopted as .grad without a copy) stays correct
  // when a second backward adds to it
  Tensor w = leaf({3}, 32);
  sum(mul(w, 3.f)).backward();
  sum(mul(w, 3.f)).backward();
  EXPECT_EQ(w.grad().to_vector(), std::vector<float>(3, 6.f));
}

TEST(Autograd, OneTensorReachingAGradientSlotTwiceIsSummed) {
  // add(h, h) hands the same dout down both inputs; so do clone and a pass-through op. h's gradient is the sum:
  // dL/dz = 3 (1 + 1) each time.
  Tensor z = leaf({4}, 33);
  Tensor h = mul(z, 3.f);
  sum(add(h, h)).backward();
  EXPECT_EQ(z.grad().to_vector(), std::vector<float>(4, 6.f));
  z.zero_grad();
  h = mul(z, 3.f);
  sum(add(h, h.clone())).backward();
  EXPECT_EQ(z.grad().to_vector(), std::vector<float>(4, 6.f));
  z.zero_grad();
  h = mul(z, 3.f);
  sum(add(identity_op(h, nullptr, true), identity_op(h, nullptr, true))).backward();
  EXPECT_EQ(z.grad().to_vector(), std::vector<float>(4, 6.f));
}

// An op whose backward returns a view into a tensor it leaves alive in *keep (both halves hold dout): the whole
// storage (offset 0, half the bytes) or its second half (offset n).
Tensor view_op(const Tensor& x, Tensor* keep, bool second_half) {
  Tensor out = x.detach().clone();
  autograd::record(out, "view_op", {&x}, [keep, second_half](const Tensor& dout, const std::vector<bool>&) {
    const std::int64_t n = dout.numel();
    std::vector<float> both = dout.to_vector();
    both.insert(both.end(), both.begin(), both.end());
    *keep = Tensor::from_vector(both, {2 * n});
    return std::vector<Tensor>{second_half ? keep->slice(n, 2 * n) : keep->slice(0, n)};
  });
  return out;
}

TEST(Autograd, AGradientSharingMemoryIsNeverOfferedForAccumulation) {
  for (bool second_half : {false, true}) {
    Tensor x = leaf({4}, 34);
    Tensor h = mul(x, 2.f);
    Tensor kept;
    int offered = 0;
    Tensor second = identity_op(h, &offered), first = view_op(h, &kept, second_half);
    sum(add(second, first)).backward();
    EXPECT_EQ(offered, 0) << "the collected gradient is a view of a tensor still alive";
    EXPECT_EQ(x.grad().to_vector(), std::vector<float>(4, 4.f));
    EXPECT_EQ(kept.to_vector(), std::vector<float>(8, 1.f)) << "the kept tensor was written through the view";
  }
}

TEST(Autograd, AGradHeldByTheCallerIsNeverChangedByALaterBackward) {
  Tensor w = leaf({3}, 35);
  sum(mul(w, 3.f)).backward();  // .grad adopted from the backward's own result
  const Tensor held = w.grad();
  sum(mul(w, 3.f)).backward();
  EXPECT_EQ(held.to_vector(), std::vector<float>(3, 3.f));
  EXPECT_EQ(w.grad().to_vector(), std::vector<float>(3, 6.f));
}

TEST(Autograd, AccumulationBuffersAreScopedToTheRunningClosure) {
  // a closure that throws: nothing stays exposed afterwards
  Tensor x = leaf({2}, 36);
  Tensor y = x.detach().clone();
  autograd::record(y, "throws", {&x}, [](const Tensor&, const std::vector<bool>&) -> std::vector<Tensor> {
    GRAFT_FAIL("boom");
  });
  EXPECT_THROW(sum(y).backward(), Error);
  EXPECT_FALSE(autograd::accumulation_buffer(0).defined());
  // a closure that runs a backward of its own (of a graph recorded beforehand: closures run in no-grad mode)
  // still sees its buffer afterwards
  Tensor z = leaf({4}, 37);
  Tensor h = mul(z, 2.f);
  bool offered_after_nested = false;
  Tensor nested_loss = sum(mul(x, 5.f));
  Tensor outer = h.detach().clone();
  autograd::record(outer, "nested", {&h}, [&](const Tensor& dout, const std::vector<bool>&) {
    nested_loss.backward();
    Tensor into = autograd::accumulation_buffer(0);
    offered_after_nested = into.defined();
    if (!into.defined()) return std::vector<Tensor>{dout.clone()};
    float* acc = into.data<float>();
    for (std::int64_t i = 0; i < into.numel(); ++i) acc[i] += dout.data<float>()[i];
    return std::vector<Tensor>{into};
  });
  Tensor first = identity_op(h, nullptr);
  sum(add(outer, first)).backward();
  EXPECT_TRUE(offered_after_nested);
  EXPECT_EQ(z.grad().to_vector(), std::vector<float>(4, 4.f));
}

TEST(Autograd, GradientThroughReshapeAndFlatten) {
  Tensor x = leaf({4, 3}, 18);
  Tensor w = Tensor::arange(12).reshape({3, 4});
  sum(mul(x.reshape({3, 4}), w)).backward();
  EXPECT_EQ(x.grad().shape(), (Shape{4, 3}));
  EXPECT_EQ(x.grad().to_vector(), Tensor::arange(12).to_vector());
  Tensor y = leaf({2, 3, 2}, 19);
  sum(mul(y.flatten(1), Tensor::arange(12).reshape({2, 6}))).backward();
  EXPECT_EQ(y.grad().shape(), (Shape{2, 3, 2}));
  EXPECT_EQ(y.grad().to_vector(), Tensor::arange(12).to_vector());
}

TEST(Autograd, GradientThroughSlice) {
  Tensor x = leaf({5, 2}, 20);
  Tensor w = Tensor::from_vector(std::vector<float>{1, 2, 3, 4}, {2, 2});
  sum(mul(x.slice(2, 4), w)).backward();
  EXPECT_EQ(x.grad().to_vector(), (std::vector<float>{0, 0, 0, 0, 1, 2, 3, 4, 0, 0}));
  // two slices of the same tensor add up, overlapping rows included
  Tensor z = leaf({4, 1}, 21);
  add(sum(z.slice(0, 3)), sum(mul(z.slice(2, 4), 10.f))).backward();
  EXPECT_EQ(z.grad().to_vector(), (std::vector<float>{1, 1, 11, 10}));
}

TEST(Autograd, GradientThroughClone) {
  Tensor x = leaf({3}, 22);
  Tensor c = x.clone();
  EXPECT_TRUE(c.requires_grad());
  EXPECT_EQ(c.impl()->grad_fn->name, "clone");
  sum(mul(c, Tensor::from_vector(std::vector<float>{1, 2, 3}, {3}))).backward();
  EXPECT_EQ(x.grad().to_vector(), (std::vector<float>{1, 2, 3}));
}

// ---- memory: the tape -------------------------------------------------------------------------------------------------

struct Mlp {
  Tensor w1, b1, w2, b2, w3, b3;
  explicit Mlp(bool freeze_prefix) {
    Generator gen(99);
    w1 = Tensor::randn({64, 32}, gen, kCPU, 0.f, 0.2f), b1 = Tensor::zeros({64});
    w2 = Tensor::randn({64, 64}, gen, kCPU, 0.f, 0.1f), b2 = Tensor::zeros({64});
    w3 = Tensor::randn({10, 64}, gen, kCPU, 0.f, 0.1f), b3 = Tensor::zeros({10});
    for (Tensor* p : {&w1, &b1, &w2, &b2}) p->set_requires_grad(!freeze_prefix);
    for (Tensor* p : {&w3, &b3}) p->set_requires_grad(true);
  }
  std::vector<Tensor*> params() { return {&w1, &b1, &w2, &b2, &w3, &b3}; }
  Tensor features(const Tensor& x) const { return relu(linear(relu(linear(x, w1, b1)), w2, b2)); }
  Tensor loss(const Tensor& x, const Tensor& labels) const {
    return softmax_cross_entropy(linear(features(x), w3, b3), labels);
  }
};

constexpr std::int64_t kBatch = 50;
Tensor batch_input() {
  Generator gen(5);
  return Tensor::randn({kBatch, 32}, gen);
}
Tensor batch_labels() {
  std::vector<std::int32_t> labels(kBatch);
  for (std::int64_t i = 0; i < kBatch; ++i) labels[static_cast<std::size_t>(i)] = static_cast<std::int32_t>(i % 10);
  return Tensor::from_vector(labels, {kBatch});
}

TEST(Autograd, TapeAndSavedTensorsFreedAfterBackward) {
  Mlp net(false);
  Tensor x = batch_input(), labels = batch_labels();
  std::int64_t param_bytes = 0;
  for (Tensor* p : net.params()) param_bytes += static_cast<std::int64_t>(p->nbytes());
  const std::int64_t base = cpu_bytes();
  {
    Tensor loss = net.loss(x, labels);
    // saved: two hidden activations (64 wide) and the softmax probabilities, at least
    EXPECT_GE(cpu_bytes() - base, 2 * kBatch * 64 * 4 + kBatch * 10 * 4);
    loss.backward();
    EXPECT_EQ(cpu_bytes(), base + param_bytes + 4) << "after backward: the gradients and the loss only";
  }
  EXPECT_EQ(cpu_bytes(), base + param_bytes) << "after dropping the loss: the gradients only";
  for (Tensor* p : net.params()) {
    ASSERT_TRUE(p->grad().defined());
    EXPECT_EQ(p->grad().shape(), p->shape());
  }
  for (Tensor* p : net.params()) p->zero_grad();
  EXPECT_EQ(cpu_bytes(), base);
}

std::int64_t bytes_held_after_forward(Mlp& net, const Tensor& x, const Tensor& labels, Tensor& loss) {
  const std::int64_t base = cpu_bytes();
  loss = net.loss(x, labels);
  return cpu_bytes() - base;
}

TEST(Autograd, FrozenPrefixSavesNothing) {
  Tensor x = batch_input(), labels = batch_labels();
  Mlp trainable(false), frozen(true);
  Tensor loss_t, loss_f;
  const std::int64_t held_trainable = bytes_held_after_forward(trainable, x, labels, loss_t);
  const std::int64_t held_frozen = bytes_held_after_forward(frozen, x, labels, loss_f);
  EXPECT_EQ(loss_t.item(), loss_f.item()) << "freezing changes no numbers";
  EXPECT_LT(held_frozen, held_trainable);
  // the first hidden activation (kBatch x 64) lives only inside the prefix: frozen, nobody keeps it
  EXPECT_GE(held_trainable - held_frozen, kBatch * 64 * 4);
  {
    Tensor feats = frozen.features(x);
    EXPECT_FALSE(feats.requires_grad());
    EXPECT_TRUE(feats.is_leaf()) << "a frozen prefix records no node";
  }
  loss_f.backward();
  for (Tensor* p : {&frozen.w1, &frozen.b1, &frozen.w2, &frozen.b2}) EXPECT_FALSE(p->grad().defined());
  EXPECT_TRUE(frozen.w3.grad().defined());
  EXPECT_TRUE(frozen.b3.grad().defined());
}

// ---- the `needs` mask ----------------------------------------------------------------------------------------------------

TEST(Autograd, FrozenWeightInLinearGetsNoGradientAndNoGemm) {
  Generator gen(23);
  Tensor x = Tensor::randn({4, 512}, gen).set_requires_grad(true);
  Tensor w = Tensor::randn({1024, 512}, gen);  // frozen: 2 MiB, so a dW would show in the peak
  Tensor loss = sum(linear(x, w));
  const std::int64_t before = cpu_bytes();
  reset_peak_memory(kCPU);
  loss.backward();
  EXPECT_TRUE(x.grad().defined());
  EXPECT_FALSE(w.grad().defined());
  EXPECT_LT(memory_stats(kCPU).peak_bytes - before, static_cast<std::int64_t>(w.nbytes()) / 2)
      << "the backward allocated a weight-sized buffer for a frozen weight";
  // dx = ones(4,1024) W
  Tensor expected = matmul(Tensor::ones({4, 1024}), w);
  EXPECT_TRUE(all_close(x.grad(), expected, 1e-3f, 1e-4f));
}

TEST(Autograd, FrozenInputInLinearGetsNoGradient) {
  Generator gen(24);
  Tensor x = Tensor::randn({1024, 512}, gen);  // a frozen feature map
  Tensor w = Tensor::randn({4, 512}, gen).set_requires_grad(true);
  Tensor b = Tensor::zeros({4}).set_requires_grad(true);
  Tensor loss = sum(linear(x, w, b));
  const std::int64_t before = cpu_bytes();
  reset_peak_memory(kCPU);
  loss.backward();
  EXPECT_TRUE(w.grad().defined());
  EXPECT_TRUE(b.grad().defined());
  EXPECT_FALSE(x.grad().defined());
  EXPECT_LT(memory_stats(kCPU).peak_bytes - before, static_cast<std::int64_t>(x.nbytes()) / 2)
      << "the backward allocated an input-sized buffer for a frozen input";
  EXPECT_EQ(b.grad().to_vector(), std::vector<float>(4, 1024.f));
}

TEST(Autograd, FrozenOperandOfMatmulGetsNoGradient) {
  Generator gen(25);
  Tensor a = Tensor::randn({3, 4}, gen).set_requires_grad(true);
  Tensor b = Tensor::randn({4, 512 * 64}, gen);
  Tensor loss = sum(matmul(a, b));
  const std::int64_t before = cpu_bytes();
  reset_peak_memory(kCPU);
  loss.backward();
  EXPECT_TRUE(a.grad().defined());
  EXPECT_FALSE(b.grad().defined());
  // the (3, 32768) dout is unavoidable; a dB of b's size on top of it is not
  EXPECT_LT(memory_stats(kCPU).peak_bytes - before, 3 * 512 * 64 * 4 + static_cast<std::int64_t>(b.nbytes()) / 2);
}

// A graph is a chain of shared_ptrs: through each node's inputs (add) and through the tensors its backward closure
// saved (mul). 300,000 nodes would overflow the stack if each node's destruction destroyed the next one
// inside it (it did, before Node::~Node became iterative: a segfault at 200,000 adds); backward walks such a chain
// without recursion too. (1.000001 rounds to 1 + 8 * 2^-23 in float32.)
TEST(Autograd, AGraphOf300000NodesIsDifferentiatedAndDestroyedWithoutDeepRecursion) {
  Tensor a = Tensor::ones({4}), b = Tensor::full({4}, 1.000001f);
  a.set_requires_grad(true);
  constexpr int kNodes = 300000;
  {
    Tensor c = a;
    for (int i = 0; i < kNodes; ++i) c = (i % 2) ? add(c, b) : mul(c, b);
    sum(c).backward();
  }  // the whole graph goes here
  const double expected = std::pow(static_cast<double>(1.000001f), kNodes / 2);
  EXPECT_NEAR(a.grad().data<float>()[0], expected, 1e-3 * expected);
  Tensor d = a;
  for (int i = 0; i < kNodes; ++i) d = (i % 2) ? add(d, b) : mul(d, b);
  d = Tensor();  // and a graph that never ran backward
  SUCCEED();
}

}  // namespace
}  // namespace graft
