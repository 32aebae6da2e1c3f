// The setup the training-loop tests share (tests/test_trainer*.cpp, tests/test_run_log.cpp): a learnable synthetic
// dataset (Bands), small networks, loader and fit options, and Pipeline - one complete training setup, rebuilt
// identically for straight and interrupted runs.
#pragma once
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <csignal>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>

#include "core/error.h"
#include "core/lr_schedule.h"
#include "core/ops.h"
#include "io/checkpoint.h"
#include "io/temporary_file.h"
#include "layers/basic.h"
#include "layers/batch_norm.h"
#include "layers/conv2d.h"
#include "layers/linear.h"
#include "layers/sequential.h"
#include "models/zoo.h"
#include "tests/check.h"
#include "train/class_weights.h"
#include "train/feature_cache.h"
#include "train/run_lock.h"
#include "train/run_log.h"
#include "train/plot.h"
#include "train/progress.h"
#include "train/trainer.h"

namespace graft::trainer_test {

namespace fs = std::filesystem;

inline std::string temp_dir(const std::string& name) {
  fs::path dir = fs::temp_directory_path() / ("graft_trainer_" + std::to_string(::getpid())) / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir.string();
}

// Class c: a bright band of rows at c's position over noise that depends on (seed, index): learnable in a few
// steps, different for every example.
class Bands : public Dataset {
 public:
  Bands(int per_class, int classes, int size, std::uint64_t seed)
      : n_(per_class * classes), classes_(classes), size_(size), seed_(seed) {
    for (int c = 0; c < classes; ++c) names_.push_back("class" + std::to_string(c));
  }
  std::int64_t size() const override { return n_; }
  int label(std::int64_t i) const override { return static_cast<int>(i % classes_); }
  const std::vector<std::string>& class_names() const override { return names_; }
  std::string describe() const override { return "bands (" + std::to_string(n_) + " images)"; }
  Example get(std::int64_t i) const override {
    Example e{size_, size_, 3, {}, label(i)};
    std::uint64_t h = seed_ * 1000003 + static_cast<std::uint64_t>(i) * 7919;
    int band = size_ / classes_;
    for (int y = 0; y < size_; ++y)
      for (int x = 0; x < size_ * 3; ++x) {
        h = h * 6364136223846793005ull + 1442695040888963407ull;
        int noise = static_cast<int>(h >> 58);  // 0..63
        bool lit = y / band == e.label;
        e.pixels.push_back(static_cast<std::uint8_t>((lit ? 150 : 40) + noise));
      }
    return e;
  }

 private:
  int n_, classes_, size_;
  std::uint64_t seed_;
  std::vector<std::string> names_;
};

// Bands(8, 3, 8, 1) (24 examples) whose examples first..last cannot be read: get() throws for them, as a damaged file
// does.
class BandsWithUnreadable : public Bands {
 public:
  BandsWithUnreadable(std::int64_t first, std::int64_t last) : Bands(8, 3, 8, 1), first_(first), last_(last) {}
  Example get(std::int64_t i) const override {
    GRAFT_CHECK(i < first_ || i > last_, "example ", i, " is unreadable");
    return Bands::get(i);
  }

 private:
  std::int64_t first_, last_;
};

inline LoaderOptions loader_options(int batch, bool shuffle, std::uint64_t seed = 7) {
  LoaderOptions o;
  o.batch_size = batch;
  o.shuffle = shuffle;
  o.seed = seed;
  o.workers = 1;
  o.transform.size = 8;
  o.transform.exact_resize = true;
  return o;
}

// conv-BN-ReLU-pool, optional dropout, linear head: "6" (with dropout) or "5".
inline std::shared_ptr<Sequential> small_net(std::uint64_t seed, bool with_dropout, int classes = 3) {
  Generator gen(seed);
  auto net = std::make_shared<Sequential>();
  net->push_back(std::make_shared<Conv2d>(
      Conv2dConfig{.in_channels = 3, .out_channels = 4, .kernel_h = 3, .kernel_w = 3, .stride = 1, .padding = 1}, gen));
  net->push_back(std::make_shared<BatchNorm2d>(4));
  net->push_back(std::make_shared<ReLU>());
  net->push_back(std::make_shared<MaxPool2d>(2, 2));
  net->push_back(std::make_shared<Flatten>());
  if (with_dropout) net->push_back(std::make_shared<Dropout>(0.3f, seed + 11));
  net->push_back(std::make_shared<Linear>(4 * 4 * 4, classes, true, gen));
  return net;
}

inline std::map<std::string, std::vector<float>> values(const Module& m) {
  std::map<std::string, std::vector<float>> out;
  for (auto& [name, t] : m.state()) out[name] = t.to_vector();
  return out;
}

inline TrainOptions quiet(const std::string& dir, int epochs) {
  TrainOptions o;
  o.epochs = epochs;
  o.out_dir = dir;
  o.progress = false;
  o.checkpoint.arch = "small_net";
  o.checkpoint.num_classes = 3;
  return o;
}

// One complete training setup, rebuilt identically for straight and interrupted runs.
struct Pipeline {
  explicit Pipeline(std::uint64_t net_seed = 3) : net(small_net(net_seed, true)) {}
  std::shared_ptr<Sequential> net;
  DatasetPtr data = std::make_shared<Bands>(8, 3, 8, 1);
  DatasetPtr val_data = std::make_shared<Bands>(3, 3, 8, 2);
  Loader train{data, loader_options(5, true)};  // 24 images: batches of 5,5,5,5,4
  Loader val{val_data, loader_options(4, false)};
  SGD opt{net->parameters(), SGDOptions{.lr = 0.05f, .momentum = 0.9f, .weight_decay = 1e-4f}};
  CosineWithWarmup schedule{opt, 3, 15};
  TrainResult fit(TrainOptions o) { return graft::fit(*net, opt, train, &val, o, &schedule); }
};
// conv-ReLU-pool-linear: nothing depends on the batch's other examples (no BatchNorm, no dropout).
inline std::shared_ptr<Sequential> per_example_net(std::uint64_t seed) {
  Generator gen(seed);
  auto net = std::make_shared<Sequential>();
  net->push_back(std::make_shared<Conv2d>(
      Conv2dConfig{.in_channels = 3, .out_channels = 4, .kernel_h = 3, .kernel_w = 3, .stride = 1, .padding = 1}, gen));
  net->push_back(std::make_shared<ReLU>());
  net->push_back(std::make_shared<MaxPool2d>(2, 2));
  net->push_back(std::make_shared<Flatten>());
  net->push_back(std::make_shared<Linear>(4 * 4 * 4, 3, true, gen));
  return net;
}
inline std::string file_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

}  // namespace graft::trainer_test
