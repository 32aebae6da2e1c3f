// pad2d and concat_channels on the CPU: gradient checks, PyTorch golden values (F.pad, torch.cat on NCHW data,
// compared NHWC), gradients of partly frozen inputs, long input lists, and the error messages.
#include <gtest/gtest.h>

#include "core/error.h"
#include "tests/check.h"
#include "tests/golden.h"

namespace graft {
namespace {

using testing::all_close;
using testing::expect_gradients_match;

using testing::error_message;

TEST(Pad2d, Gradcheck) {
  Generator gen(21);
  expect_gradients_match([](const std::vector<Tensor>& in) { return pad2d(in[0], 1, 2, 0, 3); },
                         {Tensor::randn({2, 3, 2, 3}, gen)});
}

TEST(Pad2d, Golden) {
  testing::GoldenFile golden("layers.txt");
  Tensor x = golden.get("pad.x");
  x.set_requires_grad(true);
  Tensor y = pad2d(x, 3, 0, 1, 2);  // F.pad(x, (1, 2, 3, 0)): left 1, right 2, top 3, bottom 0
  EXPECT_TRUE(all_close(y, golden.get("pad.y"), 0.f, 0.f));
  y.backward(golden.get("pad.dy"));
  EXPECT_TRUE(all_close(x.grad(), golden.get("pad.dx"), 0.f, 0.f));
}

TEST(Pad2d, ZeroPaddingIsIdentity) {
  Generator gen(22);
  Tensor x = Tensor::randn({1, 2, 3, 4}, gen);
  EXPECT_EQ(pad2d(x, 0, 0, 0, 0).to_vector(), x.to_vector());
}

TEST(Pad2dErrors, NameOpAndShapes) {
  std::string m = error_message([] { pad2d(Tensor::zeros({1, 2, 2, 3}), 1, -1, 0, 0); });
  EXPECT_NE(m.find("pad2d: paddings (top 1, bottom -1, left 0, right 0) must be >= 0 (x (1,2,2,3))"),
            std::string::npos)
      << m;
  m = error_message([] { pad2d(Tensor::zeros({2, 3}), 1, 1, 1, 1); });
  EXPECT_NE(m.find("pad2d: x (2,3) must be NHWC"), std::string::npos) << m;
}

TEST(ConcatChannels, Gradcheck) {
  Generator gen(23);
  expect_gradients_match([](const std::vector<Tensor>& in) { return concat_channels(in); },
                         {Tensor::randn({2, 2, 3, 2}, gen), Tensor::randn({2, 2, 3, 1}, gen),
                          Tensor::randn({2, 2, 3, 4}, gen)});
  expect_gradients_match([](const std::vector<Tensor>& in) { return concat_channels(in); },
                         {Tensor::randn({3, 2}, gen), Tensor::randn({3, 5}, gen)});
}

TEST(ConcatChannels, Golden) {
  testing::GoldenFile golden("layers.txt");
  std::vector<Tensor> xs = {golden.get("cat.x0"), golden.get("cat.x1"), golden.get("cat.x2")};
  for (Tensor& x : xs) x.set_requires_grad(true);
  Tensor y = concat_channels(xs);
  EXPECT_TRUE(all_close(y, golden.get("cat.y"), 0.f, 0.f));
  y.backward(golden.get("cat.dy"));
  for (int i = 0; i < 3; ++i)
    EXPECT_TRUE(all_close(xs[i].grad(), golden.get("cat.dx" + std::to_string(i)), 0.f, 0.f)) << "input " << i;
}

TEST(ConcatChannels, OnlyInputsThatNeedGradientsGetThem) {
  Generator gen(24);
  Tensor a = Tensor::randn({2, 3}, gen), b = Tensor::randn({2, 2}, gen);
  b.set_requires_grad(true);
  concat_channels({a, b}).backward(Tensor::from_vector(std::vector<float>{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, {2, 5}));
  EXPECT_FALSE(a.grad().defined());
  EXPECT_EQ(b.grad().to_vector(), (std::vector<float>{4, 5, 9, 10}));
}

TEST(ConcatChannels, ManyInputs) {
  // more inputs than one node takes: concatenated group by group, same values and gradients
  std::vector<Tensor> xs;
  std::vector<float> expected;
  for (int i = 0; i < 19; ++i) {
    xs.push_back(Tensor::full({2, 1}, static_cast<float>(i)));
    xs.back().set_requires_grad(true);
  }
  for (int row = 0; row < 2; ++row)
    for (int i = 0; i < 19; ++i) expected.push_back(static_cast<float>(i));
  Tensor y = concat_channels(xs);
  ASSERT_EQ(y.shape(), (Shape{2, 19}));
  EXPECT_EQ(y.to_vector(), expected);
  std::vector<float> seed(38);
  for (int k = 0; k < 38; ++k) seed[k] = static_cast<float>(k);
  y.backward(Tensor::from_vector(seed, {2, 19}));
  for (int i = 0; i < 19; ++i)
    EXPECT_EQ(xs[i].grad().to_vector(), (std::vector<float>{float(i), float(19 + i)})) << "input " << i;
}

TEST(ConcatChannelsErrors, NameOpAndShapes) {
  std::string m = error_message([] { concat_channels({Tensor::zeros({2, 3, 3, 4}), Tensor::zeros({2, 3, 2, 4})}); });
  EXPECT_NE(m.find("concat_channels: input 1 (2,3,2,4) does not match input 0 (2,3,3,4) outside the last axis"),
            std::string::npos)
      << m;
  m = error_message([] { concat_channels({}); });
  EXPECT_NE(m.find("concat_channels: no inputs"), std::string::npos) << m;
  EXPECT_THROW(concat_channels({Tensor::zeros({2, 3}), Tensor::zeros({2, 3, 1})}), Error);
  EXPECT_THROW(concat_channels({Tensor::zeros({2, 3}), Tensor::from_vector(std::vector<std::int32_t>{1, 2}, {2, 1})}),
               Error);
}

}  // namespace
}  // namespace graft
