// conv2d on the CPU: gradient checks of the op, the im2col, pointwise GEMM and grouped paths against the direct
// 7-loop definition, golden values from torch.nn.functional.conv2d, and argument errors.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/ops.h"
#include "kernels/conv2d.h"
#include "tests/check.h"
#include "tests/golden.h"

namespace graft {
namespace {

using testing::all_close;
using testing::expect_gradients_match;

// ---- gradient checks (central differences through the op) ---------------------------------------------------------
// conv2d is linear in each argument, so central differences are exact up to float32 rounding whatever eps is;
// a large eps keeps that rounding (~1e-6 of the checked sum) far below the tolerance.
void check_gradients(const Shape& x_shape, const Shape& w_shape, const Conv2dOptions& o, bool with_bias) {
  Generator gen(17);
  std::vector<Tensor> inputs = {Tensor::uniform(x_shape, gen, -1.f, 1.f), Tensor::uniform(w_shape, gen, -1.f, 1.f)};
  if (with_bias) inputs.push_back(Tensor::uniform({w_shape[0]}, gen, -1.f, 1.f));
  expect_gradients_match(
      [o](const std::vector<Tensor>& in) {
        return conv2d(in[0], in[1], in.size() > 2 ? std::optional<Tensor>(in[2]) : std::nullopt, o);
      },
      inputs, 0.25f, 2e-3f, 2e-3f);
}

TEST(Conv2dGradcheck, Padded3x3) { check_gradients({2, 5, 4, 3}, {4, 3, 3, 3}, {.pad_h = 1, .pad_w = 1}, true); }
TEST(Conv2dGradcheck, Stride2Padded) {
  check_gradients({1, 7, 6, 2}, {3, 3, 3, 2}, {.stride_h = 2, .stride_w = 2, .pad_h = 1, .pad_w = 1}, true);
}
TEST(Conv2dGradcheck, Dilation2) {
  check_gradients({1, 7, 7, 2}, {3, 3, 3, 2}, {.pad_h = 1, .pad_w = 2, .dilation_h = 2, .dilation_w = 2}, true);
}
TEST(Conv2dGradcheck, Groups2) {
  check_gradients({1, 5, 5, 4}, {6, 3, 3, 2}, {.stride_h = 2, .stride_w = 1, .pad_h = 1, .pad_w = 1, .groups = 2},
                  true);
}
TEST(Conv2dGradcheck, Depthwise) {
  check_gradients({2, 5, 5, 3}, {3, 3, 3, 1}, {.stride_h = 2, .stride_w = 2, .pad_h = 1, .pad_w = 1, .groups = 3},
                  true);
}
TEST(Conv2dGradcheck, PointwiseNoBias) { check_gradients({2, 3, 5, 4}, {5, 1, 1, 4}, {}, false); }
TEST(Conv2dGradcheck, AsymmetricKernel) {
  check_gradients({1, 6, 7, 3}, {2, 2, 3, 3}, {.stride_h = 1, .stride_w = 2, .pad_h = 1, .pad_w = 0}, true);
}

// ---- kernels: im2col / pointwise GEMM vs the direct definition --------------------------------------------------
Conv2dGeometry geometry(std::int64_t n, std::int64_t h, std::int64_t w, std::int64_t c, std::int64_t k, std::int64_t r,
                        std::int64_t s, const Conv2dOptions& o) {
  Conv2dGeometry g;
  g.n = n, g.h = h, g.w = w, g.c = c, g.k = k, g.r = r, g.s = s;
  g.stride_h = o.stride_h, g.stride_w = o.stride_w, g.pad_h = o.pad_h, g.pad_w = o.pad_w;
  g.dilation_h = o.dilation_h, g.dilation_w = o.dilation_w, g.groups = o.groups;
  g.p = (h + 2 * o.pad_h - o.dilation_h * (r - 1) - 1) / o.stride_h + 1;
  g.q = (w + 2 * o.pad_w - o.dilation_w * (s - 1) - 1) / o.stride_w + 1;
  return g;
}

struct ConvData {
  Tensor x, w, b, dout;
};

ConvData random_data(const Conv2dGeometry& g, std::uint64_t seed) {
  Generator gen(seed);
  return {Tensor::uniform({g.n, g.h, g.w, g.c}, gen, -1.f, 1.f),
          Tensor::uniform({g.k, g.r, g.s, g.c / g.groups}, gen, -1.f, 1.f), Tensor::uniform({g.k}, gen, -1.f, 1.f),
          Tensor::uniform({g.n, g.p, g.q, g.k}, gen, -1.f, 1.f)};
}

Tensor poisoned(const Shape& shape) { return Tensor::full(shape, std::numeric_limits<float>::quiet_NaN()); }

// Float32 sums of at most a few hundred O(1) products, against double-accumulated references.
constexpr float kAtol = 1e-5f, kRtol = 1e-4f;

// Runs the im2col path with `ws_bytes` of workspace on random data and compares all three directions.
void expect_im2col_matches_direct(const Conv2dGeometry& g, std::size_t ws_bytes, std::uint64_t seed) {
  SCOPED_TRACE(conv2d_geometry_str(g) + " workspace " + std::to_string(ws_bytes));
  ConvData d = random_data(g, seed);
  std::vector<float> ws(ws_bytes / sizeof(float), std::numeric_limits<float>::quiet_NaN());
  const Shape out_shape = {g.n, g.p, g.q, g.k};
  for (bool with_bias : {false, true}) {
    const float* b = with_bias ? d.b.data<float>() : nullptr;
    Tensor ref = poisoned(out_shape), out = poisoned(out_shape);
    conv2d_forward_cpu_direct(ref.data<float>(), d.x.data<float>(), d.w.data<float>(), b, g);
    conv2d_forward_cpu_im2col(out.data<float>(), d.x.data<float>(), d.w.data<float>(), b, g, ws.data(), ws_bytes);
    EXPECT_TRUE(all_close(out, ref, kAtol, kRtol)) << "forward, bias " << with_bias;
  }
  Tensor dx_ref = poisoned(d.x.shape()), dx = poisoned(d.x.shape());
  conv2d_backward_data_cpu_direct(dx_ref.data<float>(), d.dout.data<float>(), d.w.data<float>(), g);
  conv2d_backward_data_cpu_im2col(dx.data<float>(), d.dout.data<float>(), d.w.data<float>(), g, ws.data(), ws_bytes);
  EXPECT_TRUE(all_close(dx, dx_ref, kAtol, kRtol)) << "backward data";
  Tensor dw_ref = poisoned(d.w.shape()), dw = poisoned(d.w.shape());
  conv2d_backward_filter_cpu_direct(dw_ref.data<float>(), d.dout.data<float>(), d.x.data<float>(), g);
  conv2d_backward_filter_cpu_im2col(dw.data<float>(), d.dout.data<float>(), d.x.data<float>(), g, ws.data(), ws_bytes);
  EXPECT_TRUE(all_close(dw, dw_ref, kAtol, kRtol)) << "backward filter";
}

TEST(Conv2dKernels, Im2colMatchesDirectOnRandomShapes) {
  std::mt19937 rng(2024);
  auto pick = [&rng](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  int cases = 0;
  while (cases < 40) {
    Conv2dOptions o;
    o.groups = pick(1, 3);
    o.stride_h = pick(1, 3), o.stride_w = pick(1, 3);
    o.pad_h = pick(0, 2), o.pad_w = pick(0, 2);
    o.dilation_h = pick(1, 2), o.dilation_w = pick(1, 2);
    const std::int64_t c = o.groups * pick(1, 4), k = o.groups * pick(1, 3), r = pick(1, 4), s = pick(1, 4);
    const std::int64_t h = pick(1, 11), w = pick(1, 11);
    if (h + 2 * o.pad_h < o.dilation_h * (r - 1) + 1 || w + 2 * o.pad_w < o.dilation_w * (s - 1) + 1) continue;
    const Conv2dGeometry g = geometry(pick(1, 3), h, w, c, k, r, s, o);
    const std::size_t row_bytes = sizeof(float) * static_cast<std::size_t>(g.r * g.s * (g.c / g.groups));
    // the workspace the op would pass (one chunk here), then 1 and 3 rows: many chunks, a ragged last one
    expect_im2col_matches_direct(g, conv2d_workspace_bytes_cpu_im2col(g), 100 + cases);
    expect_im2col_matches_direct(g, row_bytes, 200 + cases);
    expect_im2col_matches_direct(g, 3 * row_bytes + 5, 300 + cases);
    ++cases;
  }
}

// The grouped kernels (kernels/conv2d_cpu_grouped.cpp) against the direct oracle on one geometry: every output
// written (they start as NaN) and nothing written around them (64 guard floats on each side); with each build of
// their row kernels this CPU runs (SSE always, AVX2+FMA where the CPU has it).
void expect_grouped_matches_direct_with_this_build(const Conv2dGeometry& g, std::uint64_t seed);
void expect_grouped_matches_direct(const Conv2dGeometry& g, std::uint64_t seed) {
  const bool has_avx2 = std::string(conv2d_cpu_grouped_isa()) == "avx2+fma";
  for (bool avx2 : {false, true}) {
    if (avx2 && !has_avx2) continue;
    conv2d_cpu_grouped_use_avx2(avx2);
    SCOPED_TRACE(conv2d_cpu_grouped_isa());
    expect_grouped_matches_direct_with_this_build(g, seed);
  }
  conv2d_cpu_grouped_use_avx2(has_avx2);
}

void expect_grouped_matches_direct_with_this_build(const Conv2dGeometry& g, std::uint64_t seed) {
  SCOPED_TRACE(conv2d_geometry_str(g));
  ASSERT_TRUE(conv2d_cpu_grouped_applies(g));
  EXPECT_STREQ(conv2d_cpu_path(g), "grouped");
  EXPECT_EQ(conv2d_workspace_bytes_cpu(g), 0u);
  ConvData d = random_data(g, seed);
  constexpr std::size_t kGuard = 64;
  constexpr float kSentinel = 12345.f;
  // Runs `kernel` into a NaN-filled buffer between guards; compares with `ref` and checks the guards.
  auto expect_close = [&](const Tensor& ref, const std::function<void(float*)>& kernel, const char* what) {
    const std::size_t size = static_cast<std::size_t>(ref.numel());
    std::vector<float> buffer(size + 2 * kGuard, kSentinel);
    std::fill_n(buffer.begin() + kGuard, size, std::numeric_limits<float>::quiet_NaN());
    kernel(buffer.data() + kGuard);
    for (std::size_t i = 0; i < kGuard; ++i)
      ASSERT_TRUE(buffer[i] == kSentinel && buffer[kGuard + size + i] == kSentinel) << what << " wrote outside";
    Tensor got = Tensor::from_vector(std::vector<float>(buffer.begin() + kGuard, buffer.end() - kGuard), ref.shape());
    EXPECT_TRUE(all_close(got, ref, kAtol, kRtol)) << what;
  };
  for (bool with_bias : {false, true}) {
    const float* b = with_bias ? d.b.data<float>() : nullptr;
    Tensor ref = poisoned({g.n, g.p, g.q, g.k});
    conv2d_forward_cpu_direct(ref.data<float>(), d.x.data<float>(), d.w.data<float>(), b, g);
    expect_close(ref, [&](float* out) { conv2d_forward_cpu(out, d.x.data<float>(), d.w.data<float>(), b, g, nullptr, 0); },
                 with_bias ? "forward with bias" : "forward");
  }
  Tensor dx_ref = poisoned(d.x.shape());
  conv2d_backward_data_cpu_direct(dx_ref.data<float>(), d.dout.data<float>(), d.w.data<float>(), g);
  expect_close(dx_ref, [&](float* dx) { conv2d_backward_data_cpu(dx, d.dout.data<float>(), d.w.data<float>(), g, nullptr, 0); },
               "backward data");
  Tensor dw_ref = poisoned(d.w.shape());
  conv2d_backward_filter_cpu_direct(dw_ref.data<float>(), d.dout.data<float>(), d.x.data<float>(), g);
  expect_close(dw_ref, [&](float* dw) { conv2d_backward_filter_cpu(dw, d.dout.data<float>(), d.x.data<float>(), g, nullptr, 0); },
               "backward filter");
}

// Random geometries with 4..64 channels per group: strides, paddings (some larger than the kernel's reach), dilations,
// non-square kernels, and rows wide enough for the pixel blocks and their borders; then the narrow maps where no
// column is interior (a review found the kernels writing past their rows there).
TEST(Conv2dKernels, GroupedKernelsMatchDirect) {
  std::mt19937 rng(2026);
  auto pick = [&rng](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  const int widths[] = {4, 8, 16, 32, 64};
  int cases = 0;
  while (cases < 40) {
    Conv2dOptions o;
    o.groups = pick(2, 4);
    o.stride_h = pick(1, 2), o.stride_w = pick(1, 4);
    o.pad_h = pick(0, 3), o.pad_w = pick(0, 6);
    o.dilation_h = pick(1, 2), o.dilation_w = pick(1, 4);
    const std::int64_t cg = widths[pick(0, cases < 30 ? 2 : 4)], kg = widths[pick(0, cases < 30 ? 2 : 4)];
    const std::int64_t r = pick(1, 3), s = pick(1, 4), h = pick(1, 9), w = pick(1, 23);
    if (r == 1 && s == 1) continue;  // pointwise: the GEMM path
    if (h + 2 * o.pad_h < o.dilation_h * (r - 1) + 1 || w + 2 * o.pad_w < o.dilation_w * (s - 1) + 1) continue;
    expect_grouped_matches_direct(geometry(pick(1, 2), h, w, o.groups * cg, o.groups * kg, r, s, o), 500 + cases);
    ++cases;
  }
  expect_grouped_matches_direct(geometry(2, 3, 1, 8, 8, 3, 3, {.pad_h = 2, .pad_w = 2, .dilation_h = 2, .dilation_w = 2, .groups = 2}), 1);
  expect_grouped_matches_direct(
      geometry(2, 3, 1, 12, 48, 1, 4, {.stride_h = 4, .stride_w = 5, .pad_h = 4, .pad_w = 6, .dilation_w = 3, .groups = 3}), 2);
  expect_grouped_matches_direct(geometry(2, 5, 5, 256, 256, 3, 3, {.pad_h = 6, .pad_w = 6, .dilation_h = 6, .dilation_w = 6, .groups = 64}), 3);
  // Other group widths keep im2col (or the pointwise GEMMs).
  EXPECT_STREQ(conv2d_cpu_path(geometry(1, 8, 8, 6, 6, 3, 3, {.groups = 2})), "im2col");     // 3 per group
  EXPECT_STREQ(conv2d_cpu_path(geometry(1, 8, 8, 8, 12, 3, 3, {.groups = 2})), "im2col");    // 6 outputs per group
  EXPECT_STREQ(conv2d_cpu_path(geometry(1, 8, 8, 128, 128, 3, 3, {.groups = 1})), "im2col");
  EXPECT_STREQ(conv2d_cpu_path(geometry(1, 8, 8, 128, 128, 1, 1, {.groups = 1})), "pointwise");
  EXPECT_STREQ(conv2d_cpu_path(geometry(1, 8, 8, 128, 128, 1, 1, {.groups = 32})), "pointwise");
  EXPECT_STREQ(conv2d_cpu_path(geometry(1, 8, 8, 256, 256, 3, 3, {.groups = 2})), "im2col");  // 128 per group
}

TEST(Conv2dKernels, PointwiseGemmMatchesDirect) {
  for (int groups : {1, 2, 3}) {
    const Conv2dGeometry g = geometry(3, 5, 7, 6, 12, 1, 1, {.groups = groups});
    SCOPED_TRACE(conv2d_geometry_str(g));
    ASSERT_TRUE(conv2d_is_pointwise(g));
    EXPECT_EQ(conv2d_workspace_bytes_cpu(g), 0u);  // the op's dispatch takes the GEMM path, no im2col
    ConvData d = random_data(g, 40 + groups);
    Tensor ref = poisoned({g.n, g.p, g.q, g.k}), out = poisoned({g.n, g.p, g.q, g.k});
    conv2d_forward_cpu_direct(ref.data<float>(), d.x.data<float>(), d.w.data<float>(), d.b.data<float>(), g);
    conv2d_forward_cpu_pointwise(out.data<float>(), d.x.data<float>(), d.w.data<float>(), d.b.data<float>(), g);
    EXPECT_TRUE(all_close(out, ref, kAtol, kRtol)) << "forward";
    Tensor dx_ref = poisoned(d.x.shape()), dx = poisoned(d.x.shape());
    conv2d_backward_data_cpu_direct(dx_ref.data<float>(), d.dout.data<float>(), d.w.data<float>(), g);
    conv2d_backward_data_cpu_pointwise(dx.data<float>(), d.dout.data<float>(), d.w.data<float>(), g);
    EXPECT_TRUE(all_close(dx, dx_ref, kAtol, kRtol)) << "backward data";
    Tensor dw_ref = poisoned(d.w.shape()), dw = poisoned(d.w.shape());
    conv2d_backward_filter_cpu_direct(dw_ref.data<float>(), d.dout.data<float>(), d.x.data<float>(), g);
    conv2d_backward_filter_cpu_pointwise(dw.data<float>(), d.dout.data<float>(), d.x.data<float>(), g);
    EXPECT_TRUE(all_close(dw, dw_ref, kAtol, kRtol)) << "backward filter";
  }
  // strided or padded 1x1 convs are not pointwise: they go through im2col
  EXPECT_FALSE(conv2d_is_pointwise(geometry(1, 8, 8, 4, 4, 1, 1, {.stride_h = 2, .stride_w = 2})));
  EXPECT_FALSE(conv2d_is_pointwise(geometry(1, 8, 8, 4, 4, 1, 1, {.pad_h = 1, .pad_w = 1})));
}

TEST(Conv2dKernels, WorkspaceIsBoundedAndWholeRows) {
  // VGG16 conv at batch 32: 32*224*224 rows of 3*3*64 floats would be 3.7 GB without chunking
  const Conv2dGeometry big = geometry(32, 224, 224, 64, 64, 3, 3, {.pad_h = 1, .pad_w = 1});
  const std::size_t row_bytes = 3 * 3 * 64 * sizeof(float);
  const std::size_t bytes = conv2d_workspace_bytes_cpu(big);
  EXPECT_LE(bytes, kConv2dCpuWorkspaceLimit);
  EXPECT_GT(bytes, kConv2dCpuWorkspaceLimit / 2);
  EXPECT_EQ(bytes % row_bytes, 0u);
  // a small conv gets exactly its whole column matrix
  const Conv2dGeometry small = geometry(2, 5, 5, 3, 4, 3, 3, {});
  EXPECT_EQ(conv2d_workspace_bytes_cpu(small), static_cast<std::size_t>(2 * 3 * 3) * 27 * sizeof(float));
  // a workspace smaller than one row is refused, naming conv2d
  std::vector<float> tiny(4);
  ConvData d = random_data(small, 1);
  Tensor out = Tensor::empty({2, 3, 3, 4});
  EXPECT_THROW(conv2d_forward_cpu_im2col(out.data<float>(), d.x.data<float>(), d.w.data<float>(), nullptr, small,
                                         tiny.data(), tiny.size() * sizeof(float)),
               Error);
}

// ---- golden: torch.nn.functional.conv2d (tests/golden_conv.py) ---------------------------------------------------
TEST(Conv2dGolden, ForwardAndBackwardMatchTorch) {
  testing::GoldenFile golden("conv.txt");
  const char* names[] = {"basic3x3",  "stride2", "stem7x7",   "pointwise",  "downsample1x1",
                         "dilation2", "groups2", "depthwise", "asymmetric", "grouped_pointwise"};
  for (const char* name : names) {
    SCOPED_TRACE(name);
    const std::string key = name;
    std::vector<float> opts = golden.get(key + "_opts").to_vector();
    ASSERT_EQ(opts.size(), 8u);
    Conv2dOptions o;
    o.stride_h = int(opts[0]), o.stride_w = int(opts[1]), o.pad_h = int(opts[2]), o.pad_w = int(opts[3]);
    o.dilation_h = int(opts[4]), o.dilation_w = int(opts[5]), o.groups = int(opts[6]);
    const bool has_bias = opts[7] != 0.f;
    Tensor x = golden.get(key + "_x").clone().set_requires_grad(true);
    Tensor w = golden.get(key + "_w").clone().set_requires_grad(true);
    Tensor b = has_bias ? golden.get(key + "_b").clone().set_requires_grad(true) : Tensor();
    Tensor out = conv2d(x, w, has_bias ? std::optional<Tensor>(b) : std::nullopt, o);
    // references are float64 torch results of the same float32 inputs
    EXPECT_TRUE(all_close(out, golden.get(key + "_out"), kAtol, kRtol)) << "out";
    out.backward(golden.get(key + "_dout"));
    EXPECT_TRUE(all_close(x.grad(), golden.get(key + "_dx"), kAtol, kRtol)) << "dx";
    EXPECT_TRUE(all_close(w.grad(), golden.get(key + "_dw"), kAtol, kRtol)) << "dw";
    if (has_bias) {
      EXPECT_TRUE(all_close(b.grad(), golden.get(key + "_db"), kAtol, kRtol)) << "db";
    }
  }
}

// ---- autograd: only the gradients that are asked for --------------------------------------------------------------
TEST(Conv2dAutograd, FrozenWeightGetsNoGradient) {
  Generator gen(5);
  Tensor x = Tensor::uniform({1, 6, 6, 3}, gen, -1.f, 1.f).set_requires_grad(true);
  Tensor w = Tensor::uniform({4, 3, 3, 3}, gen, -1.f, 1.f);  // frozen
  Tensor b = Tensor::uniform({4}, gen, -1.f, 1.f);           // frozen
  Tensor out = conv2d(x, w, b, {.stride_h = 2, .stride_w = 2, .pad_h = 1, .pad_w = 1});
  Tensor dout = Tensor::uniform(out.shape(), gen, -1.f, 1.f);
  out.backward(dout);
  EXPECT_FALSE(w.grad().defined());
  EXPECT_FALSE(b.grad().defined());
  ASSERT_TRUE(x.grad().defined());
  const Conv2dGeometry g = geometry(1, 6, 6, 3, 4, 3, 3, {.stride_h = 2, .stride_w = 2, .pad_h = 1, .pad_w = 1});
  Tensor ref = Tensor::empty(x.shape());
  conv2d_backward_data_cpu_direct(ref.data<float>(), dout.data<float>(), w.data<float>(), g);
  EXPECT_TRUE(all_close(x.grad(), ref, kAtol, kRtol));
}

TEST(Conv2dAutograd, FrozenInputStillTrainsWeightAndBias) {
  Generator gen(6);
  Tensor x = Tensor::uniform({2, 5, 5, 2}, gen, -1.f, 1.f);  // e.g. the output of a frozen backbone
  Tensor w = Tensor::uniform({3, 1, 1, 2}, gen, -1.f, 1.f).set_requires_grad(true);
  Tensor b = Tensor::uniform({3}, gen, -1.f, 1.f).set_requires_grad(true);
  Tensor out = conv2d(x, w, b);
  out.backward(Tensor::ones(out.shape()));
  EXPECT_FALSE(x.grad().defined());
  ASSERT_TRUE(w.grad().defined());
  ASSERT_TRUE(b.grad().defined());
  EXPECT_TRUE(all_close(b.grad(), Tensor::full({3}, 2.f * 5 * 5), 0.f, 1e-6f));  // db = number of output pixels
}

// ---- errors --------------------------------------------------------------------------------------------------------
void expect_conv_error(const std::function<void()>& f, const std::string& fragment) {
  try {
    f();
    ADD_FAILURE() << "no graft::Error thrown (expected one mentioning '" << fragment << "')";
  } catch (const Error& e) {
    const std::string message = e.message();
    EXPECT_EQ(message.rfind("conv2d", 0), 0u) << message;
    EXPECT_NE(message.find(fragment), std::string::npos) << message;
  }
}

TEST(Conv2dErrors, BadArgumentsNameTheOpAndShapes) {
  Tensor x = Tensor::zeros({2, 9, 9, 3}), w = Tensor::zeros({8, 3, 3, 3});
  expect_conv_error(
      [&] {
        conv2d(x, Tensor::zeros({8, 3, 3, 4}), std::nullopt);
      },
      "input (2,9,9,3) has 3 channels, weight (8,3,3,4) expects 4");
  expect_conv_error([&] { conv2d(Tensor::zeros({9, 9, 3}), w, std::nullopt); }, "input (9,9,3) must be 4-D");
  expect_conv_error([&] { conv2d(x, Tensor::zeros({8, 9, 3}), std::nullopt); }, "weight (8,9,3) must be 4-D");
  expect_conv_error(
      [&] {
        conv2d(x, Tensor::zeros({8, 3, 3, 1}), std::nullopt, {.groups = 2});
      },
      "3 channels, not divisible by groups 2");
  expect_conv_error(
      [&] {
        conv2d(Tensor::zeros({1, 5, 5, 4}), Tensor::zeros({3, 3, 3, 2}), std::nullopt, {.groups = 2});
      },
      "3 output channels, not divisible by groups 2");
  expect_conv_error(
      [&] {
        conv2d(Tensor::zeros({1, 5, 5, 4}), Tensor::zeros({4, 3, 3, 1}), std::nullopt, {.groups = 2});
      },
      "weight (4,3,3,1) expects 2");
  expect_conv_error([&] { conv2d(x, w, Tensor::zeros({7})); }, "bias (7) must be (8)");
  expect_conv_error([&] { conv2d(x, w, std::nullopt, {.stride_h = 0}); }, "invalid options");
  expect_conv_error([&] { conv2d(x, w, std::nullopt, {.pad_w = -1}); }, "invalid options");
  expect_conv_error([&] { conv2d(x, w, std::nullopt, {.groups = 0}); }, "invalid options");
  expect_conv_error([&] { conv2d(Tensor::zeros({1, 2, 9, 3}), w, std::nullopt); }, "smaller than the kernel");
  expect_conv_error([&] { conv2d(x, w, std::nullopt, {.dilation_h = 5}); }, "smaller than the kernel");
  expect_conv_error(
      [&] {
        conv2d(Tensor::from_vector(std::vector<std::int32_t>(4, 1), {1, 2, 2, 1}), Tensor::zeros({1, 1, 1, 1}),
               std::nullopt);
      },
      "int32, expected float32");
  expect_conv_error([&] { conv2d(Tensor(), w, std::nullopt); }, "undefined");
}

TEST(Conv2dErrors, DeviceMix) {
  GRAFT_REQUIRE_CUDA();
  Tensor x = Tensor::zeros({1, 5, 5, 3}, kCUDA), w = Tensor::zeros({4, 3, 3, 3});
  expect_conv_error([&] { conv2d(x, w, std::nullopt); }, "different devices");
  expect_conv_error([&] { conv2d(x, w.to(kCUDA), Tensor::zeros({4})); }, "different devices");
}

}  // namespace
}  // namespace graft

namespace graft {
namespace {

// conv2d_relu on the CPU runs the unfused steps: output and every gradient are bitwise those of relu(conv2d(...)).
TEST(Conv2dRelu, EqualsReluOfConv2dBitwiseOnTheCpu) {
  Generator gen(77);
  for (bool with_bias : {true, false}) {
    Tensor x0 = Tensor::randn({2, 6, 5, 3}, gen), w0 = Tensor::randn({4, 3, 3, 3}, gen), b0 = Tensor::randn({4}, gen);
    const Conv2dOptions o{.pad_h = 1, .pad_w = 1};
    auto run = [&](bool fused) {
      Tensor x = x0.clone(), w = w0.clone(), b = b0.clone();
      for (Tensor* t : {&x, &w, &b}) t->set_requires_grad(true);
      std::optional<Tensor> bias = with_bias ? std::optional<Tensor>(b) : std::nullopt;
      Tensor y = fused ? conv2d_relu(x, w, bias, o) : relu(conv2d(x, w, bias, o));
      Generator g(5);
      sum(mul(y, Tensor::randn(y.shape(), g))).backward();
      std::vector<std::vector<float>> out{y.to_vector(), x.grad().to_vector(), w.grad().to_vector()};
      if (with_bias) out.push_back(b.grad().to_vector());
      return out;
    };
    const auto fused = run(true), plain = run(false);
    ASSERT_EQ(fused.size(), plain.size());
    for (std::size_t i = 0; i < fused.size(); ++i) EXPECT_EQ(fused[i], plain[i]) << "output/grad " << i;
    int positive = 0, zero = 0;
    for (float v : fused[0]) (v > 0 ? positive : zero) += 1;
    EXPECT_GT(positive, 10);
    EXPECT_GT(zero, 10) << "the relu clips part of the output";
  }
}

}  // namespace
}  // namespace graft
