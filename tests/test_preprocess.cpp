// Preprocessing presets against the formulas of Keras's preprocess_input("caffe" and "tf") and torchvision's Normalize,
// and the shipped ImageNet class names.
#include <gtest/gtest.h>

#include "core/error.h"
#include "io/preprocess.h"
#include "tests/check.h"

namespace graft {
namespace {

TEST(Preprocess, CaffeSwapsToBGRAndSubtractsTheMeans) {
  // one pixel RGB (10, 20, 30) and one (255, 0, 128)
  Tensor x = Tensor::from_vector(std::vector<float>{10, 20, 30, 255, 0, 128}, {1, 1, 2, 3});
  Tensor y = preprocess(x, Preprocess::Caffe);
  std::vector<float> expected = {30 - 103.939f, 20 - 116.779f, 10 - 123.68f, 128 - 103.939f, 0 - 116.779f,
                                 255 - 123.68f};
  EXPECT_TRUE(testing::all_close(y, Tensor::from_vector(expected, {1, 1, 2, 3}), 1e-4f, 0.f));
}

TEST(Preprocess, TorchScalesAndNormalisesPerChannel) {
  Generator gen(3);
  Tensor x = Tensor::uniform({2, 3, 5, 3}, gen, 0.f, 255.f);
  Tensor y = preprocess(x, Preprocess::Torch);
  std::vector<float> in = x.to_vector(), out = y.to_vector();
  const float mean[3] = {0.485f, 0.456f, 0.406f}, stddev[3] = {0.229f, 0.224f, 0.225f};
  for (std::size_t i = 0; i < in.size(); ++i)
    EXPECT_NEAR(out[i], (in[i] / 255.f - mean[i % 3]) / stddev[i % 3], 1e-5f) << i;
}

// Keras's resnet_v2.preprocess_input (mode "tf"): x / 127.5 - 1, RGB kept. Expected values printed by Keras 3.15
// for (0, 127.5, 255) and (10, 20, 30).
TEST(Preprocess, TfScalesIntoMinusOneToOne) {
  Tensor x = Tensor::from_vector(std::vector<float>{0, 127.5f, 255, 10, 20, 30}, {1, 1, 2, 3});
  std::vector<float> expected = {-1.f, 0.f, 1.f, -0.9215686321258545f, -0.843137264251709f, -0.7647058963775635f};
  EXPECT_TRUE(
      testing::all_close(preprocess(x, Preprocess::Tf), Tensor::from_vector(expected, {1, 1, 2, 3}), 1e-6f, 0.f));
  EXPECT_EQ(preprocess_for("resnet50v2", Dialect::Keras), Preprocess::Tf);
  EXPECT_EQ(preprocess_for("resnet50v2", Dialect::Torchvision), Preprocess::Tf);  // V2 has no dialect
  EXPECT_EQ(preprocess_for("resnet50", Dialect::Keras), Preprocess::Caffe);
  EXPECT_EQ(std::string(preprocess_name(Preprocess::Tf)), "tf");
}

TEST(Preprocess, PresetFollowsTheDialectAndBadInputIsAnError) {
  EXPECT_EQ(preprocess_for(Dialect::Torchvision), Preprocess::Torch);
  EXPECT_EQ(preprocess_for(Dialect::Keras), Preprocess::Caffe);
  EXPECT_EQ(preprocess_for(Dialect::KerasLegacy), Preprocess::Caffe);
  EXPECT_EQ(parse_preprocess("caffe"), Preprocess::Caffe);
  EXPECT_EQ(parse_preprocess("tf"), Preprocess::Tf);
  EXPECT_THROW(parse_preprocess("inception"), Error);
  EXPECT_THROW(preprocess(Tensor::zeros({1, 4, 4, 4}), Preprocess::Torch), Error);
}

TEST(ImageNet, ClassNamesShipInIndexOrder) {
  const auto& names = imagenet_class_names();
  ASSERT_EQ(names.size(), 1000u);
  EXPECT_EQ(names[0], "tench");
  EXPECT_EQ(names[1], "goldfish");
  EXPECT_EQ(names[999], "toilet tissue");
}

}  // namespace
}  // namespace graft
