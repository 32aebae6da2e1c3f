// Image transforms: crop boxes with torchvision's rounding, bilinear resize by hand and against PyTorch's
// interpolate, the eval pipeline against torchvision.transforms (golden fixture from tests/golden_transforms.py),
// flips, gray -> 3 channels, the normalisation presets, and the errors.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "io/transforms.h"
#include "tests/check.h"
#include "tests/golden.h"

namespace graft {
namespace {

Example make_example(int h, int w, int c, std::uint64_t seed) {
  Example ex;
  ex.height = h, ex.width = w, ex.channels = c;
  std::mt19937_64 rng(seed);
  for (int i = 0; i < h * w * c; ++i) ex.pixels.push_back(static_cast<std::uint8_t>(rng() % 256));
  return ex;
}

std::vector<float> run(const Example& ex, const TransformOptions& o, std::uint64_t seed = 0) {
  std::vector<float> out(static_cast<std::size_t>(o.size) * o.size * 3, -1e30f);
  std::mt19937_64 rng(seed);
  transform_example(ex, o, rng, out.data());
  return out;
}

TEST(Transforms, CenterCropRoundsHalfToEvenLikeTorchvision) {
  CropBox a = center_crop_box(10, 9, 5, 4);  // offsets 2.5, 2.5 -> 2, 2
  EXPECT_EQ(a.top, 2);
  EXPECT_EQ(a.left, 2);
  EXPECT_EQ(a.height, 5);
  EXPECT_EQ(a.width, 4);
  CropBox b = center_crop_box(11, 10, 4, 3);  // offsets 3.5, 3.5 -> 4, 4
  EXPECT_EQ(b.top, 4);
  EXPECT_EQ(b.left, 4);
  CropBox c = center_crop_box(7, 7, 7, 7);
  EXPECT_EQ(c.top, 0);
  EXPECT_EQ(c.left, 0);
  testing::expect_error([] { center_crop_box(5, 5, 6, 2); }, {"center_crop_box", "6x2", "5x5"});
}

TEST(Transforms, RandomResizedCropStaysInsideWithinScaleAndRatio) {
  const int h = 60, w = 80;
  for (std::uint64_t seed = 0; seed < 200; ++seed) {
    std::mt19937_64 rng(seed);
    CropBox b = random_resized_crop_box(h, w, 0.2f, 0.6f, rng);
    ASSERT_GT(b.height, 0);
    ASSERT_GT(b.width, 0);
    ASSERT_GE(b.top, 0);
    ASSERT_GE(b.left, 0);
    ASSERT_LE(b.top + b.height, h);
    ASSERT_LE(b.left + b.width, w);
    // rounding each side to an integer moves area and ratio a little beyond the sampled ranges
    double area = double(b.height) * b.width / (h * w), ratio = double(b.width) / b.height;
    EXPECT_GE(area, 0.2 * 0.9) << seed;
    EXPECT_LE(area, 0.6 * 1.1) << seed;
    EXPECT_GE(ratio, 0.75 * 0.9) << seed;
    EXPECT_LE(ratio, 4.0 / 3.0 * 1.1) << seed;
    std::mt19937_64 again(seed);
    CropBox c = random_resized_crop_box(h, w, 0.2f, 0.6f, again);
    EXPECT_EQ(c.top, b.top);
    EXPECT_EQ(c.left, b.left);
    EXPECT_EQ(c.height, b.height);
    EXPECT_EQ(c.width, b.width);
  }
}

TEST(Transforms, RandomResizedCropFallsBackToACentredCropAtTheRatioLimit) {
  // 10x100 at full area: every attempt needs a side above 10 rows, so torchvision's fallback decides:
  // in_ratio 10 > 4/3 -> height 10, width round(10 * 4/3) = 13, centred with floor division.
  std::mt19937_64 rng(1);
  CropBox b = random_resized_crop_box(10, 100, 1.f, 1.f, rng);
  EXPECT_EQ(b.height, 10);
  EXPECT_EQ(b.width, 13);
  EXPECT_EQ(b.top, 0);
  EXPECT_EQ(b.left, 43);
  std::mt19937_64 rng2(1);
  CropBox t = random_resized_crop_box(100, 10, 1.f, 1.f, rng2);  // tall: width 10, height round(10 / 0.75) = 13
  EXPECT_EQ(t.width, 10);
  EXPECT_EQ(t.height, 13);
  EXPECT_EQ(t.top, 43);
  testing::expect_error([&] { random_resized_crop_box(10, 10, 0.5f, 0.2f, rng); }, {"scale range", "0.5", "0.2"});
}

TEST(Transforms, BilinearResizeByHand) {
  // half-pixel centres: 1x2 -> 1x4 samples at -0.25 (clamped), 0.25, 0.75, 1.25 (second tap clamped)
  const std::uint8_t up[] = {0, 10};
  float out[4];
  resize_bilinear(up, 1, 2, 1, out, 1, 4);
  EXPECT_FLOAT_EQ(out[0], 0.f);
  EXPECT_FLOAT_EQ(out[1], 2.5f);
  EXPECT_FLOAT_EQ(out[2], 7.5f);
  EXPECT_FLOAT_EQ(out[3], 10.f);
  // 4 -> 2 samples at 0.5 and 2.5 (no antialias: only the two nearest pixels count)
  const float down[] = {0.f, 10.f, 20.f, 30.f};
  float half[2];
  resize_bilinear(down, 1, 4, 1, half, 1, 2);
  EXPECT_FLOAT_EQ(half[0], 5.f);
  EXPECT_FLOAT_EQ(half[1], 25.f);
  // same size is the identity, channel by channel, for uint8 and float inputs alike
  Example ex = make_example(5, 3, 3, 7);
  std::vector<float> same(ex.pixels.size()), as_float(ex.pixels.begin(), ex.pixels.end()), same_f(ex.pixels.size());
  resize_bilinear(ex.pixels.data(), 5, 3, 3, same.data(), 5, 3);
  resize_bilinear(as_float.data(), 5, 3, 3, same_f.data(), 5, 3);
  for (std::size_t i = 0; i < same.size(); ++i) {
    EXPECT_EQ(same[i], float(ex.pixels[i])) << i;
    EXPECT_EQ(same_f[i], float(ex.pixels[i])) << i;
  }
  testing::expect_error([&] { resize_bilinear(up, 1, 2, 1, out, 0, 4); }, {"resize_bilinear", "0x4"});
}

TEST(Transforms, NormalisationPresetsAndGrayToThree) {
  Example rgb;
  rgb.height = rgb.width = 1, rgb.channels = 3, rgb.pixels = {10, 20, 30};
  TransformOptions o;
  o.size = 1;
  o.exact_resize = true;
  o.normalize = Preprocess::Caffe;  // BGR minus the BGR means, no scaling
  std::vector<float> caffe = run(rgb, o);
  EXPECT_NEAR(caffe[0], 30 - 103.939f, 1e-4f);
  EXPECT_NEAR(caffe[1], 20 - 116.779f, 1e-4f);
  EXPECT_NEAR(caffe[2], 10 - 123.68f, 1e-4f);
  o.normalize = Preprocess::Torch;  // x/255, then (x - mean) / std in RGB order
  std::vector<float> torch = run(rgb, o);
  const float mean[3] = {0.485f, 0.456f, 0.406f}, stddev[3] = {0.229f, 0.224f, 0.225f};
  for (int c = 0; c < 3; ++c) EXPECT_NEAR(torch[c], ((10.f * (c + 1)) / 255.f - mean[c]) / stddev[c], 1e-5f) << c;

  Example gray = make_example(4, 5, 1, 3);
  o.size = 4;
  o.exact_resize = false;
  o.resize_to = 4;  // identity resize, center crop of the 4x5 image: columns 0..3 (offset round(0.5) = 0)
  std::vector<float> g = run(gray, o);
  for (int y = 0; y < 4; ++y)
    for (int x = 0; x < 4; ++x)
      for (int c = 0; c < 3; ++c) {
        float v = gray.pixels[static_cast<std::size_t>(y * 5 + x)];
        EXPECT_NEAR(g[static_cast<std::size_t>((y * 4 + x) * 3 + c)], (v / 255.f - mean[c]) / stddev[c], 1e-5f);
      }
}

TEST(Transforms, EvalCropsTheCentreOfTheShorterSideResize) {
  // 4x8 with resize_to 4: the resize is the identity (8 = int(4 * 8 / 4)), the 2x2 crop starts at (1, 3)
  Example ex = make_example(4, 8, 3, 11);
  TransformOptions o;
  o.size = 2, o.resize_to = 4, o.normalize = Preprocess::Caffe;
  std::vector<float> out = run(ex, o);
  const float bgr_mean[3] = {103.939f, 116.779f, 123.68f};
  for (int y = 0; y < 2; ++y)
    for (int x = 0; x < 2; ++x)
      for (int c = 0; c < 3; ++c) {
        float v = ex.pixels[static_cast<std::size_t>(((1 + y) * 8 + (3 + x)) * 3 + (2 - c))];
        EXPECT_FLOAT_EQ(out[static_cast<std::size_t>((y * 2 + x) * 3 + c)], v - bgr_mean[c]);
      }
}

TEST(Transforms, FlipMirrorsColumnsAndIsDrawnPerSeed) {
  Example ex = make_example(6, 6, 3, 5);
  TransformOptions plain;
  plain.size = 6, plain.resize_to = 6;
  TransformOptions flip = plain;
  flip.random_flip = true;
  std::vector<float> ref = run(ex, plain);
  int flipped = 0, kept = 0;
  for (std::uint64_t seed = 0; seed < 32; ++seed) {
    std::vector<float> out = run(ex, flip, seed);
    EXPECT_EQ(out, run(ex, flip, seed)) << "same seed, same result";
    bool same = out == ref, mirrored = true;
    for (int y = 0; y < 6; ++y)
      for (int x = 0; x < 6; ++x)
        for (int c = 0; c < 3; ++c)
          mirrored &= out[static_cast<std::size_t>((y * 6 + x) * 3 + c)] ==
                      ref[static_cast<std::size_t>((y * 6 + (5 - x)) * 3 + c)];
    ASSERT_TRUE(same || mirrored) << "seed " << seed << " is neither the image nor its mirror";
    (mirrored ? flipped : kept)++;
  }
  EXPECT_GT(flipped, 0);
  EXPECT_GT(kept, 0);
}

TEST(Transforms, RandomResizedCropResamplesItsBox) {
  // the output equals an exact resize of the box that random_resized_crop_box draws from the same RNG state
  Example ex = make_example(30, 40, 3, 9);
  TransformOptions o;
  o.size = 16, o.random_resized_crop = true, o.normalize = Preprocess::Caffe;
  std::vector<float> out = run(ex, o, 21);
  std::mt19937_64 rng(21);
  CropBox b = random_resized_crop_box(30, 40, o.crop_scale_min, o.crop_scale_max, rng);
  Example crop;
  crop.height = b.height, crop.width = b.width, crop.channels = 3;
  for (int y = 0; y < b.height; ++y)
    for (int x = 0; x < b.width; ++x)
      for (int c = 0; c < 3; ++c)
        crop.pixels.push_back(ex.pixels[static_cast<std::size_t>(((b.top + y) * 40 + b.left + x) * 3 + c)]);
  TransformOptions exact;
  exact.size = 16, exact.exact_resize = true, exact.normalize = Preprocess::Caffe;
  EXPECT_EQ(out, run(crop, exact));
}

TEST(Transforms, BadExamplesAndOptionsAreErrors) {
  TransformOptions o;
  o.size = 4;
  std::mt19937_64 rng(0);
  std::vector<float> out(48);
  Example two = make_example(3, 3, 2, 1);
  testing::expect_error([&] { transform_example(two, o, rng, out.data()); }, {"2 channels"});
  Example short_pixels = make_example(3, 3, 3, 1);
  short_pixels.pixels.pop_back();
  testing::expect_error([&] { transform_example(short_pixels, o, rng, out.data()); }, {"27", "26"});
  Example empty;
  empty.channels = 3;
  testing::expect_error([&] { transform_example(empty, o, rng, out.data()); }, {"0x0"});
  Example fine = make_example(8, 8, 3, 1);
  TransformOptions zero = o;
  zero.size = 0;
  testing::expect_error([&] { transform_example(fine, zero, rng, out.data()); }, {"size 0"});
  TransformOptions small = o;
  small.resize_to = 3;
  testing::expect_error([&] { transform_example(fine, small, rng, out.data()); }, {"resize_to 3", "4"});
  TransformOptions scale = o;
  scale.random_resized_crop = true, scale.crop_scale_min = 0.f;
  testing::expect_error([&] { check_transform_options(scale); }, {"crop scale"});
}

// Golden: tests/golden_transforms.py runs torch.nn.functional.interpolate and torchvision.transforms.
TEST(TransformsGolden, ResizeMatchesTorchInterpolate) {
  testing::GoldenFile g("transforms.txt");
  int cases = 0;
  for (int i = 0; g.has("resize" + std::to_string(i) + "_in"); ++i, ++cases) {
    Tensor in = g.get("resize" + std::to_string(i) + "_in"), ref = g.get("resize" + std::to_string(i) + "_out");
    std::vector<float> values = in.to_vector();
    std::vector<std::uint8_t> bytes(values.begin(), values.end());
    for (bool antialias : {false, true}) {
      if (antialias) ref = g.get("resize" + std::to_string(i) + "_out_antialias");
      Tensor out = Tensor::empty(ref.shape());
      resize_bilinear(bytes.data(), int(in.dim(0)), int(in.dim(1)), int(in.dim(2)), out.data<float>(),
                      int(ref.dim(0)), int(ref.dim(1)), antialias);
      EXPECT_TRUE(testing::all_close(out, ref, 1e-3f, 1e-5f)) << "case " << i << ", antialias " << antialias;
    }
  }
  EXPECT_GE(cases, 10);
}

TEST(TransformsGolden, EvalPipelineMatchesTorchvision) {
  testing::GoldenFile g("transforms.txt");
  int cases = 0;
  for (int i = 0; g.has("eval" + std::to_string(i) + "_in"); ++i, ++cases) {
    const std::string key = "eval" + std::to_string(i);
    Tensor in = g.get(key + "_in"), ref = g.get(key + "_out");
    std::vector<float> params = g.get(key + "_options").to_vector();  // size, resize_to, exact_resize, antialias
    Example ex;
    ex.height = int(in.dim(0)), ex.width = int(in.dim(1)), ex.channels = int(in.dim(2));
    for (float v : in.to_vector()) ex.pixels.push_back(static_cast<std::uint8_t>(v));
    TransformOptions o;
    o.size = int(params[0]), o.resize_to = int(params[1]), o.exact_resize = params[2] != 0.f;
    o.antialias = params[3] != 0.f;
    std::vector<float> out = run(ex, o);
    EXPECT_TRUE(testing::all_close(Tensor::from_vector(out, ref.shape()), ref, 1e-5f, 1e-4f)) << "case " << i;
  }
  EXPECT_GE(cases, 12);
}

}  // namespace
}  // namespace graft
