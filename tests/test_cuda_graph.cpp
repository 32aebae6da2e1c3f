// CUDA graphs (kernels/cuda_graph.h): a captured step replays bitwise the same as running it eagerly (inference
// and SGD training of ResNet-18), and the steps a replay would get wrong are refused at capture with a clear
// error, after which the engine stays usable. Label `gpu`; skips without a device.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/ops.h"
#include "core/optim.h"
#include "layers/basic.h"
#include "models/zoo.h"
#include "tests/check.h"
#if GRAFT_HAS_CUDA
#include "kernels/cuda_device.h"
#include "kernels/cuda_graph.h"
#endif

namespace graft {
namespace {

using testing::bitwise_equal;

#if GRAFT_HAS_CUDA

Tensor batch(int index) {
  Generator data(200 + static_cast<std::uint64_t>(index));
  return Tensor::randn({4, 48, 48, 3}, data, kCUDA);
}

// ResNet-18 for 10 classes on the GPU in eval mode, with cuDNN's algorithm search done for batch(i)'s shape.
std::shared_ptr<Module> warm_eval_resnet18() {
  auto model = make_model("resnet18", {.num_classes = 10, .seed = 3});
  model->to(kCUDA);
  model->eval();
  NoGradGuard no_grad;
  (*model)(batch(0));
  return model;
}

// Three replays on new inputs (copied into `input`, which the graph reads) each leave in `output` bitwise what the
// model computes eagerly for that input.
void expect_replays_equal_eager(cuda::Graph& graph, Module& model, Tensor& input, const Tensor& output) {
  for (int i = 1; i <= 3; ++i) {
    input.copy_from(batch(i));
    graph.replay();
    const std::vector<float> replayed = output.to_vector();
    EXPECT_TRUE(bitwise_equal(replayed, model(batch(i)).to_vector())) << "replay " << i;
  }
}

#endif

TEST(CudaGraph, InferenceReplaysEqualEagerRunsBitwise) {
  GRAFT_REQUIRE_CUDA();
#if GRAFT_HAS_CUDA
  auto model = warm_eval_resnet18();
  NoGradGuard no_grad;
  Tensor input = batch(0).clone();
  Tensor output;
  cuda::Graph graph = cuda::Graph::capture([&] { output = (*model)(input); });
  EXPECT_GT(graph.nodes(), 20);
  expect_replays_equal_eager(graph, *model, input, output);
#endif
}

// The same step writing its logits into a tensor allocated before the capture: the graph then keeps no memory
// past a replay, so no address is both a kept output and a graph intermediate. This is the variant to run under
// compute-sanitizer memcheck (kernels/cuda_graph.h): if memcheck's reports on the test above come from that
// address reuse, this one is clean; if it flags this one too, a kernel really writes out of bounds.
TEST(CudaGraph, InferenceIntoAnOutputAllocatedBeforeCaptureReplaysBitwise) {
  GRAFT_REQUIRE_CUDA();
#if GRAFT_HAS_CUDA
  auto model = warm_eval_resnet18();
  NoGradGuard no_grad;
  Tensor input = batch(0).clone();
  Tensor output = (*model)(input).clone();  // allocated before the capture
  cuda::Graph graph = cuda::Graph::capture([&] { output.copy_from((*model)(input)); });
  expect_replays_equal_eager(graph, *model, input, output);
#endif
}

// The smallest step that keeps memory across replays: a 1 MiB intermediate (x + 1, summed, freed inside the step)
// and a kept 4-byte output allocated after that free, so the graph may place it inside the freed range (the address
// reuse kernels/cuda_graph.h describes). Each replay must see the input refilled before it. The values are small
// integers, so every sum is exact. Also the probe for memcheck's reports on the first test above
// (bench/RESULTS.md, 2026-11-27): under compute-sanitizer, flagged writes here, by an add and a sum into memory they
// own, would show that memcheck loses track of a graph's memory once the graph keeps an allocation.
TEST(CudaGraph, AStepKeepingASmallOutputReplaysWithItsIntermediatesFreed) {
  GRAFT_REQUIRE_CUDA();
#if GRAFT_HAS_CUDA
  constexpr std::int64_t n = 256 * 1024;
  Tensor input = Tensor::full({n}, 0.f, kCUDA);
  sum(add(input, 1.f));  // eager first: any workspace sizes are settled outside the capture
  Tensor output;
  cuda::Graph graph = cuda::Graph::capture([&] {
    const Tensor total = sum(add(input, 1.f));  // the 1 MiB x + 1 is freed at the end of this statement
    output = add(total, 0.f);                   // kept: allocated after that free
  });
  EXPECT_EQ(output.item(), static_cast<float>(n));
  for (int i = 1; i <= 3; ++i) {
    input.copy_from(Tensor::full({n}, static_cast<float>(i), kCUDA));
    graph.replay();
    EXPECT_EQ(output.item(), static_cast<float>(n * (i + 1))) << "replay " << i;
  }
#endif
}

// The graph's memory (kernels/cuda_graph.h) lives until the Graph is destroyed and the last tensor the step kept is
// freed, and nothing else is placed in it meanwhile: a kept output freed by the caller is not handed to new tensors
// that a replay would then overwrite. Device-wide free memory (cudaMemGetInfo) shows when the segments go back.
TEST(CudaGraph, ItsMemoryLivesUntilTheGraphAndItsKeptTensorsAreGone) {
  GRAFT_REQUIRE_CUDA();
#if GRAFT_HAS_CUDA
  constexpr std::int64_t n = 16 * 1024 * 1024;  // a 64 MiB intermediate
  auto free_mib = [] {
    cuda::synchronize();
    std::size_t free_bytes = 0, total = 0;
    GRAFT_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total));
    return static_cast<double>(free_bytes) / (1 << 20);
  };
  Tensor input = Tensor::full({n}, 1.f, kCUDA);
  {  // eager first: the stream-ordered pool keeps this memory from here on, so only the graph's changes free memory
    sum(add(input, 1.f));
    Tensor refill = Tensor::full({n}, 5.f, kCUDA);
    std::vector<Tensor> small;
    for (int i = 0; i < 8; ++i) small.push_back(Tensor::full({1024}, 0.f, kCUDA));
  }
  const double before = free_mib();
  Tensor output;
  std::optional<cuda::Graph> graph;
  graph.emplace(cuda::Graph::capture([&] { output = add(sum(add(input, 1.f)), 0.f); }));
  const double graph_mib = static_cast<double>(graph->memory_bytes()) / (1 << 20);
  EXPECT_GE(graph_mib, 64.0);
  EXPECT_LE(graph_mib, 72.0) << "the output and the sum's workspace fit beside the intermediate, or in its place";
  EXPECT_NEAR(free_mib(), before - graph_mib, 4.0) << "the graph's segments are device memory of their own";
  output = Tensor();  // the graph still replays into the freed output's block
  std::vector<Tensor> newer;
  for (int i = 0; i < 8; ++i) newer.push_back(Tensor::full({1024}, static_cast<float>(i), kCUDA));
  input.copy_from(Tensor::full({n}, 5.f, kCUDA));
  graph->replay();
  for (int i = 0; i < 8; ++i) EXPECT_EQ(sum(newer[i]).item(), 1024.f * i) << "a replay overwrote tensor " << i;
  newer.clear();
  Tensor kept;
  graph.emplace(cuda::Graph::capture([&] { kept = add(sum(add(input, 1.f)), 0.f); }));  // the first graph goes
  EXPECT_NEAR(free_mib(), before - graph_mib, 4.0) << "the first graph's memory went back when it was destroyed";
  graph.reset();
  EXPECT_NEAR(free_mib(), before - graph_mib, 4.0) << "the kept output holds the second graph's memory";
  EXPECT_EQ(kept.item(), sum(add(input, 1.f)).item()) << "the kept output holds the replay's result";
  kept = Tensor();
  EXPECT_NEAR(free_mib(), before, 4.0) << "all of it back once the kept output is freed";
#endif
}

