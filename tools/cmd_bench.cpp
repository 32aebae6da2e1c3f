// graft bench --arch A --batch B --size S --mode infer|train|features --device cpu|cuda [--iters N] [--warmup W]
//             [--graph] [--profile]
// Prints one machine-readable line:
//   arch=resnet50 dialect=torchvision mode=train device=cpu threads=2 batch=8 size=224 iters=3 graph=0 ms_per_batch=...
//   images_per_s=... peak_mem_mb=... graph_mem_mb=... first_step_ms=... conv_algos=...   (all on one line;
//   graph_mem_mb is the device memory a --graph capture holds, 0.0 otherwise; first_step_ms is the first step's wall
//   time, where cuDNN's algorithm search for each new convolution shape happens; conv_algos is a fingerprint of the
//   algorithms that search chose, 8 hex digits, "-" on the CPU: two runs whose fingerprints differ ran different
//   convolution kernels)
// --graph times replays of the step captured once as a CUDA graph (kernels/cuda_graph.h); --profile prints the
// GPU's own time per kernel over the timed steps first (tools/kernel_profile.h), then the cuDNN algorithm chosen
// for every convolution.
// Inference runs in eval mode without grad; a train step is forward + softmax-cross-entropy + backward + SGD
// (momentum 0.9) on synthetic data; `features` is the same step with every parameter frozen except the classifier
// head (the feature-extraction recipe: backward stops at the head's input). The peak is graft's allocator peak on
// the device during the timed steps (with --graph: during the capture, whose allocations are the graph's memory).
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <optional>
#include <vector>

#include "core/allocator.h"
#include "core/autograd.h"
#include "core/error.h"
#include "kernels/cpu_parallel.h"
#include "kernels/gemm.h"
#include "core/ops.h"
#include "core/optim.h"
#include "core/rng.h"
#include "tools/cli_common.h"
#include "tools/kernel_profile.h"
#include "kernels/cuda_device.h"  // (conv_algorithms_report: "" in a CPU-only build)
#if GRAFT_HAS_CUDA
#include "kernels/cuda_graph.h"
#endif

