// Weight import (io/weights.h, io/hdf5.h) against fixtures from tests/make_weight_fixtures.py: torchvision models
// with random weights exported to HDF5, the same weights in every Keras layout, and torch's own logits.
// Parity is max|graft - torch| / max|torch| over the logits (bound 1e-4: float32 sums over ~25M weights).
#include <gtest/gtest.h>
#include <hdf5.h>

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>

#include "core/autograd.h"
#include "core/error.h"
#include "io/hdf5.h"
#include "io/hdf5_write.h"
#include "io/temporary_file.h"
#include "io/weights.h"
#include "layers/batch_norm.h"
#include "layers/conv2d.h"
#include "layers/linear.h"
#include "layers/sequential.h"
#include "models/zoo.h"
#include "tests/check.h"

namespace graft {
namespace {

std::string fixture(const std::string& name) { return std::string(GRAFT_WEIGHTS_DIR) + "/" + name; }

Tensor reference(const std::string& key) {
  hdf5::File file(fixture("reference_io.h5"));
  return Tensor::from_vector(file.read_floats("/" + key), file.dataset_info("/" + key).shape);
}

std::shared_ptr<Module> build(const std::string& arch, Dialect dialect = Dialect::Torchvision, int classes = 1000,
                              bool top = true) {
  ModelOptions o;
  o.dialect = dialect, o.num_classes = classes, o.include_top = top, o.seed = 99;
  auto m = make_model(arch, o);
  m->eval();
  return m;
}

double max_rel_diff(const Tensor& out, const Tensor& ref) {
  EXPECT_EQ(out.shape(), ref.shape());
  std::vector<float> a = out.to(kCPU).to_vector(), b = ref.to_vector();
  double diff = 0, scale = 0;
  for (std::size_t i = 0; i < a.size() && i < b.size(); ++i) {
    diff = std::max(diff, std::fabs(double(a[i]) - b[i]));
    if (std::isnan(a[i])) diff = INFINITY;
    scale = std::max(scale, std::fabs(double(b[i])));
  }
  return diff / scale;
}

// Runs the model on a fixture input and compares with torch's logits.
double parity(Module& model, const std::string& input, const std::string& logits) {
  NoGradGuard no_grad;
  Tensor out = model(reference(input));
  double rel = max_rel_diff(out, reference(logits));
  std::cout << "[ parity   ] " << model.type_name() << " " << input << " vs " << logits << ": max rel diff " << rel
            << "\n";
  return rel;
}

// Every tensor of `a` bitwise equal to `b`'s.
void expect_same_state(Module& a, Module& b) {
  auto sa = a.state(), sb = b.state();
  ASSERT_EQ(sa.size(), sb.size());
  for (auto& [name, t] : sa) {
    ASSERT_TRUE(sb.count(name)) << name;
    ASSERT_EQ(t.shape(), sb[name].shape()) << name;
    EXPECT_EQ(t.to_vector(), sb[name].to_vector()) << name;
  }
}

std::map<std::string, std::vector<float>> snapshot(Module& m) {
  std::map<std::string, std::vector<float>> out;
  for (auto& [name, t] : m.state()) out[name] = t.to(kCPU).to_vector();
  return out;
}

// NaN everywhere, so a tensor a load forgets cannot pass for a loaded one.
void poison(Module& m) {
  for (auto& [name, t] : m.state()) std::fill_n(t.data<float>(), t.numel(), NAN);
}

bool contains(const std::vector<std::string>& items, const std::string& text) {
  for (const auto& s : items)
    if (s.find(text) != std::string::npos) return true;
  return false;
}

// ---- HDF5 reader ---------------------------------------------------------------------------------------------
TEST(Hdf5, FixedLengthNestedAndEmptyAttributes) {
  hdf5::File f(fixture("resnet50_keras.h5"));  // fixed-length strings (numpy 'S'), nested weight names
  auto names = f.string_list_attribute("/", "layer_names");
  ASSERT_GE(names.size(), 170u);
  EXPECT_EQ(names[0], "input_1");
  EXPECT_EQ(names[2], "conv1_conv");
  EXPECT_EQ(names.back(), "probs");
  EXPECT_EQ(f.string_list_attribute("/conv1_conv", "weight_names"),
            (std::vector<std::string>{"conv1_conv/kernel:0", "conv1_conv/bias:0"}));
  EXPECT_TRUE(f.string_list_attribute("/input_1", "weight_names").empty());  // float64 (0,)
  EXPECT_EQ(f.string_list_attribute("/", "keras_version"), std::vector<std::string>{"2.2.4"});
  EXPECT_EQ(f.dataset_info("/conv1_conv/conv1_conv/kernel:0").shape, (Shape{7, 7, 3, 64}));
  EXPECT_EQ(f.dataset_info("/conv1_conv/conv1_conv/kernel:0").dtype, "float32");
  EXPECT_TRUE(f.has_group("/conv1_conv/conv1_conv"));
  EXPECT_FALSE(f.has_group("/no/such/group"));
}

TEST(Hdf5, VariableLengthSplitAttributes) {
  hdf5::File f(fixture("resnet50_keras_2016.h5"));  // variable-length strings split into layer_names0/1
  EXPECT_FALSE(f.has_attribute("/", "layer_names"));
  EXPECT_TRUE(f.has_attribute("/", "layer_names1"));
  auto names = f.string_list_attribute("/", "layer_names");
  EXPECT_EQ(names.front(), "input_1");
  EXPECT_EQ(names.back(), "fc1000");
  EXPECT_EQ(f.string_list_attribute("/bn_conv1", "weight_names").back(), "bn_conv1_running_std:0");
}

TEST(Hdf5, ErrorsNameTheFileAndTheObject) {
  hdf5::File f(fixture("not_weights.h5"));
  std::string msg = testing::error_message([&] { f.read_floats("/data/labels"); });
  EXPECT_NE(msg.find("/data/labels"), std::string::npos) << msg;
  EXPECT_NE(msg.find("not_weights.h5"), std::string::npos) << msg;
  EXPECT_NE(msg.find("int64"), std::string::npos) << msg;
  msg = testing::error_message([&] { f.dataset_info("/data/missing"); });
  EXPECT_NE(msg.find("has no dataset '/data/missing'"), std::string::npos) << msg;
  msg = testing::error_message([&] { f.string_list_attribute("/data", "layer_names"); });
  EXPECT_NE(msg.find("no attribute 'layer_names'"), std::string::npos) << msg;
}

// ---- detection -------------------------------------------------------------------------------------------------
TEST(Weights, DetectsEveryFormatFromItsContents) {
  struct Case {
    const char* file;
    WeightFormat format;
    Dialect dialect;
    const char* arch;
    std::size_t tensors;
    bool by_order;
  };
  const Case cases[] = {
      {"resnet50_torchvision.h5", WeightFormat::Torchvision, Dialect::Torchvision, "resnet50", 267, false},
      {"resnet50_keras.h5", WeightFormat::KerasLegacy, Dialect::Keras, "resnet50", 320, false},
      {"resnet50_keras_2016.h5", WeightFormat::KerasLegacy, Dialect::KerasLegacy, "resnet50", 320, false},
      {"resnet50_keras_model.h5", WeightFormat::KerasLegacy, Dialect::Keras, "resnet50", 320, false},
      {"resnet50_keras3.weights.h5", WeightFormat::Keras3, Dialect::Keras, "resnet50", 320, false},
      {"resnet50_keras3_noname.weights.h5", WeightFormat::Keras3, Dialect::Keras, "resnet50", 320, true},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.file);
    WeightFileInfo info = inspect_weights(fixture(c.file));
    EXPECT_EQ(info.format, c.format);
    EXPECT_EQ(info.dialect, c.dialect);
    EXPECT_EQ(info.arch_guess, c.arch);
    EXPECT_EQ(info.tensors.size(), c.tensors);
    EXPECT_EQ(info.matched_by_order, c.by_order);
    for (const auto& t : info.tensors) {
      EXPECT_FALSE(t.graft_name.empty()) << t.name;
      EXPECT_EQ(t.nan_count + t.inf_count, 0) << t.name;
    }
  }
  WeightFileInfo model_file = inspect_weights(fixture("resnet50_keras_model.h5"));
  EXPECT_EQ(model_file.root, "/model_weights");
  EXPECT_EQ(model_file.keras_version, "2.2.4");
  EXPECT_NE(model_file.str().find("conv2_block1_0_conv/conv2_block1_0_conv/kernel:0 (1,1,64,256) float32 -> "
                                  "layer1.0.downsample.0.weight"),
            std::string::npos);
}

// Runs a ResNet stage by stage and compares each stage's output with torch's (stored by make_weight_fixtures.py),
// printing one line per stage. Returns the first stage whose max rel diff exceeds 1e-4 ("" when none does).
std::string first_diverging_stage(Module& model, const std::string& input) {
  NoGradGuard no_grad;
  Tensor y = reference(input);
  std::string first;
  auto compare = [&](const std::string& stage) {
    double rel = max_rel_diff(y, reference("resnet50_stage_" + stage + "_224"));
    std::cout << "[ stage    ] " << stage << " " << shape_str(y.shape()) << ": max rel diff " << rel << "\n";
    if (first.empty() && !(rel < 1e-4)) first = stage;
  };
  for (const char* stem : {"conv1", "bn1", "relu", "maxpool"}) y = (*model.find_module(stem))(y);
  compare("maxpool");
  for (const char* layer : {"layer1", "layer2", "layer3", "layer4"}) {
    y = (*model.find_module(layer))(y);
    compare(layer);
  }
  y = (*model.find_module("avgpool"))(y).flatten(1);
  compare("avgpool");
  return first;
}

// ---- parity with torch -----------------------------------------------------------------------------------------
TEST(Weights, TorchvisionResNet50MatchesTorchLogits) {
  auto model = build("resnet50");
  LoadReport report = load_weights(*model, fixture("resnet50_torchvision.h5"));
  EXPECT_EQ(report.loaded.size(), 267u);  // num_batches_tracked ignored
  EXPECT_TRUE(report.skipped.empty() && report.left_at_init.empty() && report.warnings.empty()) << report.str();
  double rel = parity(*model, "input_224", "resnet50_logits_224");
  EXPECT_LT(rel, 1e-4);
  if (!(rel < 1e-4)) std::cout << "first diverging stage: " << first_diverging_stage(*model, "input_224") << "\n";
  EXPECT_LT(parity(*model, "input_160x192", "resnet50_logits_160x192"), 1e-4);
}

// The per-stage report finds where a model goes wrong: a weight perturbed in layer3 is reported there, not before.
TEST(Weights, PerStageComparisonNamesTheFirstDivergingStage) {
  auto model = build("resnet50");
  load_weights(*model, fixture("resnet50_torchvision.h5"));
  EXPECT_EQ(first_diverging_stage(*model, "input_224"), "");
  Tensor w = model->state()["layer3.2.conv2.weight"];
  w.copy_from(mul(w, 1.5f));
  EXPECT_EQ(first_diverging_stage(*model, "input_224"), "layer3");
}

TEST(Weights, VGG16FromEveryFormatMatchesTorchLogits) {
  auto model = build("vgg16");
  LoadReport report = load_weights(*model, fixture("vgg16_torchvision.h5"));
  EXPECT_EQ(report.loaded.size(), 32u);
  EXPECT_TRUE(report.warnings.empty()) << report.str();
  // classifier.0's columns are permuted from torch's (c,h,w) flatten to graft's (h,w,c): only logits can tell.
  EXPECT_LT(parity(*model, "input_224", "vgg16_logits_224"), 1e-4);
  // The same weights in Keras layouts (fc1 rows in (h,w,c) order) give bitwise this model, hence torch's logits.
  auto torch_state = snapshot(*model);
  for (const char* file : {"vgg16_keras1.h5", "vgg16_keras3.weights.h5"}) {
    SCOPED_TRACE(file);
    poison(*model);
    report = load_weights(*model, fixture(file));
    EXPECT_EQ(report.loaded.size(), 32u);
    EXPECT_EQ(snapshot(*model), torch_state);
    // Keras-1 names (block1_conv1_W_1:0, no keras_version) by name; the Keras 3 file has no names: by position.
    EXPECT_EQ(contains(report.warnings, "by their position"), std::string(file) == "vgg16_keras3.weights.h5")
        << report.str();
  }
}

TEST(Weights, KerasResNet50MatchesTheKerasV1Reference) {
  auto model = build("resnet50", Dialect::Keras);
  LoadReport report = load_weights(*model, fixture("resnet50_keras.h5"));
  EXPECT_EQ(report.loaded.size(), 53u * 2 + 53u * 4 + 2);
  EXPECT_TRUE(report.warnings.empty()) << report.str();
  EXPECT_LT(parity(*model, "input_112", "keras_resnet50_logits_112"), 1e-4);

  // The same weights in the other Keras layouts give bitwise the same model.
  auto reference_state = snapshot(*model);
  for (const char* file :
       {"resnet50_keras_model.h5", "resnet50_keras3.weights.h5", "resnet50_keras3_noname.weights.h5"}) {
    SCOPED_TRACE(file);
    poison(*model);
    EXPECT_EQ(load_weights(*model, fixture(file)).loaded.size(), 320u);
    EXPECT_EQ(snapshot(*model), reference_state);
  }
}

TEST(Weights, Keras2016ResNet50SetsLegacyEpsilon) {
  auto legacy = build("resnet50", Dialect::KerasLegacy);
  LoadReport report = load_weights(*legacy, fixture("resnet50_keras_2016.h5"));
  EXPECT_TRUE(report.warnings.empty()) << report.str();
  EXPECT_LT(parity(*legacy, "input_112", "keras2016_resnet50_logits_112"), 1e-4);

  // Into a keras-dialect model: same weights, BatchNorm eps switched to the file's 1e-3 with a warning.
  auto keras = build("resnet50", Dialect::Keras);
  report = load_weights(*keras, fixture("resnet50_keras_2016.h5"));
  EXPECT_TRUE(contains(report.warnings, "eps")) << report.str();
  for (auto& [name, m] : keras->named_modules()) {
    if (auto* bn = dynamic_cast<BatchNorm2d*>(m)) {
      EXPECT_EQ(bn->eps(), 1e-3f) << name;
    }
  }
  expect_same_state(*keras, *legacy);
}

// ---- options ---------------------------------------------------------------------------------------------------
TEST(Weights, ExcludeKeepsANewHeadAtInit) {
  auto model = build("resnet50", Dialect::Torchvision, 5);
  Tensor head_before = model->state()["fc.weight"].clone();
  std::string msg = testing::error_message([&] { load_weights(*model, fixture("resnet50_torchvision.h5")); });
  EXPECT_NE(msg.find("wrong shape: fc.weight: file fc.weight (1000,2048), model (5,2048)"), std::string::npos) << msg;
  EXPECT_NE(msg.find("exclude"), std::string::npos) << msg;

  LoadOptions options;
  options.exclude = {"fc.*"};
  LoadReport report = load_weights(*model, fixture("resnet50_torchvision.h5"), options);
  EXPECT_EQ(report.loaded.size(), 265u);
  EXPECT_EQ(report.skipped, (std::vector<std::string>{"fc.bias", "fc.weight"}));
  EXPECT_EQ(report.left_at_init, (std::vector<std::string>{"fc.bias", "fc.weight"}));
  EXPECT_EQ(model->state()["fc.weight"].to_vector(), head_before.to_vector());
  EXPECT_NE(report.str().find("left at init 2"), std::string::npos) << report.str();
}

TEST(Weights, NoTopModelNeedsTheHeadExcluded) {
  auto notop = build("resnet50", Dialect::Keras, 1000, false);
  std::string msg = testing::error_message([&] { load_weights(*notop, fixture("resnet50_keras.h5")); });
  EXPECT_NE(msg.find("unexpected: probs/probs/kernel:0 -> fc.weight (not in ResNet50)"), std::string::npos) << msg;
  LoadOptions options;
  options.exclude = {"fc"};
  EXPECT_EQ(load_weights(*notop, fixture("resnet50_keras.h5"), options).loaded.size(), 53u * 6);
}

TEST(Weights, LoadingKeepsTensorIdentity) {
  auto model = build("resnet18");
  auto before = model->state();
  LoadOptions options;
  options.strict = false;
  load_weights(*model, fixture("nan_weights.h5"), options);
  for (auto& [name, t] : model->state()) EXPECT_EQ(t.impl(), before[name].impl()) << name;
}

// ---- refusals and bad input ------------------------------------------------------------------------------------
TEST(Weights, RefusesAResNetOfAnotherDialect) {
  auto keras = build("resnet50", Dialect::Keras);
  std::string msg = testing::error_message([&] { load_weights(*keras, fixture("resnet50_torchvision.h5")); });
  EXPECT_NE(msg.find("torchvision ResNet weights"), std::string::npos) << msg;
  EXPECT_NE(msg.find("build it with dialect torchvision"), std::string::npos) << msg;
  auto torch = build("resnet50");
  msg = testing::error_message([&] { load_weights(*torch, fixture("resnet50_keras.h5")); });
  EXPECT_NE(msg.find("build it with dialect keras "), std::string::npos) << msg;
  msg = testing::error_message([&] { load_weights(*torch, fixture("resnet50_keras3.weights.h5")); });
  EXPECT_NE(msg.find("build it with dialect keras "), std::string::npos) << msg;
  msg = testing::error_message([&] { load_weights(*torch, fixture("resnet50_keras_2016.h5")); });
  EXPECT_NE(msg.find("build it with dialect keras-legacy"), std::string::npos) << msg;
}

TEST(Weights, WrongArchitectureListsEveryMismatchInOneError) {
  auto r18 = build("resnet18");
  Tensor before = r18->state()["conv1.weight"].clone();
  std::string msg = testing::error_message([&] { load_weights(*r18, fixture("resnet50_torchvision.h5")); });
  EXPECT_NE(msg.find("does not fit ResNet18 - the file is a resnet50, the model a resnet18"), std::string::npos) << msg;
  EXPECT_NE(msg.find("wrong shape: layer1.0.conv1.weight: file layer1.0.conv1.weight (64,64,1,1) (graft layout "
                     "(64,1,1,64)), model (64,3,3,64)"),
            std::string::npos)
      << msg;
  EXPECT_NE(msg.find("unexpected: layer1.0.conv3.weight (not in ResNet18)"), std::string::npos) << msg;
  EXPECT_NE(msg.find("unexpected: layer4.2.bn3.running_var"), std::string::npos) << msg;
  EXPECT_EQ(r18->state()["conv1.weight"].to_vector(), before.to_vector());  // all or nothing

  auto r50 = build("resnet50");
  msg = testing::error_message([&] { load_weights(*r50, fixture("vgg16_keras1.h5")); });
  EXPECT_NE(msg.find("the file is a vgg16, the model a resnet50"), std::string::npos) << msg;
  EXPECT_NE(msg.find("missing: conv1.weight (64,7,7,3)"), std::string::npos) << msg;
}

TEST(Weights, BadFilesGiveClearErrors) {
  auto model = build("resnet18");
  auto expect_error = [&](const std::string& path, const std::string& text) {
    std::string msg = testing::error_message([&] { load_weights(*model, path); });
    EXPECT_NE(msg.find(text), std::string::npos) << path << ": " << msg;
    msg = testing::error_message([&] { inspect_weights(path); });
    EXPECT_NE(msg.find(text), std::string::npos) << path << ": " << msg;
  };
  expect_error(fixture("no_such_file.h5"), "no_such_file.h5': no such file");
  expect_error(GRAFT_WEIGHTS_DIR, "is a directory, not an HDF5 file");
  expect_error(fixture("not_hdf5.h5"), "not_hdf5.h5' is not an HDF5 file");
  expect_error(fixture("truncated.h5"), "truncated");
  expect_error(fixture("not_weights.h5"), "not a weight file graft knows");
  expect_error(fixture("not_weights.h5"), "/data/images");
  LoadOptions loose;
  loose.strict = false;  // integer data is refused even when not strict
  std::string msg = testing::error_message([&] { load_weights(*model, fixture("int_weights.h5"), loose); });
  EXPECT_NE(msg.find("refused: fc.weight is int32 (1000,512)"), std::string::npos) << msg;
}

TEST(Weights, ConvertsFloat64AndFloat16AndIgnoresStepCounters) {
  auto model = build("resnet18");
  LoadOptions loose;
  loose.strict = false;
  LoadReport report = load_weights(*model, fixture("float_kinds.h5"), loose);
  EXPECT_EQ(report.loaded, (std::vector<std::string>{"fc.bias", "fc.weight"}));
  EXPECT_TRUE(report.skipped.empty()) << report.str();  // num_batches_tracked is not even unexpected
  EXPECT_EQ(report.left_at_init.size(), model->state().size() - 2);
  hdf5::File expected(fixture("float_kinds_expected.h5"));
  EXPECT_EQ(model->state()["fc.weight"].to_vector(), expected.read_floats("/fc.weight"));  // same rounding as numpy
  EXPECT_EQ(model->state()["fc.bias"].to_vector(), expected.read_floats("/fc.bias"));
  // Strict, the same file lists what is missing, with the model's shapes.
  std::string msg = testing::error_message([&] { load_weights(*model, fixture("float_kinds.h5")); });
  EXPECT_NE(msg.find("missing: conv1.weight (64,7,7,3)"), std::string::npos) << msg;
}

TEST(Weights, WarnsAboutNaNAndInfByName) {
  auto model = build("resnet18");
  LoadOptions loose;
  loose.strict = false;
  LoadReport report = load_weights(*model, fixture("nan_weights.h5"), loose);
  EXPECT_TRUE(contains(report.warnings, "layer1.0.conv1.weight has 2 NaN and 0 Inf values")) << report.str();
  EXPECT_TRUE(contains(report.warnings, "fc.bias has 0 NaN and 1 Inf values")) << report.str();
  EXPECT_TRUE(std::isinf(model->state()["fc.bias"].to_vector()[10]));
  WeightFileInfo info = inspect_weights(fixture("nan_weights.h5"));
  ASSERT_EQ(info.tensors.size(), 2u);
  EXPECT_EQ(info.tensors[1].name, "layer1.0.conv1.weight");
  EXPECT_EQ(info.tensors[1].nan_count, 2);
}

// ---- export_torchvision: the way back ----------------------------------------------------------------------------

// The id of a process that has ended (a child that exited and was reaped).
pid_t dead_process_id() {
  const pid_t child = fork();
  if (child == 0) _exit(0);
  waitpid(child, nullptr, 0);
  return child;
}

std::string temp_path(const std::string& name) {
  std::filesystem::path dir = std::filesystem::temp_directory_path() / ("graft_export_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  return (dir / name).string();
}

// How many objects libhdf5 has open in this process, by kind: files, datasets, groups, attributes. (Transient
// identifiers - dataspaces, datatypes, property lists - cannot be counted through the public API.)
std::vector<ssize_t> open_hdf5_objects() {
  hdf5::prepare_library();  // as graft starts the library (exit-time clean-up off), even when this call is the first
  std::vector<ssize_t> counts;
  for (unsigned kind : {H5F_OBJ_FILE, H5F_OBJ_DATASET, H5F_OBJ_GROUP, H5F_OBJ_ATTR})
    counts.push_back(H5Fget_obj_count(H5F_OBJ_ALL, kind));
  return counts;
}

TEST(Hdf5, WriterRefusesWhatItCannotStoreByNameAndLeavesNoFile) {
  const std::string path = temp_path("writer.h5");
  std::filesystem::remove(path);
  const std::vector<ssize_t> objects = open_hdf5_objects();
  auto refused = [&](const std::function<void(hdf5::Writer&)>& write, const std::string& expected) {
    std::string msg = testing::error_message([&] {
      hdf5::Writer writer(path);
      write(writer);
      writer.commit();
    });
    EXPECT_NE(msg.find(expected), std::string::npos) << msg;
    EXPECT_FALSE(std::filesystem::exists(path)) << expected;
    EXPECT_EQ(testing::temporaries_beside(path), std::vector<std::string>{}) << expected;
    // and the writer's file and datasets are closed again, whichever call failed
    EXPECT_EQ(open_hdf5_objects(), objects) << expected;
  };
  refused([](hdf5::Writer& w) { w.string_list_attribute("/", "names", {}); }, "an empty string list");
  refused([](hdf5::Writer& w) { w.string_list_attribute("/", "names", std::vector<std::string>(7000, "n00000001")); },
          "70000 bytes: HDF5 keeps attributes in a 64 KiB object header");
  refused([](hdf5::Writer& w) { w.string_list_attribute("/no_group", "names", {"a"}); },
          "attribute 'names' of '/no_group' (no such object");
  refused(
      [](hdf5::Writer& w) {
        w.dataset("x", Tensor::zeros({2}));
        w.dataset("x", Tensor::zeros({2}));
      },
      "dataset 'x' (a name written twice");
  refused(
      [](hdf5::Writer& w) {
        w.string_dataset("names", {"a", "bb"});
        w.string_dataset("names", {"a"});
      },
      "dataset 'names' (a name written twice");
  refused(
      [](hdf5::Writer& w) {
        w.append_rows("rows", Tensor::zeros({2, 3}));
        w.append_rows("rows", Tensor::zeros({2, 4}));
      },
      "do not continue a dataset of shape (2,3)");
  refused(
      [](hdf5::Writer& w) {
        w.dataset("whole", Tensor::zeros({2, 3}));
        w.append_rows("whole", Tensor::zeros({2, 3}));
      },
      "was written whole, not by append_rows");
  // What does fit: a scalar in a new group, a list read back as written.
  {
    hdf5::Writer writer(path);
    writer.int64_scalar("group/count", 7);
    writer.string_list_attribute("group", "names", {"a", "bb", "ccc"});
    writer.commit();
  }
  hdf5::File file(path);
  EXPECT_EQ(file.dataset_info("/group/count").dtype, "int64");
  EXPECT_EQ(file.dataset_info("/group/count").shape, Shape{});
  EXPECT_EQ(file.string_list_attribute("/group", "names"), (std::vector<std::string>{"a", "bb", "ccc"}));
  std::filesystem::remove(path);
}

// A Writer renames its finished file over the path: a symbolic link there would be replaced by a plain file (its
// target left as it was), so a link is refused before anything is written, and both it and its target stay.
TEST(Hdf5, WriterRefusesASymbolicLink) {
  const std::string target = temp_path("target.h5"), link = temp_path("link.h5");
  std::filesystem::remove(link);
  hdf5::write_float_datasets(target, {{"x", Tensor::ones({2})}});
  std::filesystem::create_symlink(target, link);
  const std::string msg = testing::error_message([&] { hdf5::write_float_datasets(link, {{"y", Tensor::ones({3})}}); });
  EXPECT_NE(msg.find("is a symbolic link"), std::string::npos) << msg;
  EXPECT_TRUE(std::filesystem::is_symlink(link));
  EXPECT_EQ(hdf5::File(target).dataset_info("/x").shape, Shape{2});
  std::filesystem::remove(link);
  // Links left at temporary names (the older fixed name, a dead writer's) are not followed: they are removed, and
  // the file written is a plain one.
  const std::string plain = temp_path("plain.h5");
  std::filesystem::remove(plain);
  std::filesystem::create_symlink(target, plain + ".tmp-graft");
  std::filesystem::create_symlink(target, plain + ".tmp-graft-" + std::to_string(dead_process_id()) + "-0");
  hdf5::write_float_datasets(plain, {{"y", Tensor::ones({3})}});
  EXPECT_FALSE(std::filesystem::is_symlink(plain));
  EXPECT_EQ(hdf5::File(plain).dataset_info("/y").shape, Shape{3});
  EXPECT_EQ(hdf5::File(target).dataset_info("/x").shape, Shape{2});  // the link's target is untouched
  EXPECT_EQ(testing::temporaries_beside(plain), std::vector<std::string>{});
  std::filesystem::remove(plain);
  std::filesystem::remove(target);
}

// Temporary names (io/temporary_file.h): new for every writer, so two writers of one file at once - in one process
// or two - each finish their own and the last commit wins; leftovers nobody writes (the older fixed name, a dead
// process's, a living process's untouched for minutes) are removed by the next writer; a fresh one of a living
// process, one whose writer holds its flock, and names graft does not make are not.
TEST(Hdf5, ConcurrentWritersOfOneFileNeverShareATemporaryAndDeadOnesAreCleanedUp) {
  const std::string path = temp_path("shared.h5");
  std::filesystem::remove(path);
  const std::string a = temporary_path_for(path), b = temporary_path_for(path);
  EXPECT_NE(a, b);
  EXPECT_EQ(a.rfind(path + ".tmp-graft-" + std::to_string(getpid()) + "-", 0), 0u) << a;
  {
    hdf5::Writer first(path), second(path);
    first.dataset("who", Tensor::full({1}, 1.f));
    second.dataset("who", Tensor::full({1}, 2.f));
    EXPECT_EQ(testing::temporaries_beside(path).size(), 2u);
    // held (flocked) while written, however old they look: a third writer clearing abandoned temporaries keeps them
    for (const std::string& name : testing::temporaries_beside(path))
      std::filesystem::last_write_time(name, std::filesystem::file_time_type::clock::now() - std::chrono::minutes(5));
    remove_dead_temporaries(path);
    EXPECT_EQ(testing::temporaries_beside(path).size(), 2u);
    first.commit();
    EXPECT_EQ(hdf5::File(path).read_floats("/who"), std::vector<float>{1.f});
    second.commit();
  }
  EXPECT_EQ(hdf5::File(path).read_floats("/who"), std::vector<float>{2.f});
  EXPECT_EQ(testing::temporaries_beside(path), std::vector<std::string>{});

  int release[2];
  ASSERT_EQ(pipe(release), 0);
  const pid_t alive = fork();
  ASSERT_GE(alive, 0);
  if (alive == 0) {
    close(release[1]);
    char byte;
    while (read(release[0], &byte, 1) > 0) {
    }
    _exit(0);
  }
  close(release[0]);
  const std::string dead = path + ".tmp-graft-" + std::to_string(dead_process_id()) + "-3";
  const std::string living = path + ".tmp-graft-" + std::to_string(alive) + "-0";
  // a living process's temporary last written two minutes ago and held by nobody: abandoned (its writer's pid may
  // belong to another process namespace, where the number means another process)
  const std::string stale = path + ".tmp-graft-" + std::to_string(alive) + "-1";
  // a writer this process cannot see (another pid namespace: its pid looks dead here) that holds its flock: kept
  const std::string held = path + ".tmp-graft-" + std::to_string(dead_process_id()) + "-2";
  const std::string older = path + ".tmp-graft", foreign = path + ".tmp-graft-notes";
  for (const std::string& name : {dead, living, stale, held, older, foreign}) std::ofstream(name) << "x";
  std::filesystem::last_write_time(stale, std::filesystem::file_time_type::clock::now() - std::chrono::minutes(2));
  const int held_fd = ::open(held.c_str(), O_RDONLY);
  ASSERT_GE(held_fd, 0);
  hold_temporary(held_fd);
  remove_dead_temporaries(path);
  EXPECT_FALSE(std::filesystem::exists(dead));
  EXPECT_FALSE(std::filesystem::exists(older));
  EXPECT_FALSE(std::filesystem::exists(stale));
  EXPECT_TRUE(std::filesystem::exists(living));
  EXPECT_TRUE(std::filesystem::exists(held));
  EXPECT_TRUE(std::filesystem::exists(foreign));
  ::close(held_fd);
  kill(alive, SIGKILL);
  waitpid(alive, nullptr, 0);
  close(release[1]);
  remove_dead_temporaries(path);
  EXPECT_FALSE(std::filesystem::exists(living));
  EXPECT_FALSE(std::filesystem::exists(held));
  std::filesystem::remove(foreign);
  std::filesystem::remove(path);
}

// String datasets and attributes say UTF-8 only when they are: graft features' /paths holds file names, which on
// Linux may be Latin-1 bytes; h5py's asstr() fails on a dataset typed UTF-8 whose bytes are not. Those are typed
// ASCII (h5py gives bytes) and read back unchanged by graft.
TEST(Hdf5, StringsAreTypedUtf8OnlyWhenTheyAreUtf8) {
  const std::string path = temp_path("strings.h5");
  const std::vector<std::pair<std::string, bool>> cases = {
      {"plain", true},          {"caf\xc3\xa9", true},        {"\xf0\x9f\x98\x80", true},  // ASCII, e-acute, an emoji
      {"caf\xe9", false},       {"\xc0\xaf", false},          // Latin-1; an overlong '/'
      {"\xed\xa0\x80", false}, {"\xe2\x82", false}};         // a UTF-16 surrogate; a cut sequence
  {
    hdf5::Writer writer(path);
    for (std::size_t i = 0; i < cases.size(); ++i) {
      writer.string_dataset("s" + std::to_string(i), {"first", cases[i].first});
      writer.attribute("a" + std::to_string(i), cases[i].first);
    }
    writer.commit();
  }
  hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  ASSERT_GE(file, 0);
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const H5T_cset_t want = cases[i].second ? H5T_CSET_UTF8 : H5T_CSET_ASCII;
    hid_t set = H5Dopen2(file, ("s" + std::to_string(i)).c_str(), H5P_DEFAULT);
    hid_t type = H5Dget_type(set);
    EXPECT_EQ(H5Tget_cset(type), want) << "dataset " << i;
    H5Tclose(type), H5Dclose(set);
    hid_t attr = H5Aopen(file, ("a" + std::to_string(i)).c_str(), H5P_DEFAULT);
    type = H5Aget_type(attr);
    EXPECT_EQ(H5Tget_cset(type), want) << "attribute " << i;
    H5Tclose(type), H5Aclose(attr);
  }
  H5Fclose(file);
  hdf5::File back(path);
  for (std::size_t i = 0; i < cases.size(); ++i)
    EXPECT_EQ(back.string_list_attribute("/", "a" + std::to_string(i)), std::vector<std::string>{cases[i].first}) << i;
  std::filesystem::remove(path);
}

// graft features writes its rows a batch at a time, so a million images need no 8 GB buffer.
TEST(Hdf5, AppendRowsGrowsADatasetBatchByBatchAndRefusesAnotherRowShape) {
  const std::string path = temp_path("append.h5");
  std::filesystem::remove(path);
  const Tensor a = Tensor::arange(24).reshape({3, 2, 4}), b = Tensor::arange(40).reshape({5, 2, 4});
  {
    hdf5::Writer writer(path);
    writer.append_rows("group/rows", a);
    writer.append_rows("group/rows", Tensor::zeros({0, 2, 4}));
    writer.append_rows("group/rows", b);
    writer.dataset("whole", Tensor::zeros({2, 4}));
    EXPECT_NE(testing::error_message([&] { writer.append_rows("group/rows", Tensor::zeros({1, 4, 2})); })
                  .find("rows of shape (1,4,2) do not continue a dataset of shape (8,2,4)"),
              std::string::npos);
    EXPECT_NE(testing::error_message([&] { writer.append_rows("group/rows", Tensor::zeros({2, 2})); })
                  .find("do not continue a dataset of shape (8,2,4)"),
              std::string::npos);
    EXPECT_NE(testing::error_message([&] { writer.append_rows("whole", Tensor::zeros({1, 4})); })
                  .find("was written whole, not by append_rows, and cannot grow"),
              std::string::npos);
    EXPECT_NE(testing::error_message([&] { writer.append_rows("scalar", Tensor::zeros({})); })
                  .find("have no first axis to grow"),
              std::string::npos);
    writer.commit();
  }
  hdf5::File file(path);
  EXPECT_EQ(file.dataset_info("/group/rows").shape, (Shape{8, 2, 4}));
  std::vector<float> expected = a.to_vector(), tail = b.to_vector();
  expected.insert(expected.end(), tail.begin(), tail.end());
  EXPECT_EQ(file.read_floats("/group/rows"), expected);
  std::filesystem::remove(path);
}

// A full disk, stood in for by a file-size limit (RLIMIT_FSIZE, with SIGXFSZ ignored so writes fail with EFBIG):
// every write path reports it as a graft::Error at the call that failed and leaves no file. Before, append_rows
// missed a failure that showed only when the dataset was closed (the chunk cache is written then), so a committed
// file could hold rows of zeros. It runs in a child process (testing::exit_status_under_file_size_limit), so that
// the limit reaches no other test; the child ends with _exit: libhdf5 keeps the failed file's chunk cache, which
// LeakSanitizer would report at a normal exit. That
// the process then exits normally (libhdf5's exit-time cleanup used to segfault after a failed write) is
// tests/cli_features.sh's part, through the CLI.
TEST(Hdf5, AFullDiskIsAnErrorOnEveryWritePathAndLeavesNoFile) {
  const std::string path = temp_path("full.h5"), report = temp_path("full.txt");
  std::filesystem::remove(path);
  const int status = testing::exit_status_under_file_size_limit(300000, [&] {
    std::FILE* out = std::fopen(report.c_str(), "w");
    auto attempt = [&](const std::function<void(hdf5::Writer&)>& write) {
      try {
        hdf5::Writer writer(path);
        write(writer);
        writer.commit();
        std::fprintf(out, "no error\n");
      } catch (const Error& e) {
        std::fprintf(out, "%s\n", e.what());
      }
      std::fprintf(out, "left: %d %d\n", int(std::filesystem::exists(path)),
                   int(testing::temporaries_beside(path).size()));
    };
    attempt([](hdf5::Writer& w) {
      for (int i = 0; i < 8; ++i) w.append_rows("features", Tensor::ones({32, 2048}));
    });
    attempt([](hdf5::Writer& w) { w.dataset("x", Tensor::ones({200000})); });
    attempt([](hdf5::Writer& w) { w.append_rows("features", Tensor::ones({2, 2048})); });  // fits
    std::fclose(out);
    return 0;
  });
  EXPECT_EQ(status, 0) << "the child exited with that status (< 0: died of that signal)";
  std::vector<std::string> lines;
  {
    std::ifstream in(report);
    for (std::string line; std::getline(in, line);) lines.push_back(line);
  }
  ASSERT_EQ(lines.size(), 6u);
  // At the call that failed (the append, the dataset), not later at commit(); nothing left behind.
  EXPECT_NE(lines[0].find("appending to dataset 'features' (disk full"), std::string::npos) << lines[0];
  EXPECT_EQ(lines[1], "left: 0 0");
  EXPECT_NE(lines[2].find("dataset 'x' (disk full"), std::string::npos) << lines[2];
  EXPECT_EQ(lines[3], "left: 0 0");
  EXPECT_EQ(lines[4], "no error");
  EXPECT_EQ(lines[5], "left: 1 0");
  EXPECT_EQ(hdf5::File(path).dataset_info("/features").shape, (Shape{2, 2048}));
  std::filesystem::remove(path);
  std::filesystem::remove(report);
}

TEST(WeightsExport, WritesBackTheTorchvisionFileItLoaded) {
  // The fixture is torch's own state_dict (320 tensors and 53 int64 num_batches_tracked): load + export gives it
  // back dataset for dataset, bit for bit, so torch's load_state_dict(strict=True) takes the export.
  auto model = build("resnet50");
  load_weights(*model, fixture("resnet50_torchvision.h5"));
  const std::string path = temp_path("resnet50.h5");
  export_torchvision(*model, path);
  testing::expect_same_datasets(fixture("resnet50_torchvision.h5"), path);
  hdf5::File file(path);
  EXPECT_EQ(file.string_list_attribute("/", "arch"), std::vector<std::string>{"resnet50"});
  EXPECT_EQ(file.dataset_info("/layer4.2.bn3.num_batches_tracked").dtype, "int64");
  EXPECT_EQ(file.dataset_info("/layer4.2.bn3.num_batches_tracked").shape, Shape{});
  // And graft reads its own export as the torchvision file it is.
  auto again = build("resnet50");
  poison(*again);
  load_weights(*again, path);
  expect_same_state(*model, *again);
  std::filesystem::remove(path);  // 100 MB
}

TEST(WeightsExport, AnyModuleRoundTripsWithTorchLayouts) {
  // Not a zoo model: a conv (OIHW in the file), a batch norm and a linear layer, trained state in the buffers.
  auto make = [] {
    Generator gen(3);
    Conv2dConfig c;
    c.in_channels = 3, c.out_channels = 5, c.kernel_h = 3, c.kernel_w = 2;
    auto bn = std::make_shared<BatchNorm2d>(5);
    auto seq = std::make_shared<Sequential>(std::vector<std::shared_ptr<Module>>{
        std::make_shared<Conv2d>(c, gen), bn, std::make_shared<Linear>(5, 4, true, gen)});
    return seq;
  };
  auto model = make();
  Generator gen(11);
  for (auto& [name, t] : model->state()) t.copy_from(Tensor::uniform(t.shape(), gen, 0.5f, 2.f));
  const std::string path = temp_path("sequential.h5");
  export_torchvision(*model, path);
  hdf5::File file(path);
  EXPECT_FALSE(file.has_attribute("/", "arch"));
  ASSERT_EQ(file.dataset_info("/0.weight").shape, (Shape{5, 3, 3, 2}));  // (out,in,kh,kw)
  const std::vector<float> w = model->state()["0.weight"].to_vector(), oihw = file.read_floats("/0.weight");
  for (int o = 0; o < 5; ++o)
    for (int i = 0; i < 3; ++i)
      for (int h = 0; h < 3; ++h)
        for (int x = 0; x < 2; ++x) ASSERT_EQ(oihw[((o * 3 + i) * 3 + h) * 2 + x], w[((o * 3 + h) * 2 + x) * 3 + i]);
  EXPECT_EQ(file.read_floats("/2.weight"), model->state()["2.weight"].to_vector());  // linear (out,in) as is
  EXPECT_EQ(file.dataset_info("/1.num_batches_tracked").dtype, "int64");
  auto again = make();
  poison(*again);
  load_weights(*again, path);
  expect_same_state(*model, *again);
  std::filesystem::remove(path);
}

// A module with an integer buffer: weight files hold float32 only, so the export names the tensor and writes nothing.
struct Counter : Module {
  Counter() { register_buffer("count", Tensor::from_vector(std::vector<std::int32_t>{3}, {1})); }
  Tensor forward(const Tensor& x) override { return x; }
  std::string type_name() const override { return "Counter"; }
};

TEST(WeightsExport, RefusesIntegerTensors) {
  const std::string path = temp_path("int.h5");
  std::filesystem::remove(path);
  Counter counter;
  std::string msg = testing::error_message([&] { export_torchvision(counter, path); });
  EXPECT_NE(msg.find("count holds int32 values; weight files hold float32 tensors"), std::string::npos) << msg;
  EXPECT_FALSE(std::filesystem::exists(path));
}

TEST(WeightsExport, RefusesAKerasDialectResNetAndLeavesNoFile) {
  const std::string path = temp_path("keras.h5");
  std::filesystem::remove(path);
  auto keras = build("resnet50", Dialect::Keras);
  std::string msg = testing::error_message([&] { export_torchvision(*keras, path); });
  EXPECT_NE(msg.find("resnet50 in the keras dialect, which torchvision's ResNet cannot hold"), std::string::npos)
      << msg;
  EXPECT_FALSE(std::filesystem::exists(path));
  msg = testing::error_message([&] { export_torchvision(*build("resnet50v2", Dialect::Keras), path); });
  EXPECT_NE(msg.find("resnet50v2, Keras's pre-activation ResNet, which torchvision does not have"), std::string::npos)
      << msg;
  EXPECT_FALSE(std::filesystem::exists(path));
  const std::string bad_dir = temp_path("no-such-dir") + "/x.h5";
  msg = testing::error_message([&] { export_torchvision(*build("resnet18"), bad_dir); });
  EXPECT_NE(msg.find("cannot create"), std::string::npos) << msg;
}

TEST(WeightsExport, KerasRoundTripsAndWritesKerasLayouts) {
  // Keras's own layouts in, Keras's layouts out: load the fixture, export, load the export into a fresh model.
  auto model = build("resnet50", Dialect::Keras);
  load_weights(*model, fixture("resnet50_keras.h5"));
  const std::string path = temp_path("resnet50_keras.h5");
  export_keras(*model, path);
  hdf5::File file(path);
  const std::vector<std::string> layers = file.string_list_attribute("/", "layer_names");
  ASSERT_EQ(layers.size(), 107u);  // 53 convs, 53 batch norms, predictions
  EXPECT_EQ(layers[0], "conv1_conv");
  EXPECT_EQ(layers.back(), "predictions");
  EXPECT_EQ(file.string_list_attribute("/conv2_block1_0_bn", "weight_names"),
            (std::vector<std::string>{"conv2_block1_0_bn/gamma:0", "conv2_block1_0_bn/beta:0",
                                      "conv2_block1_0_bn/moving_mean:0", "conv2_block1_0_bn/moving_variance:0"}));
  // conv HWIO and dense (in,out), element by element against graft's (out,kh,kw,in) and (out,in)
  const std::vector<float> w = model->state()["layer1.0.conv2.weight"].to_vector();
  const std::vector<float> hwio = file.read_floats("/conv2_block1_2_conv/conv2_block1_2_conv/kernel:0");
  ASSERT_EQ(file.dataset_info("/conv2_block1_2_conv/conv2_block1_2_conv/kernel:0").shape, (Shape{3, 3, 64, 64}));
  for (int o = 0; o < 64; o += 7)
    for (int h = 0; h < 3; ++h)
      for (int x = 0; x < 3; ++x)
        for (int i = 0; i < 64; i += 5)
          ASSERT_EQ(hwio[((h * 3 + x) * 64 + i) * 64 + o], w[((o * 3 + h) * 3 + x) * 64 + i]);
  const std::vector<float> fc = model->state()["fc.weight"].to_vector();
  const std::vector<float> kernel = file.read_floats("/predictions/predictions/kernel:0");
  for (int o = 0; o < 1000; o += 37)
    for (int i = 0; i < 2048; i += 101) ASSERT_EQ(kernel[i * 1000 + o], fc[o * 2048 + i]);
  auto again = build("resnet50", Dialect::Keras);
  poison(*again);
  LoadReport report = load_weights(*again, path);
  EXPECT_FALSE(report.warnings.size() > 0 && contains(report.warnings, "by their position")) << report.str();
  expect_same_state(*model, *again);
  std::filesystem::remove(path);

  // Without its top: no predictions layer (Keras's include_top=False model has none either).
  auto notop = build("resnet50", Dialect::Keras, 1000, false);
  export_keras(*notop, path);
  EXPECT_EQ(hdf5::File(path).string_list_attribute("/", "layer_names").size(), 106u);
  std::filesystem::remove(path);
}

TEST(WeightsExport, KerasRefusesWhatNoKerasApplicationHoldsAndWritesNothing) {
  const std::string path = temp_path("refused.h5");
  std::filesystem::remove(path);
  auto refused = [&](Module& model, const std::string& p, const std::string& expected) {
    std::string msg = testing::error_message([&] { export_keras(model, p); });
    EXPECT_NE(msg.find(expected), std::string::npos) << msg;
    EXPECT_FALSE(std::filesystem::exists(p)) << p;
  };
  refused(*build("resnet50"), path, "resnet50 in the torchvision dialect; Keras's ResNet is the keras dialect");
  refused(*build("resnet50", Dialect::KerasLegacy), path, "BatchNorm eps 1e-3");
  refused(*build("resnet18", Dialect::Keras), path, "Keras has no application model for resnet18");
  refused(*build("vgg11"), path, "Keras has no application model for vgg11");
  refused(*build("resnext50_32x4d"), path, "Keras has no application model for resnext50_32x4d");
  refused(*build("resnet50", Dialect::Keras), temp_path("x.weights.h5"), "name it <something>.h5");
  refused(*build("vgg16"), temp_path("x.keras"), "only from a name ending in .h5 or .hdf5");
  auto custom = build("resnet50", Dialect::Keras);
  Generator gen(1);
  replace_head(*custom, std::make_shared<Sequential>(std::vector<std::shared_ptr<Module>>{
                            std::make_shared<Linear>(2048, 16, true, gen),
                            std::make_shared<Linear>(16, 3, true, gen)}));
  refused(*custom, path,
          "Keras's resnet50 has no place for the model's fc.0.bias (16), fc.0.weight (16,2048), fc.1.bias (3), "
          "fc.1.weight (3,16) (a custom head?");
  Sequential plain;
  refused(plain, path, "not a zoo ResNet or VGG");
}

TEST(Weights, LoadsIntoACudaModelAndExportsFromIt) {
  GRAFT_REQUIRE_CUDA();
  auto cpu = build("resnet50"), gpu = build("resnet50");
  gpu->to(kCUDA);
  Tensor conv1 = gpu->state()["conv1.weight"];
  load_weights(*cpu, fixture("resnet50_torchvision.h5"));
  load_weights(*gpu, fixture("resnet50_torchvision.h5"));
  EXPECT_EQ(conv1.impl(), gpu->state()["conv1.weight"].impl());
  EXPECT_TRUE(gpu->state()["conv1.weight"].is_cuda());
  for (auto& [name, t] : cpu->state()) EXPECT_EQ(t.to_vector(), gpu->state()[name].to(kCPU).to_vector()) << name;
  // and exports from the GPU: the file it came from, dataset for dataset
  const std::string path = temp_path("resnet50_from_gpu.h5");
  export_torchvision(*gpu, path);
  testing::expect_same_datasets(fixture("resnet50_torchvision.h5"), path);
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace graft
