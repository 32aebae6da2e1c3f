// The training loop (train/trainer.h): learning and the run directory, exact resume after max_steps and after
// SIGINT, NaN detection with the last good checkpoint kept, labels out of range, the feature cache (same head as
// the uncached path, used only when it may be), evaluate's scores, and checkpoint writes that die or hit a full disk.
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

namespace graft {
namespace {

namespace fs = std::filesystem;
using testing::expect_error;

std::string temp_dir(const std::string& name) {
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

LoaderOptions loader_options(int batch, bool shuffle, std::uint64_t seed = 7) {
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
std::shared_ptr<Sequential> small_net(std::uint64_t seed, bool with_dropout, int classes = 3) {
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

std::map<std::string, std::vector<float>> values(const Module& m) {
  std::map<std::string, std::vector<float>> out;
  for (auto& [name, t] : m.state()) out[name] = t.to_vector();
  return out;
}

TrainOptions quiet(const std::string& dir, int epochs) {
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

TEST(Trainer, LearnsAndWritesTheRunDirectory) {
  std::string dir = temp_dir("learns");
  Pipeline run;
  TrainResult r = run.fit(quiet(dir, 4));
  EXPECT_EQ(r.epochs_done, 4);
  EXPECT_EQ(r.steps, 20);
  EXPECT_FALSE(r.used_feature_cache);  // the backbone trains
  ASSERT_EQ(r.epoch_train_loss.size(), 4u);
  EXPECT_LT(r.epoch_train_loss.back(), r.epoch_train_loss.front());
  EXPECT_GE(r.best_validation.top1, 0.9);
  EXPECT_EQ(r.last_validation.images, 9);
  EXPECT_DOUBLE_EQ(r.last_validation.top5, 1.0);  // 3 classes: always within the top 5
  for (const char* f : {"last.h5", "best.h5", "log.csv", "curves.png"}) {
    EXPECT_TRUE(fs::exists(dir + "/" + f)) << f;
    EXPECT_EQ(testing::temporaries_beside(dir + "/" + f), std::vector<std::string>{});  // each written and renamed
  }
  std::ifstream log(dir + "/log.csv");
  std::string line;
  std::vector<std::string> lines;
  while (std::getline(log, line)) lines.push_back(line);
  ASSERT_EQ(lines.size(), 5u);
  EXPECT_EQ(lines[0], "epoch,step,train_loss,train_top1,val_loss,val_top1,val_top5,lr,images_per_s,seconds");
  EXPECT_EQ(lines[4].substr(0, 5), "4,20,");
  CheckpointMeta last = read_checkpoint_meta(dir + "/last.h5");
  EXPECT_EQ(last.epoch, 4);
  EXPECT_EQ(last.step, 20);
  EXPECT_EQ(last.schedule_step, 20);
  EXPECT_EQ(read_checkpoint_meta(dir + "/best.h5").epoch, r.best_epoch);
  auto loaded = small_net(99, true);
  load_checkpoint(dir + "/last.h5", *loaded, nullptr);
  EXPECT_EQ(values(*loaded), values(*run.net));
  Example png = load_image(dir + "/curves.png");
  EXPECT_EQ(png.width, 960);
  EXPECT_EQ(png.height, 400);
}

TEST(Trainer, ResumeAfterMaxStepsIsBitExact) {
  Pipeline straight;
  TrainResult a = straight.fit(quiet(temp_dir("straight"), 3));
  for (std::int64_t stop : {2, 5, 7, 13}) {  // mid-epoch, at an epoch's end, mid-epoch later
    std::string dir = temp_dir("resume" + std::to_string(stop));
    {
      Pipeline first;
      TrainOptions o = quiet(dir, 3);
      o.max_steps = stop;
      TrainResult r = first.fit(o);
      EXPECT_EQ(r.steps, stop);
      EXPECT_FALSE(r.stopped_by_signal);
      EXPECT_EQ(read_checkpoint_meta(dir + "/last.h5").step, stop);
    }
    Pipeline second(1234);  // other initial weights: everything must come from last.h5
    TrainOptions o = quiet(dir, 3);
    o.resume = true;
    TrainResult b = second.fit(o);
    EXPECT_EQ(b.steps, 15);
    EXPECT_EQ(values(*second.net), values(*straight.net)) << "stopped at step " << stop;
    EXPECT_EQ(b.epoch_train_loss.back(), a.epoch_train_loss.back()) << "stopped at step " << stop;
    EXPECT_EQ(second.opt.param_groups()[0].lr, straight.opt.param_groups()[0].lr);
  }
}

// SIGINT at its default action for a test's duration: a process started with SIGINT ignored (a background job of a
// shell without job control) keeps ignoring it inside fit() (train/interrupt.h), so the tests that raise it set the
// default first, whatever the test runner was started with.
class DefaultSigint {
 public:
  DefaultSigint() {
    struct sigaction action {};
    action.sa_handler = SIG_DFL;
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, &saved_);
  }
  ~DefaultSigint() { sigaction(SIGINT, &saved_, nullptr); }

 private:
  struct sigaction saved_ {};
};

TEST(Trainer, SigintStopsAfterSavingAndResumes) {
  DefaultSigint default_sigint;
  Pipeline straight;
  straight.fit(quiet(temp_dir("sig_straight"), 2));
  std::string dir = temp_dir("sigint");
  struct sigaction before {};
  sigaction(SIGINT, nullptr, &before);
  {
    Pipeline first;
    TrainOptions o = quiet(dir, 2);
    o.on_step = [](const StepInfo& s) {
      if (s.step == 3) std::raise(SIGINT);  // as Ctrl-C during step 3
    };
    TrainResult r = first.fit(o);
    EXPECT_TRUE(r.stopped_by_signal);
    EXPECT_EQ(r.steps, 3);
    CheckpointMeta m = read_checkpoint_meta(dir + "/last.h5");
    EXPECT_EQ(m.step, 3);
    EXPECT_EQ(m.epoch, 0);
    EXPECT_EQ(m.train_state.at("batch_in_epoch"), "3");
  }
  struct sigaction after {};
  sigaction(SIGINT, nullptr, &after);
  EXPECT_EQ(after.sa_handler, before.sa_handler);  // fit put the previous handler back
  Pipeline second;
  TrainOptions o = quiet(dir, 2);
  o.resume = true;
  second.fit(o);
  EXPECT_EQ(values(*second.net), values(*straight.net));
}

TEST(Trainer, NanLossStopsNamingTheStepAndKeepsTheLastGoodCheckpoint) {
  std::string dir = temp_dir("nan");
  Pipeline run;
  TrainOptions o = quiet(dir, 3);
  Tensor weight = run.net->state()["6.weight"];
  o.on_step = [&](const StepInfo& s) {
    if (s.step == 7) {  // epoch 2, batch 2: the next step's loss is NaN
      std::vector<float> w = weight.to_vector();
      w[0] = NAN;
      weight.copy_from(Tensor::from_vector(w, weight.shape()));
    }
  };
  expect_error([&] { run.fit(o); }, {"finetune: loss is nan at epoch 2 step 8", "batch 3 of 5", "last.h5"});
  CheckpointMeta m = read_checkpoint_meta(dir + "/last.h5");
  EXPECT_EQ(m.epoch, 1);  // the end of epoch 1: nothing was saved after the fault
  EXPECT_EQ(m.step, 5);
  auto loaded = small_net(5, true);
  load_checkpoint(dir + "/last.h5", *loaded, nullptr);
  for (const auto& [name, v] : values(*loaded))
    for (float x : v) ASSERT_TRUE(std::isfinite(x)) << name;
}

class Scale : public Module {
 public:
  explicit Scale(float factor) : factor_(factor) {}
  Tensor forward(const Tensor& x) override { return mul(x, factor_); }
  std::string type_name() const override { return "Scale"; }

 private:
  float factor_;
};

TEST(Trainer, InfiniteGradientNormIsCaughtBeforeTheUpdate) {
  // Huge features into a zero head: the loss is ln 3 (finite) but the squared gradient norm overflows.
  for (bool clip : {false, true}) {
    auto net = std::make_shared<Sequential>();
    net->push_back(std::make_shared<Flatten>());
    net->push_back(std::make_shared<Scale>(1e37f));
    auto head = std::make_shared<Linear>(8 * 8 * 3, 3);
    net->push_back(head);
    for (auto& [name, p] : head->named_parameters()) p.copy_from(Tensor::zeros(p.shape()));
    Loader train(std::make_shared<Bands>(4, 3, 8, 1), loader_options(4, true));
    SGD opt(net->parameters(), SGDOptions{.lr = 0.1f});
    TrainOptions o = quiet("", 1);
    o.grad_check_every = clip ? 0 : 1;
    o.clip_grad_norm = clip ? 1.0f : 0.0f;
    expect_error([&] { fit(*net, opt, train, nullptr, o); },
                 {"finetune: the gradient norm is inf at epoch 1 step 1", "before applying it"});
    for (float v : head->named_parameters()[0].second.to_vector()) ASSERT_EQ(v, 0.0f);  // never updated
  }
}

TEST(Trainer, LabelSmoothingAndGradientClippingShapeTheStep) {
  // The first step's loss is softmax_cross_entropy with the smoothing, on what the same net computes for the first
  // batch; clipped at 1e-3, one plain SGD step moves the parameters by lr * 1e-3 at most.
  auto data = std::make_shared<Bands>(8, 3, 8, 1);
  Loader reference(data, loader_options(6, false));
  reference.start_epoch(0);
  std::optional<Batch> first = reference.next();
  ASSERT_TRUE(first.has_value());
  auto twin = small_net(3, false);
  twin->train();
  Tensor logits = (*twin)(first->images);
  const float smoothed = softmax_cross_entropy(logits, first->labels, 0.2f).item();
  ASSERT_NE(smoothed, softmax_cross_entropy(logits, first->labels).item());

  auto net = small_net(3, false);
  const auto before = values(*net);
  Loader train(data, loader_options(6, false));  // 24 images: 4 steps
  Loader val(std::make_shared<Bands>(2, 3, 8, 2), loader_options(6, false));
  SGD opt(net->parameters(), SGDOptions{.lr = 0.1f});
  TrainOptions o = quiet("", 1);
  o.label_smoothing = 0.2f;
  o.clip_grad_norm = 1e-3f;
  float first_loss = NAN;
  o.on_step = [&](const StepInfo& s) {
    if (s.step == 1) first_loss = static_cast<float>(s.loss);
  };
  TrainResult r = fit(*net, opt, train, &val, o);
  EXPECT_FLOAT_EQ(first_loss, smoothed);
  double moved = 0;
  for (auto& [name, p] : net->named_parameters()) {
    const std::vector<float> now = p.to_vector(), was = before.at(name);
    for (std::size_t i = 0; i < now.size(); ++i) moved += (double(now[i]) - was[i]) * (double(now[i]) - was[i]);
  }
  EXPECT_GT(std::sqrt(moved), 0.0);
  EXPECT_LE(std::sqrt(moved), 4 * 0.1 * 1e-3 * 1.001);  // 4 steps of at most lr * 1e-3 each
  // The validation loss is the plain cross-entropy (what evaluate gives the trained net), not the smoothed one.
  EXPECT_EQ(r.last_validation.loss, evaluate(*net, val).loss);

  o.label_smoothing = 1.f;
  expect_error([&] { fit(*net, opt, train, nullptr, o); }, {"fit: label smoothing is 1, must be in [0, 1)"});
  o.label_smoothing = 0.f;
  o.clip_grad_norm = -1.f;
  expect_error([&] { fit(*net, opt, train, nullptr, o); }, {"fit: clip_grad_norm is -1, must be >= 0"});
}

// conv-ReLU-pool-linear: nothing depends on the batch's other examples (no BatchNorm, no dropout).
std::shared_ptr<Sequential> per_example_net(std::uint64_t seed) {
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

TEST(Trainer, GradientAccumulationTakesTheStepOfTheLargerBatch) {
  // Batches of 4 accumulated in pairs take the steps that batches of 8 take: the same parameters after 2 epochs up to
  // float rounding (a step of the SUM of the pair's losses would be twice as large).
  auto data = std::make_shared<Bands>(8, 3, 8, 1);  // 24 images
  auto train_with = [&](int batch, int accumulate, TrainResult* result) {
    auto net = per_example_net(5);
    Loader train(data, loader_options(batch, true));
    SGD opt(net->parameters(), SGDOptions{.lr = 0.1f, .momentum = 0.9f});
    CosineWithWarmup schedule(opt, 1, 6);
    TrainOptions o = quiet("", 2);
    o.accumulate = accumulate;
    *result = fit(*net, opt, train, nullptr, o, &schedule);
    EXPECT_EQ(schedule.last_step(), result->steps);
    return values(*net);
  };
  TrainResult large, accumulated, single;
  const auto expected = train_with(8, 1, &large), got = train_with(4, 2, &accumulated);
  EXPECT_EQ(large.steps, 6);
  EXPECT_EQ(accumulated.steps, 6);
  for (const auto& [name, v] : expected) {
    ASSERT_EQ(got.at(name).size(), v.size()) << name;
    for (std::size_t i = 0; i < v.size(); ++i) EXPECT_NEAR(got.at(name)[i], v[i], 2e-5f) << name << "[" << i << "]";
  }
  const auto unchanged = train_with(4, 1, &single);  // and the accumulation changes the training at all
  EXPECT_EQ(single.steps, 12);
  EXPECT_NE(unchanged, got);
  // 6 batches of 4 per epoch in groups of 4: a full group and a short one of 2 (scaled by 1/2), 2 steps per epoch.
  TrainResult grouped;
  train_with(4, 4, &grouped);
  EXPECT_EQ(grouped.steps, 4);

  auto net = per_example_net(5);
  Loader train(data, loader_options(4, true));
  SGD opt(net->parameters(), SGDOptions{.lr = 0.1f});
  TrainOptions o = quiet("", 1);
  o.accumulate = 0;
  expect_error([&] { fit(*net, opt, train, nullptr, o); }, {"fit: accumulate is 0, must be >= 1"});
}

// torch 1.13's F.cross_entropy(logits, labels, weight=w, label_smoothing=s) and its gradient, for these values.
TEST(ClassWeights, WeightedCrossEntropyIsTorchs) {
  const Tensor labels = Tensor::from_vector(std::vector<std::int32_t>{0, 2, 3}, {3});
  const std::vector<float> weights = {0.5f, 2.f, 1.f, 3.f};
  struct Expected {
    float smoothing, loss;
    std::vector<float> grad;
  };
  const Expected cases[] = {
      {0.f, 2.1297667026519775f, {-0.08593741804361343f, 0.005617009941488504f, 0.011891210451722145f,
                                  0.06842919439077377f, 0.05381743982434273f, 0.059477463364601135f,
                                  -0.21135666966438293f, 0.09806176275014877f, 0.01295034121721983f,
                                  0.42885643243789673f, 0.12916907668113708f, -0.5709758996963501f}},
      {0.1f, 2.080878257751465f, {-0.07193999737501144f, -0.004230273887515068f, 0.00901117641478777f,
                                  0.06715909391641617f, 0.05440324917435646f, 0.05208368971943855f,
                                  -0.1940108984708786f, 0.08752395212650299f, 0.009579004719853401f,
                                  0.39808934926986694f, 0.11769325286149979f, -0.5253616571426392f}}};
  for (const Expected& e : cases) {
    Tensor logits = Tensor::from_vector(
        std::vector<float>{1.f, -0.5f, 0.25f, 2.f, 0.1f, 0.2f, -1.5f, 0.7f, -2.f, 1.5f, 0.3f, 0.f}, {3, 4});
    logits.set_requires_grad(true);
    Tensor loss = weighted_cross_entropy(logits, labels, weights, e.smoothing);
    EXPECT_NEAR(loss.item(), e.loss, 1e-6f) << "smoothing " << e.smoothing;
    loss.backward();
    EXPECT_TRUE(testing::all_close(logits.grad(), Tensor::from_vector(e.grad, {3, 4}), 1e-6f, 1e-5f))
        << "smoothing " << e.smoothing;
  }
  // Weights of 1 give softmax_cross_entropy.
  Tensor logits = Tensor::from_vector(std::vector<float>{1.f, -0.5f, 0.25f, 2.f, 0.1f, 0.2f, -1.5f, 0.7f}, {2, 4});
  const Tensor two = Tensor::from_vector(std::vector<std::int32_t>{3, 1}, {2});
  EXPECT_NEAR(weighted_cross_entropy(logits, two, {1, 1, 1, 1}, 0.2f).item(),
              softmax_cross_entropy(logits, two, 0.2f).item(), 1e-6f);
  expect_error([&] { weighted_cross_entropy(logits, two, {1, 1, 1}); }, {"3 class weights for logits (2,4)"});
  expect_error([&] { weighted_cross_entropy(logits, two, {1, 0, 1, 0}); }, {"labels all have weight 0"});
}

TEST(ClassWeights, BalancedWeightsAreScikitLearns) {
  // sklearn.utils.class_weight.compute_class_weight("balanced"): n_samples / (n_classes * bincount(y))
  EXPECT_EQ(balanced_class_weights({10, 10, 10}), (std::vector<float>{1.f, 1.f, 1.f}));
  // Over the classes present (scikit-learn's classes are those in y): a model with more outputs than the data's
  // classes gets 0 for the others and the same weights for the rest.
  EXPECT_EQ(balanced_class_weights({10, 10, 10, 0, 0}), (std::vector<float>{1.f, 1.f, 1.f, 0.f, 0.f}));
  const std::vector<float> w = balanced_class_weights({90, 10, 0, 20});
  EXPECT_FLOAT_EQ(w[0], 120.f / (3 * 90));
  EXPECT_FLOAT_EQ(w[1], 120.f / (3 * 10));
  EXPECT_EQ(w[2], 0.f);  // no examples: never a label
  EXPECT_FLOAT_EQ(w[3], 120.f / (3 * 20));
  expect_error([] { balanced_class_weights({0, 0}); }, {"no examples"});
}

TEST(Trainer, ClassWeightsWeighTheTrainingLossAndLeaveValidationPlain) {
  // The first step's logged loss is the weighted loss of the first batch; validation's is evaluate's plain one.
  auto data = std::make_shared<Bands>(8, 3, 8, 1);
  Loader reference(data, loader_options(6, false));
  reference.start_epoch(0);
  std::optional<Batch> first = reference.next();
  ASSERT_TRUE(first.has_value());
  const std::vector<float> weights = {0.25f, 1.f, 4.f};
  auto twin = per_example_net(3);
  const float weighted = weighted_cross_entropy((*twin)(first->images), first->labels, weights).item();
  ASSERT_GT(std::fabs(weighted - softmax_cross_entropy((*twin)(first->images), first->labels).item()), 1e-3f);

  auto net = per_example_net(3);
  Loader train(data, loader_options(6, false));
  Loader val(std::make_shared<Bands>(2, 3, 8, 2), loader_options(6, false));
  SGD opt(net->parameters(), SGDOptions{.lr = 0.1f});
  TrainOptions o = quiet("", 1);
  o.class_weights = weights;
  float first_loss = NAN;
  o.on_step = [&](const StepInfo& s) {
    if (s.step == 1) first_loss = static_cast<float>(s.loss);
  };
  TrainResult r = fit(*net, opt, train, &val, o);
  EXPECT_FLOAT_EQ(first_loss, weighted);
  EXPECT_EQ(r.last_validation.loss, evaluate(*net, val).loss);

  o.class_weights = {1.f, 1.f};
  expect_error([&] { fit(*net, opt, train, nullptr, o); }, {"fit: 2 class weights for a model with 3 outputs"});
  o.class_weights = {1.f, -1.f, 1.f};
  expect_error([&] { fit(*net, opt, train, nullptr, o); }, {"fit: class weight -1 must be finite and >= 0"});
}

TEST(Trainer, GradientAccumulationOfUnequalBatchesAndOfWeightedLossesIsTheLargeBatchStep) {
  // Batches 5,5,5,5,4 accumulated into one step per epoch take the step of one batch of 24 (each batch adds its
  // loss sum; the step divides by the 24 examples), and with class weights batches of 4 in pairs take the weighted
  // step of batches of 8 (divided by the labels' total weight, as torch's cross_entropy(weight=) over 8 rows).
  auto data = std::make_shared<Bands>(8, 3, 8, 1);  // 24 images
  auto train_with = [&](int batch, int accumulate, std::vector<float> weights) {
    auto net = per_example_net(6);
    Loader train(data, loader_options(batch, true));
    SGD opt(net->parameters(), SGDOptions{.lr = 0.1f, .momentum = 0.9f});
    TrainOptions o = quiet("", 2);
    o.accumulate = accumulate;
    o.class_weights = std::move(weights);
    fit(*net, opt, train, nullptr, o);
    return values(*net);
  };
  auto expect_near = [](const std::map<std::string, std::vector<float>>& got,
                        const std::map<std::string, std::vector<float>>& expected, const char* what) {
    for (const auto& [name, v] : expected)
      for (std::size_t i = 0; i < v.size(); ++i) ASSERT_NEAR(got.at(name)[i], v[i], 2e-5f) << what << " " << name;
  };
  expect_near(train_with(5, 5, {}), train_with(24, 1, {}), "5,5,5,5,4 accumulated vs 24");
  const std::vector<float> weights = {0.25f, 1.f, 4.f};
  const auto weighted = train_with(4, 2, weights);
  expect_near(weighted, train_with(8, 1, weights), "weighted 4+4 vs 8");
  EXPECT_NE(weighted, train_with(8, 1, {}));  // and the weights change the training
}

TEST(Trainer, AStepWhoseLabelsAllWeighZeroChangesNothing) {
  // Batches of one image, labels 0,1,2,0,...: with class 0 weighing 0, every third step has nothing to learn from.
  auto data = std::make_shared<Bands>(2, 3, 8, 1);  // 6 images
  auto net = per_example_net(7);
  Loader train(data, loader_options(1, false));
  SGD opt(net->parameters(), SGDOptions{.lr = 0.1f, .momentum = 0.9f, .weight_decay = 0.1f});
  TrainOptions o = quiet("", 1);
  o.class_weights = {0.f, 1.f, 1.f};
  std::vector<std::map<std::string, std::vector<float>>> after;
  o.on_step = [&](const StepInfo&) { after.push_back(values(*net)); };
  const auto before = values(*net);
  TrainResult r = fit(*net, opt, train, nullptr, o);
  EXPECT_EQ(r.steps, 6);
  ASSERT_EQ(after.size(), 6u);
  EXPECT_EQ(after[0], before);    // label 0: no update (no weight decay either)
  EXPECT_NE(after[1], after[0]);  // label 1 trains
  EXPECT_EQ(after[3], after[2]);  // label 0 again
}

// Bands whose examples 5..9 cannot be read: with batches of 5 in order, the loader skips batch 1 entirely.
class BandsWithAnUnreadableBatch : public Bands {
 public:
  BandsWithAnUnreadableBatch() : Bands(8, 3, 8, 1) {}
  Example get(std::int64_t i) const override {
    GRAFT_CHECK(i < 5 || i > 9, "example ", i, " is unreadable");
    return Bands::get(i);
  }
};

TEST(Trainer, ResumeCountsTheBatchesTheLoaderSkipped) {
  // 24 images, batch 5 in order: batches 0, 2, 3, 4 arrive (batch 1 is unreadable). A stop after the step on batch
  // 2 must resume at batch 3 - counting the delivered batches instead would train batch 2 twice.
  auto run = [](const std::string& dir, std::int64_t max_steps, bool resume, int accumulate) {
    auto net = per_example_net(8);
    Loader train(std::make_shared<BandsWithAnUnreadableBatch>(), loader_options(5, false));
    SGD opt(net->parameters(), SGDOptions{.lr = 0.1f, .momentum = 0.9f});
    TrainOptions o = quiet(dir, 2);
    o.max_steps = max_steps, o.resume = resume, o.accumulate = accumulate;
    TrainResult r = fit(*net, opt, train, nullptr, o);
    return std::make_pair(r.steps, values(*net));
  };
  for (int accumulate : {1, 2}) {
    const auto [steps, straight] = run(temp_dir("holes_straight"), 0, false, accumulate);
    EXPECT_EQ(steps, accumulate == 1 ? 8 : 4);  // 4 batches per epoch; in pairs: (0,2), (3,4)
    for (std::int64_t stop = 1; stop < steps; ++stop) {
      const std::string dir = temp_dir("holes_" + std::to_string(accumulate) + "_" + std::to_string(stop));
      run(dir, stop, false, accumulate);
      const auto [resumed_steps, resumed] = run(dir, 0, true, accumulate);
      EXPECT_EQ(resumed_steps, steps) << "accumulate " << accumulate << ", stopped after step " << stop;
      EXPECT_EQ(resumed, straight) << "accumulate " << accumulate << ", stopped after step " << stop;
    }
  }
}

TEST(Trainer, GradientAccumulationResumesBitExactAtItsSteps) {
  // Batches 5,5,5,5,4 in groups of 2: steps after batches 2, 4 and 5 of each epoch. Stopped after step 1 (mid-epoch),
  // step 3 (the epoch's last batch) and step 4, resumed: the same weights as a straight run, dropout and BatchNorm
  // included.
  auto run = [](Pipeline& p, const std::string& dir, std::int64_t max_steps, bool resume) {
    TrainOptions o = quiet(dir, 3);
    o.accumulate = 2;
    o.max_steps = max_steps;
    o.resume = resume;
    return p.fit(o);
  };
  Pipeline straight;
  EXPECT_EQ(run(straight, temp_dir("accumulate_straight"), 0, false).steps, 9);
  for (std::int64_t stop : {1, 3, 4}) {
    const std::string dir = temp_dir("accumulate_resume" + std::to_string(stop));
    {
      Pipeline first;
      run(first, dir, stop, false);
      CheckpointMeta m = read_checkpoint_meta(dir + "/last.h5");
      EXPECT_EQ(m.step, stop);
      EXPECT_EQ(m.train_state.at("batch_in_epoch"), stop % 3 == 0 ? "5" : std::to_string(2 * (stop % 3)));
    }
    Pipeline second(1234);
    EXPECT_EQ(run(second, dir, 0, true).steps, 9);
    EXPECT_EQ(values(*second.net), values(*straight.net)) << "stopped at step " << stop;
  }
}

std::string file_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

TEST(Trainer, ResumeWithOtherSettingsIsRefusedBeforeAnythingChanges) {
  const std::string dir = temp_dir("settings");
  {
    Pipeline first;
    TrainOptions o = quiet(dir, 3);
    o.max_steps = 2;
    o.accumulate = 2;
    first.fit(o);
  }
  const std::string last = dir + "/last.h5";
  const CheckpointMeta meta = read_checkpoint_meta(last);
  EXPECT_EQ(meta.train_state.at("setting.accumulate"), "2");
  EXPECT_EQ(meta.train_state.at("setting.batch"), "5");
  EXPECT_EQ(meta.train_state.at("setting.train-examples"), "24");
  EXPECT_EQ(meta.train_state.at("setting.class-weights"), "none");
  const std::string bytes = file_bytes(last);
  auto refused = [&](const std::function<void(TrainOptions&)>& change, std::vector<std::string> message) {
    Pipeline second(1234);
    const auto before = values(*second.net);
    const float lr = second.opt.param_groups()[0].lr;
    TrainOptions o = quiet(dir, 3);
    o.accumulate = 2;
    o.resume = true;
    change(o);
    message.insert(message.begin(), "fit: cannot resume from '" + last + "': it was written by a run with other settings");
    expect_error([&] { second.fit(o); }, message);
    EXPECT_EQ(values(*second.net), before) << "the model changed before the refusal";
    EXPECT_EQ(second.opt.param_groups()[0].lr, lr) << "the schedule changed before the refusal";
    EXPECT_EQ(file_bytes(last), bytes);
  };
  refused([](TrainOptions& o) { o.accumulate = 3; }, {"\n  accumulate: 2 in the checkpoint, 3 now"});
  refused([](TrainOptions& o) { o.epochs = 4; }, {"\n  epochs: 3 in the checkpoint, 4 now"});
  refused([](TrainOptions& o) { o.class_weights = {1.f, 0.5f, 2.f}; o.label_smoothing = 0.1f; },
          {"\n  class-weights: none in the checkpoint, 1,0.5,2 now", "\n  label-smoothing: 0 in the checkpoint, 0.1 now",
           "resume with the checkpoint's settings, or start a new run from its weights"});
  {  // the loader's batch size
    auto net = small_net(3, true);
    Loader train(std::make_shared<Bands>(8, 3, 8, 1), loader_options(6, true));
    SGD opt(net->parameters(), SGDOptions{.lr = 0.05f});
    TrainOptions o = quiet(dir, 3);
    o.accumulate = 2, o.resume = true;
    expect_error([&] { fit(*net, opt, train, nullptr, o); }, {"\n  batch: 5 in the checkpoint, 6 now"});
    Loader other(std::make_shared<Bands>(9, 3, 8, 1), loader_options(5, true));  // other data: 27 images
    expect_error([&] { fit(*net, opt, other, nullptr, o); }, {"\n  train-examples: 24 in the checkpoint, 27 now"});
  }
  // What is not a setting may change: the resumed run ends where a straight one does.
  Pipeline straight;
  TrainOptions so = quiet(temp_dir("settings_straight"), 3);
  so.accumulate = 2;
  straight.fit(so);
  Pipeline second(1234);
  TrainOptions o = quiet(dir, 3);
  o.accumulate = 2, o.resume = true, o.max_steps = 0, o.keep_best = false, o.grad_check_every = 1;
  o.checkpoint.train_state["setting.optimizer"] = "sgd";  // a setting the checkpoint does not know: not compared
  EXPECT_EQ(second.fit(o).steps, 9);
  EXPECT_EQ(values(*second.net), values(*straight.net));
  // A checkpoint written before settings were recorded is not checked.
  std::map<std::string, std::string> state = read_checkpoint_meta(last).train_state;
  for (auto it = state.begin(); it != state.end();) it = it->first.rfind("setting.", 0) == 0 ? state.erase(it) : std::next(it);
  CheckpointMeta old = read_checkpoint_meta(last);
  old.train_state = state;
  save_checkpoint(dir + "/old.h5", *second.net, &second.opt, old);
  EXPECT_NO_THROW(check_resume_settings("fit", dir + "/old.h5", {{"batch", "99"}}));
  // Antialiased resizes: recorded by fit; a fit checkpoint without the record predates them; other checkpoints
  // (converted ImageNet weights) were trained with them.
  EXPECT_EQ(meta.train_state.at("setting.antialias"), "on");
  EXPECT_TRUE(trained_with_antialias(meta));
  EXPECT_FALSE(trained_with_antialias(old));
  EXPECT_TRUE(trained_with_antialias(CheckpointMeta{.arch = "resnet50", .train_state = {{"preprocess", "torch"}}}));
  // A long value (a weight per class) is shortened in the message.
  old.train_state["setting.class-weights"] = std::string(200, '1');
  save_checkpoint(dir + "/old.h5", *second.net, &second.opt, old);
  expect_error([&] { check_resume_settings("fit", dir + "/old.h5", {{"class-weights", "none"}}); },
               {"class-weights: " + std::string(60, '1') + "... (200 characters) in the checkpoint, none now"});
}

// Bands whose last `unreadable` examples cannot be read.
class BandsWithAnUnreadableEnd : public Bands {
 public:
  explicit BandsWithAnUnreadableEnd(int unreadable) : Bands(8, 3, 8, 1), unreadable_(unreadable) {}
  Example get(std::int64_t i) const override {
    GRAFT_CHECK(i < size() - unreadable_, "example ", i, " is unreadable");
    return Bands::get(i);
  }

 private:
  int unreadable_;
};

// The first `n` examples of Bands(8, 3, 8, 1).
class FirstBands : public Bands {
 public:
  explicit FirstBands(std::int64_t n) : Bands(8, 3, 8, 1), n_(n) {}
  std::int64_t size() const override { return n_; }

 private:
  std::int64_t n_;
};

TEST(Trainer, AGroupCutShortByUnreadableLastBatchesTakesItsStepAtTheEpochsEnd) {
  // 24 images in order, batches of 5: batch 4 (images 20-23) cannot be read. In groups of 3, batches 0-2 take a step
  // and batch 3 waits for batch 4, which never comes: the loop takes batch 3's step when the epoch's batches end -
  // the step that training on the 20 readable images alone takes at the epoch's last batch.
  auto run = [](DatasetPtr data) {
    auto net = per_example_net(9);
    Loader train(std::move(data), loader_options(5, false));
    SGD opt(net->parameters(), SGDOptions{.lr = 0.1f, .momentum = 0.9f});
    TrainOptions o = quiet("", 2);
    o.accumulate = 3;
    std::vector<std::int64_t> positions;
    o.on_step = [&](const StepInfo& s) { positions.push_back(s.batch_in_epoch); };
    TrainResult r = fit(*net, opt, train, nullptr, o);
    EXPECT_EQ(r.steps, 4);
    return std::make_pair(positions, values(*net));
  };
  const auto [positions, cut] = run(std::make_shared<BandsWithAnUnreadableEnd>(4));
  const auto [readable_positions, readable] = run(std::make_shared<FirstBands>(20));
  EXPECT_EQ(positions, (std::vector<std::int64_t>{3, 4, 3, 4}));
  EXPECT_EQ(readable_positions, positions);
  EXPECT_EQ(cut, readable);
}

// Bands that raise SIGINT (as Ctrl-C would) while example `at` is read, once.
class BandsInterruptedAt : public Bands {
 public:
  explicit BandsInterruptedAt(std::int64_t at) : Bands(8, 3, 8, 1), at_(at) {}
  Example get(std::int64_t i) const override {
    if (i == at_ && !raised_.exchange(true)) std::raise(SIGINT);
    return Bands::get(i);
  }

 private:
  std::int64_t at_;
  mutable std::atomic<bool> raised_{false};
};

TEST(Trainer, CtrlCInsideAGroupStopsAfterTheGroupsStepAndResumesBitExact) {
  DefaultSigint default_sigint;
  // Batches 5,5,5,5,4 in order (decoded on the calling thread), groups of 3: Ctrl-C while batch 1 is read (example 7)
  // lets the group finish - batches 0-2, one step - and then stops with the position after batch 2.
  auto run = [](DatasetPtr data, const std::string& dir, bool resume) {
    auto net = per_example_net(10);
    LoaderOptions lo = loader_options(5, false);
    lo.workers = 0;
    Loader train(std::move(data), lo);
    SGD opt(net->parameters(), SGDOptions{.lr = 0.1f, .momentum = 0.9f});
    TrainOptions o = quiet(dir, 2);
    o.accumulate = 3, o.resume = resume;
    TrainResult r = fit(*net, opt, train, nullptr, o);
    return std::make_pair(r, values(*net));
  };
  const auto [straight_result, straight] = run(std::make_shared<Bands>(8, 3, 8, 1), temp_dir("group_sig_straight"), false);
  EXPECT_EQ(straight_result.steps, 4);
  const std::string dir = temp_dir("group_sig");
  const auto [stopped, unused] = run(std::make_shared<BandsInterruptedAt>(7), dir, false);
  EXPECT_TRUE(stopped.stopped_by_signal);
  EXPECT_EQ(stopped.steps, 1);
  const CheckpointMeta m = read_checkpoint_meta(dir + "/last.h5");
  EXPECT_EQ(m.step, 1);
  EXPECT_EQ(m.train_state.at("batch_in_epoch"), "3");
  const auto [resumed_result, resumed] = run(std::make_shared<Bands>(8, 3, 8, 1), dir, true);
  EXPECT_EQ(resumed_result.steps, 4);
  EXPECT_EQ(resumed, straight);
}

TEST(Trainer, EarlyStoppingEndsWhenValidationStopsImprovingAndResumesToTheSameEnd) {
  // Nothing learns (lr 0, BatchNorm statistics frozen): epoch 1 sets the best top-1, epochs 2-3 cannot beat it, and
  // patience 2 ends the run before epoch 4 of 10.
  auto net = small_net(3, false);
  freeze_batch_norm(*net);
  Loader train(std::make_shared<Bands>(4, 3, 8, 1), loader_options(6, true));
  Loader val(std::make_shared<Bands>(2, 3, 8, 2), loader_options(6, false));
  SGD opt(net->parameters(), SGDOptions{.lr = 0.f});
  const std::string dir = temp_dir("early");
  TrainOptions o = quiet(dir, 10);
  o.patience = 2;
  TrainResult r = fit(*net, opt, train, &val, o);
  EXPECT_TRUE(r.stopped_early);
  EXPECT_EQ(r.best_epoch, 1);
  EXPECT_EQ(r.epochs_done, 3);
  EXPECT_EQ(r.steps, 3 * 2);
  // Resumed from its last.h5, the run is already over.
  o.resume = true;
  TrainResult again = fit(*net, opt, train, &val, o);
  EXPECT_TRUE(again.stopped_early);
  EXPECT_EQ(again.epochs_done, 0);
  EXPECT_EQ(again.steps, 3 * 2);
  EXPECT_EQ(again.best_epoch, 1);
  EXPECT_EQ(again.best_validation.top1, r.best_validation.top1);
  EXPECT_EQ(again.best_validation.top5, r.best_validation.top5);  // kept by the checkpoint too
  // Patience needs something to watch.
  o.resume = false;
  expect_error([&] { fit(*net, opt, train, nullptr, o); }, {"early stopping (patience 2) needs validation data"});
}

TEST(Trainer, TooFewOutputsForTheLabelsIsAnErrorBeforeAnyStep) {
  auto net = small_net(3, false, /*classes=*/2);
  Loader train(std::make_shared<Bands>(4, 3, 8, 1), loader_options(4, true));
  SGD opt(net->parameters(), SGDOptions{.lr = 0.1f});
  auto before = values(*net);
  expect_error([&] { fit(*net, opt, train, nullptr, quiet("", 1)); }, {"3 classes", "2 outputs"});
  EXPECT_EQ(values(*net), before);
  Loader val(std::make_shared<Bands>(2, 3, 8, 1), loader_options(4, false));
  expect_error([&] { evaluate(*net, val); }, {"evaluate", "3 classes", "2 outputs"});
}

// A frozen backbone (BN statistics frozen) with a linear head: trains on cached features.
struct FrozenRun {
  std::shared_ptr<Sequential> net;
  SGD* opt = nullptr;
  std::unique_ptr<SGD> holder;
  explicit FrozenRun(bool freeze_bn = true) : net(small_net(8, false)) {
    net->freeze("*");
    net->unfreeze("5");
    if (freeze_bn) freeze_batch_norm(*net);
    holder = std::make_unique<SGD>(net->trainable_parameters(), SGDOptions{.lr = 0.1f, .momentum = 0.9f});
    opt = holder.get();
  }
};

TEST(Trainer, FeatureCacheGivesTheSameHeadAsTheUncachedPath) {
  auto data = std::make_shared<Bands>(8, 3, 8, 1);
  auto val_data = std::make_shared<Bands>(3, 3, 8, 2);
  TrainResult results[2];
  std::shared_ptr<Sequential> nets[2];
  for (int cached = 0; cached < 2; ++cached) {
    FrozenRun run;
    Loader train(data, loader_options(5, true)), val(val_data, loader_options(4, false));
    TrainOptions o = quiet(temp_dir("cache" + std::to_string(cached)), 3);
    o.cache_features = cached;
    o.head = "5";
    results[cached] = fit(*run.net, *run.opt, train, &val, o);
    nets[cached] = run.net;
  }
  EXPECT_FALSE(results[0].used_feature_cache);
  EXPECT_TRUE(results[1].used_feature_cache);
  EXPECT_EQ(results[1].steps, 15);
  // The backbone is bit-identical (frozen, no BN updates) and the head agrees up to float rounding.
  auto a = values(*nets[0]), b = values(*nets[1]);
  for (const auto& [name, v] : a) {
    Tensor ta = Tensor::from_vector(v, {static_cast<std::int64_t>(v.size())});
    Tensor tb = Tensor::from_vector(b[name], {static_cast<std::int64_t>(b[name].size())});
    EXPECT_TRUE(testing::all_close(tb, ta, 1e-5f, 1e-4f)) << name;
  }
  EXPECT_NEAR(results[0].last_validation.loss, results[1].last_validation.loss, 1e-4);
  EXPECT_EQ(results[0].last_validation.top1, results[1].last_validation.top1);
  EXPECT_NE(a["5.weight"], values(*small_net(8, false))["5.weight"]);  // the head did train
  EXPECT_TRUE(nets[1]->find_module("5") && nets[1]->find_module("5")->type_name() == "Linear");  // head put back
}

TEST(Trainer, FeatureCacheIsUsedOnlyWhenItMay) {
  auto data = std::make_shared<Bands>(2, 3, 8, 1);
  auto head_of = [&](FrozenRun& run, LoaderOptions lo, bool cache) {
    Loader train(data, lo);
    TrainOptions o = quiet("", 1);
    o.cache_features = cache;
    o.head = "5";
    run.net->train();
    return feature_cache_head(*run.net, train, o);
  };
  {
    FrozenRun run;
    EXPECT_EQ(head_of(run, loader_options(2, true), true), "5");
    EXPECT_EQ(head_of(run, loader_options(2, true), false), "");  // switched off
    LoaderOptions augment = loader_options(2, true);
    augment.transform.random_flip = true;
    EXPECT_EQ(head_of(run, augment, true), "");  // random augmentation: features differ per epoch
    run.net->unfreeze("0.weight");
    EXPECT_EQ(head_of(run, loader_options(2, true), true), "");  // a backbone parameter trains
  }
  {
    FrozenRun run(/*freeze_bn=*/false);
    EXPECT_EQ(head_of(run, loader_options(2, true), true), "");  // BN would use batch statistics
  }
  // A zoo model: the head is found by head_path.
  ModelOptions mo;
  mo.num_classes = 3;
  auto resnet = make_model("resnet18", mo);
  resnet->freeze("*");
  resnet->unfreeze("fc");
  freeze_batch_norm(*resnet);
  LoaderOptions lo = loader_options(3, true);
  lo.transform.size = 32;
  Loader train(data, lo);
  SGD opt(resnet->trainable_parameters(), SGDOptions{.lr = 0.01f});
  TrainResult r = fit(*resnet, opt, train, nullptr, quiet("", 1));
  EXPECT_TRUE(r.used_feature_cache);
  EXPECT_EQ(r.steps, 2);
}

// Logits = 10 * the first pixel's channels: the class order is set by the image.
class FirstPixel : public Module {
 public:
  Tensor forward(const Tensor& x) override {
    std::vector<float> v = x.to_vector(), out;
    std::int64_t n = x.dim(0), row = x.numel() / n;
    for (std::int64_t i = 0; i < n; ++i)
      for (int c = 0; c < 3; ++c) out.push_back(v[static_cast<std::size_t>(i * row + c)]);
    return Tensor::from_vector(out, {n, 3});
  }
  std::string type_name() const override { return "FirstPixel"; }
};

class Fixed : public Dataset {
 public:
  // (pixel rgb, label): the prediction is the brightest channel.
  std::vector<std::pair<std::array<std::uint8_t, 3>, int>> items = {
      {{200, 10, 10}, 0}, {{200, 10, 10}, 0}, {{10, 200, 10}, 0}, {{10, 200, 10}, 1}, {{10, 10, 200}, 2}};
  std::int64_t size() const override { return static_cast<std::int64_t>(items.size()); }
  int label(std::int64_t i) const override { return items[static_cast<std::size_t>(i)].second; }
  const std::vector<std::string>& class_names() const override { return names_; }
  std::string describe() const override { return "fixed"; }
  Example get(std::int64_t i) const override {
    const auto& [rgb, label] = items[static_cast<std::size_t>(i)];
    Example e{1, 1, 3, {rgb[0], rgb[1], rgb[2]}, label};
    return e;
  }

 private:
  std::vector<std::string> names_ = {"a", "b", "c"};
};

TEST(Trainer, EvaluateScoresTopKAndTheConfusionMatrix) {
  LoaderOptions lo = loader_options(2, false);
  lo.transform.size = 1;
  lo.transform.normalize = Preprocess::Caffe;  // BGR: channel 0 of the input is blue
  Loader loader(std::make_shared<Fixed>(), lo);
  FirstPixel model;
  EvalResult r = evaluate(model, loader);
  // predictions (brightest of B,G,R order): blue->0, green->1, red->2
  // items: red(0)->2, red(0)->2, green(0)->1, green(1)->1, blue(2)->0
  EXPECT_EQ(r.images, 5);
  EXPECT_DOUBLE_EQ(r.top1, 1.0 / 5);
  std::vector<std::vector<std::int64_t>> want = {{0, 1, 2}, {0, 1, 0}, {1, 0, 0}};
  EXPECT_EQ(r.confusion, want);
  std::vector<double> acc = r.per_class_accuracy();
  ASSERT_EQ(acc.size(), 3u);
  EXPECT_DOUBLE_EQ(acc[0], 0.0);
  EXPECT_DOUBLE_EQ(acc[1], 1.0);
  EXPECT_DOUBLE_EQ(acc[2], 0.0);
  EXPECT_DOUBLE_EQ(r.top5, 1.0);
  EXPECT_GT(r.loss, 0);
}

// ---- checkpoint writes that fail -------------------------------------------------------------------------------

// Under a 256 KiB file size limit (a full disk, tests/check.h).
TEST(Trainer, FullDiskDuringACheckpointWriteLeavesThePreviousOneLoadable) {
  std::string dir = temp_dir("fullness");
  auto small = small_net(1, false);
  save_checkpoint(dir + "/last.h5", *small, nullptr, {.arch = "small_net", .step = 1});
  ModelOptions mo;
  mo.num_classes = 10;
  auto big = make_model("resnet18", mo);  // ~45 MB: far over the limit
  const int status = testing::exit_status_under_file_size_limit(256 * 1024, [&] {
    try {
      save_checkpoint(dir + "/last.h5", *big, nullptr, {.arch = "resnet18", .step = 2});
      return 3;  // it should not have fitted
    } catch (const Error& e) {
      const std::string m = e.message();
      return m.find("last.h5") != std::string::npos && m.find("failed") != std::string::npos ? 0 : 4;
    }
  });
  EXPECT_EQ(status, 0) << "3: the write succeeded, 4: the error did not name the file, < 0: a signal";
  EXPECT_EQ(testing::temporaries_beside(dir + "/last.h5"), std::vector<std::string>{});
  EXPECT_EQ(read_checkpoint_meta(dir + "/last.h5").step, 1);
  auto other = small_net(2, false);
  EXPECT_NO_THROW(load_checkpoint(dir + "/last.h5", *other, nullptr));
}

TEST(Trainer, KillingTheProcessDuringCheckpointWritesNeverBreaksTheFile) {
  std::string dir = temp_dir("killed");
  ModelOptions mo;
  mo.num_classes = 10;
  auto model = make_model("resnet18", mo);
  save_checkpoint(dir + "/last.h5", *model, nullptr, {.arch = "resnet18", .num_classes = 10, .step = 0});
  for (int round = 0; round < 3; ++round) {
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      for (std::int64_t step = 1;; ++step)
        save_checkpoint(dir + "/last.h5", *model, nullptr, {.arch = "resnet18", .num_classes = 10, .step = step});
    }
    ::usleep(150000 + 70000 * round);  // somewhere inside a write (each takes tens of milliseconds)
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    ASSERT_TRUE(WIFSIGNALED(status));
    remove_dead_temporaries(dir + "/last.h5");  // the dead writer's temporary, as the next writer removes it
    EXPECT_EQ(testing::temporaries_beside(dir + "/last.h5"), std::vector<std::string>{});
    auto back = make_model("resnet18", mo);
    EXPECT_NO_THROW(load_checkpoint(dir + "/last.h5", *back, nullptr)) << "round " << round;
    EXPECT_EQ(values(*back), values(*model));
  }
}

// One run per run directory (train/run_lock.h): while another process holds OUT's lock, a lock and a fit() into OUT
// are refused naming that process, before anything is written; a holder killed with SIGKILL blocks nobody after it;
// within one process the lock is re-entrant (graft finetune holds it around fit()); a link as the lock file is refused.
TEST(Trainer, ASecondRunIntoTheSameDirectoryIsRefusedWhileTheFirstHoldsIt) {
  const std::string dir = temp_dir("locked");
  int ready[2], release[2];
  ASSERT_EQ(pipe(ready), 0);
  ASSERT_EQ(pipe(release), 0);
  const pid_t holder = fork();
  ASSERT_GE(holder, 0);
  if (holder == 0) {  // never returns into the test runner, whatever happens
    close(ready[0]), close(release[1]);
    try {
      RunDirectoryLock lock(dir, "holder");
      char byte = 1;
      if (write(ready[1], &byte, 1) != 1) _exit(2);
      while (read(release[0], &byte, 1) > 0) {  // until the parent kills it
      }
    } catch (...) {
      _exit(3);
    }
    _exit(0);
  }
  close(ready[1]), close(release[0]);
  char byte = 0;
  if (read(ready[0], &byte, 1) != 1) {  // the holder ended without taking the lock
    int status = 0;
    waitpid(holder, &status, 0);
    FAIL() << "the lock holder exited with status " << WEXITSTATUS(status);
  }
  const std::string in_use = "is in use by process " + std::to_string(holder);
  testing::expect_error([&] { RunDirectoryLock again(dir, "second"); }, {"second: the run directory", in_use});
  Pipeline run;
  testing::expect_error([&] { run.fit(quiet(dir, 1)); }, {"fit: the run directory", in_use});
  for (const char* f : {"last.h5", "best.h5", "log.csv", "curves.png"}) EXPECT_FALSE(fs::exists(dir + "/" + f)) << f;

  kill(holder, SIGKILL);
  int status = 0;
  waitpid(holder, &status, 0);
  close(ready[0]), close(release[1]);
  {
    const RunDirectoryLock outer(dir, "finetune");  // as graft finetune holds it around fit()
    std::ifstream pid_file(dir + "/" + RunDirectoryLock::kFileName);
    std::string pid;
    pid_file >> pid;
    EXPECT_EQ(pid, std::to_string(getpid()));
    EXPECT_EQ(run.fit(quiet(dir, 1)).epochs_done, 1);
  }
  EXPECT_TRUE(fs::exists(dir + "/last.h5"));

  const std::string linked = temp_dir("locked_link");
  fs::create_symlink(dir + "/log.csv", linked + "/" + RunDirectoryLock::kFileName);
  testing::expect_error([&] { RunDirectoryLock lock(linked, "fit"); }, {"lock file", "symbolic link"});
}

// ---- progress bar and plots ------------------------------------------------------------------------------------

TEST(Trainer, ProgressLineShowsSpeedLossAndEta) {
  std::string line = ProgressBar::render("epoch 1/3", 50, 100, 123.0, 0.5, 75);
  EXPECT_EQ(line, "epoch 1/3 [============>           ] 50/100  123.0 img/s  loss 0.5000  ETA 1:15");
  EXPECT_EQ(ProgressBar::render("x", 0, 4, 0, NAN, NAN), "x [>                       ] 0/4  0.0 img/s  ETA ?");
}

// log.csv and curves.png are rewritten whole at each epoch (io/temporary_file.h): a folder that has gone away is an
// error naming the log, and a resumed log keeps the rows up to the checkpoint's epoch.
TEST(Trainer, RunLogRewritesItsFilesWholeAndSaysWhichFailed) {
  std::string dir = temp_dir("runlog");
  RunLog log(dir);
  log.add({1, 1.5, 0.25, 1.2, 0.5, 0.9}, 10, 0.1, 100.0, 2.0);
  log.add({2, 1.0, 0.5, 0.9, 0.75, 1.0}, 20, 0.1, 100.0, 2.0);
  for (const char* f : {"log.csv", "curves.png"}) {
    EXPECT_TRUE(fs::exists(dir + "/" + f)) << f;
    EXPECT_EQ(testing::temporaries_beside(dir + "/" + f), std::vector<std::string>{}) << f;
  }
  RunLog resumed(dir);
  resumed.resume(1);
  ASSERT_EQ(resumed.points().size(), 1u);
  EXPECT_EQ(resumed.points()[0].epoch, 1);
  fs::remove_all(dir);
  const std::string msg = testing::error_message([&] { log.add({3, 0.8, 0.6, 0.8, 0.8, 1.0}, 30, 0.1, 100.0, 2.0); });
  EXPECT_NE(msg.find("fit: cannot create"), std::string::npos) << msg;
  EXPECT_NE(msg.find("(for '" + dir + "/log.csv')"), std::string::npos) << msg;
}

TEST(Trainer, CanvasDrawsTextLinesAndWritesPng) {
  Canvas c(40, 20);
  c.line(0, 10, 39, 10, 0xFF0000);
  EXPECT_EQ(c.pixel(20, 10), 0xFF0000u);
  EXPECT_EQ(c.pixel(20, 5), 0xFFFFFFu);
  c.text(1, 1, "8", 0x000000);
  int dark = 0;
  for (int y = 0; y < 9; ++y)
    for (int x = 0; x < 8; ++x) dark += c.pixel(x, y) == 0;
  EXPECT_GT(dark, 6);  // the glyph's segments
  std::string dir = temp_dir("png");
  c.write_png(dir + "/c.png");
  Example e = load_image(dir + "/c.png");
  EXPECT_EQ(e.width, 40);
  EXPECT_EQ(e.height, 20);
  EXPECT_EQ(e.pixels[(10 * 40 + 20) * 3], 255);
  EXPECT_EQ(e.pixels[(10 * 40 + 20) * 3 + 1], 0);
  EXPECT_THROW(c.write_png(dir + "/no/such/dir/c.png"), Error);
  // A link planted at the name the plot was once written under is removed, not written through.
  std::ofstream(dir + "/victim") << "keep";
  fs::create_symlink(dir + "/victim", dir + "/d.png.tmp-graft");
  c.write_png(dir + "/d.png");
  EXPECT_EQ(load_image(dir + "/d.png").width, 40);
  EXPECT_EQ(testing::temporaries_beside(dir + "/d.png"), std::vector<std::string>{});
  std::ifstream victim(dir + "/victim");
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(victim), {}), "keep");
  write_confusion_png(dir + "/confusion.png", {{5, 1}, {0, 6}}, {"cat", "dog"});
  EXPECT_TRUE(fs::exists(dir + "/confusion.png"));
}

}  // namespace
}  // namespace graft