// In deterministic mode: cuDNN's fastest backward algorithms add with atomics, so two eager runs differ too (the
// H100 run of 2026-11-26 without this mode: 102 tensors differed, while the forward-only test above was exact).
TEST(CudaGraph, TrainingStepReplaysEqualEagerStepsBitwise) {
  GRAFT_REQUIRE_CUDA();
#if GRAFT_HAS_CUDA
  testing::DeterministicMode mode;
  const std::vector<std::int32_t> y{1, 3, 5, 7};
  auto run = [&](bool use_graph) {
    auto model = make_model("resnet18", {.num_classes = 10, .seed = 4});
    model->to(kCUDA);
    model->train();
    SGD opt(model->trainable_parameters(), {.lr = 0.02f, .momentum = 0.9f, .weight_decay = 1e-4f});
    Tensor input = batch(0).clone(), labels = Tensor::from_vector(y, {4}, kCUDA), loss_value;
    auto step = [&] {
      Tensor loss = softmax_cross_entropy((*model)(input), labels);
      loss.backward();
      opt.step();
      opt.zero_grad();
      loss_value = loss.detach();
    };
    std::vector<float> losses;
    step();  // eager first step: algorithm search, momentum buffers
    losses.push_back(loss_value.item());
    loss_value = Tensor();  // the captured step must not free memory allocated before it
    std::optional<cuda::Graph> graph;
    for (int i = 1; i < 5; ++i) {
      input.copy_from(batch(i));
      if (!use_graph) step();
      else if (!graph) graph.emplace(cuda::Graph::capture(step));  // capture runs the step once
      else graph->replay();
      losses.push_back(loss_value.item());
    }
    std::map<std::string, std::vector<float>> state;
    for (const auto& [name, t] : model->state()) state[name] = t.to_vector();
    return std::make_pair(losses, state);
  };
  const auto eager = run(false), replayed = run(true);
  EXPECT_TRUE(bitwise_equal(eager.first, replayed.first)) << eager.first[4] << " vs " << replayed.first[4];
  EXPECT_NE(eager.first[1], eager.first[4]) << "the steps train";
  int differing = 0;
  for (const auto& [name, values] : eager.second)
    if (!bitwise_equal(values, replayed.second.at(name))) ADD_FAILURE() << name << " differs", ++differing;
  EXPECT_EQ(differing, 0) << "weights, momentum-trained, and batch-norm running statistics";
#endif
}

