// The training loop (train/trainer.h): learning and the run directory, NaN and infinite-gradient detection with the
// last good checkpoint kept, label smoothing and clipping, early stopping, too few outputs, the feature cache (same
// head as the uncached path, used only when it may be), evaluate's scores. Resuming: test_trainer_resume.cpp;
// accumulation and class weights: test_trainer_accumulation.cpp.
#include "tests/trainer_setup.h"

namespace graft {
namespace {

using namespace trainer_test;
using testing::expect_error;

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

// Gradients left from before fit (a check's backward) do not enter its first step: the run equals one without them.
// An optimizer over another model's parameters is refused (it would train nothing, silently).
TEST(Trainer, StaleGradientsAreClearedAndAForeignOptimizerIsRefused) {
  auto run = [](bool stale) {
    auto net = small_net(5, false);
    Loader train(std::make_shared<Bands>(8, 3, 8, 1), loader_options(5, false));
    SGD opt(net->parameters(), SGDOptions{.lr = 0.1f, .momentum = 0.9f});
    if (stale) {  // in eval mode: the check leaves BatchNorm's running statistics as they were
      net->eval();
      Generator gen(1);
      mul(sum((*net)(Tensor::randn({2, 8, 8, 3}, gen))), 1000.f).backward();
    }
    fit(*net, opt, train, nullptr, quiet("", 1));
    return values(*net);
  };
  EXPECT_EQ(run(true), run(false));

  auto net = small_net(5, false), other = small_net(5, false);
  Loader train(std::make_shared<Bands>(8, 3, 8, 1), loader_options(5, false));
  SGD foreign(other->parameters(), SGDOptions{.lr = 0.1f});
  expect_error([&] { fit(*net, foreign, train, nullptr, quiet("", 1)); },
               {"fit: the optimizer holds a", "that is not a parameter of this Sequential"});
}

// The same Bands without examples 5-9: in batches of 5, the batches above that are not batch 1.
class BandsWithoutTheLoneBatch : public Dataset {
 public:
  std::int64_t size() const override { return bands_.size() - 5; }
  int label(std::int64_t i) const override { return bands_.label(source(i)); }
  Example get(std::int64_t i) const override { return bands_.get(source(i)); }
  const std::vector<std::string>& class_names() const override { return bands_.class_names(); }
  std::string describe() const override { return "bands without examples 5-9"; }

 private:
  static std::int64_t source(std::int64_t i) { return i < 5 ? i : i + 5; }
  Bands bands_{8, 3, 8, 1};
};

// A batch that unreadable examples leave with one example is passed over when the model normalises with batch
// statistics: here BatchNorm sees 1x1 outputs, where one example gives one value per channel and no statistics (it
// stopped training with batch_norm's error). The run equals, bit for bit, one on the data without that batch.
TEST(Trainer, ABatchLeftWithOneExampleIsPassedOverUnderBatchStatistics) {
  auto run = [](DatasetPtr data) {
    Generator gen(4);
    auto net = std::make_shared<Sequential>();
    net->push_back(std::make_shared<Conv2d>(Conv2dConfig{.in_channels = 3, .out_channels = 4, .kernel_h = 8,
                                                         .kernel_w = 8},
                                            gen));  // 8x8 -> 1x1
    net->push_back(std::make_shared<BatchNorm2d>(4));
    net->push_back(std::make_shared<ReLU>());
    net->push_back(std::make_shared<Flatten>());
    net->push_back(std::make_shared<Linear>(4, 3, true, gen));
    Loader train(std::move(data), loader_options(5, false));
    SGD opt(net->parameters(), SGDOptions{.lr = 0.1f, .momentum = 0.9f});
    const TrainResult r = fit(*net, opt, train, nullptr, quiet("", 2));
    return std::make_pair(r, values(*net));
  };
  // Examples 6-9 unreadable: in batches of 5, batch 1 (examples 5-9) is left with example 5 alone.
  const auto [lone, lone_values] = run(std::make_shared<BandsWithUnreadable>(6, 9));
  const auto [without, without_values] = run(std::make_shared<BandsWithoutTheLoneBatch>());
  EXPECT_EQ(lone.lone_examples_skipped, 2);  // once an epoch
  EXPECT_EQ(lone.skipped_images, 8);
  EXPECT_EQ(lone.steps, 8);
  EXPECT_EQ(without.steps, 8);
  EXPECT_EQ(lone_values, without_values);

  // A batch of one by design - the epoch's last of 24 examples in batches of 23 - is trained on (BatchNorm sees 8x8
  // values per channel here): no skip, two steps an epoch.
  auto net = small_net(5, false);
  Loader natural(std::make_shared<Bands>(8, 3, 8, 1), loader_options(23, false));
  SGD opt(net->parameters(), SGDOptions{.lr = 0.1f});
  const TrainResult r = fit(*net, opt, natural, nullptr, quiet("", 2));
  EXPECT_EQ(r.lone_examples_skipped, 0);
  EXPECT_EQ(r.steps, 4);
}

}  // namespace
}  // namespace graft
