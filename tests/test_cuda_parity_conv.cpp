// CPU-vs-CUDA parity of conv2d: cuDNN (forward + bias, backward-data, backward-filter) against the CPU im2col/GEMM
// path, on every distinct conv shape of ResNet-50 (torchvision: stride on the 3x3 conv) and VGG16 at 224x224 input,
// with channel counts, kernel, stride and padding exact and the spatial size scaled down to keep the CPU side fast
// (224->57, 112->29, 56->15; 28, 14 and 7 kept), plus odd shapes (groups, depthwise, dilation, 5x5, asymmetric);
// each in TF32 and in strict-FP32 mode. Then the op through autograd on both devices, the record of the chosen
// algorithms, and the kernel lab's hand-written forwards (strict FP32) on the same cases.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "core/autograd.h"
#include "core/error.h"
#include "core/ops.h"
#include "core/rng.h"
#include "kernels/conv2d.h"
#include "tests/check.h"

namespace graft {
namespace {

using testing::all_close;

#if GRAFT_HAS_CUDA
// Tolerances are relative to the scale s = max|reference| of the tensor compared: |gpu - cpu| <= tol*s + tol*|cpu|.
// TF32 rounds both operands to a 10-bit mantissa (relative error <= 2^-11 rounded, 2^-10 truncated), so a product
// is off by up to ~2e-3 of itself; over a reduction of L terms of mixed sign these errors grow like sqrt(L), as does
// the sum, leaving ~1e-3 of the typical output and less of the maximum. 1e-2 keeps a ~10x margin; a wrong tap,
// channel or stride gives errors of the order of s itself.
// Strict FP32 (CUDNN_FMA_MATH) differs from OpenBLAS only in summation order, and in the transform error of
// FFT/Winograd algorithms that cuDNN may still pick (~1e-5 of s): 1e-4.
constexpr float kConvTf32Tol = 1e-2f, kConvFp32Tol = 1e-4f;

::testing::AssertionResult conv_parity_close(const Tensor& got, const Tensor& ref, float tol) {
  float scale = 0.f;
  for (float v : ref.to(kCPU).to_vector()) scale = std::max(scale, std::fabs(v));
  return all_close(got, ref, tol * scale, tol);
}

Tensor conv_nan_cuda(const Shape& shape) { return Tensor::full(shape, NAN, kCUDA); }

struct ConvParityCase {
  std::string name;
  Conv2dGeometry g;
};

// Fills in the output size P x Q from the other fields.
Conv2dGeometry conv_parity_output_size(Conv2dGeometry g) {
  g.p = (g.h + 2 * g.pad_h - g.dilation_h * (g.r - 1) - 1) / g.stride_h + 1;
  g.q = (g.w + 2 * g.pad_w - g.dilation_w * (g.s - 1) - 1) / g.stride_w + 1;
  return g;
}

Conv2dGeometry conv_parity_geometry(std::int64_t n, std::int64_t h, std::int64_t w, std::int64_t c, std::int64_t k,
                                    std::int64_t r, std::int64_t s, int stride, int pad, int dilation = 1,
                                    int groups = 1) {
  Conv2dGeometry g;
  g.n = n, g.h = h, g.w = w, g.c = c, g.k = k, g.r = r, g.s = s;
  g.stride_h = g.stride_w = stride, g.pad_h = g.pad_w = pad, g.dilation_h = g.dilation_w = dilation;
  g.groups = groups;
  return conv_parity_output_size(g);
}

std::vector<ConvParityCase> conv_parity_cases() {
  // (in-ch, out-ch, kernel, stride, pad, spatial size at 224 input)
  struct Layer {
    const char* net;
    int c, k, kernel, stride, pad, size;
  };
  const Layer layers[] = {
      // ResNet-50: stem, then per stage the 1x1 reduce, 3x3 (stride 2 in the first block), 1x1 expand, downsample
      {"resnet50", 3, 64, 7, 2, 3, 224},      {"resnet50", 64, 64, 1, 1, 0, 56},
      {"resnet50", 64, 64, 3, 1, 1, 56},      {"resnet50", 64, 256, 1, 1, 0, 56},
      {"resnet50", 256, 64, 1, 1, 0, 56},     {"resnet50", 256, 128, 1, 1, 0, 56},
      {"resnet50", 128, 128, 3, 2, 1, 56},    {"resnet50", 128, 512, 1, 1, 0, 28},
      {"resnet50", 256, 512, 1, 2, 0, 56},    {"resnet50", 512, 128, 1, 1, 0, 28},
      {"resnet50", 128, 128, 3, 1, 1, 28},    {"resnet50", 512, 256, 1, 1, 0, 28},
      {"resnet50", 256, 256, 3, 2, 1, 28},    {"resnet50", 256, 1024, 1, 1, 0, 14},
      {"resnet50", 512, 1024, 1, 2, 0, 28},   {"resnet50", 1024, 256, 1, 1, 0, 14},
      {"resnet50", 256, 256, 3, 1, 1, 14},    {"resnet50", 1024, 512, 1, 1, 0, 14},
      {"resnet50", 512, 512, 3, 2, 1, 14},    {"resnet50", 512, 2048, 1, 1, 0, 7},
      {"resnet50", 1024, 2048, 1, 2, 0, 14},  {"resnet50", 2048, 512, 1, 1, 0, 7},
      {"resnet50", 512, 512, 3, 1, 1, 7},
      // VGG16: 3x3 stride 1 pad 1 everywhere
      {"vgg16", 3, 64, 3, 1, 1, 224},         {"vgg16", 64, 64, 3, 1, 1, 224},
      {"vgg16", 64, 128, 3, 1, 1, 112},       {"vgg16", 128, 128, 3, 1, 1, 112},
      {"vgg16", 128, 256, 3, 1, 1, 56},       {"vgg16", 256, 256, 3, 1, 1, 56},
      {"vgg16", 256, 512, 3, 1, 1, 28},       {"vgg16", 512, 512, 3, 1, 1, 28},
      {"vgg16", 512, 512, 3, 1, 1, 14},
  };
  std::vector<ConvParityCase> cases;
  for (const Layer& l : layers) {
    const int size = l.size >= 56 ? l.size / 4 + 1 : l.size;  // 224->57, 112->29, 56->15 (odd); 28, 14, 7 kept
    const int batch = l.size >= 112 ? 1 : 2;
    cases.push_back({detail::concat(l.net, " ", l.c, "->", l.k, " ", l.kernel, "x", l.kernel, "/", l.stride, " pad ",
                                    l.pad, " @", l.size, " (tested @", size, ")"),
                     conv_parity_geometry(batch, size, size, l.c, l.k, l.kernel, l.kernel, l.stride, l.pad)});
  }
  cases.push_back({"odd 5x5/2", conv_parity_geometry(3, 13, 11, 7, 9, 5, 5, 2, 2)});
  cases.push_back({"odd dilation 2", conv_parity_geometry(2, 11, 9, 5, 6, 3, 3, 1, 2, 2)});
  cases.push_back({"odd groups 3", conv_parity_geometry(2, 9, 10, 9, 12, 3, 3, 1, 1, 1, 3)});
  cases.push_back({"odd depthwise 3x3/2", conv_parity_geometry(2, 15, 13, 32, 32, 3, 3, 2, 1, 1, 32)});
  // ResNeXt-50 32x4d's grouped 3x3 convs (32 groups of 4, 8 and 32 channels): layer1 @56, layer2's stride 2 @56,
  // layer4 @7. "odd": the engine test below does not require a graph-API engine of their own.
  cases.push_back({"odd groups 32 resnext50 layer1", conv_parity_geometry(2, 15, 15, 128, 128, 3, 3, 1, 1, 1, 32)});
  cases.push_back({"odd groups 32 resnext50 layer2/2", conv_parity_geometry(2, 15, 15, 256, 256, 3, 3, 2, 1, 1, 32)});
  cases.push_back({"odd groups 32 resnext50 layer4", conv_parity_geometry(2, 7, 7, 1024, 1024, 3, 3, 1, 1, 1, 32)});
  cases.push_back({"odd 1x1", conv_parity_geometry(3, 7, 9, 3, 5, 1, 1, 1, 0)});
  Conv2dGeometry asym = conv_parity_geometry(2, 10, 11, 5, 7, 2, 3, 1, 0);
  asym.stride_h = 2, asym.pad_w = 2, asym.dilation_w = 2;
  cases.push_back({"odd asymmetric 2x3, stride 2x1, pad 0x2, dilation 1x2", conv_parity_output_size(asym)});
  return cases;
}

// The three cuDNN directions of one case against the CPU reference, in TF32 and in strict FP32.
void expect_conv_parity(const ConvParityCase& cs, std::uint64_t seed) {
  const Conv2dGeometry& g = cs.g;
  SCOPED_TRACE(cs.name + ": " + conv2d_geometry_str(g));
  Generator gen(seed);
  const std::int64_t cg = g.c / g.groups;
  const float w_scale = 1.f / std::sqrt(static_cast<float>(g.r * g.s * cg));  // outputs of order 1
  const Shape x_shape{g.n, g.h, g.w, g.c}, w_shape{g.k, g.r, g.s, cg}, y_shape{g.n, g.p, g.q, g.k};
  Tensor x = Tensor::uniform(x_shape, gen, -1.f, 1.f), w = Tensor::uniform(w_shape, gen, -w_scale, w_scale);
  Tensor b = Tensor::uniform({g.k}, gen, -1.f, 1.f), dy = Tensor::uniform(y_shape, gen, -1.f, 1.f);

  Tensor y = Tensor::empty(y_shape), dx = Tensor::empty(x_shape), dw = Tensor::empty(w_shape);
  std::vector<float> ws(conv2d_workspace_bytes_cpu(g) / sizeof(float) + 1);
  const std::size_t ws_bytes = ws.size() * sizeof(float);
  conv2d_forward_cpu(y.data<float>(), x.data<float>(), w.data<float>(), b.data<float>(), g, ws.data(), ws_bytes);
  conv2d_backward_data_cpu(dx.data<float>(), dy.data<float>(), w.data<float>(), g, ws.data(), ws_bytes);
  conv2d_backward_filter_cpu(dw.data<float>(), dy.data<float>(), x.data<float>(), g, ws.data(), ws_bytes);

  Tensor xg = x.to(kCUDA), wg = w.to(kCUDA), bg = b.to(kCUDA), dyg = dy.to(kCUDA);
  for (bool tf32 : {true, false}) {
    cuda::Tf32Scope mode(tf32);
    const float tol = tf32 ? kConvTf32Tol : kConvFp32Tol;
    const char* math = tf32 ? "TF32" : "strict FP32";
    // Backward data adding into a gradient already there (cuDNN's beta = 1, autograd's in-place sum): an algorithm
    // or engine that ignored beta would overwrite `earlier` instead of adding to it. In strict FP32 it is the
    // first call of its geometry, so the algorithm search itself runs for an accumulating call (on a scratch
    // output: `earlier` must survive it); in TF32 it finds the choice a plain call cached.
    auto check_accumulate = [&] {
      Tensor earlier = Tensor::uniform(x_shape, gen, -1.f, 1.f);
      Tensor sum = earlier.to(kCUDA);
      conv2d_backward_data_cudnn(sum.data<float>(), dyg.data<float>(), wg.data<float>(), g, /*accumulate=*/true);
      Tensor expected = Tensor::empty(x_shape);
      for (std::int64_t i = 0; i < expected.numel(); ++i)
        expected.data<float>()[i] = earlier.data<float>()[i] + dx.data<float>()[i];
      EXPECT_TRUE(conv_parity_close(sum, expected, tol)) << "backward data accumulating, " << math;
    };
    if (!tf32) check_accumulate();
    Tensor y_g = conv_nan_cuda(y_shape), dx_g = conv_nan_cuda(x_shape), dw_g = conv_nan_cuda(w_shape);
    conv2d_forward_cudnn(y_g.data<float>(), xg.data<float>(), wg.data<float>(), bg.data<float>(), g);
    conv2d_backward_data_cudnn(dx_g.data<float>(), dyg.data<float>(), wg.data<float>(), g);
    conv2d_backward_filter_cudnn(dw_g.data<float>(), dyg.data<float>(), xg.data<float>(), g);
    EXPECT_TRUE(conv_parity_close(y_g, y, tol)) << "forward, " << math;
    EXPECT_TRUE(conv_parity_close(dx_g, dx, tol)) << "backward data, " << math;
    EXPECT_TRUE(conv_parity_close(dw_g, dw, tol)) << "backward filter, " << math;
    if (tf32) check_accumulate();
  }
}

TEST(Conv2dParity, ResNet50AndVgg16ShapesTf32AndStrictFp32) {
  GRAFT_REQUIRE_CUDA();
  std::uint64_t seed = 500;
  for (const ConvParityCase& cs : conv_parity_cases()) expect_conv_parity(cs, seed++);
}

// The opt-in graph-API engine search (kernels/conv2d_cudnn_engines.h) on a third of the same cases, at batch sizes
// of their own (a new key, so the search really runs): every result matches the CPU, strict FP32 never picks a
// tensor-core engine, and the accumulating backward data (a plan with beta = 1, a search of its own) ran on an engine
// of its own for most ResNet/VGG shapes in each math mode - else the parity above proved nothing about engines and
// beta. cuDNN promises no engine for every shape within the workspace budget: the shapes that fell back to the
// legacy algorithms are printed (a report for the device check's log), not failed.
TEST(Conv2dParity, GraphApiEnginesMatchTheCpuAndTakeEveryResNetAndVggShape) {
  GRAFT_REQUIRE_CUDA();
  testing::EngineSearchGuard on(true);
  std::uint64_t seed = 800;
  std::vector<std::string> standard;
  const std::vector<ConvParityCase> all = conv_parity_cases();
  for (std::size_t i = 0; i < all.size(); ++i) {
    // every third case (stem, 1x1 and 3x3 of each stage, VGG, odd shapes), each at a batch of its own (a new key):
    // a search times up to 16 engines per key, and the device check's test budget is minutes
    if (i % 3 != 0) continue;
    ConvParityCase cs = all[i];
    cs.g.n += 1;
    expect_conv_parity(cs, seed++);
    if (cs.name.rfind("odd", 0) != 0) standard.push_back(conv2d_geometry_str(cs.g));
  }
  int engine_lines = 0;
  std::vector<std::string> fell_back;
  for (const std::string& line : conv2d_cudnn_algorithms_used()) {
    if (line.rfind("graph API ", 0) != 0) continue;
    ++engine_lines;
    const bool is_standard = std::any_of(standard.begin(), standard.end(), [&](const std::string& geometry) {
      return line.find(geometry + " ") != std::string::npos;
    });
    if (is_standard && line.find("legacy algorithm used") != std::string::npos) fell_back.push_back(line);
    if (line.find(" fp32: ") != std::string::npos) {
      EXPECT_EQ(line.find("tensor-core"), std::string::npos) << line;
    }
  }
  EXPECT_GE(engine_lines, static_cast<int>(standard.size()) * 8)
      << "3 directions and the accumulating backward data, x 2 math modes per shape";
  for (const std::string& line : fell_back) std::printf("engine search fell back: %s\n", line.c_str());
  std::printf("engine search: %zu of %d searches on ResNet/VGG shapes fell back to the legacy algorithms\n",
              fell_back.size(), static_cast<int>(standard.size()) * 8);
  for (const char* math : {" tf32", " fp32"}) {
    int searched = 0, on_engines = 0;
    for (const std::string& geometry : standard) {
      const auto used = conv2d_cudnn_algorithms_used();
      const auto line = std::find_if(used.begin(), used.end(), [&](const std::string& l) {
        return l.rfind("graph API backward", 0) == 0 && l.find(geometry + " ") != std::string::npos &&
               l.find(std::string(math) + " accumulate: ") != std::string::npos;
      });
      if (line == used.end()) continue;
      ++searched;
      if (line->find("legacy algorithm used") == std::string::npos) ++on_engines;
    }
    EXPECT_EQ(searched, static_cast<int>(standard.size())) << "an accumulating backward-data search per shape," << math;
    EXPECT_GE(2 * on_engines, searched) << "accumulating backward data on engines of their own for most shapes," << math;
  }
}

TEST(Conv2dParity, OpForwardBackwardThroughAutograd) {
  GRAFT_REQUIRE_CUDA();
  struct OpCase {
    Shape x, w;
    Conv2dOptions o;
    bool bias;
  };
  const OpCase cases[] = {
      {{2, 15, 13, 7}, {9, 3, 3, 7}, {.stride_h = 2, .stride_w = 2, .pad_h = 1, .pad_w = 1}, true},
      {{2, 11, 9, 5}, {6, 2, 3, 5}, {.stride_h = 2, .stride_w = 1, .pad_h = 0, .pad_w = 2, .dilation_w = 2}, true},
      {{2, 9, 10, 8}, {12, 3, 3, 4}, {.pad_h = 1, .pad_w = 1, .groups = 2}, false},
      {{3, 7, 9, 6}, {10, 1, 1, 6}, {}, true},
      {{2, 13, 13, 16}, {16, 3, 3, 1}, {.stride_h = 2, .stride_w = 2, .pad_h = 1, .pad_w = 1, .groups = 16}, true},
  };
  Generator gen(600);
  for (const OpCase& cs : cases) {
    SCOPED_TRACE("x " + shape_str(cs.x) + " w " + shape_str(cs.w));
    const float w_scale = 1.f / std::sqrt(static_cast<float>(cs.w[1] * cs.w[2] * cs.w[3]));
    Tensor x = Tensor::uniform(cs.x, gen, -1.f, 1.f), w = Tensor::uniform(cs.w, gen, -w_scale, w_scale);
    Tensor b = Tensor::uniform({cs.w[0]}, gen, -1.f, 1.f);
    Tensor xc = x.clone().set_requires_grad(true), wc = w.clone().set_requires_grad(true);
    Tensor bc = b.clone().set_requires_grad(true);
    Tensor xg = x.to(kCUDA).set_requires_grad(true), wg = w.to(kCUDA).set_requires_grad(true);
    Tensor bgpu = b.to(kCUDA).set_requires_grad(true);
    Tensor yc = conv2d(xc, wc, cs.bias ? std::optional<Tensor>(bc) : std::nullopt, cs.o);
    Tensor yg = conv2d(xg, wg, cs.bias ? std::optional<Tensor>(bgpu) : std::nullopt, cs.o);
    ASSERT_TRUE(yg.is_cuda());
    EXPECT_TRUE(conv_parity_close(yg, yc, kConvTf32Tol)) << "forward";
    Tensor dy = Tensor::uniform(yc.shape(), gen, -1.f, 1.f);
    yc.backward(dy);
    yg.backward(dy.to(kCUDA));
    EXPECT_TRUE(conv_parity_close(xg.grad(), xc.grad(), kConvTf32Tol)) << "dx";
    EXPECT_TRUE(conv_parity_close(wg.grad(), wc.grad(), kConvTf32Tol)) << "dw";
    if (cs.bias) {
      // a plain FP32 sum over N*P*Q on both devices, in different orders
      EXPECT_TRUE(all_close(bgpu.grad(), bc.grad(), 1e-5f, 1e-5f)) << "db";
    }
  }
  // a frozen weight and bias on the GPU: only dx is computed
  Tensor x = Tensor::uniform({2, 9, 9, 4}, gen, -1.f, 1.f), w = Tensor::uniform({5, 3, 3, 4}, gen, -0.2f, 0.2f);
  Tensor xc = x.clone().set_requires_grad(true), xg = x.to(kCUDA).set_requires_grad(true), wg = w.to(kCUDA);
  Tensor bg = Tensor::uniform({5}, gen, -1.f, 1.f);
  Tensor yc = conv2d(xc, w, bg, {.pad_h = 1, .pad_w = 1});
  Tensor yg = conv2d(xg, wg, bg.to(kCUDA), {.pad_h = 1, .pad_w = 1});
  Tensor dy = Tensor::uniform(yc.shape(), gen, -1.f, 1.f);
  yc.backward(dy);
  yg.backward(dy.to(kCUDA));
  EXPECT_FALSE(wg.grad().defined());
  EXPECT_TRUE(conv_parity_close(xg.grad(), xc.grad(), kConvTf32Tol)) << "dx with a frozen weight";
}

TEST(Conv2dParity, ChosenAlgorithmsAreRecordedPerShapeDirectionAndMathMode) {
  GRAFT_REQUIRE_CUDA();
  // a shape no other test uses, so its lines are new here
  const Conv2dGeometry g = conv_parity_geometry(1, 17, 19, 11, 13, 3, 3, 1, 1);
  Generator gen(700);
  Tensor x = Tensor::uniform({g.n, g.h, g.w, g.c}, gen, -1.f, 1.f, kCUDA);
  Tensor w = Tensor::uniform({g.k, g.r, g.s, g.c}, gen, -1.f, 1.f, kCUDA);
  Tensor dy = Tensor::uniform({g.n, g.p, g.q, g.k}, gen, -1.f, 1.f, kCUDA);
  Tensor y = Tensor::empty(dy.shape(), kCUDA), dx = Tensor::empty(x.shape(), kCUDA);
  Tensor dw = Tensor::empty(w.shape(), kCUDA);
  for (bool tf32 : {true, false}) {
    cuda::Tf32Scope mode(tf32);
    for (int repeat = 0; repeat < 2; ++repeat) {  // the second round hits the cache: no new lines
      conv2d_forward_cudnn(y.data<float>(), x.data<float>(), w.data<float>(), nullptr, g);
      conv2d_backward_data_cudnn(dx.data<float>(), dy.data<float>(), w.data<float>(), g);
      conv2d_backward_filter_cudnn(dw.data<float>(), dy.data<float>(), x.data<float>(), g);
    }
  }
  int found = 0;
  const std::string geometry = conv2d_geometry_str(g);
  for (const std::string& line : conv2d_cudnn_algorithms_used()) {
    if (line.find(geometry) == std::string::npos) continue;
    ++found;
    EXPECT_NE(line.find("deterministic="), std::string::npos) << line;
    EXPECT_EQ(line.find("UNKNOWN"), std::string::npos) << line;
    if (line.find(" fp32: ") != std::string::npos) {
      EXPECT_NE(line.find("math=FMA"), std::string::npos) << line;  // strict FP32 never runs on tensor cores
    }
  }
  EXPECT_EQ(found, 6) << "3 directions x 2 math modes";
}

// The kernel lab's hand-written forwards (kernels/conv2d_cuda_lab.cu: implicit GEMM and im2col + tiled SGEMM, strict
// FP32) against the CPU forward on every case above, bias included, into NaN-poisoned outputs, plus two groups of
// 96 output channels (a full and a partial channel tile in each group). im2col also runs with workspaces of 3 and
// 200 rows + a few bytes (many chunks, the last one short; chunks ending inside a GEMM row tile; a pointwise conv
// ignores the workspace), and refuses grouped convolutions; a convolution without taps is refused by both.
TEST(Conv2dLabParity, DirectAndIm2colForwardsMatchTheCpu) {
  GRAFT_REQUIRE_CUDA();
  std::uint64_t seed = 900;
  std::vector<ConvParityCase> cases = conv_parity_cases();
  cases.push_back({"odd groups 2 of 96 output channels", conv_parity_geometry(2, 9, 9, 64, 192, 3, 3, 1, 1, 1, 2)});
  for (const ConvParityCase& cs : cases) {
    const Conv2dGeometry& g = cs.g;
    SCOPED_TRACE(cs.name + ": " + conv2d_geometry_str(g));
    Generator gen(seed++);
    const std::int64_t cg = g.c / g.groups;
    const float w_scale = 1.f / std::sqrt(static_cast<float>(g.r * g.s * cg));
    const Shape x_shape{g.n, g.h, g.w, g.c}, w_shape{g.k, g.r, g.s, cg}, y_shape{g.n, g.p, g.q, g.k};
    Tensor x = Tensor::uniform(x_shape, gen, -1.f, 1.f), w = Tensor::uniform(w_shape, gen, -w_scale, w_scale);
    Tensor b = Tensor::uniform({g.k}, gen, -1.f, 1.f);
    Tensor y = Tensor::empty(y_shape);
    std::vector<float> ws(conv2d_workspace_bytes_cpu(g) / sizeof(float) + 1);
    conv2d_forward_cpu(y.data<float>(), x.data<float>(), w.data<float>(), b.data<float>(), g, ws.data(),
                       ws.size() * sizeof(float));
    Tensor xg = x.to(kCUDA), wg = w.to(kCUDA), bg = b.to(kCUDA);

    Tensor direct = conv_nan_cuda(y_shape);
    conv2d_forward_cuda_direct(direct.data<float>(), xg.data<float>(), wg.data<float>(), bg.data<float>(), g);
    EXPECT_TRUE(conv_parity_close(direct, y, kConvFp32Tol)) << "direct";

    if (g.groups != 1) {
      Tensor out = conv_nan_cuda(y_shape);
      EXPECT_THROW(conv2d_forward_cuda_im2col(out.data<float>(), xg.data<float>(), wg.data<float>(), nullptr, g,
                                              nullptr, 0),
                   Error);
      continue;
    }
    const std::size_t whole = conv2d_workspace_bytes_cuda_im2col(g), row = sizeof(float) * g.r * g.s * g.c;
    for (std::size_t bytes : {whole, 3 * row + 5, 200 * row + 5}) {
      Tensor workspace = Tensor::empty({static_cast<std::int64_t>(bytes / sizeof(float)) + 1}, kCUDA);
      Tensor out = conv_nan_cuda(y_shape);
      conv2d_forward_cuda_im2col(out.data<float>(), xg.data<float>(), wg.data<float>(), bg.data<float>(), g,
                                 bytes ? workspace.data<float>() : nullptr, bytes);
      EXPECT_TRUE(conv_parity_close(out, y, kConvFp32Tol)) << "im2col, workspace " << bytes << " bytes";
    }
  }
  Conv2dGeometry empty = conv_parity_geometry(1, 5, 5, 4, 3, 3, 3, 1, 1);
  empty.c = 0;
  Tensor out = conv_nan_cuda({1, 5, 5, 3}), ws = Tensor::empty({64}, kCUDA);
  testing::expect_error([&] { conv2d_forward_cuda_direct(out.data<float>(), nullptr, nullptr, nullptr, empty); },
               {"conv2d_forward_cuda_direct", "without taps"});
  testing::expect_error([&] { conv2d_forward_cuda_im2col(out.data<float>(), nullptr, nullptr, nullptr, empty, ws.data<float>(),
                                                256); },
               {"conv2d_forward_cuda_im2col", "without taps"});
}
#else
TEST(Conv2dParity, NeedsCuda) { GTEST_SKIP() << "graft was built without CUDA"; }
#endif  // GRAFT_HAS_CUDA

}  // namespace
}  // namespace graft
