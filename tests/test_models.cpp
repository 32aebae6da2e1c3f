// The model zoo: exact parameter counts, torchvision key names, forward + backward on CPU, dialect differences,
// freezing, head replacement and BatchNorm modes under freezing.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstring>
#include <set>

#include "core/allocator.h"
#include "core/autograd.h"
#include "core/error.h"
#include "core/ops.h"
#include "core/optim.h"
#include "layers/basic.h"
#include "layers/batch_norm.h"
#include "layers/conv2d.h"
#include "layers/init.h"
#include "layers/linear.h"
#include "layers/sequential.h"
#include "layers/summary.h"
#include "models/zoo.h"
#include "tests/check.h"

namespace graft {
namespace {

std::shared_ptr<Module> model(const std::string& arch, Dialect d = Dialect::Torchvision, int classes = 1000) {
  ModelOptions o;
  o.dialect = d;
  o.num_classes = classes;
  return make_model(arch, o);
}

TEST(Models, ExactParameterCounts) {
  EXPECT_EQ(model("resnet50")->parameter_count(), 25'557'032);
  EXPECT_EQ(model("vgg16")->parameter_count(), 138'357'544);
  EXPECT_EQ(model("resnet18")->parameter_count(), 11'689'512);
  EXPECT_EQ(model("resnet34")->parameter_count(), 21'797'672);
  EXPECT_EQ(model("resnet101")->parameter_count(), 44'549'160);
  EXPECT_EQ(model("resnet152")->parameter_count(), 60'192'808);
  EXPECT_EQ(model("vgg11")->parameter_count(), 132'863'336);
  EXPECT_EQ(model("vgg13")->parameter_count(), 133'047'848);
  EXPECT_EQ(model("vgg19")->parameter_count(), 143'667'240);
  EXPECT_EQ(model("vgg16_bn")->parameter_count(), 138'365'992);
  // Keras applications ResNet50: 25,636,712 weights including the 53,120 BatchNorm moving statistics.
  auto keras = model("resnet50", Dialect::Keras);
  std::int64_t buffers = 0;
  for (auto& [name, t] : keras->named_buffers()) buffers += t.numel();
  EXPECT_EQ(keras->parameter_count() + buffers, 25'636'712);
}

// torchvision's counts (torchvision 0.14: sum of p.numel() over parameters()). The 101-layer ResNeXts and Wide
// ResNet are checked against torchvision's own files by tests/check_resnet_family.py (a strict load).
TEST(Models, ResNeXtAndWideResNetParameterCounts) {
  EXPECT_EQ(model("resnext50_32x4d")->parameter_count(), 25'028'904);
  EXPECT_EQ(model("wide_resnet50_2")->parameter_count(), 68'883'240);
}

// Same keys as ResNet-50; only the bottleneck's 1x1-3x3 width and the 3x3 conv's groups differ.
TEST(Models, ResNeXtAndWideResNetShapes) {
  struct Case {
    const char* arch;
    const char* type;
    std::int64_t width, in_per_group;  // layer1's width, and its 3x3 conv's input channels per group
  };
  const std::size_t resnet50_tensors = model("resnet50")->state().size();
  for (const Case& c :
       {Case{"resnext50_32x4d", "ResNeXt50_32x4d", 128, 4}, Case{"wide_resnet50_2", "WideResNet50_2", 128, 128}}) {
    SCOPED_TRACE(c.arch);
    auto m = model(c.arch);
    EXPECT_EQ(m->type_name(), c.type);
    EXPECT_EQ(dynamic_cast<ResNet&>(*m).arch(), c.arch);
    auto state = m->state();
    EXPECT_EQ(state.size(), resnet50_tensors);
    EXPECT_EQ(state["layer1.0.conv1.weight"].shape(), (Shape{c.width, 1, 1, 64}));
    EXPECT_EQ(state["layer1.0.conv2.weight"].shape(), (Shape{c.width, 3, 3, c.in_per_group}));
    EXPECT_EQ(state["layer1.0.conv3.weight"].shape(), (Shape{256, 1, 1, c.width}));
    EXPECT_EQ(state["layer4.0.conv2.weight"].shape(), (Shape{c.width * 8, 3, 3, c.in_per_group * 8}));
    EXPECT_EQ(state["fc.weight"].shape(), (Shape{1000, 2048}));
  }
  // Keras has neither, and torchvision's BasicBlock takes no groups or width: both are refused by name.
  EXPECT_NE(testing::error_message([] { model("resnext50_32x4d", Dialect::Keras); }).find("torchvision dialect only"),
            std::string::npos);
  ResNetOptions basic;
  basic.depth = 18, basic.groups = 32, basic.width_per_group = 4;
  EXPECT_NE(testing::error_message([&] { ResNet r(basic); }).find("need a bottleneck ResNet"), std::string::npos);
  EXPECT_TRUE(is_resnet_arch("wide_resnet101_2"));
  EXPECT_FALSE(is_resnet_arch("vgg16"));
  // Only ResNet-18 to 152 come in dialects; the others are built in their one form whatever is asked.
  EXPECT_TRUE(has_dialects("resnet152"));
  EXPECT_FALSE(has_dialects("resnext50_32x4d"));
  EXPECT_FALSE(has_dialects("resnet50v2"));
  EXPECT_EQ(dialect_of("resnet50", Dialect::KerasLegacy), Dialect::KerasLegacy);
  EXPECT_EQ(dialect_of("wide_resnet50_2", Dialect::Keras), Dialect::Torchvision);
  EXPECT_EQ(dialect_of("resnet50v2", Dialect::Torchvision), Dialect::Keras);
  EXPECT_EQ(dialect_of("vgg16", Dialect::Keras), Dialect::Torchvision);
}

// Keras's count_params() (weights and BatchNorm moving statistics) for ResNet50V2/101V2/152V2 (Keras 3.15).
TEST(Models, ResNetV2CountsAndShapesAreKeras) {
  const std::pair<const char*, std::int64_t> counts[] = {
      {"resnet50v2", 25'613'800}, {"resnet101v2", 44'675'560}, {"resnet152v2", 60'380'648}};
  for (const auto& [arch, keras_count] : counts) {
    auto m = model(arch);
    std::int64_t buffers = 0;
    for (auto& [name, t] : m->named_buffers()) buffers += t.numel();
    EXPECT_EQ(m->parameter_count() + buffers, keras_count) << arch;
  }
  auto m = model("resnet50v2", Dialect::Torchvision, 10);
  EXPECT_EQ(m->type_name(), "ResNet50V2");
  EXPECT_TRUE(is_resnet_arch("resnet152v2"));
  auto state = m->state();
  EXPECT_EQ(state["conv1.bias"].shape(), (Shape{64}));                             // the stem conv has a bias
  EXPECT_FALSE(state.count("bn1.weight"));                                         // and no BatchNorm after it
  EXPECT_EQ(state["layer1.0.downsample.weight"].shape(), (Shape{256, 1, 1, 64}));  // first block: a conv shortcut
  EXPECT_FALSE(state.count("layer1.1.downsample.weight"));
  EXPECT_FALSE(state.count("layer1.0.conv1.bias"));
  EXPECT_EQ(state["layer1.0.conv3.bias"].shape(), (Shape{256}));
  EXPECT_EQ(state["layer2.0.preact_bn.weight"].shape(), (Shape{256}));  // pre-activation of the block's input
  EXPECT_EQ(state["post_bn.running_var"].shape(), (Shape{2048}));
  EXPECT_EQ(head_path(*m), "fc");
  // The stride sits in each stage's LAST block (Keras), at 64x64: 16 -> 8 -> 4 -> 2 -> 2.
  Tensor x = Tensor::zeros({1, 64, 64, 3});
  m->eval();
  (*m)(x);
  EXPECT_EQ(m->find_module("layer1.1")->last_output_shape(), (Shape{1, 16, 16, 256}));
  EXPECT_EQ(m->find_module("layer1.2")->last_output_shape(), (Shape{1, 8, 8, 256}));
  EXPECT_EQ(m->find_module("layer3.5")->last_output_shape(), (Shape{1, 2, 2, 1024}));
  EXPECT_EQ(m->find_module("layer4.2")->last_output_shape(), (Shape{1, 2, 2, 2048}));
  EXPECT_EQ(freeze_batch_norm(*m), 3 * 16 + 1);
}

TEST(Models, ResNet50KeysMatchTorchvision) {
  auto m = model("resnet50");
  auto state = m->state();
  for (const char* key : {"conv1.weight", "bn1.weight", "bn1.running_var", "layer1.0.conv1.weight",
                          "layer1.0.downsample.0.weight", "layer1.0.downsample.1.running_mean",
                          "layer4.2.conv3.weight", "layer4.2.bn3.bias", "fc.weight", "fc.bias"})
    EXPECT_TRUE(state.count(key)) << key;
  EXPECT_FALSE(state.count("conv1.bias"));
  EXPECT_FALSE(state.count("layer2.1.downsample.0.weight"));
  EXPECT_EQ(state["layer1.0.conv2.weight"].shape(), (Shape{64, 3, 3, 64}));  // (out, kh, kw, in)
  EXPECT_EQ(state["fc.weight"].shape(), (Shape{1000, 2048}));
  // 53 convs + 53 BNs * 4 + fc: 320 tensors as in torchvision's state_dict without num_batches_tracked
  EXPECT_EQ(state.size(), 53u + 53u * 4u + 2u);
}

TEST(Models, VGG16KeysMatchTorchvision) {
  auto state = model("vgg16")->state();
  std::set<std::string> expected;
  for (int i : {0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28})
    for (const char* p : {"weight", "bias"}) expected.insert("features." + std::to_string(i) + "." + p);
  for (int i : {0, 3, 6})
    for (const char* p : {"weight", "bias"}) expected.insert("classifier." + std::to_string(i) + "." + p);
  std::set<std::string> actual;
  for (auto& [k, v] : state) actual.insert(k);
  EXPECT_EQ(actual, expected);
  EXPECT_EQ(state["classifier.0.weight"].shape(), (Shape{4096, 25088}));
}

TEST(Models, DialectsDifferWhereTheyShould) {
  auto tv = model("resnet50"), keras = model("resnet50", Dialect::Keras), legacy = model("resnet50", Dialect::KerasLegacy);
  auto* tv_block = dynamic_cast<Conv2d*>(tv->find_module("layer2.0.conv2"));
  auto* keras_first = dynamic_cast<Conv2d*>(keras->find_module("layer2.0.conv1"));
  auto* keras_3x3 = dynamic_cast<Conv2d*>(keras->find_module("layer2.0.conv2"));
  ASSERT_TRUE(tv_block && keras_first && keras_3x3);
  EXPECT_EQ(tv_block->config().stride, 2);
  EXPECT_EQ(keras_first->config().stride, 2);
  EXPECT_EQ(keras_3x3->config().stride, 1);
  EXPECT_TRUE(keras_first->config().bias);
  EXPECT_FLOAT_EQ(dynamic_cast<BatchNorm2d*>(tv->find_module("bn1"))->eps(), 1e-5f);
  EXPECT_FLOAT_EQ(dynamic_cast<BatchNorm2d*>(keras->find_module("bn1"))->eps(), 1.001e-5f);
  EXPECT_FLOAT_EQ(dynamic_cast<BatchNorm2d*>(legacy->find_module("bn1"))->eps(), 1e-3f);
}

TEST(Models, SameSeedSameWeights) {
  ModelOptions o;
  o.seed = 7;
  auto a = make_model("resnet18", o), b = make_model("resnet18", o);
  o.seed = 8;
  auto c = make_model("resnet18", o);
  EXPECT_EQ(a->state()["layer3.1.conv2.weight"].to_vector(), b->state()["layer3.1.conv2.weight"].to_vector());
  EXPECT_NE(a->state()["layer3.1.conv2.weight"].to_vector(), c->state()["layer3.1.conv2.weight"].to_vector());
}

// Forward + backward at 64x64, batch 2: every trainable parameter receives a finite gradient.
void forward_backward(const std::string& arch, Dialect d, int classes) {
  auto m = model(arch, d, classes);
  Generator gen(3);
  Tensor x = Tensor::randn({2, 64, 64, 3}, gen);
  Tensor labels = Tensor::from_vector(std::vector<std::int32_t>{1, classes - 1}, {2});
  Tensor logits = (*m)(x);
  ASSERT_EQ(logits.shape(), (Shape{2, classes}));
  Tensor loss = softmax_cross_entropy(logits, labels);
  EXPECT_TRUE(std::isfinite(loss.item()));
  loss.backward();
  for (auto& [name, p] : m->named_parameters()) {
    ASSERT_TRUE(p.grad().defined()) << name;
    for (float g : p.grad().to_vector()) ASSERT_TRUE(std::isfinite(g)) << name;
  }
}

TEST(Models, ResNet50TorchvisionForwardBackward) { forward_backward("resnet50", Dialect::Torchvision, 10); }
TEST(Models, ResNet50KerasForwardBackward) { forward_backward("resnet50", Dialect::Keras, 10); }
TEST(Models, VGG16ForwardBackward) { forward_backward("vgg16", Dialect::Torchvision, 10); }
TEST(Models, ResNeXtForwardBackward) { forward_backward("resnext50_32x4d", Dialect::Torchvision, 10); }
TEST(Models, ResNet50V2ForwardBackward) { forward_backward("resnet50v2", Dialect::Keras, 10); }
TEST(Models, ResNet18AndVGG11BNForwardBackward) {
  forward_backward("resnet18", Dialect::Torchvision, 5);
  forward_backward("vgg11_bn", Dialect::Torchvision, 5);
}

TEST(Models, IncludeTopFalseGivesFeatures) {
  ModelOptions o;
  o.include_top = false;
  Generator gen(1);
  Tensor x = Tensor::randn({1, 64, 64, 3}, gen);
  NoGradGuard no_grad;
  auto r = make_model("resnet50", o);
  r->eval();
  EXPECT_EQ((*r)(x).shape(), (Shape{1, 2048}));
  auto v = make_model("vgg16", o);
  EXPECT_EQ((*v)(x).shape(), (Shape{1, 2, 2, 512}));
  EXPECT_EQ(v->parameter_count(), 14'714'688);  // the conv base of VGG16
}

TEST(Surgery, FreezePatternsAndTrainableParameters) {
  auto m = model("resnet18");
  std::int64_t total = m->parameter_count();
  m->freeze("*");
  EXPECT_EQ(m->trainable_parameter_count(), 0);
  m->unfreeze("layer4.*");
  m->unfreeze("fc");
  std::int64_t expected = 0;
  for (auto& [name, p] : m->named_parameters())
    if (name.rfind("layer4.", 0) == 0 || name.rfind("fc.", 0) == 0) expected += p.numel();
  EXPECT_EQ(m->trainable_parameter_count(), expected);
  EXPECT_LT(expected, total);
  EXPECT_THROW(m->freeze("layer5.*"), Error);  // a typo must not silently freeze nothing
}

// state_fingerprint sees one ulp in any value of its subset and nothing outside it: a parameter of the trainable
// part, a frozen one, a BatchNorm running statistic (a buffer, part of the frozen subset); a model loaded from
// another's state has its fingerprint.
TEST(Surgery, StateFingerprintSeesEveryBitOfItsSubsetAndNothingElse) {
  auto make = [] {  // conv, batch norm (running statistics: buffers), linear; the conv and the norm frozen below
    Generator gen(5);
    Conv2dConfig c;
    c.in_channels = 3, c.out_channels = 6, c.kernel_h = 3, c.kernel_w = 3;
    return std::make_shared<Sequential>(std::vector<std::shared_ptr<Module>>{
        std::make_shared<Conv2d>(c, gen), std::make_shared<BatchNorm2d>(6), std::make_shared<Linear>(6, 4, true, gen)});
  };
  auto m = make();
  Generator gen(9);
  for (auto& [name, t] : m->state()) t.copy_from(Tensor::uniform(t.shape(), gen, 0.5f, 2.f));
  m->freeze("*");
  m->unfreeze("2");
  auto fingerprints = [&] {
    return std::array<std::uint64_t, 3>{state_fingerprint(*m, StateSubset::Trainable),
                                        state_fingerprint(*m, StateSubset::Frozen), state_fingerprint(*m)};
  };
  const auto before = fingerprints();
  EXPECT_EQ(fingerprints(), before);  // the same values, the same fingerprints
  // One change at a time: the lowest mantissa bit or the sign bit, of the first, a middle or the last element.
  auto flip = [](Tensor t, std::int64_t i, std::uint32_t bit) {
    float* v = t.data<float>() + i;
    std::uint32_t word;
    std::memcpy(&word, v, 4);
    word ^= bit;
    std::memcpy(v, &word, 4);
  };
  struct Case {
    const char* name;
    bool trainable;
  };
  for (const Case c : {Case{"2.weight", true}, Case{"2.bias", true}, Case{"0.weight", false}, Case{"1.weight", false},
                       Case{"1.running_var", false}, Case{"1.running_mean", false}}) {
    Tensor t = m->state().at(c.name);
    for (const std::int64_t i : {std::int64_t{0}, t.numel() / 2, t.numel() - 1})
      for (const std::uint32_t bit : {1u, 0x80000000u}) {
        SCOPED_TRACE(std::string(c.name) + " element " + std::to_string(i) + " bit " + std::to_string(bit));
        const auto ref = fingerprints();
        flip(t, i, bit);
        const auto now = fingerprints();
        EXPECT_EQ(now[0] != ref[0], c.trainable) << "the trainable fingerprint";
        EXPECT_EQ(now[1] != ref[1], !c.trainable) << "the frozen fingerprint";
        EXPECT_NE(now[2], ref[2]) << "the whole-state fingerprint";
      }
  }
  auto copy = make();
  EXPECT_NE(state_fingerprint(*copy), state_fingerprint(*m));
  for (auto& [name, t] : copy->state()) t.copy_from(m->state().at(name));
  EXPECT_EQ(state_fingerprint(*copy), state_fingerprint(*m));
}

// nonfinite_tensors names each parameter or buffer holding NaN or Inf, with the counts, in model order.
TEST(Surgery, NonfiniteTensorsNamesEachTensorWithItsCounts) {
  auto m = model("resnet18");
  EXPECT_EQ(nonfinite_tensors(*m), std::vector<std::string>{});
  Tensor w = m->state().at("layer1.0.conv1.weight"), var = m->state().at("layer3.1.bn2.running_var");
  w.data<float>()[0] = NAN, w.data<float>()[w.numel() - 1] = -INFINITY, w.data<float>()[7] = NAN;
  var.data<float>()[2] = INFINITY;
  EXPECT_EQ(nonfinite_tensors(*m), (std::vector<std::string>{"layer1.0.conv1.weight has 2 NaN and 1 Inf values",
                                                              "layer3.1.bn2.running_var has 0 NaN and 1 Inf values"}));
}

// A NaN reaches the output through every relu, as PyTorch's relu lets it (torch.relu(nan) is nan): relu, the conv +
// bias + relu epilogue and batch norm's fused relu all used to turn it into a 0. -0 still gives +0.
TEST(NaNs, EveryReluKeepsANaNAndMakesMinusZeroPlusZero) {
  const Tensor x = Tensor::from_vector(std::vector<float>{NAN, -0.f, -2.f, 3.f, INFINITY, -INFINITY}, {1, 1, 1, 6});
  const std::vector<float> y = relu(x).to_vector();
  EXPECT_TRUE(std::isnan(y[0]));
  EXPECT_EQ(y[1], 0.f);
  EXPECT_FALSE(std::signbit(y[1])) << "+0, as before";
  EXPECT_EQ(std::vector<float>(y.begin() + 2, y.end()), (std::vector<float>{0.f, 3.f, INFINITY, 0.f}));

  Tensor mean = Tensor::zeros({6}), var = Tensor::ones({6});
  const std::vector<float> bn =
      batch_norm_add_relu(x, std::nullopt, std::nullopt, mean, var, false, false, 0.1f, 0.f, std::nullopt, true)
          .to_vector();
  EXPECT_TRUE(std::isnan(bn[0])) << "batch norm + relu (inference, running statistics)";
  EXPECT_EQ(std::vector<float>(bn.begin() + 1, bn.end()), (std::vector<float>{0.f, 0.f, 3.f, INFINITY, 0.f}));

  // conv + bias + relu: a NaN in one filter makes its output channel NaN, the other stays finite and >= 0
  Tensor image = Tensor::ones({1, 3, 3, 2});
  Tensor weight = Tensor::full({2, 1, 1, 2}, 0.5f);
  weight.data<float>()[1] = NAN;  // filter 0
  const std::vector<float> conv = conv2d_relu(image, weight, Tensor::full({2}, -0.25f)).to_vector();
  for (std::size_t i = 0; i < conv.size(); i += 2) {
    EXPECT_TRUE(std::isnan(conv[i])) << i;
    EXPECT_EQ(conv[i + 1], 0.75f) << i;
  }
}

// The user's view of the above: a weight file with one NaN gives NaN logits, as PyTorch does with it, instead of
// finite logits that hide the damage.
TEST(NaNs, OneNaNWeightMakesEveryLogitNaN) {
  auto m = model("resnet18", Dialect::Torchvision, 10);
  m->eval();
  m->state().at("layer1.0.conv1.weight").data<float>()[0] = NAN;
  NoGradGuard no_grad;
  Generator gen(5);
  for (float logit : (*m)(Tensor::randn({2, 32, 32, 3}, gen)).to_vector()) EXPECT_TRUE(std::isnan(logit));
}

// A module put in anywhere by replace_module is the one that runs (ResNet's blocks called the modules they were built
// with, so only a new fc took effect): a block's conv, a whole stage, a ResNetV2 block's batch norm. The new module
// also trains, and a ReLU swapped for another activation runs as that activation.
TEST(Surgery, ReplaceModuleTakesEffectAnywhereInAResNet) {
  Generator gen(3);
  const Tensor x = Tensor::randn({2, 32, 32, 3}, gen);
  auto m = model("resnet18", Dialect::Torchvision, 3);
  m->eval();
  const std::vector<float> before = (*m)(x).to_vector();
  auto conv = std::make_shared<Conv2d>(Conv2dConfig{.in_channels = 64, .out_channels = 64, .kernel_h = 3, .kernel_w = 3,
                                                    .padding = 1, .bias = false},
                                       gen);
  m->replace_module("layer1.0.conv1", conv);
  Tensor out = (*m)(x);
  EXPECT_NE(out.to_vector(), before) << "the new conv computes";
  sum(out).backward();
  EXPECT_TRUE(conv->parameters().front().grad().defined()) << "and trains";

  m->replace_module("layer4", std::make_shared<Identity>());  // layer3's 256 channels now reach the head
  m->replace_module("fc", std::make_shared<Linear>(256, 3, true, gen));
  EXPECT_EQ((*m)(x).shape(), (Shape{2, 3}));

  // An activation other than ReLU: the block runs norm, add and that module instead of the fused epilogue.
  class Negate : public Module {
   public:
    Tensor forward(const Tensor& t) override { return neg(t); }
    std::string type_name() const override { return "Negate"; }
  };
  auto plain = model("resnet18", Dialect::Torchvision, 3);
  plain->eval();
  plain->replace_module("layer1.0.relu", std::make_shared<Negate>());
  EXPECT_NE((*plain)(x).to_vector(), before);

  auto v2 = model("resnet50v2", Dialect::Keras, 3);
  v2->eval();
  const std::vector<float> v2_before = (*v2)(x).to_vector();
  auto bn = std::make_shared<BatchNorm2d>(64, 1.001e-5f, 0.01f);
  bn->state().at("running_mean").copy_from(Tensor::full({64}, 5.f));
  v2->replace_module("layer1.0.bn1", bn);
  EXPECT_NE((*v2)(x).to_vector(), v2_before) << "ResNetV2's blocks too";

  // VGG's whole "features" swapped (here for a module running the old one, then negating): the new one runs.
  class NegatedOutput : public Module {
   public:
    explicit NegatedOutput(std::shared_ptr<Module> inner) : inner_(register_module("inner", std::move(inner))) {}
    Tensor forward(const Tensor& t) override { return neg((*inner_)(t)); }
    std::string type_name() const override { return "NegatedOutput"; }

   private:
    std::shared_ptr<Module> inner_;
  };
  auto vgg = model("vgg11", Dialect::Torchvision, 3);
  vgg->eval();
  const std::vector<float> vgg_before = (*vgg)(x).to_vector();
  vgg->replace_module("features", std::make_shared<NegatedOutput>(vgg->children().front().second));
  EXPECT_NE((*vgg)(x).to_vector(), vgg_before) << "VGG's features";
}

// Bad settings are refused when the layer is built, not at its first forward.
TEST(Layers, BatchNorm2dRefusesBadSettingsAtConstruction) {
  testing::expect_error([] { BatchNorm2d(0); }, {"BatchNorm2d: channels 0", "channels must be positive"});
  testing::expect_error([] { BatchNorm2d(3, -1.f); }, {"eps -1"});
  testing::expect_error([] { BatchNorm2d(3, 1e-5f, 1.5f); }, {"momentum 1.5"});
  EXPECT_NO_THROW(BatchNorm2d(3, 0.f, 0.f));
  BatchNorm2d bn(3);
  testing::expect_error([&] { bn.set_eps(-1e-5f); }, {"set_eps(-1e-05): eps must be >= 0"});
}

// A null module is refused where it is given, not a crash later.
TEST(Surgery, ANullModuleIsAnError) {
  auto m = model("resnet18", Dialect::Torchvision, 3);
  EXPECT_NE(testing::error_message([&] { m->replace_module("fc", nullptr); }).find("no module (null)"),
            std::string::npos);
  EXPECT_NE(testing::error_message([&] { replace_head(*m, nullptr); }).find("no module (null)"), std::string::npos);
  Sequential s;
  EXPECT_NE(testing::error_message([&] { s.push_back(nullptr); }).find("no module (null)"), std::string::npos);
  EXPECT_GT(m->parameter_count(), 0) << "the model is intact";
}

TEST(Surgery, ReplaceHeadAndTrainOnlyIt) {
  for (const char* arch : {"resnet18", "vgg11"}) {
    auto m = model(arch);
    m->freeze("*");
    std::string head = head_path(*m);
    int in = dynamic_cast<Linear*>(m->find_module(head))->in_features();
    replace_head(*m, std::make_shared<Linear>(in, 3));
    m->eval();
    EXPECT_EQ(m->trainable_parameter_count(), in * 3 + 3) << arch;
    Generator gen(5);
    Tensor x = Tensor::randn({2, 32, 32, 3}, gen);
    Tensor loss = softmax_cross_entropy((*m)(x), Tensor::from_vector(std::vector<std::int32_t>{0, 2}, {2}));
    loss.backward();
    for (auto& [name, p] : m->named_parameters()) {
      bool is_head = name.rfind(head + ".", 0) == 0;
      EXPECT_EQ(p.grad().defined(), is_head) << arch << " " << name;
    }
  }
}

// A fully frozen backbone records no graph: the forward pass keeps no activations alive for backward, so the
// memory held between forward and backward drops to (almost) the head's.
TEST(Surgery, FrozenBackboneHoldsNoActivations) {
  auto held_after_forward = [](bool freeze) {
    ModelOptions o;
    o.num_classes = 4;
    auto m = make_model("resnet18", o);
    if (freeze) {
      m->freeze("*");
      m->unfreeze("fc");
    }
    Generator gen(2);
    Tensor x = Tensor::randn({2, 64, 64, 3}, gen);
    std::int64_t before = memory_stats(kCPU).current_bytes;
    Tensor loss = softmax_cross_entropy((*m)(x), Tensor::from_vector(std::vector<std::int32_t>{0, 3}, {2}));
    std::int64_t held = memory_stats(kCPU).current_bytes - before;
    reset_peak_memory(kCPU);
    std::int64_t base = memory_stats(kCPU).current_bytes;
    loss.backward();
    std::int64_t backward_peak = memory_stats(kCPU).peak_bytes - base;
    return std::make_pair(held, backward_peak);
  };
  auto [held_full, peak_full] = held_after_forward(false);
  auto [held_frozen, peak_frozen] = held_after_forward(true);
  // Full fine-tuning keeps megabytes of activations; the frozen model keeps only the head's input (2 x 512 floats)
  // and the loss's softmax.
  EXPECT_GT(held_full, 1'000'000);
  EXPECT_LT(held_frozen, 64 * 1024);
  EXPECT_LT(peak_frozen * 20, peak_full);
}

TEST(BatchNormModes, FollowTrainEvalUnlessPinned) {
  auto m = model("resnet18");
  auto* bn = dynamic_cast<BatchNorm2d*>(m->find_module("layer1.0.bn1"));
  ASSERT_TRUE(bn);
  m->eval();
  EXPECT_FALSE(bn->use_batch_stats());
  m->train();
  EXPECT_TRUE(bn->use_batch_stats() && bn->update_running());
  EXPECT_EQ(freeze_batch_norm(*m, "layer1"), 4);  // layer1.{0,1}.bn{1,2}
  m->train();  // a parent's train() must not undo freeze_bn
  EXPECT_FALSE(bn->use_batch_stats());
  EXPECT_FALSE(bn->update_running());
  EXPECT_FALSE(bn->learn_affine());
  auto* other = dynamic_cast<BatchNorm2d*>(m->find_module("layer2.0.bn1"));
  EXPECT_TRUE(other->use_batch_stats());
}

TEST(BatchNormModes, FrozenBNKeepsRunningStatsInTraining) {
  auto m = model("resnet18", Dialect::Torchvision, 3);
  freeze_batch_norm(*m);
  m->train();
  auto before = m->state()["layer2.1.bn2.running_mean"].to_vector();
  Generator gen(9);
  Tensor loss = softmax_cross_entropy((*m)(Tensor::randn({2, 32, 32, 3}, gen)),
                                      Tensor::from_vector(std::vector<std::int32_t>{0, 1}, {2}));
  loss.backward();
  EXPECT_EQ(m->state()["layer2.1.bn2.running_mean"].to_vector(), before);
  // and an unfrozen model in training mode does update them
  auto n = model("resnet18", Dialect::Torchvision, 3);
  n->train();
  auto before_n = n->state()["layer2.1.bn2.running_mean"].to_vector();
  NoGradGuard no_grad;
  (*n)(Tensor::randn({2, 32, 32, 3}, gen));
  EXPECT_NE(n->state()["layer2.1.bn2.running_mean"].to_vector(), before_n);
}

TEST(Summary, ShowsShapesCountsAndStates) {
  auto m = model("resnet50");
  m->freeze("*");
  m->unfreeze("fc");
  freeze_batch_norm(*m, "layer1");
  std::string s = summary(*m, {1, 64, 64, 3});
  EXPECT_NE(s.find("25,557,032 total"), std::string::npos) << s;
  EXPECT_NE(s.find("2,049,000 trainable"), std::string::npos);
  EXPECT_NE(s.find("layer4.2.conv3"), std::string::npos);
  EXPECT_NE(s.find("(1,2,2,2048)"), std::string::npos);
  EXPECT_NE(s.find("running stats, pinned, affine frozen"), std::string::npos);
  EXPECT_NE(s.find("frozen"), std::string::npos);
}

TEST(Models, UnknownArchitectureIsAnError) {
  EXPECT_THROW(make_model("resnet51"), Error);
  EXPECT_THROW(make_model("vgg17"), Error);
  EXPECT_THROW(parse_dialect("tf"), Error);
  auto m = model("resnet18");
  EXPECT_THROW((*m)(Tensor::zeros({1, 32, 32, 4})), Error);
}

// A small CNN overfits a fixed batch to near-zero loss (conv, BN, ReLU, pool, linear, Adam).
TEST(Training, SmallCNNOverfitsAFixedBatch) {
  Generator gen(11);
  Conv2dConfig c1{.in_channels = 3, .out_channels = 8, .kernel_h = 3, .kernel_w = 3, .stride = 1, .padding = 1};
  Conv2dConfig c2{.in_channels = 8, .out_channels = 16, .kernel_h = 3, .kernel_w = 3, .stride = 2, .padding = 1};
  Sequential net;
  net.push_back(std::make_shared<Conv2d>(c1, gen));
  net.push_back(std::make_shared<BatchNorm2d>(8));
  net.push_back(std::make_shared<ReLU>());
  net.push_back(std::make_shared<MaxPool2d>(2, 2));
  net.push_back(std::make_shared<Conv2d>(c2, gen));
  net.push_back(std::make_shared<ReLU>());
  net.push_back(std::make_shared<AdaptiveAvgPool2d>(1, 1));
  net.push_back(std::make_shared<Flatten>());
  net.push_back(std::make_shared<Linear>(16, 4, true, gen));
  Tensor x = Tensor::randn({8, 12, 12, 3}, gen);
  Tensor y = Tensor::from_vector(std::vector<std::int32_t>{0, 1, 2, 3, 3, 2, 1, 0}, {8});
  Adam opt(net.parameters(), AdamOptions{.lr = 0.02f});
  float first = 0, last = 0;
  for (int step = 0; step < 300; ++step) {
    Tensor loss = softmax_cross_entropy(net(x), y);
    loss.backward();
    opt.step();
    opt.zero_grad();
    if (step == 0) first = loss.item();
    last = loss.item();
  }
  EXPECT_GT(first, 1.0f);
  EXPECT_LT(last, 0.02f);
}

}  // namespace
}  // namespace graft

