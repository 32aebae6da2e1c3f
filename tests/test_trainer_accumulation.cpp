// Gradient accumulation and class weights in the training loop (train/trainer.h, train/class_weights.h): a group of
// batches takes the step of one larger batch (equal or unequal sizes, weighted or not), torch's weighted cross-entropy
// and scikit-learn's balanced weights, a group whose labels all weigh 0, a group cut short at an epoch's end.
#include "tests/trainer_setup.h"

namespace graft {
namespace {

using namespace trainer_test;
using testing::expect_error;

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
  const auto [positions, cut] = run(std::make_shared<BandsWithUnreadable>(20, 23));  // the last 4
  const auto [readable_positions, readable] = run(std::make_shared<FirstBands>(20));
  EXPECT_EQ(positions, (std::vector<std::int64_t>{3, 4, 3, 4}));
  EXPECT_EQ(readable_positions, positions);
  EXPECT_EQ(cut, readable);
}

}  // namespace
}  // namespace graft
