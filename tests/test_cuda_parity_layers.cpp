// CPU-vs-CUDA parity of the layer ops (batch_norm, pooling, pad2d, concat_channels, dropout; conv2d in its own
// section below). Every test needs a device (GRAFT_REQUIRE_CUDA skips with the reason otherwise), uses fresh random
// inputs (never zeros) at odd sizes, and compares against the CPU reference.
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

// ---- conv2d parity ----
// conv2d: cuDNN (forward + bias, backward-data, backward-filter) against the CPU im2col/GEMM path, on every distinct
// conv shape of ResNet-50 (torchvision: stride on the 3x3 conv) and VGG16 at 224x224 input, with channel counts,
// kernel, stride and padding exact and the spatial size scaled down to keep the CPU side fast (224->57, 112->29,
// 56->15; 28, 14 and 7 kept), plus odd shapes (groups, depthwise, dilation, 5x5, asymmetric); each in TF32 and in
// strict-FP32 mode. Then the op through autograd on both devices, the record of the chosen algorithms, and the kernel
// lab's hand-written forwards (strict FP32) on the same cases.
#include <algorithm>
#include <cstdio>
#include <optional>
#include <string>

#include "kernels/conv2d.h"

namespace graft {
namespace {

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
// ---- end conv2d parity ----
