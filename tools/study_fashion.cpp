// graft_study: graft's main job, end to end, on real data (Fashion-MNIST, from Debian's dataset-fashion-mnist).
//
//   1. Pretrain a ResNet-18 on Fashion-MNIST classes 0-4 (T-shirt/top, Trouser, Pullover, Dress, Coat) and save it
//      as an HDF5 checkpoint, as if it were someone's published backbone.
//   2. Learn the five other classes (Sandal, Shirt, Sneaker, Bag, Ankle boot) from only 20 labelled images each,
//      three ways:
//        scratch     a fresh ResNet-18, every parameter trained;
//        frozen      the pretrained backbone frozen (BatchNorm included), a new head trained on cached features;
//        fine-tune   the pretrained backbone with its last stage (layer4) unfrozen at a 10x smaller learning rate
//                    than the new head; BatchNorm statistics stay frozen (20 images per class are too few).
//   3. Print a table: test accuracy on classes 5-9 (all 5,000 test images), training time, peak memory.
// Seeds are fixed: the same machine prints the same accuracies on every run.
//   graft_study [--device auto|cpu|cuda] [--out DIR] [--shots 20] [--pretrain-per-class 3000] [--pretrain-epochs 2]
//               [--fewshot-epochs 40] [--test-per-class 0] [--seed 7]
#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "core/allocator.h"
#include "core/error.h"
#include "core/lr_schedule.h"
#include "core/optim.h"
#include "io/checkpoint.h"
#include "io/dataset.h"
#include "io/loader.h"
#include "layers/linear.h"
#include "models/zoo.h"
#include "train/trainer.h"
#include "tools/cli_common.h"