TEST(CudaGraph, RefusesWhatAReplayWouldGetWrongAndStaysUsable) {
  GRAFT_REQUIRE_CUDA();
#if GRAFT_HAS_CUDA
  Tensor x = batch(0);
  // Training-mode dropout: its random offsets are taken on the host.
  Dropout dropout(0.5f);
  dropout.train();
  std::string why = testing::error_message([&] { cuda::Graph::capture([&] { dropout(x); }); });
  EXPECT_NE(why.find("dropout"), std::string::npos) << why;
  EXPECT_FALSE(cuda::capturing());
  // A convolution shape not seen before: cuDNN's algorithm search cannot be recorded. (One eager convolution of
  // another shape first: under ctest this is the process's first convolution, whose cuDNN handle cannot be created
  // inside a capture either - a refusal of its own, with another message.)
  Generator gen(9);
  conv2d(x, Tensor::randn({5, 1, 1, 3}, gen, kCUDA), std::nullopt);
  Tensor w = Tensor::randn({5, 3, 3, 3}, gen, kCUDA);
  why = testing::error_message(
      [&] { cuda::Graph::capture([&] { conv2d(x, w, std::nullopt, {.pad_h = 1, .pad_w = 1}); }); });
  EXPECT_NE(why.find("first time inside a CUDA graph capture"), std::string::npos) << why;
  // Freeing memory allocated before the capture.
  Tensor older = x.clone();
  why = testing::error_message([&] { cuda::Graph::capture([&] { older = Tensor(); }); });
  EXPECT_NE(why.find("freed 1 tensor"), std::string::npos) << why;
  // Adam's bias corrections change every step: its step refuses to be captured.
  Tensor p = x.clone();
  p.set_requires_grad(true);
  sum(mul(p, p)).backward();
  Adam adam(std::vector<Tensor>{p}, {.lr = 1e-3f});
  why = testing::error_message([&] { cuda::Graph::capture([&] { adam.step(); }); });
  EXPECT_NE(why.find("bias corrections"), std::string::npos) << why;
  // Still usable: the same convolution now runs eagerly, then captures and replays.
  Tensor eager = conv2d(x, w, std::nullopt, {.pad_h = 1, .pad_w = 1});
  Tensor out;
  cuda::Graph graph = cuda::Graph::capture([&] { out = conv2d(x, w, std::nullopt, {.pad_h = 1, .pad_w = 1}); });
  graph.replay();
  EXPECT_TRUE(bitwise_equal(out.to_vector(), eager.to_vector()));
#endif
}

}  // namespace
}  // namespace graft
