// CPU vs CUDA parity of the foundation ops (core/ops.h) and of every CUDA kernel behind them.
// Kernel tests call the raw launchers on NaN-poisoned outputs placed at odd float offsets (breaking 16-byte
// alignment) with a NaN guard element after them, so an element a kernel skips or a write past the end shows.
// The public ops on both devices, forward and backward: test_cuda_op_parity.cpp.
// Inputs are fresh Philox draws made on the CPU, never zeros. Each tolerance says why it is what it is.
#include "tests/cuda_parity_setup.h"

namespace graft {
namespace {

using namespace cuda_parity_test;
#if GRAFT_HAS_CUDA
using testing::Tf32Guard;
#endif

// ================================ raw kernels vs their CPU references =========================================

TEST(CudaKernelParity, Unary) {
  GRAFT_REQUIRE_CUDA();
#if GRAFT_HAS_CUDA
  Generator gen(101);
  for (UnaryOp op : {UnaryOp::Neg, UnaryOp::Relu, UnaryOp::Exp, UnaryOp::Log})
    for (std::int64_t n : kSizes)
      for (auto [out_off, in_off] : kOffsets) {
        SCOPED_TRACE(describe("op/n/offsets", {static_cast<int>(op), n, out_off, in_off}));
        Tensor x = op == UnaryOp::Log ? rand_cpu({n}, gen, 0.01f, 10.f) : rand_cpu({n}, gen, -4.f, 4.f);
        Tensor ref = Tensor::empty({n});
        unary_forward_cpu(ref.data<float>(), x.data<float>(), op, n);
        Poisoned in = Poisoned::upload(x, in_off), out(n, out_off);
        unary_forward_cuda(out.ptr(), in.ptr(), op, n);
        // neg and relu are exact; CUDA's expf/logf are within 2 ulp (2.4e-7 relative) of glibc's.
        const bool transcendental = op == UnaryOp::Exp || op == UnaryOp::Log;
        expect_close(out, ref, transcendental ? 1e-7f : 0.f, transcendental ? 1e-6f : 0.f);
      }
#endif
}

// Exact: both devices round x*scale and then +shift once each (the CUDA kernel forbids the FMA contraction).
TEST(CudaKernelParity, ScaleShiftAlsoInPlace) {
  GRAFT_REQUIRE_CUDA();
#if GRAFT_HAS_CUDA
  Generator gen(102);
  for (std::int64_t n : kSizes)
    for (auto [out_off, in_off] : kOffsets) {
      SCOPED_TRACE(describe("n/offsets", {n, out_off, in_off}));
      Tensor x = rand_cpu({n}, gen), ref = Tensor::empty({n});
      scale_shift_cpu(ref.data<float>(), x.data<float>(), -1.37f, 0.29f, n);
      Poisoned in = Poisoned::upload(x, in_off), out(n, out_off);
      scale_shift_cuda(out.ptr(), in.ptr(), -1.37f, 0.29f, n);
      expect_close(out, ref, 0.f, 0.f);
      scale_shift_cuda(in.ptr(), in.ptr(), -1.37f, 0.29f, n);  // in place
      expect_close(in, ref, 0.f, 0.f);
    }
#endif
}

TEST(CudaKernelParity, ReluBackwardFillArange) {
  GRAFT_REQUIRE_CUDA();
#if GRAFT_HAS_CUDA
  Generator gen(103);
  for (std::int64_t n : kSizes)
    for (auto [out_off, in_off] : kOffsets) {
      SCOPED_TRACE(describe("n/offsets", {n, out_off, in_off}));
      Tensor dout = rand_cpu({n}, gen), out = relu(rand_cpu({n}, gen)), ref = Tensor::empty({n});  // half exact 0s
      relu_backward_cpu(ref.data<float>(), dout.data<float>(), out.data<float>(), n);
      Poisoned d = Poisoned::upload(dout, in_off), o = Poisoned::upload(out, in_off), dinp(n, out_off);
      relu_backward_cuda(dinp.ptr(), d.ptr(), o.ptr(), n);
      expect_close(dinp, ref, 0.f, 0.f);  // a selection, exact

      Poisoned filled(n, out_off), range(n, in_off);
      fill_cuda(filled.ptr(), 2.75f, n);
      expect_close(filled, Tensor::full({n}, 2.75f), 0.f, 0.f);
      arange_cuda(range.ptr(), n);
      expect_close(range, Tensor::arange(n), 0.f, 0.f);
    }
#endif
}

// Exact: one IEEE +, -, * or / per element on both devices (nvcc's default division is correctly rounded).
TEST(CudaKernelParity, BinaryAllBroadcastModes) {
  GRAFT_REQUIRE_CUDA();
#if GRAFT_HAS_CUDA
  Generator gen(104);
  const std::int64_t shapes[][2] = {{1, 1},  {1, 7},    {7, 1},     {3, 11},     {33, 4},
                                    {5, 31}, {3, 1025}, {977, 1024}, {32259, 31}, {1000003, 1}};  // (rows, channels)
  const Broadcast modes[][2] = {{Broadcast::Full, Broadcast::Full},    {Broadcast::Full, Broadcast::Channel},
                                {Broadcast::Channel, Broadcast::Full}, {Broadcast::Full, Broadcast::Scalar},
                                {Broadcast::Scalar, Broadcast::Full}};
  auto operand_size = [](Broadcast mode, std::int64_t n, std::int64_t channels) {
    return mode == Broadcast::Full ? n : mode == Broadcast::Channel ? channels : std::int64_t{1};
  };
  for (BinaryOp op : {BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div})
    for (auto [rows, channels] : shapes)
      for (auto [ia, ib] : modes)
        for (auto [out_off, in_off] : kOffsets) {
          const std::int64_t n = rows * channels;
          SCOPED_TRACE(describe("op/rows/channels/modes/offsets", {static_cast<int>(op), rows, channels,
                                                                   static_cast<int>(ia), static_cast<int>(ib), out_off, in_off}));
          Tensor a = rand_cpu({operand_size(ia, n, channels)}, gen, -2.f, 2.f);
          Tensor b = op == BinaryOp::Div ? rand_cpu({operand_size(ib, n, channels)}, gen, 0.5f, 2.f)
                                         : rand_cpu({operand_size(ib, n, channels)}, gen, -2.f, 2.f);
          Tensor ref = Tensor::empty({n});
          binary_forward_cpu(ref.data<float>(), a.data<float>(), ia, b.data<float>(), ib, op, n, channels);
          Poisoned da = Poisoned::upload(a, in_off), db = Poisoned::upload(b, out_off), out(n, out_off);
          binary_forward_cuda(out.ptr(), da.ptr(), ia, db.ptr(), ib, op, n, channels);
          expect_close(out, ref, 0.f, 0.f);
          if (ia == Broadcast::Full && ib == Broadcast::Channel && out_off == in_off) {  // in place, as linear's bias
            binary_forward_cuda(da.ptr(), da.ptr(), ia, db.ptr(), ib, op, n, channels);
            expect_close(da, ref, 0.f, 0.f);
          }
        }
#endif
}

// (outer, len, inner) views of sum_axis / broadcast_axis: rows, columns, chunked long axes, an empty axis.
constexpr std::int64_t kAxisShapes[][3] = {{1, 1, 1},    {1, 7, 1},     {1, 33, 1},   {7, 1, 1},     {1, 1000003, 1},
                                           {31, 1025, 1}, {1025, 31, 1}, {1000, 1000, 1}, {1, 7, 33},  {1, 333334, 3},
                                           {5, 1025, 31}, {2, 40000, 64}, {33, 7, 1025}, {4, 257, 2}, {3, 0, 5}};

// Tolerance 1e-5 * sum|x| per output: float partial sums of mixed-sign values, each rounding bounded by that
// sum; the CPU reference accumulates in double. A result must also be bit-identical when run twice.
TEST(CudaKernelParity, SumAxis) {
  GRAFT_REQUIRE_CUDA();
#if GRAFT_HAS_CUDA
  Generator gen(105);
  for (auto [outer, len, inner] : kAxisShapes)
    for (float scale : {1.f, 1.f / 7.f}) {
      SCOPED_TRACE(describe("outer/len/inner", {outer, len, inner}));
      Tensor x = rand_cpu({outer * len * inner}, gen), ref = Tensor::empty({outer * inner});
      sum_axis_cpu(ref.data<float>(), x.data<float>(), outer, len, inner, scale);
      std::vector<float> abs_x = x.to_vector();
      for (float& v : abs_x) v = std::fabs(v);
      std::vector<float> abs_sum(static_cast<std::size_t>(outer * inner));
      sum_axis_cpu(abs_sum.data(), abs_x.data(), outer, len, inner, scale);
      std::vector<double> bound(abs_sum.begin(), abs_sum.end());
      for (double& v : bound) v = 1e-5 * v + 1e-30;

      const std::size_t bytes = sum_axis_workspace_cuda(outer, len, inner);
      Poisoned in = Poisoned::upload(x, 1), out(outer * inner, 1), workspace(static_cast<std::int64_t>(bytes / 4) + 1);
      sum_axis_cuda(out.ptr(), in.ptr(), outer, len, inner, scale, bytes ? workspace.ptr() : nullptr);
      EXPECT_TRUE(within(out.values(ref.shape()), ref, bound));
      EXPECT_TRUE(out.guards_intact());
      Tensor first = out.values(ref.shape()).clone();
      sum_axis_cuda(out.ptr(), in.ptr(), outer, len, inner, scale, bytes ? workspace.ptr() : nullptr);
      EXPECT_TRUE(bitwise_equal(out.values(ref.shape()), first)) << "not deterministic";
    }
#endif
}

// Exact: one multiply per element. Offset 0 gives 16-byte aligned buffers (the float4 path where inner % 4 == 0),
// offset 1 misaligned ones (the scalar path).
TEST(CudaKernelParity, BroadcastAxis) {
  GRAFT_REQUIRE_CUDA();
#if GRAFT_HAS_CUDA
  Generator gen(106);
  std::vector<std::array<std::int64_t, 3>> shapes;
  for (const auto& shape : kAxisShapes) shapes.push_back({shape[0], shape[1], shape[2]});
  shapes.push_back({3, 5, 8});
  shapes.push_back({7, 3, 4});
  shapes.push_back({1, 1, 2048});
  shapes.push_back({5, 2001, 20});  // float4 groups: the grid stride wraps all three digits (o, l, i)
  shapes.push_back({2, 8, 1});      // inner 1, len % 4 == 0: float4 splats of one value (aligned offset 0)
  shapes.push_back({131, 4096, 1});
  for (auto [outer, len, inner] : shapes)
    for (std::int64_t offset : {0, 1})
      for (float scale : {1.f, 0.3f}) {
        SCOPED_TRACE(describe("outer/len/inner/offset", {outer, len, inner, offset}));
        Tensor dout = rand_cpu({outer * inner}, gen), ref = Tensor::empty({outer * len * inner});
        broadcast_axis_cpu(ref.data<float>(), dout.data<float>(), outer, len, inner, scale);
        Poisoned in = Poisoned::upload(dout, offset), out(outer * len * inner, offset);
        broadcast_axis_cuda(out.ptr(), in.ptr(), outer, len, inner, scale);
        expect_close(out, ref, 0.f, 0.f);
      }
#endif
}

#if GRAFT_HAS_CUDA
using GemmFn = void (*)(float*, const float*, const float*, bool, bool, std::int64_t, std::int64_t, std::int64_t,
                        float, float);

// `gemm` vs gemm_cpu for all four transposes at odd sizes, first with beta = 0 into a NaN-filled C (which BLAS
// semantics forbid reading), then with alpha 0.75, beta -0.5 into a random C. Tolerance per element:
// rel * (|alpha| |op(A)| |op(B)| + |beta| |C|): every product and term is off by at most rel of its magnitude.
void expect_gemm_matches_cpu(GemmFn gemm, double rel) {
  const std::int64_t sizes[][3] = {{1, 1, 1},      {1, 7, 33},     {7, 1, 5},      {33, 17, 1},    {31, 65, 127},
                                   {129, 63, 255}, {300, 300, 300}, {257, 300, 1}, {1, 300, 299}, {1024, 1024, 1024}};
  Generator gen(107);
  for (auto [m, n, k] : sizes)
    for (bool ta : {false, true})
      for (bool tb : {false, true})
        for (auto [alpha, beta] : {std::pair{1.f, 0.f}, std::pair{0.75f, -0.5f}}) {
          SCOPED_TRACE(describe("m/n/k/trans_a/trans_b/beta!=0", {m, n, k, ta, tb, beta != 0.f}));
          Tensor a = rand_cpu(ta ? Shape{k, m} : Shape{m, k}, gen), b = rand_cpu(tb ? Shape{n, k} : Shape{k, n}, gen);
          Tensor c0 = rand_cpu({m, n}, gen), ref = c0.clone(), abs_ab = Tensor::zeros({m, n});
          gemm_cpu(ref.data<float>(), a.data<float>(), b.data<float>(), ta, tb, m, n, k, alpha, beta);
          std::vector<float> abs_a = a.to_vector(), abs_b = b.to_vector(), c_host = c0.to_vector();
          for (float& v : abs_a) v = std::fabs(v);
          for (float& v : abs_b) v = std::fabs(v);
          gemm_cpu(abs_ab.data<float>(), abs_a.data(), abs_b.data(), ta, tb, m, n, k, 1.f, 0.f);
          std::vector<float> ab = abs_ab.to_vector();
          std::vector<double> bound(ab.size());
          for (std::size_t i = 0; i < ab.size(); ++i)
            bound[i] = rel * (std::fabs(alpha) * ab[i] + std::fabs(beta) * std::fabs(c_host[i])) + 1e-30;
          Poisoned da = Poisoned::upload(a, 1), db = Poisoned::upload(b), dc = beta == 0.f ? Poisoned(m * n, 1)
                                                                                       : Poisoned::upload(c0, 1);
          gemm(dc.ptr(), da.ptr(), db.ptr(), ta, tb, m, n, k, alpha, beta);
          EXPECT_TRUE(within(dc.values({m, n}), ref, bound));
          EXPECT_TRUE(dc.guards_intact());
        }
}
#endif

// Strict FP32 (fmaf per product): 1e-5 of sum|a||b| is far above K*eps-type rounding in practice.
TEST(CudaKernelParity, GemmTiledAllTransposes) {
  GRAFT_REQUIRE_CUDA();
#if GRAFT_HAS_CUDA
  expect_gemm_matches_cpu(&gemm_cuda_tiled, 1e-5);
#endif
}

TEST(CudaKernelParity, GemmCublasStrictFp32) {
  GRAFT_REQUIRE_CUDA();
#if GRAFT_HAS_CUDA
  Tf32Guard strict(false);  // a TF32 product is off by ~1e-3 and would fail 1e-5
  expect_gemm_matches_cpu(&gemm_cublas, 1e-5);
#endif
}

// TF32 keeps 10 mantissa bits: each operand is off by <= 2^-10 (truncation), a product by <= 2^-9 = 2e-3.
TEST(CudaKernelParity, GemmCublasTf32) {
  GRAFT_REQUIRE_CUDA();
#if GRAFT_HAS_CUDA
  Tf32Guard tf32(true);
  expect_gemm_matches_cpu(&gemm_cublas, 5e-3);
#endif
}

// (rows, cols): a warp per row with the row in registers up to 1024 columns, 1 to 32 values per lane (31, 33, 100,
// 250, 500, 1000, 1024 cover every register width), a block per row beyond.
constexpr std::int64_t kRowShapes[][2] = {{1, 1},    {7, 1},     {1, 31},   {33, 31},  {1000, 31},
                                          {5, 33},   {9, 100},   {3, 250},  {17, 500}, {1000, 1000},
                                          {2, 1024}, {1, 1025},  {7, 1025}, {977, 1025}, {3, 4097},
                                          {2, 100003}};

// Forward: expf's 2 ulp plus a float sum of up to 1e5 exponentials (sequential per thread over up to ~400 of
// them, then a tree): ~1e-6 relative typically, 1e-5 leaves margin; log-softmax adds the absolute error of log(sum). Backward: dot = sum(dy*y) with |dy| <= 1 is off by ~1e-7,
// while sum(dy) of log-softmax (up to 1e5 terms of size 1) is off by ~1e-6 absolute, hence its looser atol.
TEST(CudaKernelParity, SoftmaxAndLogSoftmax) {
  GRAFT_REQUIRE_CUDA();
#if GRAFT_HAS_CUDA
  Generator gen(108);
  for (auto [rows, cols] : kRowShapes)
    for (bool log : {false, true})
      for (float shift : {0.f, 100.f}) {  // +100 overflows expf unless the row max is subtracted
        SCOPED_TRACE(describe("rows/cols/log/shift", {rows, cols, log, static_cast<int>(shift)}));
        const std::int64_t n = rows * cols;
        Tensor x = rand_cpu({rows, cols}, gen, shift - 5.f, shift + 5.f), y = Tensor::empty({rows, cols});
        softmax_forward_cpu(y.data<float>(), x.data<float>(), rows, cols, log);
        Poisoned dx = Poisoned::upload(x, 1), dy(n, 1);
        softmax_forward_cuda(dy.ptr(), dx.ptr(), rows, cols, log);
        expect_close(dy, y, log ? 5e-6f : 1e-7f, log ? 1e-6f : 1e-5f);

        Tensor grad = rand_cpu({rows, cols}, gen), ref = Tensor::empty({rows, cols});
        softmax_backward_cpu(ref.data<float>(), grad.data<float>(), y.data<float>(), rows, cols, log);
        Poisoned g = Poisoned::upload(grad), yy = Poisoned::upload(y, 1), dinp(n, 1);
        softmax_backward_cuda(dinp.ptr(), g.ptr(), yy.ptr(), rows, cols, log);
        expect_close(dinp, ref, log ? 1e-5f : 1e-6f, 1e-5f);
      }
#endif
}

// losses: log(sum exp) is off by ~1e-6 absolute (see above); probs as softmax; dlogits = (p - q) g inherits p's
// error scaled by g = dloss / rows.
// Masked entries (-inf logits, as attention masks give): they get probability 0 (log-probability -inf) and leave
// the rest of the row a softmax of the others, in the register path (100 columns) and the block path (1025). A row
// masked entirely has no maximum to subtract: every output is NaN, as on the CPU.
TEST(CudaKernelParity, SoftmaxWithMaskedEntries) {
  GRAFT_REQUIRE_CUDA();
#if GRAFT_HAS_CUDA
  Generator gen(112);
  for (std::int64_t cols : {100, 1025}) {
    const std::int64_t rows = 3;
    std::vector<float> xv = rand_cpu({rows, cols}, gen, -5.f, 5.f).to_vector();
    for (std::int64_t c = 0; c < cols; c += 3) xv[static_cast<std::size_t>(c)] = -INFINITY;  // row 0: a third masked
    for (std::int64_t c = 0; c < cols; ++c) xv[static_cast<std::size_t>(2 * cols + c)] = -INFINITY;  // row 2: all
    Tensor x = Tensor::from_vector(xv, {rows, cols});
    for (bool log : {false, true}) {
      SCOPED_TRACE(describe("cols/log", {cols, log}));
      Tensor y = Tensor::empty({rows, cols});
      softmax_forward_cpu(y.data<float>(), x.data<float>(), rows, cols, log);
      Poisoned dx = Poisoned::upload(x, 1), dy(rows * cols, 1);
      softmax_forward_cuda(dy.ptr(), dx.ptr(), rows, cols, log);
      const std::vector<float> got = dy.values({rows, cols}).to_vector(), want = y.to_vector();
      for (std::size_t i = 0; i < got.size(); ++i) {
        if (std::isnan(want[i]) || std::isinf(want[i])) {
          EXPECT_TRUE(std::isnan(want[i]) ? std::isnan(got[i]) : got[i] == want[i]) << "element " << i;
        } else {
          EXPECT_NEAR(got[i], want[i], 1e-5f * (1.f + std::fabs(want[i]))) << "element " << i;
        }
      }
      for (std::int64_t c = 0; c < cols; ++c) EXPECT_TRUE(std::isnan(got[2 * cols + c])) << "row 2, column " << c;
    }
  }
#endif
}

#if GRAFT_HAS_CUDA
// cross_entropy_forward on the CPU and on the GPU (into poisoned outputs) for the same logits and labels.
struct CrossEntropyForwardBoth {
  Tensor losses, probs;     // CPU reference
  Poisoned dlosses, dprobs;  // CUDA
};
CrossEntropyForwardBoth cross_entropy_forward_both(const Tensor& logits, const Tensor& host_labels,
                                                   const Tensor& dev_labels, float smoothing) {
  const std::int64_t rows = logits.shape()[0], cols = logits.shape()[1];
  CrossEntropyForwardBoth r{Tensor::empty({rows}), Tensor::empty({rows, cols}), Poisoned(rows, 1), Poisoned(rows * cols)};
  cross_entropy_forward_cpu(r.losses.data<float>(), r.probs.data<float>(), logits.data<float>(),
                            host_labels.data<std::int32_t>(), rows, cols, smoothing);
  Poisoned dlogits_in = Poisoned::upload(logits, 1);
  cross_entropy_forward_cuda(r.dlosses.ptr(), r.dprobs.ptr(), dlogits_in.ptr(), dev_labels.data<std::int32_t>(), rows,
                             cols, smoothing);
  return r;
}
#endif

// Masked logits (-inf) in cross-entropy: without smoothing the loss is finite (the zero-target terms must not add
// 0 * -inf), with smoothing it is +inf, as on the CPU and in PyTorch; at smoothing 1 a row whose label's own logit is
// masked is NaN (PyTorch's (1 - s) * nll = 0 * inf); register path (100 columns) and block path (1025).
TEST(CudaKernelParity, CrossEntropyWithMaskedLogits) {
  GRAFT_REQUIRE_CUDA();
#if GRAFT_HAS_CUDA
  Generator gen(113);
  for (std::int64_t cols : {100, 1025})
    for (float smoothing : {0.f, 0.1f, 1.f}) {
      SCOPED_TRACE(describe("cols/smoothing%", {cols, static_cast<int>(smoothing * 100)}));
      const std::int64_t rows = 4;
      std::vector<float> xv = rand_cpu({rows, cols}, gen, -5.f, 5.f).to_vector();
      // every third column of every row; the labels below sit at column 0: unmasked (but for row 3 at smoothing 1)
      for (std::int64_t r = 0; r < rows; ++r)
        for (std::int64_t c = 1; c < cols; c += 3) xv[static_cast<std::size_t>(r * cols + c)] = -INFINITY;
      if (smoothing == 1.f) xv[static_cast<std::size_t>(3 * cols)] = -INFINITY;
      Tensor logits = Tensor::from_vector(xv, {rows, cols});
      Tensor host_labels = Tensor::from_vector(std::vector<std::int32_t>(static_cast<std::size_t>(rows), 0), {rows});
      Tensor dev_labels = host_labels.to(kCUDA);
      const CrossEntropyForwardBoth both = cross_entropy_forward_both(logits, host_labels, dev_labels, smoothing);
      const std::vector<float> got = both.dlosses.values({rows}).to_vector(), want = both.losses.to_vector();
      for (std::int64_t r = 0; r < rows; ++r) {
        if (smoothing == 0.f) {
          ASSERT_TRUE(std::isfinite(want[r])) << "CPU row " << r;
          EXPECT_NEAR(got[r], want[r], 1e-5f * (1.f + std::fabs(want[r]))) << "row " << r;
        } else if (smoothing == 1.f && r == 3) {
          EXPECT_TRUE(std::isnan(want[r])) << "CPU row " << r << ": " << want[r];
          EXPECT_TRUE(std::isnan(got[r])) << "row " << r << ": " << got[r];
        } else {
          EXPECT_EQ(want[r], INFINITY) << "CPU row " << r;
          EXPECT_EQ(got[r], INFINITY) << "row " << r;
        }
      }
      expect_close(both.dprobs, both.probs, 1e-7f, 1e-5f);
    }
#endif
}

TEST(CudaKernelParity, CrossEntropyWithLabelSmoothing) {
  GRAFT_REQUIRE_CUDA();
#if GRAFT_HAS_CUDA
  Generator gen(109);
  for (auto [rows, cols] : kRowShapes)
    for (float smoothing : {0.f, 0.1f}) {
      SCOPED_TRACE(describe("rows/cols/smoothing%", {rows, cols, static_cast<int>(smoothing * 100)}));
      Tensor logits = rand_cpu({rows, cols}, gen, -5.f, 5.f), label_draw = rand_cpu({rows}, gen, 0.f, 1.f);
      std::vector<std::int32_t> labels;
      for (float u : label_draw.to_vector()) labels.push_back(std::min<std::int32_t>(static_cast<std::int32_t>(u * cols), cols - 1));
      Tensor host_labels = Tensor::from_vector(labels, {rows}), dev_labels = host_labels.to(kCUDA);
      const CrossEntropyForwardBoth both = cross_entropy_forward_both(logits, host_labels, dev_labels, smoothing);
      const Tensor& probs = both.probs;
      expect_close(both.dlosses, both.losses, 5e-6f, 1e-5f);
      expect_close(both.dprobs, probs, 1e-7f, 1e-5f);

      const float dloss = 1.7f, scale = 1.f / static_cast<float>(rows), g = dloss * scale;
      Tensor ref = Tensor::empty({rows, cols});
      cross_entropy_backward_cpu(ref.data<float>(), probs.data<float>(), host_labels.data<std::int32_t>(), &dloss, rows,
                                 cols, smoothing, scale);
      Poisoned dprobs_ref = Poisoned::upload(probs, 1), dgrad(rows * cols, 1);
      Tensor dev_dloss = Tensor::full({1}, dloss, kCUDA);  // read on the device, as the op passes it
      cross_entropy_backward_cuda(dgrad.ptr(), dprobs_ref.ptr(), dev_labels.data<std::int32_t>(),
                                  dev_dloss.data<float>(), rows, cols, smoothing, scale);
      expect_close(dgrad, ref, 1e-6f * g, 1e-6f);  // same inputs, one subtract and multiply: near exact
    }
#endif
}

// Same (seed, offset) -> the same bits on both devices: uniform, normal, nontrivial ranges, 64-bit counters.
TEST(CudaKernelParity, RandomBitIdentical) {
  GRAFT_REQUIRE_CUDA();
#if GRAFT_HAS_CUDA
  const std::uint64_t states[][2] = {{0, 0}, {0x9E3779B97F4A7C15ull, 5}, {42, (1ull << 32) + 3}};
  for (std::int64_t n : kSizes)
    for (auto [seed, offset] : states)
      for (auto [lo, hi] : {std::pair{0.f, 1.f}, std::pair{-2.5f, 3.f}})
        for (std::int64_t out_off : {0, 1}) {
          SCOPED_TRACE(describe("n/offset/range/out_offset", {n, static_cast<std::int64_t>(offset), lo != 0.f, out_off}));
          Tensor ref = Tensor::empty({n});
          Poisoned out(n, out_off);
          uniform_cpu(ref.data<float>(), n, seed, offset, lo, hi);
          uniform_cuda(out.ptr(), n, seed, offset, lo, hi);
          EXPECT_TRUE(bitwise_equal(out.values({n}), ref)) << "uniform";
          EXPECT_TRUE(out.guards_intact());
          normal_cpu(ref.data<float>(), n, seed, offset, lo, hi);  // mean lo, stddev hi
          normal_cuda(out.ptr(), n, seed, offset, lo, hi);
          EXPECT_TRUE(equal_up_to_rare_ulp(out.values({n}), ref)) << "normal";
          EXPECT_TRUE(out.guards_intact());
        }
#endif
}

}  // namespace
}  // namespace graft
