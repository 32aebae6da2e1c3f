// Preprocessing presets against the formulas of Keras's preprocess_input("caffe") and torchvision's Normalize,
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

TEST(Preprocess, PresetFollowsTheDialectAndBadInputIsAnError) {
  EXPECT_EQ(preprocess_for(Dialect::Torchvision), Preprocess::Torch);
  EXPECT_EQ(preprocess_for(Dialect::Keras), Preprocess::Caffe);
  EXPECT_EQ(preprocess_for(Dialect::KerasLegacy), Preprocess::Caffe);
  EXPECT_EQ(parse_preprocess("caffe"), Preprocess::Caffe);
  EXPECT_THROW(parse_preprocess("tf"), Error);
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