namespace graft::cli {
namespace {

struct BenchArgs {
  ModelArgs model;
  int batch = 8, size = 224, iters = 5, warmup = 1;
  std::string mode = "infer", device = "cpu";
  bool profile = false;  // print the GPU kernels of the timed steps (tools/kernel_profile.h)
  bool graph = false;    // time replays of the step captured once as a CUDA graph (kernels/cuda_graph.h)
};

// FNV-1a of the cuDNN algorithm report (kernels/cuda_device.h conv_algorithms_report): "-" when it is empty.
std::string conv_algorithms_fingerprint() {
  const std::string report = cuda::conv_algorithms_report();
  if (report.empty()) return "-";
  std::uint32_t hash = 2166136261u;
  for (unsigned char ch : report) hash = (hash ^ ch) * 16777619u;
  char text[16];
  std::snprintf(text, sizeof text, "%08x", hash);
  return text;
}

void sync(Device d) {
#if GRAFT_HAS_CUDA
  if (d.is_cuda()) cuda::synchronize();
#endif
}


void run_bench(const BenchArgs& a) {
  GRAFT_CHECK(a.mode == "infer" || a.mode == "train" || a.mode == "features",
              "bench: --mode must be infer, train or features, got '", a.mode, "'");
  Device device = resolve_device(a.device);
  GRAFT_CHECK(!a.graph || device.is_cuda(), "bench: --graph captures a CUDA graph; it needs --device cuda");
  GRAFT_CHECK(!a.profile || device.is_cuda(), "bench: --profile records GPU kernels; it needs --device cuda");
  auto model = build_model(a.model);
  model->to(device);
  Generator gen(1);
  Tensor images = Tensor::randn({a.batch, a.size, a.size, 3}, gen, device);
  std::vector<std::int32_t> label_values(static_cast<std::size_t>(a.batch));
  for (int i = 0; i < a.batch; ++i) label_values[static_cast<std::size_t>(i)] = i % a.model.num_classes;
  Tensor labels = Tensor::from_vector(label_values, {a.batch}, device);

  bool train = a.mode != "infer";
  model->train(train);
  if (a.mode == "features") {
    model->freeze("*");
    model->unfreeze(head_path(*model) + ".*");
  }
  SGD optimizer(model->trainable_parameters(), SGDOptions{.lr = 1e-3f, .momentum = 0.9f});
  auto step = [&] {
    if (train) {
      Tensor loss = softmax_cross_entropy((*model)(images), labels);
      loss.backward();
      optimizer.step();
      optimizer.zero_grad();
    } else {
      NoGradGuard no_grad;
      (*model)(images);
    }
  };
  // The first step's wall time apart: cuDNN's algorithm search (or the engine search) for every new convolution
  // shape, and the first use of each kernel, happen there. With --warmup 0 it is the first timed step.
  double first_step_ms = 0;
  auto first_step = [&] {
    const auto start = std::chrono::steady_clock::now();
    step();
    sync(device);
    first_step_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  };
  if (a.warmup > 0 || a.graph) first_step();  // a new convolution shape cannot be captured: one step first
  for (int i = 1; i < a.warmup; ++i) step();
  sync(device);
  // The peak of the timed steps; with --graph, that of the capture, whose allocations become the graph's
  // memory (its replays allocate nothing through graft's allocator).
  reset_peak_memory(device);
  std::function<void()> timed = step;
  double graph_mem_mb = 0;  // the device memory a captured graph holds (its segments)
#if GRAFT_HAS_CUDA
  std::optional<cuda::Graph> graph;
  if (a.graph) {
    graph.emplace(cuda::Graph::capture(step));
    graph_mem_mb = graph->memory_bytes() / 1048576.0;
    std::fprintf(stderr, "bench: captured the step as a CUDA graph of %d nodes\n", graph->nodes());
    timed = [&] { graph->replay(); };
  }
#endif
  std::string no_profile;
  if (a.profile) {
    no_profile = kernel_profile_start();
    if (!no_profile.empty()) std::fprintf(stderr, "bench: no kernel profile: %s\n", no_profile.c_str());
  }
  std::vector<double> ms;
  for (int i = 0; i < a.iters; ++i) {
    auto start = std::chrono::steady_clock::now();
    timed();
    sync(device);
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
  }
  if (a.profile && no_profile.empty()) std::printf("%s", kernel_profile_report(a.iters, 30).c_str());
#if GRAFT_HAS_CUDA
  // Which cuDNN algorithm each convolution runs: the first thing to compare when conv kernels dominate the table.
  if (a.profile) std::printf("cuDNN convolution algorithms:\n%s", cuda::conv_algorithms_report().c_str());
#endif
  if (a.warmup == 0 && !a.graph) first_step_ms = ms.front();
  std::sort(ms.begin(), ms.end());
  double median = ms[ms.size() / 2];
  std::printf(
      "arch=%s dialect=%s mode=%s device=%s threads=%d batch=%d size=%d iters=%d graph=%d ms_per_batch=%.2f "
      "images_per_s=%.2f peak_mem_mb=%.1f graph_mem_mb=%.1f first_step_ms=%.1f conv_algos=%s\n",
      a.model.arch.c_str(), built_dialect(a.model).c_str(), a.mode.c_str(), device.str().c_str(), cpu_threads(), a.batch,
      a.size, a.iters,
      a.graph ? 1 : 0,
      median, a.batch * 1000.0 / median, memory_stats(device).peak_bytes / 1048576.0, graph_mem_mb, first_step_ms,
      device.is_cuda() ? conv_algorithms_fingerprint().c_str() : "-");
  if (device.is_cpu()) std::printf("cpu_gemm=%s\n", cpu_gemm_kernels().c_str());
}

}  // namespace

void register_bench(CLI::App& app) {
  auto* cmd = app.add_subcommand("bench", "time inference or a training step of a model on synthetic data");
  auto args = std::make_shared<BenchArgs>();
  add_model_options(*cmd, args->model);
  cmd->add_option("--batch", args->batch, "images per batch")->capture_default_str()->check(CLI::Range(1, 4096));
  cmd->add_option("--size", args->size, "image height and width")->capture_default_str()->check(CLI::Range(32, 4096));
  cmd->add_option("--mode", args->mode, "infer, train, or features (frozen backbone)")->capture_default_str()->check(CLI::IsMember({"infer", "train", "features"}));
  cmd->add_option("--device", args->device, "cpu, cuda or auto")->capture_default_str()->check(CLI::IsMember({"cpu", "cuda", "auto"}));
  cmd->add_option("--iters", args->iters, "timed steps (median reported)")->capture_default_str()->check(CLI::Range(1, 100000));
  cmd->add_option("--warmup", args->warmup, "untimed steps first")->capture_default_str()->check(CLI::Range(0, 1000));
  cmd->add_flag("--graph", args->graph,
                "capture the step once as a CUDA graph and time its replays (SGD at a fixed lr: the same step)");
  cmd->add_flag("--profile", args->profile, "print the GPU kernels of the timed steps by total time (needs libcupti)");
  cmd->callback([args] { run_bench(*args); });
}

}  // namespace graft::cli