namespace graft {
namespace {

struct StudyArgs {
  std::string device = "auto", out = "runs/fashion_study", data = kFashionMnistDir;
  int shots = 20, pretrain_per_class = 3000, pretrain_epochs = 2, fewshot_epochs = 40, size = 32;
  int test_per_class = 0;  // 0: every test image (the study); > 0: a smoke run's subset
  std::uint64_t seed = 7;
};

LoaderOptions loader_options(const StudyArgs& a, Device device, int batch, bool shuffle) {
  LoaderOptions o;
  o.batch_size = batch;
  o.shuffle = shuffle;
  o.seed = a.seed;
  o.workers = 2;
  o.device = device;
  o.transform.size = a.size;
  o.transform.exact_resize = true;  // 28x28 -> 32x32, gray -> 3 channels, torchvision normalisation
  o.transform.normalize = Preprocess::Torch;
  return o;
}

struct WayResult {
  std::string name;
  std::int64_t trainable = 0;
  double top1 = 0, seconds = 0, peak_mb = 0;
  bool cached = false;
};

std::int64_t count_trainable(const Module& model) {
  std::int64_t n = 0;
  for (const Tensor& p : model.trainable_parameters()) n += p.numel();
  return n;
}

// Trains `model` on the few-shot set with `optimizer` and evaluates on the test set.
WayResult run_way(const std::string& name, Module& model, Optimizer& optimizer, const DatasetPtr& few, const DatasetPtr& test,
                  const StudyArgs& a, Device device) {
  WayResult r{name, count_trainable(model)};
  Loader train(few, loader_options(a, device, 20, true));
  Loader eval(test, loader_options(a, device, 250, false));
  CosineWithWarmup schedule(optimizer, 0, a.fewshot_epochs * train.batches_per_epoch());
  TrainOptions options;
  options.epochs = a.fewshot_epochs;
  options.progress = false;
  reset_peak_memory(device);
  auto start = std::chrono::steady_clock::now();
  TrainResult tr = fit(model, optimizer, train, nullptr, options, &schedule);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  r.peak_mb = memory_stats(device).peak_bytes / 1048576.0;
  r.cached = tr.used_feature_cache;
  r.top1 = evaluate(model, eval).top1;
  std::printf("  %-10s trained in %.1f s (%s), test top-1 %.2f%%\n", name.c_str(), r.seconds,
              r.cached ? "head on cached features" : "full forward each step", 100 * r.top1);
  std::fflush(stdout);
  return r;
}

std::shared_ptr<Module> new_resnet18(Device device, std::uint64_t seed) {
  ModelOptions mo;
  mo.num_classes = 5;
  mo.seed = seed;
  auto model = make_model("resnet18", mo);
  model->to(device);
  return model;
}

// A pretrained backbone from the checkpoint with a fresh 5-way head.
std::shared_ptr<Module> pretrained_with_new_head(const std::string& path, Device device, std::uint64_t seed) {
  auto model = new_resnet18(device, seed);
  load_checkpoint(path, *model, nullptr);
  Generator gen(seed + 100);
  auto head = std::make_shared<Linear>(512, 5, true, gen);
  head->to(device);
  replace_head(*model, head);
  return model;
}

int study(const StudyArgs& a) {
  auto t0 = std::chrono::steady_clock::now();
  Device device = cli::resolve_device(a.device);
  std::filesystem::create_directories(a.out);
  std::printf("graft_study: transfer learning on Fashion-MNIST (%s), device %s\n", a.data.c_str(), device.str().c_str());

  DatasetPtr train_all = open_fashion_mnist(true, a.data), test_all = open_fashion_mnist(false, a.data);
  DatasetPtr source_train = sample_per_class(select_classes(train_all, {0, 1, 2, 3, 4}), a.pretrain_per_class, a.seed);
  if (a.test_per_class > 0) test_all = sample_per_class(test_all, a.test_per_class, a.seed);
  DatasetPtr source_test = select_classes(test_all, {0, 1, 2, 3, 4});
  DatasetPtr target_few = sample_per_class(select_classes(train_all, {5, 6, 7, 8, 9}), a.shots, a.seed);
  DatasetPtr target_test = select_classes(test_all, {5, 6, 7, 8, 9});

  // 1. Pretraining on classes 0-4.
  std::printf("1. pretraining resnet18 on %s, %d epochs\n", source_train->describe().c_str(), a.pretrain_epochs);
  std::fflush(stdout);
  const std::string backbone = (std::filesystem::path(a.out) / "resnet18_fashion0-4.h5").string();
  {
    auto model = new_resnet18(device, a.seed);
    SGD optimizer(model->trainable_parameters(), SGDOptions{.lr = 0.05f, .momentum = 0.9f, .weight_decay = 5e-4f});
    Loader train(source_train, loader_options(a, device, 64, true));
    Loader val(source_test, loader_options(a, device, 250, false));
    CosineWithWarmup schedule(optimizer, train.batches_per_epoch() / 4, a.pretrain_epochs * train.batches_per_epoch());
    TrainOptions options;
    options.epochs = a.pretrain_epochs;
    options.progress = true;
    auto start = std::chrono::steady_clock::now();
    TrainResult tr = fit(*model, optimizer, train, &val, options, &schedule);
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("   pretrained in %.1f s: top-1 %.2f%% on the 5,000 test images of classes 0-4\n", seconds,
                100 * tr.last_validation.top1);
    CheckpointMeta meta;
    meta.arch = "resnet18";
    meta.num_classes = 5;
    save_checkpoint(backbone, *model, nullptr, meta);
    std::printf("   saved %s\n", backbone.c_str());
  }

  // 2. Classes 5-9 from `shots` images each, three ways.
  std::printf("2. learning classes 5-9 from %s, %d epochs each way\n", target_few->describe().c_str(), a.fewshot_epochs);
  std::vector<WayResult> results;
  {
    auto model = new_resnet18(device, a.seed + 1);
    Adam optimizer(model->trainable_parameters(), AdamOptions{.lr = 1e-3f});
    results.push_back(run_way("scratch", *model, optimizer, target_few, target_test, a, device));
  }
  {
    auto model = pretrained_with_new_head(backbone, device, a.seed);
    model->freeze("*");
    model->unfreeze(head_path(*model));
    freeze_batch_norm(*model);
    Adam optimizer(model->trainable_parameters(), AdamOptions{.lr = 1e-2f});
    results.push_back(run_way("frozen", *model, optimizer, target_few, target_test, a, device));
  }
  {
    auto model = pretrained_with_new_head(backbone, device, a.seed);
    model->freeze("*");
    model->unfreeze("layer4");
    model->unfreeze(head_path(*model));
    freeze_batch_norm(*model);
    std::vector<Tensor> stage, head;
    for (auto& [name, p] : model->named_parameters()) {
      if (!p.requires_grad()) continue;
      (name.rfind("layer4.", 0) == 0 ? stage : head).push_back(p);
    }
    Adam optimizer({ParamGroup{stage, 1e-3f, 0.f, "layer4"}, ParamGroup{head, 1e-2f, 0.f, "head"}}, AdamOptions{});
    results.push_back(run_way("fine-tune", *model, optimizer, target_few, target_test, a, device));
  }

  // 3. The table.
  std::printf("\nFashion-MNIST classes 5-9, %d labelled images per class, test on %lld test images of those classes\n",
              a.shots, static_cast<long long>(target_test->size()));
  std::printf("%-10s %14s %12s %12s %14s\n", "way", "trainable", "test top-1", "train time", "peak memory");
  for (const auto& r : results)
    std::printf("%-10s %14lld %11.2f%% %11.1fs %11.0f MB\n", r.name.c_str(), static_cast<long long>(r.trainable),
                100 * r.top1, r.seconds, r.peak_mb);
  std::printf("total %.0f s on %s\n", std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(),
              device.str().c_str());
  return 0;
}

}  // namespace
}  // namespace graft

int main(int argc, char** argv) {
  graft::StudyArgs a;
  CLI::App app{"graft_study: pretrain on Fashion-MNIST 0-4, learn 5-9 from 20 images per class three ways"};
  app.add_option("--device", a.device, "auto, cpu or cuda")->capture_default_str();
  app.add_option("--out", a.out, "directory for the pretrained backbone (HDF5)")->capture_default_str();
  app.add_option("--data", a.data, "Fashion-MNIST directory (IDX files, raw or .gz)")->capture_default_str();
  app.add_option("--shots", a.shots, "labelled images per new class")->capture_default_str()->check(CLI::Range(1, 6000));
  app.add_option("--pretrain-per-class", a.pretrain_per_class, "pretraining images per class")
      ->capture_default_str()->check(CLI::Range(1, 6000));
  app.add_option("--pretrain-epochs", a.pretrain_epochs, "pretraining epochs")->capture_default_str()->check(CLI::Range(1, 1000));
  app.add_option("--fewshot-epochs", a.fewshot_epochs, "epochs of each few-shot way")->capture_default_str()->check(CLI::Range(1, 100000));
  app.add_option("--seed", a.seed, "seed of everything")->capture_default_str();
  app.add_option("--test-per-class", a.test_per_class, "test images per class (0: all; smaller for smoke runs)")
      ->capture_default_str()->check(CLI::Range(0, 1000));
  try {
    app.parse(argc, argv);
    return graft::study(a);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const graft::Error& e) {
    std::fprintf(stderr, "graft_study: %s\n", e.message().c_str());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "graft_study: %s\n", e.what());
    return 1;
  }
}
