// CPU-vs-CUDA parity of the layer ops (batch_norm, pooling, pad2d, concat_channels, dropout; conv2d:
// test_cuda_parity_conv.cpp). Every test needs a device (GRAFT_REQUIRE_CUDA skips with the reason otherwise), uses
// fresh random inputs (never zeros) at odd sizes, and compares against the CPU reference.
// Kernel-level tests write into outputs poisoned with NaN (or -1 for indices), so an element a kernel forgets shows.
// Op-level tests run forward + backward through autograd on both devices (dispatch, workspaces, saved tensors).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/autograd.h"
#include "core/error.h"
#include "core/ops.h"
#include "core/rng.h"
#include "tests/check.h"
#if GRAFT_HAS_CUDA
#include "kernels/batch_norm.h"
#include "kernels/cuda_device.h"
#include "kernels/dropout.h"
#include "kernels/layout.h"
#include "kernels/pool.h"
#endif

namespace graft {
namespace {

using testing::all_close;

// ---- op level: forward and backward through autograd on both devices ----------------------------------------------
// Tolerances: pooling, padding and concatenation perform the same float operations in the same order on both
// devices (copies, window sums in row-major order, gathers in (p,q) order), so they agree to rounding noise; 1e-5 is
// the plain-FP32 bound. batch_norm sums in double on both devices (different order) and may fuse multiply-adds on
// the GPU: differences of a few ulp of O(1) values, so 1e-5 absolute and 1e-4 relative.
void expect_op_parity(const std::function<Tensor(const std::vector<Tensor>&)>& f, const std::vector<Tensor>& cpu_in,
                      float atol, float rtol, unsigned seed) {
  std::vector<Tensor> host, device;
  for (const Tensor& x : cpu_in) {
    host.push_back(x.detach().clone());
    device.push_back(x.to(kCUDA));
    host.back().set_requires_grad(true);
    device.back().set_requires_grad(true);
  }
  Tensor y_cpu = f(host), y_gpu = f(device);
  ASSERT_TRUE(y_gpu.is_cuda());
  EXPECT_TRUE(all_close(y_gpu, y_cpu, atol, rtol)) << "forward";
  Generator gen(seed);
  Tensor dy = Tensor::randn(y_cpu.shape(), gen);
  y_cpu.backward(dy);
  y_gpu.backward(dy.to(kCUDA));
  for (std::size_t i = 0; i < host.size(); ++i)
    EXPECT_TRUE(all_close(device[i].grad(), host[i].grad(), atol, rtol)) << "gradient of input " << i;
}

TEST(LayersParity, PoolingOps) {
  GRAFT_REQUIRE_CUDA();
  Generator gen(101);
  Tensor x = Tensor::randn({3, 13, 11, 37}, gen);
  for (Pool2dOptions o : {Pool2dOptions{3, 3, 2, 2, 1, 1}, Pool2dOptions{3, 2, 2, 3, 1, 1, true},
                          Pool2dOptions{2, 2, 2, 2, 0, 0, true, false}, Pool2dOptions{3, 3, 1, 1, 1, 1, false, false}}) {
    expect_op_parity([o](const std::vector<Tensor>& in) { return max_pool2d(in[0], o); }, {x}, 1e-5f, 1e-5f, 1);
    expect_op_parity([o](const std::vector<Tensor>& in) { return avg_pool2d(in[0], o); }, {x}, 1e-5f, 1e-5f, 2);
  }
  expect_op_parity([](const std::vector<Tensor>& in) { return adaptive_avg_pool2d(in[0], 7, 7); }, {x}, 1e-5f, 1e-5f, 3);
  expect_op_parity([](const std::vector<Tensor>& in) { return global_avg_pool(in[0]); }, {x}, 1e-5f, 1e-5f, 4);
  Tensor wide = Tensor::randn({2, 7, 7, 2048}, gen);  // ResNet-50's last stage, C = 2048
  expect_op_parity([](const std::vector<Tensor>& in) { return global_avg_pool(in[0]); }, {wide}, 1e-5f, 1e-5f, 5);
}

TEST(LayersParity, LayoutOps) {
  GRAFT_REQUIRE_CUDA();
  Generator gen(102);
  expect_op_parity([](const std::vector<Tensor>& in) { return pad2d(in[0], 1, 2, 3, 0); },
                   {Tensor::randn({2, 5, 7, 37}, gen)}, 0.f, 0.f, 6);
  expect_op_parity([](const std::vector<Tensor>& in) { return concat_channels(in); },
                   {Tensor::randn({2, 5, 3, 37}, gen), Tensor::randn({2, 5, 3, 3}, gen),
                    Tensor::randn({2, 5, 3, 64}, gen)},
                   0.f, 0.f, 7);
}

TEST(LayersParity, BatchNormOp) {
  GRAFT_REQUIRE_CUDA();
  Generator gen(103);
  for (bool training : {true, false}) {
    for (Shape shape : {Shape{3, 5, 7, 37}, Shape{9, 2048}, Shape{2, 3, 3, 2048}}) {
      const std::int64_t c = shape.back();
      Tensor x = Tensor::randn(shape, gen, kCPU, 0.5f, 2.f);
      Tensor g = Tensor::uniform({c}, gen, 0.5f, 1.5f), b = Tensor::randn({c}, gen);
      Tensor rm0 = Tensor::randn({c}, gen), rv0 = Tensor::uniform({c}, gen, 0.5f, 2.f);
      Tensor rm_cpu = rm0.clone(), rv_cpu = rv0.clone(), rm_gpu = rm0.to(kCUDA), rv_gpu = rv0.to(kCUDA);
      expect_op_parity(
          [&](const std::vector<Tensor>& in) {
            bool gpu = in[0].is_cuda();
            return batch_norm(in[0], in[1], in[2], gpu ? rm_gpu : rm_cpu, gpu ? rv_gpu : rv_cpu, training, training,
                              0.1f, 1e-5f);
          },
          {x, g, b}, 1e-5f, 1e-4f, 8);
      EXPECT_TRUE(all_close(rm_gpu, rm_cpu, 1e-6f, 1e-5f)) << "running_mean " << shape_str(shape);
      EXPECT_TRUE(all_close(rv_gpu, rv_cpu, 1e-6f, 1e-5f)) << "running_var " << shape_str(shape);
    }
  }
}

// The fused epilogue of ResNet blocks: relu(batch_norm(x) + residual) with its masked backward, both statistics
// modes, the residual trainable (dz written out) or not (dz masked inside the batch-norm kernels).
TEST(LayersParity, BatchNormAddReluOp) {
  GRAFT_REQUIRE_CUDA();
  Generator gen(110);
  for (bool training : {true, false}) {
    for (Shape shape : {Shape{3, 5, 7, 37}, Shape{2, 7, 7, 2048}}) {
      const std::int64_t c = shape.back();
      Tensor x = Tensor::randn(shape, gen, kCPU, 0.f, 2.f), r = Tensor::randn(shape, gen);
      Tensor g = Tensor::uniform({c}, gen, 0.5f, 1.5f), b = Tensor::randn({c}, gen);
      Tensor rm0 = Tensor::randn({c}, gen), rv0 = Tensor::uniform({c}, gen, 0.5f, 2.f);
      Tensor rm_cpu = rm0.clone(), rv_cpu = rv0.clone(), rm_gpu = rm0.to(kCUDA), rv_gpu = rv0.to(kCUDA);
      auto fused = [&](const std::vector<Tensor>& in) {
        bool gpu = in[0].is_cuda();
        std::optional<Tensor> residual = in.size() > 3 ? std::optional<Tensor>(in[3]) : std::nullopt;
        return batch_norm_add_relu(in[0], in[1], in[2], gpu ? rm_gpu : rm_cpu, gpu ? rv_gpu : rv_cpu, training,
                                   training, 0.1f, 1e-5f, residual, true);
      };
      expect_op_parity(fused, {x, g, b, r}, 1e-5f, 1e-4f, 11);  // residual trainable: dz materialised
      expect_op_parity(fused, {x, g, b}, 1e-5f, 1e-4f, 12);     // no residual: dout masked in the kernels
    }
  }
}

// relu(batch_norm(x)) fused, on the GPU: without a residual its backward recomputes the relu mask from x
// (gamma xhat + beta > 0, kernels/batch_norm.h ReluMask::of_input) instead of reading y. Every output and gradient
// must equal the composition batch_norm -> relu (whose relu backward reads y) bitwise. Returns the fused op's y.
std::vector<float> expect_fused_bn_relu_equals_composition(const Tensor& x0, const Tensor& dy, const Tensor& g0,
                                                           const Tensor& b0, const Tensor& rm0, const Tensor& rv0,
                                                           bool stats, bool has_gamma, bool has_beta, float eps,
                                                           const std::string& where) {
  auto run = [&](bool fused) {
    Tensor x = x0.clone(), g = g0.clone(), b = b0.clone(), rm = rm0.clone(), rv = rv0.clone();
    x.set_requires_grad(true), g.set_requires_grad(true), b.set_requires_grad(true);
    std::optional<Tensor> gamma = has_gamma ? std::optional<Tensor>(g) : std::nullopt;
    std::optional<Tensor> beta = has_beta ? std::optional<Tensor>(b) : std::nullopt;
    Tensor y = fused ? batch_norm_add_relu(x, gamma, beta, rm, rv, stats, stats, 0.1f, eps, std::nullopt, true)
                     : relu(batch_norm(x, gamma, beta, rm, rv, stats, stats, 0.1f, eps));
    y.backward(dy);
    std::vector<std::vector<float>> out{y.detach().to_vector(), x.grad().to_vector()};
    out.push_back(has_gamma ? g.grad().to_vector() : std::vector<float>{});
    out.push_back(has_beta ? b.grad().to_vector() : std::vector<float>{});
    return out;
  };
  const auto fused = run(true), plain = run(false);
  const char* names[] = {"y", "dx", "dgamma", "dbeta"};
  for (std::size_t i = 0; i < fused.size(); ++i)
    EXPECT_TRUE(testing::bitwise_equal(fused[i], plain[i])) << names[i] << ", " << where;
  return fused[0];
}

// Random data: both statistics modes, gamma and beta each present or not, both vector widths (C % 4).
TEST(LayersParity, FusedBatchNormReluRecomputesTheMaskBitwiseOnTheGpu) {
  GRAFT_REQUIRE_CUDA();
  Generator gen(112);
  for (Shape shape : {Shape{3, 5, 7, 37}, Shape{2, 7, 7, 64}}) {
    const std::int64_t c = shape.back();
    const Tensor x0 = Tensor::randn(shape, gen, kCPU, 0.3f, 1.5f).to(kCUDA), dy = Tensor::randn(shape, gen).to(kCUDA);
    const Tensor g0 = Tensor::uniform({c}, gen, 0.5f, 1.5f).to(kCUDA), b0 = Tensor::randn({c}, gen).to(kCUDA);
    const Tensor rm0 = Tensor::randn({c}, gen).to(kCUDA), rv0 = Tensor::uniform({c}, gen, 0.5f, 2.f).to(kCUDA);
    for (bool stats : {true, false})
      for (int affine = 0; affine < 4; ++affine) {
        const bool has_gamma = affine & 1, has_beta = affine & 2;
        const std::string where = shape_str(shape) + (stats ? " batch statistics" : " running statistics") +
                                  (has_gamma ? " gamma" : "") + (has_beta ? " beta" : "");
        const std::vector<float> y =
            expect_fused_bn_relu_equals_composition(x0, dy, g0, b0, rm0, rv0, stats, has_gamma, has_beta, 1e-5f, where);
        const long zeros = std::count(y.begin(), y.end(), 0.f);  // the mask must matter
        EXPECT_GT(zeros, 10) << where;
        EXPECT_LT(zeros, static_cast<long>(y.size()) - 10) << where;
      }
  }
}

// Pre-activations that are a rounding error away from 0, where a forward and a backward that round gamma xhat + beta
// differently (one fused multiply-add, one multiply then add) would disagree on the mask. Crafted rows hold x = v_c
// in channel c, with xhat known exactly on the host, and beta_c = -fl(gamma_c xhat_c), so the forward's fma leaves
// gamma_c xhat_c - fl(gamma_c xhat_c): the product's rounding error, positive in about half the channels (a multiply
// then add would give exactly 0 there). Both statistics modes, both vector widths (C = 64 and 63), eps 0:
// - running statistics 0 and 1: invstd is exactly 1 and xhat = x; every other row is crafted, the rest random;
// - batch statistics: rows 0, 4, 8, ... hold v_c, rows 2, 6, ... hold -v_c, the odd rows 0, with v_c on a grid of
//   1/1024 (12 significant bits): the mean is exactly 0 and the variance exactly v_c^2 / 2 in any order of summation
//   (every partial sum is a small multiple of v_c or of v_c^2, exact in double); invstd is float(1 / sqrt(v_c^2 / 2))
//   as the statistics kernel rounds it, and xhat = fl(v_c invstd) on the crafted rows.
TEST(LayersParity, FusedBatchNormReluMaskAgreesWherePreActivationsRoundToZero) {
  GRAFT_REQUIRE_CUDA();
  Generator gen(113);
  const std::int64_t rows = 64;
  for (std::int64_t c : {64, 63})
    for (bool stats : {false, true}) {
      std::vector<float> x = Tensor::randn({rows, c}, gen).to_vector(), v = Tensor::randn({c}, gen).to_vector();
      std::vector<float> g = Tensor::uniform({c}, gen, 0.5f, 1.5f).to_vector(), b(static_cast<std::size_t>(c));
      auto crafted = [stats](std::int64_t r) { return stats ? r % 4 == 0 : r % 2 == 0; };
      for (std::int64_t j = 0; j < c; ++j) {
        float& vj = v[static_cast<std::size_t>(j)];
        vj = static_cast<float>(std::round(vj * 1024.0) / 1024.0);
        if (std::fabs(vj) < 0.0625f) vj = 0.5f;
        for (std::int64_t r = 0; r < rows; ++r) {
          if (crafted(r)) x[r * c + j] = vj;
          else if (stats) x[r * c + j] = r % 2 == 0 ? -vj : 0.f;
        }
        const double variance = 32.0 * (static_cast<double>(vj) * vj) / 64.0;  // as E[x^2] - mean^2 with mean 0
        const float invstd = stats ? static_cast<float>(1.0 / std::sqrt(variance + 0.0)) : 1.f;
        const float xhat = vj * invstd;    // rounded to float here, as the kernels round (x - 0) * invstd
        const float product = g[j] * xhat;  // (no contraction across statements)
        b[j] = -product;
      }
      const Shape shape{rows / 16, 4, 4, c};
      const Tensor x0 = Tensor::from_vector(x, shape).to(kCUDA), dy = Tensor::randn(shape, gen).to(kCUDA);
      const Tensor g0 = Tensor::from_vector(g, {c}).to(kCUDA), b0 = Tensor::from_vector(b, {c}).to(kCUDA);
      const Tensor rm0 = Tensor::zeros({c}, kCUDA), rv0 = Tensor::ones({c}, kCUDA);
      const std::string where = "crafted, C " + std::to_string(c) + (stats ? ", batch statistics" : ", running");
      const std::vector<float> y =
          expect_fused_bn_relu_equals_composition(x0, dy, g0, b0, rm0, rv0, stats, true, true, 0.f, where);
      long positive = 0, zero = 0;
      for (std::int64_t r = 0; r < rows; ++r)
        for (std::int64_t j = 0; j < c && crafted(r); ++j) positive += y[r * c + j] > 0.f, zero += y[r * c + j] == 0.f;
      // the crafted elements must straddle 0, or the test checks nothing
      EXPECT_GT(positive, 100) << where << ": crafted pre-activations > 0 (the forward's fma left a rounding error)";
      EXPECT_GT(zero, 100) << where << ": crafted pre-activations clipped to 0";
    }
}

// Inference (running statistics, nothing recording) runs one kernel that computes invstd itself
// (batch_norm_forward_running_cuda); with a gradient to record the op runs invstd + forward. Both must give bitwise
// the same output, for either vector width (C % 4), with or without gamma/beta, residual and relu; and the CPU's
// within the batch-norm tolerance.
TEST(LayersParity, BatchNormInferenceInOneKernelEqualsTheTwoStepPathBitwise) {
  GRAFT_REQUIRE_CUDA();
  Generator gen(111);
  for (Shape shape : {Shape{3, 5, 7, 37}, Shape{1, 7, 7, 2048}, Shape{2, 9, 64}}) {
    const std::int64_t c = shape.back();
    Tensor x = Tensor::randn(shape, gen, kCPU, 0.5f, 2.f), r = Tensor::randn(shape, gen);
    Tensor g = Tensor::uniform({c}, gen, 0.5f, 1.5f), b = Tensor::randn({c}, gen);
    Tensor rm = Tensor::randn({c}, gen), rv = Tensor::uniform({c}, gen, 1e-3f, 2.f);
    Tensor rm_gpu = rm.to(kCUDA), rv_gpu = rv.to(kCUDA);
    // running statistics as views one float into a larger buffer: misaligned, so the kernels take their scalar
    // path even when C % 4 == 0
    Tensor rv_padded = Tensor::zeros({c + 1}, kCUDA);
    rv_padded.slice(1, c + 1).copy_from(rv_gpu);
    Tensor rv_misaligned = rv_padded.slice(1, c + 1);
    for (int variant = 0; variant < 16; ++variant) {
      const bool misaligned = variant & 8, affine = variant & 4, with_residual = variant & 2, relu = variant & 1;
      auto run = [&](const Tensor& in, Tensor& mean, Tensor& var, bool gpu) {
        std::optional<Tensor> gamma, beta, residual;
        if (affine) gamma = gpu ? g.to(kCUDA) : g, beta = gpu ? b.to(kCUDA) : b;
        if (with_residual) residual = gpu ? r.to(kCUDA) : r;
        return batch_norm_add_relu(in, gamma, beta, mean, var, false, false, 0.1f, 1e-3f, residual, relu);
      };
      Tensor x_gpu = x.to(kCUDA), x_recording = x.to(kCUDA);
      x_recording.set_requires_grad(true);
      Tensor& var = misaligned ? rv_misaligned : rv_gpu;
      const Tensor one_kernel = run(x_gpu, rm_gpu, var, true);
      const Tensor two_steps = run(x_recording, rm_gpu, var, true);
      Tensor rm_cpu = rm.clone(), rv_cpu = rv.clone();
      const Tensor cpu = run(x, rm_cpu, rv_cpu, false);
      const std::string where = shape_str(shape) + (misaligned ? " misaligned" : "") + (affine ? " affine" : "") +
                                (with_residual ? " residual" : "") + (relu ? " relu" : "");
      EXPECT_TRUE(testing::bitwise_equal(one_kernel.to_vector(), two_steps.detach().to_vector())) << where;
      EXPECT_TRUE(all_close(one_kernel, cpu, 1e-5f, 1e-4f)) << where;
    }
  }
}

TEST(LayersParity, DropoutOpMaskIsBitIdentical) {
  GRAFT_REQUIRE_CUDA();
  Generator data(104);
  Tensor x = Tensor::uniform({3, 333}, data, 0.5f, 1.5f);
  Generator a(42), b(42);
  a.advance(3), b.advance(3);
  Tensor xc = x.detach().clone(), xg = x.to(kCUDA);
  xc.set_requires_grad(true), xg.set_requires_grad(true);
  Tensor yc = dropout(xc, 0.3f, a, true), yg = dropout(xg, 0.3f, b, true);
  EXPECT_EQ(a.offset(), b.offset());
  EXPECT_EQ(yg.to(kCPU).to_vector(), yc.to_vector());
  Tensor dy = Tensor::uniform({3, 333}, data, -1.f, 1.f);
  yc.backward(dy);
  yg.backward(dy.to(kCUDA));
  EXPECT_EQ(xg.grad().to(kCPU).to_vector(), xc.grad().to_vector());
}

#if GRAFT_HAS_CUDA
// ---- kernel level: poisoned outputs ---------------------------------------------------------------------------
Tensor nan_cuda(const Shape& shape) { return Tensor::full(shape, NAN, kCUDA); }
Tensor minus_one_cuda_int(const Shape& shape) {
  Tensor t = Tensor::empty(shape, kCUDA, DType::Int32);
  GRAFT_CUDA_CHECK(cudaMemsetAsync(t.data<void>(), 0xFF, t.nbytes(), cuda::stream()));
  return t;
}
float* ptr(const Tensor& t) { return t.data<float>(); }

struct BnCase {
  std::int64_t m, c;
};

TEST(LayersParityKernels, BatchNorm) {
  GRAFT_REQUIRE_CUDA();
  Generator gen(201);
  // odd sizes (C not a multiple of 4 or 32), C = 2048 with few rows, ResNet-50 channel counts at reduced spatial
  // sizes, one tall case that uses many row chunks, a single channel
  for (BnCase s : std::vector<BnCase>{{105, 37}, {18, 2048}, {5, 3}, {4 * 28 * 28, 64}, {4 * 14 * 14, 256},
                                      {4 * 7 * 7, 512}, {2 * 7 * 7, 1024}, {2 * 4 * 4, 2048}, {16 * 56 * 56, 64},
                                      {1000, 1}, {333, 4}, {250, 8}, {97, 12}}) {  // last 3: float4, 1-3 groups
    SCOPED_TRACE("M " + std::to_string(s.m) + " C " + std::to_string(s.c));
    const std::int64_t m = s.m, c = s.c;
    Tensor x = Tensor::randn({m, c}, gen, kCPU, 3.f, 2.f), dy = Tensor::randn({m, c}, gen);
    Tensor g = Tensor::uniform({c}, gen, 0.5f, 1.5f), b = Tensor::randn({c}, gen);
    Tensor rm = Tensor::randn({c}, gen), rv = Tensor::uniform({c}, gen, 0.5f, 2.f);
    Tensor xg = x.to(kCUDA), dyg = dy.to(kCUDA), gg = g.to(kCUDA), bg = b.to(kCUDA);
    Tensor rm_g = rm.to(kCUDA), rv_g = rv.to(kCUDA);
    Tensor workspace = Tensor::empty({static_cast<std::int64_t>((batch_norm_workspace_cuda(m, c) + 3) / 4)}, kCUDA);

    // statistics + running update
    Tensor mean = Tensor::empty({c}), invstd = Tensor::empty({c}), mean_g = nan_cuda({c}), invstd_g = nan_cuda({c});
    batch_norm_stats_cpu(ptr(mean), ptr(invstd), ptr(rm), ptr(rv), ptr(x), m, c, 1e-5f, 0.1f);
    batch_norm_stats_cuda(ptr(mean_g), ptr(invstd_g), ptr(rm_g), ptr(rv_g), ptr(xg), m, c, 1e-5f, 0.1f, workspace.data<void>());
    EXPECT_TRUE(all_close(mean_g, mean, 1e-6f, 1e-5f)) << "mean";
    EXPECT_TRUE(all_close(invstd_g, invstd, 1e-6f, 1e-5f)) << "invstd";
    EXPECT_TRUE(all_close(rm_g, rm, 1e-6f, 1e-5f)) << "running_mean";
    EXPECT_TRUE(all_close(rv_g, rv, 1e-6f, 1e-5f)) << "running_var";
    Tensor inv_run = Tensor::empty({c}), inv_run_g = nan_cuda({c});
    batch_norm_invstd_cpu(ptr(inv_run), ptr(rv), c, 1e-5f);
    batch_norm_invstd_cuda(ptr(inv_run_g), ptr(rv_g), c, 1e-5f);
    EXPECT_TRUE(all_close(inv_run_g, inv_run, 0.f, 1e-6f)) << "invstd from running_var";

    // the remaining kernels get identical statistics on both sides
    Tensor mean_h = mean.to(kCUDA), invstd_h = invstd.to(kCUDA);
    for (bool affine : {true, false}) {
      Tensor y = Tensor::empty({m, c}), y_g = nan_cuda({m, c});
      batch_norm_forward_cpu(ptr(y), ptr(x), ptr(mean), ptr(invstd), affine ? ptr(g) : nullptr, affine ? ptr(b) : nullptr, m, c);
      batch_norm_forward_cuda(ptr(y_g), ptr(xg), ptr(mean_h), ptr(invstd_h), affine ? ptr(gg) : nullptr,
                              affine ? ptr(bg) : nullptr, m, c);
      EXPECT_TRUE(all_close(y_g, y, 1e-5f, 1e-5f)) << "forward, affine " << affine;
    }
    Tensor dgamma = Tensor::empty({c}), dbeta = Tensor::empty({c}), dgamma_g = nan_cuda({c}), dbeta_g = nan_cuda({c});
    batch_norm_backward_reduce_cpu(ptr(dgamma), ptr(dbeta), ptr(dy), ptr(x), ptr(mean), ptr(invstd), m, c);
    batch_norm_backward_reduce_cuda(ptr(dgamma_g), ptr(dbeta_g), ptr(dyg), ptr(xg), ptr(mean_h), ptr(invstd_h), m, c,
                                    workspace.data<void>());
    // sums of M terms of size ~1 in double on both sides: a float rounding of the result plus xhat's rounding
    EXPECT_TRUE(all_close(dgamma_g, dgamma, 1e-4f, 1e-5f)) << "dgamma";
    EXPECT_TRUE(all_close(dbeta_g, dbeta, 1e-4f, 1e-5f)) << "dbeta";
    Tensor dgamma_h = dgamma.to(kCUDA), dbeta_h = dbeta.to(kCUDA);
    for (bool batch_stats : {true, false}) {
      Tensor dx = Tensor::empty({m, c}), dx_g = nan_cuda({m, c});
      batch_norm_backward_input_cpu(ptr(dx), ptr(dy), ptr(x), ptr(mean), ptr(invstd), ptr(g), ptr(dbeta), ptr(dgamma), m, c,
                                    batch_stats);
      batch_norm_backward_input_cuda(ptr(dx_g), ptr(dyg), ptr(xg), ptr(mean_h), ptr(invstd_h), ptr(gg), ptr(dbeta_h), ptr(dgamma_h),
                                     m, c, batch_stats);
      EXPECT_TRUE(all_close(dx_g, dx, 1e-5f, 1e-4f)) << "dx, batch statistics " << batch_stats;
    }
  }
}

// A NaN or inf in one channel's input makes that channel's statistics NaN on both devices (the CUDA variance used
// to be clamped with fmax, which turned a NaN into 0: a finite invstd and running variance that hid a diverging
// run); the other channels are unaffected.
TEST(LayersParityKernels, BatchNormStatisticsKeepANanOrInfOfTheInput) {
  GRAFT_REQUIRE_CUDA();
  Generator gen(203);
  const std::int64_t m = 49, c = 3;
  for (float bad : {NAN, INFINITY}) {
    Tensor x = Tensor::randn({m, c}, gen);
    x.data<float>()[10 * c + 1] = bad;  // channel 1
    Tensor rm = Tensor::zeros({c}), rv = Tensor::ones({c}), rm_g = rm.to(kCUDA), rv_g = rv.to(kCUDA);
    Tensor mean = Tensor::empty({c}), invstd = Tensor::empty({c}), mean_g = nan_cuda({c}), invstd_g = nan_cuda({c});
    Tensor workspace = Tensor::empty({static_cast<std::int64_t>((batch_norm_workspace_cuda(m, c) + 3) / 4)}, kCUDA);
    batch_norm_stats_cpu(ptr(mean), ptr(invstd), ptr(rm), ptr(rv), ptr(x), m, c, 1e-5f, 0.1f);
    Tensor xg = x.to(kCUDA);
    batch_norm_stats_cuda(ptr(mean_g), ptr(invstd_g), ptr(rm_g), ptr(rv_g), ptr(xg), m, c, 1e-5f, 0.1f,
                          workspace.data<void>());
    const std::vector<float> inv = invstd.to_vector(), inv_g = invstd_g.to(kCPU).to_vector();
    const std::vector<float> var = rv.to_vector(), var_g = rv_g.to(kCPU).to_vector();
    EXPECT_TRUE(std::isnan(inv[1]) && std::isnan(var[1])) << "the CPU reference";
    EXPECT_TRUE(std::isnan(inv_g[1])) << "invstd of the channel with " << bad << ": " << inv_g[1];
    EXPECT_TRUE(std::isnan(var_g[1])) << "running_var of the channel with " << bad << ": " << var_g[1];
    for (std::int64_t ch : {0, 2}) {
      EXPECT_NEAR(inv_g[ch], inv[ch], 1e-5f * inv[ch]) << ch;
      EXPECT_NEAR(var_g[ch], var[ch], 1e-5f * var[ch]) << ch;
    }
  }
}

TEST(LayersParityKernels, Pooling) {
  GRAFT_REQUIRE_CUDA();
  Generator gen(202);
  // n, h, w, c, p, q filled below; kernel, stride, pad; ceil_mode only changes p, q
  struct Case {
    std::int64_t n;
    int h, w, c, kh, kw, sh, sw, ph, pw;
    bool ceil;
  };
  for (Case k : std::vector<Case>{{2, 9, 11, 37, 3, 3, 2, 2, 1, 1, false}, {3, 10, 8, 5, 3, 2, 2, 3, 1, 1, true},
                                  {2, 7, 7, 2048, 2, 2, 2, 2, 0, 0, true}, {1, 23, 17, 3, 3, 3, 2, 2, 1, 1, true},
                                  {2, 6, 5, 33, 2, 3, 1, 1, 0, 1, false},
                                  // C % 4 == 0: the float4 backward paths. ResNet's stem (3x3/2 pad 1, overlapping
                                  // windows) at even and odd sizes, VGG's 2x2/2, stride > kernel (uncovered pixels)
                                  {2, 12, 11, 16, 3, 3, 2, 2, 1, 1, false}, {1, 9, 7, 64, 3, 3, 2, 2, 1, 1, true},
                                  {2, 8, 10, 4, 2, 2, 2, 2, 0, 0, false}, {1, 11, 10, 8, 2, 2, 3, 3, 0, 0, false},
                                  // C % 4 != 0: the scalar paths with ResNet's stem geometry
                                  {2, 10, 9, 3, 3, 3, 2, 2, 1, 1, false}}) {
    auto out_size = [&](int in, int kernel, int stride, int pad) {
      int span = in + 2 * pad - kernel;
      int o = (k.ceil ? (span + stride - 1) / stride : span / stride) + 1;
      return (k.ceil && (o - 1) * stride >= in + pad) ? o - 1 : o;
    };
    Pool2dShape s{k.n, k.h, k.w, k.c, out_size(k.h, k.kh, k.sh, k.ph), out_size(k.w, k.kw, k.sw, k.pw),
                  k.kh, k.kw, k.sh, k.sw, k.ph, k.pw};
    SCOPED_TRACE("input (" + std::to_string(k.n) + "," + std::to_string(k.h) + "," + std::to_string(k.w) + "," +
                 std::to_string(k.c) + ") output " + std::to_string(s.p) + "x" + std::to_string(s.q));
    const Shape in_shape{k.n, k.h, k.w, k.c}, out_shape{k.n, s.p, s.q, k.c};
    Tensor x = Tensor::randn(in_shape, gen), dy = Tensor::randn(out_shape, gen);
    Tensor xg = x.to(kCUDA), dyg = dy.to(kCUDA);

    Tensor y = Tensor::empty(out_shape), arg = Tensor::empty(out_shape, kCPU, DType::Int32);
    Tensor y_g = nan_cuda(out_shape), arg_g = minus_one_cuda_int(out_shape);
    max_pool2d_forward_cpu(ptr(y), arg.data<std::int32_t>(), ptr(x), s);
    max_pool2d_forward_cuda(ptr(y_g), arg_g.data<std::int32_t>(), ptr(xg), s);
    EXPECT_EQ(y_g.to(kCPU).to_vector(), y.to_vector()) << "max forward";
    EXPECT_EQ(arg_g.to(kCPU).to_int_vector(), arg.to_int_vector()) << "argmax";
    Tensor dx = Tensor::empty(in_shape), dx_g = nan_cuda(in_shape);
    max_pool2d_backward_cpu(ptr(dx), ptr(dy), arg.data<std::int32_t>(), s);
    max_pool2d_backward_cuda(ptr(dx_g), ptr(dyg), arg_g.data<std::int32_t>(), s);
    EXPECT_TRUE(all_close(dx_g, dx, 1e-6f, 1e-6f)) << "max backward";

    for (bool include_pad : {true, false}) {
      Tensor a = Tensor::empty(out_shape), a_g = nan_cuda(out_shape);
      avg_pool2d_forward_cpu(ptr(a), ptr(x), s, include_pad);
      avg_pool2d_forward_cuda(ptr(a_g), ptr(xg), s, include_pad);
      // the same float adds in the same order and one division: exact
      EXPECT_EQ(a_g.to(kCPU).to_vector(), a.to_vector()) << "avg forward, count_include_pad " << include_pad;
      Tensor da = Tensor::empty(in_shape), da_g = nan_cuda(in_shape);
      avg_pool2d_backward_cpu(ptr(da), ptr(dy), s, include_pad);
      avg_pool2d_backward_cuda(ptr(da_g), ptr(dyg), s, include_pad);
      EXPECT_TRUE(all_close(da_g, da, 1e-6f, 1e-6f)) << "avg backward, count_include_pad " << include_pad;
    }

    // (3,1) and (2,1): bins of whole rows starting below row 0 (the contiguous-run path beyond global pooling)
    for (auto [p, q] : std::vector<std::pair<int, int>>{{7, 7}, {1, 1}, {3, 5}, {3, 1}, {2, 1}}) {
      const Shape a_shape{k.n, p, q, k.c};
      Tensor da_out = Tensor::randn(a_shape, gen), da_out_g = da_out.to(kCUDA);
      Tensor a = Tensor::empty(a_shape), a_g = nan_cuda(a_shape);
      adaptive_avg_pool2d_forward_cpu(ptr(a), ptr(x), k.n, k.h, k.w, k.c, p, q);
      adaptive_avg_pool2d_forward_cuda(ptr(a_g), ptr(xg), k.n, k.h, k.w, k.c, p, q);
      EXPECT_EQ(a_g.to(kCPU).to_vector(), a.to_vector()) << "adaptive forward " << p << "x" << q;
      Tensor da = Tensor::empty(in_shape), da_g = nan_cuda(in_shape);
      adaptive_avg_pool2d_backward_cpu(ptr(da), ptr(da_out), k.n, k.h, k.w, k.c, p, q);
      adaptive_avg_pool2d_backward_cuda(ptr(da_g), ptr(da_out_g), k.n, k.h, k.w, k.c, p, q);
      EXPECT_TRUE(all_close(da_g, da, 1e-6f, 1e-6f)) << "adaptive backward " << p << "x" << q;
    }
  }
}

// The backward gathers add in the CPU's order with the CPU's float operations, so they must agree bit for bit.
// Inputs drawn from {-1, 0, 1, 2} make most max-pool windows tie (the first maximum in row-major order wins, and
// overlapping 3x3/2 windows may pick the same input, which then sums two gradients). C = 3 and 6 take the scalar
// path, C = 8 the float4 path, and C = 8 at pointers one float past 16-byte alignment the scalar fallback.
TEST(LayersParityKernels, PoolingBackwardIsExactWithTies) {
  GRAFT_REQUIRE_CUDA();
  Generator gen(204);
  for (int c : {3, 6, 8}) {
    for (int offset : {0, 1}) {
      for (Pool2dShape s :
           {Pool2dShape{2, 11, 12, c, 6, 6, 3, 3, 2, 2, 1, 1}, Pool2dShape{2, 10, 8, c, 5, 4, 2, 2, 2, 2, 0, 0}}) {
        SCOPED_TRACE("C " + std::to_string(c) + ", offset " + std::to_string(offset) + ", kernel " +
                     std::to_string(s.kernel_h) + ", H x W " + std::to_string(s.h) + "x" + std::to_string(s.w));
        const std::int64_t n_in = s.n * s.h * s.w * s.c, n_out = s.n * s.p * s.q * s.c;
        std::vector<float> xv = Tensor::uniform({n_in}, gen, -1.f, 3.f).to_vector();
        for (float& v : xv) v = std::floor(v);
        // a NaN (it wins its windows: the last NaN in window order is the maximum, as in PyTorch) and a -inf in single channels
        xv[static_cast<std::size_t>((1 * s.w + 2) * s.c + 5 % s.c)] = NAN;
        xv[static_cast<std::size_t>((s.h * s.w + 3 * s.w + 4) * s.c + 1 % s.c)] = -INFINITY;
        Tensor x = Tensor::from_vector(xv, {n_in}), dy = Tensor::randn({n_out}, gen);
        // device buffers one element longer, used from element `offset` on
        Tensor xg = Tensor::zeros({n_in + 1}, kCUDA), dyg = Tensor::zeros({n_out + 1}, kCUDA);
        cuda::copy_to_device(ptr(xg) + offset, ptr(x), n_in * sizeof(float));
        cuda::copy_to_device(ptr(dyg) + offset, ptr(dy), n_out * sizeof(float));
        Tensor y = Tensor::empty({n_out}), arg = Tensor::empty({n_out}, kCPU, DType::Int32);
        Tensor y_g = nan_cuda({n_out}), arg_g = minus_one_cuda_int({n_out + 1});
        std::int32_t* arg_gp = arg_g.data<std::int32_t>() + offset;
        max_pool2d_forward_cpu(ptr(y), arg.data<std::int32_t>(), ptr(x), s);
        max_pool2d_forward_cuda(ptr(y_g), arg_gp, ptr(xg) + offset, s);
        EXPECT_TRUE(testing::bitwise_equal(y_g.to(kCPU).to_vector(), y.to_vector())) << "max forward";
        std::vector<std::int32_t> arg_host(n_out);
        cuda::copy_to_host(arg_host.data(), arg_gp, n_out * sizeof(std::int32_t));
        EXPECT_EQ(arg_host, arg.to_int_vector()) << "argmax";

        auto expect_exact = [&](const Tensor& dx, const std::function<void(float*)>& run_cuda, const char* what) {
          Tensor dx_g = Tensor::full({n_in + 1}, NAN, kCUDA);
          run_cuda(ptr(dx_g) + offset);
          std::vector<float> got(n_in);
          cuda::copy_to_host(got.data(), ptr(dx_g) + offset, n_in * sizeof(float));
          EXPECT_EQ(got, dx.to_vector()) << what;
        };
        // the average forwards at this offset (misaligned: the scalar path even when C % 4 == 0), bit for bit
        for (bool include_pad : {true, false}) {
          Tensor a = Tensor::empty({n_out}), a_g = nan_cuda({n_out});
          avg_pool2d_forward_cpu(ptr(a), ptr(x), s, include_pad);
          avg_pool2d_forward_cuda(ptr(a_g), ptr(xg) + offset, s, include_pad);
          // (windows with the NaN average to NaN: the GPU's has the canonical payload, so NaNs compare equal)
          EXPECT_TRUE(testing::bitwise_equal_any_nan(a_g.to(kCPU).to_vector(), a.to_vector())) << "avg forward";
        }
        for (auto [p, q] : std::vector<std::pair<int, int>>{{1, 1}, {3, 5}}) {
          const std::int64_t n_bins = s.n * p * q * s.c;
          Tensor a = Tensor::empty({n_bins}), a_g = nan_cuda({n_bins});
          adaptive_avg_pool2d_forward_cpu(ptr(a), ptr(x), s.n, s.h, s.w, s.c, p, q);
          adaptive_avg_pool2d_forward_cuda(ptr(a_g), ptr(xg) + offset, s.n, s.h, s.w, s.c, p, q);
          EXPECT_TRUE(testing::bitwise_equal_any_nan(a_g.to(kCPU).to_vector(), a.to_vector())) << "adaptive forward";
        }
        Tensor dx = Tensor::empty({n_in});
        max_pool2d_backward_cpu(ptr(dx), ptr(dy), arg.data<std::int32_t>(), s);
        expect_exact(dx, [&](float* d) { max_pool2d_backward_cuda(d, ptr(dyg) + offset, arg_gp, s); }, "max backward");
        for (bool include_pad : {true, false}) {
          avg_pool2d_backward_cpu(ptr(dx), ptr(dy), s, include_pad);
          expect_exact(dx, [&](float* d) { avg_pool2d_backward_cuda(d, ptr(dyg) + offset, s, include_pad); },
                       include_pad ? "avg backward, count_include_pad" : "avg backward");
        }
        // global average pool and a 3x5 adaptive pool (their dout: the first n*p*q*c values of dy)
        for (auto [p, q] : std::vector<std::pair<int, int>>{{1, 1}, {3, 5}}) {
          adaptive_avg_pool2d_backward_cpu(ptr(dx), ptr(dy), s.n, s.h, s.w, s.c, p, q);
          expect_exact(dx, [&](float* d) {
            adaptive_avg_pool2d_backward_cuda(d, ptr(dyg) + offset, s.n, s.h, s.w, s.c, p, q);
          }, p == 1 ? "global average pool backward" : "adaptive backward 3x5");
        }
      }
    }
  }
}

TEST(LayersParityKernels, LayoutCopiesAreExact) {
  GRAFT_REQUIRE_CUDA();
  Generator gen(203);
  const std::int64_t n = 2, c = 37;
  const int h = 5, w = 7, top = 2, bottom = 1, left = 0, right = 3;
  const Shape in_shape{n, h, w, c}, out_shape{n, h + top + bottom, w + left + right, c};
  Tensor x = Tensor::randn(in_shape, gen), dy = Tensor::randn(out_shape, gen);
  Tensor y = Tensor::empty(out_shape), y_g = nan_cuda(out_shape);
  pad2d_forward_cpu(ptr(y), ptr(x), n, h, w, c, top, bottom, left, right);
  Tensor xg = x.to(kCUDA), dyg = dy.to(kCUDA);
  pad2d_forward_cuda(ptr(y_g), ptr(xg), n, h, w, c, top, bottom, left, right);
  EXPECT_EQ(y_g.to(kCPU).to_vector(), y.to_vector()) << "pad2d forward";
  Tensor dx = Tensor::empty(in_shape), dx_g = nan_cuda(in_shape);
  pad2d_backward_cpu(ptr(dx), ptr(dy), n, h, w, c, top, bottom, left, right);
  pad2d_backward_cuda(ptr(dx_g), ptr(dyg), n, h, w, c, top, bottom, left, right);
  EXPECT_EQ(dx_g.to(kCPU).to_vector(), dx.to_vector()) << "pad2d backward";

  const std::int64_t rows = 77, c_in = 13, c_out = 45, offset = 29;
  Tensor part = Tensor::randn({rows, c_in}, gen), wide = Tensor::randn({rows, c_out}, gen);
  Tensor wide_cpu = wide.clone(), wide_g = wide.to(kCUDA), part_g = part.to(kCUDA);
  concat_channels_forward_cpu(ptr(wide_cpu), ptr(part), rows, c_in, c_out, offset);
  concat_channels_forward_cuda(ptr(wide_g), ptr(part_g), rows, c_in, c_out, offset);
  EXPECT_EQ(wide_g.to(kCPU).to_vector(), wide_cpu.to_vector()) << "concat writes only its channel block";
  Tensor slice = Tensor::empty({rows, c_in}), slice_g = nan_cuda({rows, c_in});
  slice_channels_cpu(ptr(slice), ptr(wide), rows, c_in, c_out, offset);
  Tensor wide_src_g = wide.to(kCUDA);
  slice_channels_cuda(ptr(slice_g), ptr(wide_src_g), rows, c_in, c_out, offset);
  EXPECT_EQ(slice_g.to(kCPU).to_vector(), slice.to_vector()) << "slice_channels";
}

TEST(LayersParityKernels, DropoutMaskBitIdentical) {
  GRAFT_REQUIRE_CUDA();
  Generator gen(204);
  for (std::int64_t n : {1LL, 7LL, 1001LL, 4096LL, (1LL << 20) + 3}) {
    for (float p : {0.1f, 0.5f, 0.9f}) {
      Tensor x = Tensor::uniform({n}, gen, 0.5f, 1.5f), xg = x.to(kCUDA);
      Tensor y = Tensor::empty({n}), y_g = nan_cuda({n});
      const std::uint64_t seed = 0x123456789ULL + static_cast<std::uint64_t>(n), offset = 1000 + n;
      dropout_forward_cpu(ptr(y), ptr(x), n, p, seed, offset);
      dropout_forward_cuda(ptr(y_g), ptr(xg), n, p, seed, offset);
      EXPECT_EQ(y_g.to(kCPU).to_vector(), y.to_vector()) << "n " << n << " p " << p;
    }
  }
}
#endif  // GRAFT_HAS_CUDA

}  // namespace
}  // namespace graft
