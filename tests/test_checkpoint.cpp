// Native checkpoints: round trip, exact resume (2 steps + save + load + 2 steps == 4 steps, bit for bit),
// atomic writes, and strict loading.
#include <gtest/gtest.h>

#include <filesystem>

#include "core/error.h"
#include "core/ops.h"
#include "core/optim.h"
#include "io/checkpoint.h"
#include "io/hdf5.h"
#include "io/hdf5_write.h"
#include "layers/basic.h"
#include "layers/batch_norm.h"
#include "layers/conv2d.h"
#include "layers/linear.h"
#include "layers/sequential.h"
#include "models/zoo.h"
#include "tests/check.h"
#include "tests/hdf5_damage.h"

namespace graft {
namespace {

namespace fs = std::filesystem;

std::string temp_path(const std::string& name) {
  fs::path dir = fs::temp_directory_path() / ("graft_ckpt_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  return (dir / name).string();
}

std::shared_ptr<Sequential> small_cnn(std::uint64_t seed) {
  Generator gen(seed);
  auto net = std::make_shared<Sequential>();
  net->push_back(std::make_shared<Conv2d>(Conv2dConfig{.in_channels = 3, .out_channels = 6, .kernel_h = 3,
                                                       .kernel_w = 3, .stride = 1, .padding = 1},
                                          gen));
  net->push_back(std::make_shared<BatchNorm2d>(6));
  net->push_back(std::make_shared<ReLU>());
  net->push_back(std::make_shared<MaxPool2d>(2, 2));
  net->push_back(std::make_shared<Flatten>());
  net->push_back(std::make_shared<Linear>(6 * 4 * 4, 3, true, gen));
  return net;
}

void train_steps(Module& net, Optimizer& opt, int first_step, int count) {
  for (int step = first_step; step < first_step + count; ++step) {
    Generator data(1000 + static_cast<std::uint64_t>(step));  // batch k is the same in every run
    Tensor x = Tensor::randn({4, 8, 8, 3}, data);
    Tensor y = Tensor::from_vector(std::vector<std::int32_t>{0, 1, 2, step % 3}, {4});
    Tensor loss = softmax_cross_entropy(net(x), y);
    loss.backward();
    opt.step();
    opt.zero_grad();
  }
}

std::map<std::string, std::vector<float>> values(const Module& m) {
  std::map<std::string, std::vector<float>> out;
  for (auto& [name, t] : m.state()) out[name] = t.to_vector();
  return out;
}

template <typename Opt, typename Options>
void expect_exact_resume(const Options& options) {
  auto straight = small_cnn(3);
  Opt opt_straight(straight->parameters(), options);
  train_steps(*straight, opt_straight, 0, 4);

  auto first = small_cnn(3);
  Opt opt_first(first->parameters(), options);
  train_steps(*first, opt_first, 0, 2);
  std::string path = temp_path("resume.h5");
  save_checkpoint(path, *first, &opt_first, CheckpointMeta{.arch = "small_cnn", .num_classes = 3, .step = 2});

  auto resumed = small_cnn(99);  // different initial weights: everything must come from the file
  Opt opt_resumed(resumed->parameters(), options);
  CheckpointMeta meta = load_checkpoint(path, *resumed, &opt_resumed);
  EXPECT_EQ(meta.step, 2);
  train_steps(*resumed, opt_resumed, static_cast<int>(meta.step), 2);
  EXPECT_EQ(values(*resumed), values(*straight));  // bit for bit, BN running statistics included
}

TEST(Checkpoint, ResumeIsExactWithSGDMomentum) {
  expect_exact_resume<SGD>(SGDOptions{.lr = 0.05f, .momentum = 0.9f, .weight_decay = 1e-4f, .nesterov = true});
}

TEST(Checkpoint, ResumeIsExactWithAdamW) { expect_exact_resume<AdamW>(AdamWOptions{.lr = 0.01f}); }

TEST(Checkpoint, RoundTripKeepsEveryTensorAndTheMetadata) {
  ModelOptions o;
  o.num_classes = 7;
  o.seed = 1;
  auto a = make_model("resnet18", o);
  std::string path = temp_path("resnet18.h5");
  CheckpointMeta meta{.arch = "resnet18", .dialect = "torchvision", .num_classes = 7, .epoch = 3, .step = 1234,
                      .schedule_step = 1200, .rng_seed = 0xFFFFFFFFFFFFull, .rng_offset = 77};
  save_checkpoint(path, *a, nullptr, meta);
  EXPECT_TRUE(is_checkpoint(path));
  o.seed = 2;
  auto b = make_model("resnet18", o);
  Tensor held = b->state()["layer2.0.conv1.weight"];  // identity must survive the load
  CheckpointMeta back = load_checkpoint(path, *b, nullptr);
  EXPECT_EQ(values(*a), values(*b));
  EXPECT_EQ(held.to_vector(), a->state()["layer2.0.conv1.weight"].to_vector());
  EXPECT_EQ(back.arch, "resnet18");
  EXPECT_EQ(back.num_classes, 7);
  EXPECT_EQ(back.epoch, 3);
  EXPECT_EQ(back.step, 1234);
  EXPECT_EQ(back.schedule_step, 1200);
  EXPECT_EQ(back.rng_seed, 0xFFFFFFFFFFFFull);
  EXPECT_EQ(back.rng_offset, 77u);
  EXPECT_FALSE(back.graft_version.empty());
}

TEST(Checkpoint, ClassNamesAndTrainStateRoundTripAndAreOptional) {
  auto net = small_cnn(7);
  std::string path = temp_path("names.h5");
  CheckpointMeta meta{.arch = "small_cnn", .num_classes = 3};
  meta.class_names = {"T-shirt/top", "ankle boot", "caf\xc3\xa9 au lait"};
  meta.train_state = {{"batch_in_epoch", "17"}, {"best_top1", "0.5"}, {"note", "a=b c"}};
  save_checkpoint(path, *net, nullptr, meta);
  CheckpointMeta back = read_checkpoint_meta(path);
  EXPECT_EQ(back.class_names, meta.class_names);
  EXPECT_EQ(back.train_state, meta.train_state);
  // A checkpoint written without them (as before these fields existed) reads them as empty.
  save_checkpoint(path, *net, nullptr, {.arch = "small_cnn", .num_classes = 3});
  back = read_checkpoint_meta(path);
  EXPECT_TRUE(back.class_names.empty());
  EXPECT_TRUE(back.train_state.empty());
  // What cannot be stored one per line is refused, and the previous file stays.
  meta.class_names = {"two\nlines"};
  EXPECT_THROW(save_checkpoint(path, *net, nullptr, meta), Error);
  EXPECT_TRUE(read_checkpoint_meta(path).class_names.empty());
}

TEST(Checkpoint, TenThousandClassNamesRoundTrip) {
  // ~300 KB of names: over HDF5's 64 KiB per attribute, so they are stored in chunks (class_names0, 1, ...).
  auto net = small_cnn(7);
  std::string path = temp_path("many_names.h5");
  CheckpointMeta meta{.arch = "small_cnn", .num_classes = 10000};
  for (int i = 0; i < 10000; ++i) meta.class_names.push_back("species_" + std::to_string(i) + "_with_a_long_name");
  save_checkpoint(path, *net, nullptr, meta);
  EXPECT_EQ(read_checkpoint_meta(path).class_names, meta.class_names);
  hdf5::File file(path);
  EXPECT_FALSE(file.has_attribute("/", "class_names"));
  EXPECT_TRUE(file.has_attribute("/", "class_names0"));
  EXPECT_TRUE(file.has_attribute("/", "class_names4"));
}

TEST(Checkpoint, ALongTrainStateIsStoredInChunks) {
  // One value of ~77 KB (a class weight per class of 7000) and a few short ones: over the 64 KiB per attribute.
  auto net = small_cnn(7);
  std::string path = temp_path("long_state.h5");
  CheckpointMeta meta{.arch = "small_cnn", .num_classes = 7000};
  std::string weights;
  for (int i = 0; i < 7000; ++i) weights += (i ? "," : "") + std::to_string(0.123456789 + i);
  meta.train_state = {{"setting.class-weights", weights}, {"batch_in_epoch", "3"}, {"zz", "last"}};
  save_checkpoint(path, *net, nullptr, meta);
  EXPECT_EQ(read_checkpoint_meta(path).train_state, meta.train_state);
  hdf5::File file(path);
  EXPECT_FALSE(file.has_attribute("/", "train_state"));
  EXPECT_TRUE(file.has_attribute("/", "train_state1"));
}

TEST(Checkpoint, MismatchedModelIsRefusedAndLeftUnchanged) {
  ModelOptions o;
  o.num_classes = 7;
  auto a = make_model("resnet18", o);
  std::string path = temp_path("seven.h5");
  save_checkpoint(path, *a, nullptr, {.arch = "resnet18", .num_classes = 7});
  o.num_classes = 5;
  o.seed = 4;
  auto b = make_model("resnet18", o);
  auto before = values(*b);
  try {
    load_checkpoint(path, *b, nullptr);
    FAIL() << "expected graft::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("wrong shape: fc.weight is (7,512) in the file, (5,512) in the model"),
              std::string::npos)
        << e.what();
  }
  EXPECT_EQ(values(*b), before);
  auto vgg = make_model("vgg11", o);
  EXPECT_THROW(load_checkpoint(path, *vgg, nullptr), Error);
}

TEST(Checkpoint, AnInterruptedWriteLeavesThePreviousFileIntact) {
  auto net = small_cnn(5);
  std::string path = temp_path("atomic.h5");
  save_checkpoint(path, *net, nullptr, {.arch = "small_cnn", .step = 1});
  {
    hdf5::Writer writer(path);  // a write that never reaches commit(), as when the process dies mid-write
    writer.attribute("format", "graft-checkpoint");
    writer.dataset("/model/partial", Tensor::ones({3}));
  }
  EXPECT_EQ(testing::temporaries_beside(path), std::vector<std::string>{});
  EXPECT_EQ(read_checkpoint_meta(path).step, 1);
  auto other = small_cnn(6);
  EXPECT_NO_THROW(load_checkpoint(path, *other, nullptr));
  EXPECT_THROW(save_checkpoint(temp_path("no/such/dir/x.h5"), *net, nullptr, {}), Error);
}

// A damaged tensor is an error naming it, never a missing one: an optimizer buffer whose object header is damaged
// (one byte) used to drop out of the file's listing, so the run resumed without that momentum and said nothing.
TEST(Checkpoint, ADamagedTensorIsAnErrorNamingItNotALeftOutOne) {
  auto net = small_cnn(3);
  SGD opt(net->parameters(), {.lr = 0.1f, .momentum = 0.9f});
  train_steps(*net, opt, 0, 2);
  for (const std::string group : {"/optimizer/", "/model/"}) {
    const std::string path = temp_path("damaged.h5");
    save_checkpoint(path, *net, &opt, {.arch = "small_cnn", .num_classes = 3, .step = 2});
    const std::string victim =
        group + (group == "/model/" ? net->state().begin()->first : opt.state().rbegin()->first);
    testing::damage_object_header(path, victim);
    auto other = small_cnn(4);
    SGD other_opt(other->parameters(), {.lr = 0.1f, .momentum = 0.9f});
    const auto before = values(*other);
    const std::string msg = testing::error_message([&] { load_checkpoint(path, *other, &other_opt); });
    EXPECT_NE(msg.find("'" + victim + "' (damaged file?)"), std::string::npos) << msg;
    EXPECT_EQ(values(*other), before) << "nothing loaded";
    EXPECT_TRUE(other_opt.state().empty()) << "nothing loaded";
  }
}

TEST(Checkpoint, NonCheckpointsAreRefused) {
  std::string path = temp_path("plain.h5");
  hdf5::write_float_datasets(path, {{"output", Tensor::ones({2, 3})}});
  EXPECT_FALSE(is_checkpoint(path));
  auto net = small_cnn(1);
  EXPECT_THROW(load_checkpoint(path, *net, nullptr), Error);
  EXPECT_THROW(load_checkpoint(temp_path("missing.h5"), *net, nullptr), Error);
  EXPECT_FALSE(is_checkpoint(temp_path("missing.h5")));
}

}  // namespace
}  // namespace graft
