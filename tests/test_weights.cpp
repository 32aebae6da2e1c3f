// Weight import (io/weights.h, io/hdf5.h) against fixtures from tests/make_weight_fixtures.py: torchvision models
// with random weights exported to HDF5, the same weights in every Keras layout, and torch's own logits.
// Parity is max|graft - torch| / max|torch| over the logits (bound 1e-4: float32 sums over ~25M weights).
#include "io/checkpoint.h"
#include "tests/weights_setup.h"

namespace graft {
namespace {

using namespace weights_test;

Tensor reference(const std::string& key) {
  hdf5::File file(fixture("reference_io.h5"));
  return Tensor::from_vector(file.read_floats("/" + key), file.dataset_info("/" + key).shape);
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

std::map<std::string, std::vector<float>> snapshot(Module& m) {
  std::map<std::string, std::vector<float>> out;
  for (auto& [name, t] : m.state()) out[name] = t.to(kCPU).to_vector();
  return out;
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
// A graft checkpoint given to the weight-file API says what it is and where to load it, instead of reading as a
// torchvision export whose every name is unknown (hundreds of lines of missing and unexpected tensors).
TEST(Weights, AGraftCheckpointIsPointedToLoadCheckpoint) {
  ModelOptions o;
  o.num_classes = 3;
  auto net = make_model("resnet18", o);
  const std::string path = temp_path("a_checkpoint.h5");
  save_checkpoint(path, *net, nullptr, {.arch = "resnet18", .num_classes = 3});
  for (const auto& call : std::vector<std::function<void()>>{[&] { inspect_weights(path); },
                                                            [&] { load_weights(*net, path); }}) {
    const std::string msg = testing::error_message(call);
    EXPECT_NE(msg.find("is a graft checkpoint, not a weight file: load it with load_checkpoint"), std::string::npos)
        << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << "one line: " << msg;
  }
}

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

// Each Keras ResNet file loads into its own dialect only, where its layer names tell which it is: BatchNorm eps
// (1e-3 in 2016) and the stem's pooling (unpadded in 2016) differ, and a checkpoint records the dialect, not the eps.
// A file matched by position (no name recognised) cannot tell, and loads into either.
TEST(Weights, Keras2016ResNet50LoadsIntoTheLegacyDialectOnly) {
  auto legacy = build("resnet50", Dialect::KerasLegacy);
  LoadReport report = load_weights(*legacy, fixture("resnet50_keras_2016.h5"));
  EXPECT_TRUE(report.warnings.empty()) << report.str();
  EXPECT_LT(parity(*legacy, "input_112", "keras2016_resnet50_logits_112"), 1e-4);
  for (auto& [name, m] : legacy->named_modules()) {
    if (auto* bn = dynamic_cast<BatchNorm2d*>(m)) {
      EXPECT_EQ(bn->eps(), 1e-3f) << name;
    }
  }

  auto keras = build("resnet50", Dialect::Keras);
  poison(*keras);
  const std::uint64_t before = state_fingerprint(*keras);  // bitwise: NaN poison compares unequal as values
  std::string msg = testing::error_message([&] { load_weights(*keras, fixture("resnet50_keras_2016.h5")); });
  EXPECT_NE(msg.find("holds Keras 2016 ResNet weights"), std::string::npos) << msg;
  EXPECT_NE(msg.find("built with dialect keras: build it with dialect keras-legacy"), std::string::npos) << msg;
  EXPECT_EQ(state_fingerprint(*keras), before) << "a refused load changes nothing";
  msg = testing::error_message([&] { load_weights(*legacy, fixture("resnet50_keras.h5")); });
  EXPECT_NE(msg.find("built with dialect keras-legacy: build it with dialect keras "), std::string::npos) << msg;

  auto by_position = build("resnet50", Dialect::KerasLegacy);
  report = load_weights(*by_position, fixture("resnet50_keras3_noname.weights.h5"));
  EXPECT_TRUE(contains(report.warnings, "by their position")) << report.str();
  EXPECT_FALSE(contains(report.warnings, "eps")) << report.str();
  for (auto& [name, m] : by_position->named_modules()) {
    if (auto* bn = dynamic_cast<BatchNorm2d*>(m)) {
      EXPECT_EQ(bn->eps(), 1e-3f) << name;
    }
  }
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

}  // namespace
}  // namespace graft