namespace graft {
namespace {

// The initialisers draw what torchvision's do: N(0, 2/fan_out) for ResNet/VGG convs, U(-b, b) with
// b = 1/sqrt(fan_in) for nn.Linear's default, Xavier's bounds from fan_in + fan_out.
TEST(Init, KaimingAndXavierStatistics) {
  Generator gen(21);
  auto stats = [](const Tensor& t) {
    std::vector<float> v = t.to_vector();
    double mean = 0, sq = 0, lo = 1e30, hi = -1e30;
    for (float x : v) mean += x, sq += double(x) * x, lo = std::min<double>(lo, x), hi = std::max<double>(hi, x);
    mean /= v.size();
    return std::array<double, 4>{mean, std::sqrt(sq / v.size() - mean * mean), lo, hi};
  };
  Shape conv{256, 3, 3, 128};  // fan_in 1152, fan_out 2304
  auto k = stats(init::kaiming_normal(conv, init::fans_of(conv).out, gen));
  EXPECT_NEAR(k[1], std::sqrt(2.0 / 2304), 0.01 * std::sqrt(2.0 / 2304));
  EXPECT_NEAR(k[0], 0.0, 0.002);
  Shape fc{1000, 2048};
  auto u = stats(init::kaiming_uniform(fc, init::fans_of(fc).in, gen));  // a = sqrt(5): bound 1/sqrt(fan_in)
  EXPECT_LE(u[3], 1.0 / std::sqrt(2048.0));
  EXPECT_GE(u[2], -1.0 / std::sqrt(2048.0));
  EXPECT_NEAR(u[1], 1.0 / std::sqrt(2048.0) / std::sqrt(3.0), 0.01 / std::sqrt(2048.0));
  auto x = stats(init::xavier_uniform(fc, gen));
  EXPECT_NEAR(x[3], std::sqrt(6.0 / 3048), 0.001);
  auto xn = stats(init::xavier_normal(fc, gen));
  EXPECT_NEAR(xn[1], std::sqrt(2.0 / 3048), 0.01 * std::sqrt(2.0 / 3048));
  // ResNet convs use fan_out; VGG's classifier N(0, 0.01)
  auto resnet = make_model("resnet18");
  auto w = stats(resnet->state()["layer1.0.conv1.weight"]);
  EXPECT_NEAR(w[1], std::sqrt(2.0 / (64 * 9)), 0.03 * std::sqrt(2.0 / (64 * 9)));
}

}  // namespace
}  // namespace graft
