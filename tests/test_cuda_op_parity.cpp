// CPU vs CUDA parity of the public foundation ops (core/ops.h): the same random inputs (fresh Philox draws made on
// the CPU, never zeros) through the ops on both devices, outputs compared, then the input gradients. Each tolerance
// says why it is what it is. The raw kernels behind them: test_cuda_parity.cpp.
#include "tests/cuda_parity_setup.h"

namespace graft {
namespace {

using namespace cuda_parity_test;
#if GRAFT_HAS_CUDA
using testing::Tf32Guard;
#endif

// ================================ public ops, forward and backward ===========================================

struct Tol {
  float atol, rtol;
};
using OpFn = std::function<Tensor(const std::vector<Tensor>&)>;

// f on CPU leaves and on CUDA copies of them: outputs compared, then the input gradients of sum(out * w) for a
// positive random w. int32 inputs (labels) are copied but never require grad.
void expect_op_parity(const OpFn& f, const std::vector<Tensor>& inputs, Tol forward, Tol backward) {
#if GRAFT_HAS_CUDA
  poison_pool();
#endif
  std::vector<Tensor> cpu, gpu;
  for (const Tensor& t : inputs) {
    cpu.push_back(t.detach());
    gpu.push_back(t.to(kCUDA));
    if (t.dtype() == DType::Float32) {
      cpu.back().set_requires_grad(true);
      gpu.back().set_requires_grad(true);
    }
  }
  Tensor out_cpu = f(cpu), out_gpu = f(gpu);
  ASSERT_TRUE(out_gpu.is_cuda());
  EXPECT_TRUE(all_close(out_gpu, out_cpu, forward.atol, forward.rtol)) << "forward";
  Generator gen(99);
  Tensor w = rand_cpu(out_cpu.shape(), gen, 0.5f, 1.5f);
  sum(mul(out_cpu, w)).backward();
  sum(mul(out_gpu, w.to(kCUDA))).backward();
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    if (inputs[i].dtype() != DType::Float32) continue;
    ASSERT_TRUE(cpu[i].grad().defined() && gpu[i].grad().defined()) << "input " << i << " got no gradient";
    EXPECT_TRUE(gpu[i].grad().is_cuda());
    EXPECT_TRUE(all_close(gpu[i].grad(), cpu[i].grad(), backward.atol, backward.rtol)) << "gradient of input " << i;
  }
}

// Positive inputs: every gradient is then a sum of same-signed terms (broadcast operands reduce dout * ...), so
// float summation error stays relative to the result: 1e-5. Forward values are exact IEEE operations.
TEST(CudaOpParity, BinaryOpsAllBroadcastModes) {
  GRAFT_REQUIRE_CUDA();
  Generator gen(201);
  const std::pair<Shape, Shape> modes[] = {{{33, 7}, {33, 7}},     {{33, 7}, {}},          {{1}, {33, 7}},
                                           {{5, 3, 31}, {31}},     {{31}, {5, 3, 31}},     {{977, 1024}, {1024}},
                                           {{1024}, {977, 1024}},  {{1000003}, {1}}};
  const std::function<Tensor(const Tensor&, const Tensor&)> ops[] = {
      [](const Tensor& a, const Tensor& b) { return add(a, b); }, [](const Tensor& a, const Tensor& b) { return sub(a, b); },
      [](const Tensor& a, const Tensor& b) { return mul(a, b); }, [](const Tensor& a, const Tensor& b) { return div(a, b); }};
  for (std::size_t op = 0; op < 4; ++op)
    for (const auto& [shape_a, shape_b] : modes) {
      SCOPED_TRACE("op " + std::to_string(op) + " " + shape_str(shape_a) + " with " + shape_str(shape_b));
      expect_op_parity([&](const std::vector<Tensor>& x) { return ops[op](x[0], x[1]); },
                       {rand_cpu(shape_a, gen, 0.5f, 1.5f), rand_cpu(shape_b, gen, 0.5f, 1.5f)}, {0.f, 0.f}, {0.f, 1e-5f});
    }
}

// Elementwise: forward within the kernels' tolerances; gradients are elementwise products, 1e-6.
TEST(CudaOpParity, UnaryAndScalarOps) {
  GRAFT_REQUIRE_CUDA();
  Generator gen(202);
  const std::pair<const char*, OpFn> ops[] = {
      {"add_scalar", [](const std::vector<Tensor>& x) { return add(x[0], 0.625f); }},
      {"mul_scalar", [](const std::vector<Tensor>& x) { return mul(x[0], -1.5f); }},
      {"neg", [](const std::vector<Tensor>& x) { return neg(x[0]); }},
      {"relu", [](const std::vector<Tensor>& x) { return relu(x[0]); }},
      {"exp", [](const std::vector<Tensor>& x) { return exp(x[0]); }},
      {"log", [](const std::vector<Tensor>& x) { return log(add(x[0], 2.f)); }}};  // log of [1, 3]
  for (const auto& [name, f] : ops)
    for (const Shape& shape : {Shape{1}, Shape{33, 31}, Shape{1000003}}) {
      SCOPED_TRACE(std::string(name) + " " + shape_str(shape));
      expect_op_parity(f, {rand_cpu(shape, gen)}, {1e-7f, 1e-6f}, {1e-7f, 1e-6f});
    }
}

// Positive inputs: sums without cancellation, float tree sums within 1e-5 relative; backward is a broadcast.
TEST(CudaOpParity, SumAndMean) {
  GRAFT_REQUIRE_CUDA();
  Generator gen(203);
  std::vector<std::pair<std::string, OpFn>> ops = {
      {"sum", [](const std::vector<Tensor>& x) { return sum(x[0]); }},
      {"mean", [](const std::vector<Tensor>& x) { return mean(x[0]); }}};
  for (int axis : {0, 1, 2, -1})
    for (bool keep : {false, true}) {
      ops.emplace_back("sum axis " + std::to_string(axis) + (keep ? " keepdim" : ""),
                       [=](const std::vector<Tensor>& x) { return sum(x[0], axis, keep); });
      ops.emplace_back("mean axis " + std::to_string(axis) + (keep ? " keepdim" : ""),
                       [=](const std::vector<Tensor>& x) { return mean(x[0], axis, keep); });
    }
  for (const auto& [name, f] : ops)
    for (const Shape& shape : {Shape{7, 33, 31}, Shape{2, 40000, 64}, Shape{1, 1000003, 1}}) {
      SCOPED_TRACE(name + " " + shape_str(shape));
      expect_op_parity(f, {rand_cpu(shape, gen, 0.5f, 1.5f)}, {0.f, 1e-5f}, {0.f, 1e-6f});
    }
}

// A plain float accumulator stops growing at 2^24 = 16777216 (adding 1 no longer changes it).
TEST(CudaOpParity, SumOfMoreThan2To24Elements) {
  GRAFT_REQUIRE_CUDA();
  const std::int64_t n = (std::int64_t{1} << 25) + 7;
  Tensor ones = Tensor::ones({n}, kCUDA);
  EXPECT_NEAR(sum(ones).item(), static_cast<double>(n), 1e-6 * n);
  EXPECT_NEAR(mean(ones).item(), 1.0, 1e-6);
  Generator gen(204);
  Tensor x = rand_cpu({(std::int64_t{1} << 24) + 3}, gen, 0.f, 1.f);
  const double ref = sum(x).item();
  EXPECT_NEAR(sum(x.to(kCUDA)).item(), ref, 1e-5 * ref);
  Tensor columns = x.slice(0, (std::int64_t{1} << 24)).reshape({1 << 22, 4});  // 4 columns of 2^22 rows
  EXPECT_TRUE(all_close(sum(columns.to(kCUDA), 0), sum(columns, 0), 0.f, 1e-5f));
}

// Positive inputs keep every GEMM output and gradient a sum of positive products, so its relative error is
// bounded by the products': 1e-5 in strict FP32, 5e-3 with TF32 (operands truncated to 10 mantissa bits).
TEST(CudaOpParity, MatmulAndLinear) {
  GRAFT_REQUIRE_CUDA();
#if GRAFT_HAS_CUDA
  Generator gen(205);
  for (bool tf32 : {false, true}) {
    Tf32Guard mode(tf32);
    const Tol tol{0.f, tf32 ? 5e-3f : 1e-5f};
    SCOPED_TRACE(tf32 ? "tf32" : "strict fp32");
    auto r = [&](const Shape& s) { return rand_cpu(s, gen, 0.5f, 1.5f); };
    auto mm = [](const std::vector<Tensor>& x) { return matmul(x[0], x[1]); };
    auto lin = [](const std::vector<Tensor>& x) { return linear(x[0], x[1]); };
    auto lin_bias = [](const std::vector<Tensor>& x) { return linear(x[0], x[1], x[2]); };
    expect_op_parity(mm, {r({33, 65}), r({65, 17})}, tol, tol);
    expect_op_parity(mm, {r({1, 1}), r({1, 1})}, tol, tol);
    expect_op_parity(mm, {r({257, 300}), r({300, 129})}, tol, tol);
    expect_op_parity(lin_bias, {r({33, 65}), r({17, 65}), r({17})}, tol, tol);
    expect_op_parity(lin, {r({33, 65}), r({17, 65})}, tol, tol);
    expect_op_parity(lin_bias, {r({3, 11, 65}), r({17, 65}), r({17})}, tol, tol);
    expect_op_parity(lin, {r({3, 11, 65}), r({17, 65})}, tol, tol);
  }
  // A frozen weight gets no gradient on the GPU either.
  Generator g2(206);
  Tensor x = rand_cpu({5, 9}, g2).to(kCUDA), w = rand_cpu({4, 9}, g2).to(kCUDA), b = rand_cpu({4}, g2).to(kCUDA);
  x.set_requires_grad(true);
  b.set_requires_grad(true);
  sum(linear(x, w, b)).backward();
  EXPECT_TRUE(x.grad().defined() && b.grad().defined());
  EXPECT_FALSE(w.grad().defined());
#endif
}

// conv2d_relu on the GPU: the bias + relu epilogue and the fused mask + bias-gradient pass against the CPU
// (strict FP32), and its forward bitwise equal to the unfused relu(conv2d(...)) on the GPU.
TEST(CudaOpParity, Conv2dRelu) {
  GRAFT_REQUIRE_CUDA();
#if GRAFT_HAS_CUDA
  Tf32Guard strict(false);
  Generator gen(207);
  const Tol tol{1e-4f, 1e-4f};
  for (const auto& [xs, ws] : std::vector<std::pair<Shape, Shape>>{{{2, 9, 7, 3}, {8, 3, 3, 3}},      // C=3, K%4==0
                                                                    {{2, 6, 5, 16}, {5, 3, 3, 16}},   // K=5: scalar
                                                                    {{1, 14, 14, 64}, {64, 3, 3, 64}}}) {
    auto f = [](const std::vector<Tensor>& in) { return conv2d_relu(in[0], in[1], in[2], {.pad_h = 1, .pad_w = 1}); };
    const std::vector<Tensor> inputs{rand_cpu(xs, gen, -1.f, 1.f), rand_cpu(ws, gen, -0.3f, 0.3f),
                                     rand_cpu({ws[0]}, gen, -0.5f, 0.5f)};
    expect_op_parity(f, inputs, tol, tol);
    Tensor x = rand_cpu(xs, gen, -1.f, 1.f).to(kCUDA), w = rand_cpu(ws, gen, -0.3f, 0.3f).to(kCUDA);
    Tensor b = rand_cpu({ws[0]}, gen, -0.5f, 0.5f).to(kCUDA);
    EXPECT_EQ(conv2d_relu(x, w, b, {.pad_h = 1, .pad_w = 1}).to_vector(),
              relu(conv2d(x, w, b, {.pad_h = 1, .pad_w = 1})).to_vector());
  }
#endif
}

// A NaN passes every relu on the GPU as on the CPU (kernels/host_device.h relu_value; PyTorch's relu keeps it too):
// relu, conv2d's bias + relu epilogue (bias_relu_forward_cuda), and batch norm's fused epilogue with running
// statistics, with batch statistics (the NaN's channel is NaN throughout) and with a residual. The NaNs must sit at the
// same places on both devices and every other value agree to 1e-5 (1e-4 after the convolution's sums).
TEST(CudaOpParity, EveryReluKeepsANaNAsTheCpuDoes) {
  GRAFT_REQUIRE_CUDA();
#if GRAFT_HAS_CUDA
  Tf32Guard strict(false);
  Generator gen(213);
  Tensor x = rand_cpu({2, 3, 5, 8}, gen, -1.f, 1.f);  // 8 channels: the vectorised kernels
  Tensor residual = rand_cpu(x.shape(), gen, -1.f, 1.f);
  // The convolution's input stays finite: an FFT or Winograd algorithm would spread an input NaN over a whole tile
  // (more NaNs than im2col gives); a NaN in one filter makes its output channel NaN whatever the algorithm.
  const Tensor x_finite = x.clone();
  x.data<float>()[3] = NAN, x.data<float>()[42] = NAN, x.data<float>()[17] = -0.f;
  Tensor weight = rand_cpu({8, 3, 3, 8}, gen, -0.3f, 0.3f), bias = rand_cpu({8}, gen, -0.5f, 0.5f);
  weight.data<float>()[2 * 72 + 5] = NAN;  // filter 2
  Tensor gamma = rand_cpu({8}, gen, 0.5f, 1.5f), beta = rand_cpu({8}, gen, -0.5f, 0.5f);
  Tensor mean = rand_cpu({8}, gen, -0.2f, 0.2f), var = rand_cpu({8}, gen, 0.5f, 1.5f);
  auto bn = [&](const Tensor& in, bool batch_stats, bool add, Device d) {
    Tensor m = mean.to(d), v = var.to(d);
    return batch_norm_add_relu(in, gamma.to(d), beta.to(d), m, v, batch_stats, false, 0.1f, 1e-5f,
                               add ? std::optional<Tensor>(residual.to(d)) : std::nullopt, true);
  };
  const std::vector<std::pair<const char*, std::function<Tensor(Device)>>> ops{
      {"relu", [&](Device d) { return relu(x.to(d)); }},
      {"conv2d_relu",
       [&](Device d) { return conv2d_relu(x_finite.to(d), weight.to(d), bias.to(d), {.pad_h = 1, .pad_w = 1}); }},
      {"batch norm + relu, running statistics", [&](Device d) { return bn(x.to(d), false, false, d); }},
      {"batch norm + relu, batch statistics", [&](Device d) { return bn(x.to(d), true, false, d); }},
      {"batch norm + residual + relu", [&](Device d) { return bn(x.to(d), false, true, d); }}};
  for (const auto& [name, op] : ops) {
    const std::vector<float> cpu = op(kCPU).to_vector(), gpu = op(kCUDA).to(kCPU).to_vector();
    ASSERT_EQ(cpu.size(), gpu.size()) << name;
    std::size_t nans = 0;
    for (std::size_t i = 0; i < cpu.size(); ++i) {
      nans += std::isnan(cpu[i]) ? 1 : 0;
      ASSERT_EQ(std::isnan(gpu[i]), std::isnan(cpu[i])) << name << ", element " << i << ": " << gpu[i] << " vs "
                                                        << cpu[i];
      if (!std::isnan(cpu[i])) {
        ASSERT_NEAR(gpu[i], cpu[i], 1e-4f + 1e-5f * std::fabs(cpu[i])) << name << ", element " << i;
      }
    }
    EXPECT_GT(nans, 0u) << name << ": the NaN reached the output";
  }
#endif
}

// Tolerances of the kernel test; the backward also inherits the forward's error in y: softmax dx = y (w - dot)
// is off by ~1e-5 y, log-softmax dx = w - e^y sum(w) by e^y sum(w) dy with sum(w) ~ cols, p*cols ~ O(1).
TEST(CudaOpParity, SoftmaxAndLogSoftmax) {
  GRAFT_REQUIRE_CUDA();
  Generator gen(207);
  for (const Shape& shape : {Shape{1, 1}, Shape{33, 1}, Shape{7, 31}, Shape{3, 5, 31}, Shape{7, 1025}}) {
    SCOPED_TRACE(shape_str(shape));
    expect_op_parity([](const std::vector<Tensor>& x) { return softmax(x[0]); }, {rand_cpu(shape, gen, -5.f, 5.f)},
                     {1e-7f, 1e-5f}, {5e-6f, 1e-5f});
    expect_op_parity([](const std::vector<Tensor>& x) { return log_softmax(x[0]); }, {rand_cpu(shape, gen, -5.f, 5.f)},
                     {5e-6f, 1e-6f}, {2e-5f, 1e-5f});
  }
}

// The mean loss as in the kernel test; dlogits = (p - q) w / rows inherits p's error (1e-5 of p <= 1) times
// w / rows, without cancellation protection where p ~ q, hence the absolute 1e-5 / rows.
TEST(CudaOpParity, SoftmaxCrossEntropyWithLabelSmoothing) {
  GRAFT_REQUIRE_CUDA();
  Generator gen(208);
  for (auto [rows, cols] : {std::pair<std::int64_t, std::int64_t>{1, 1}, {7, 31}, {33, 1025}, {1000, 10}})
    for (float smoothing : {0.f, 0.1f}) {
      SCOPED_TRACE(describe("rows/cols/smoothing%", {rows, cols, static_cast<int>(smoothing * 100)}));
      std::vector<std::int32_t> labels;
      for (std::int64_t r = 0; r < rows; ++r) labels.push_back(static_cast<std::int32_t>((r * 7 + 3) % cols));
      expect_op_parity([=](const std::vector<Tensor>& x) { return softmax_cross_entropy(x[0], x[1], smoothing); },
                       {rand_cpu({rows, cols}, gen, -5.f, 5.f), Tensor::from_vector(labels, {rows})}, {5e-6f, 1e-5f},
                       {1e-5f / static_cast<float>(rows), 1e-5f});
    }
}

// The public factories: one generator state -> the same tensor on both devices, and the same state afterwards.
TEST(CudaOpParity, TensorUniformAndRandnMatchAcrossDevices) {
  GRAFT_REQUIRE_CUDA();
  for (std::int64_t n : kSizes) {
    Generator on_cpu(77), on_gpu(77);
    on_cpu.advance(3), on_gpu.advance(3);
    Tensor u_cpu = Tensor::uniform({n}, on_cpu, -1.f, 2.f), u_gpu = Tensor::uniform({n}, on_gpu, -1.f, 2.f, kCUDA);
    Tensor z_cpu = Tensor::randn({n}, on_cpu, kCPU, 0.5f, 3.f), z_gpu = Tensor::randn({n}, on_gpu, kCUDA, 0.5f, 3.f);
    EXPECT_TRUE(u_gpu.is_cuda() && z_gpu.is_cuda());
    EXPECT_TRUE(bitwise_equal(u_gpu, u_cpu)) << "uniform n=" << n;
    EXPECT_TRUE(equal_up_to_rare_ulp(z_gpu, z_cpu)) << "randn n=" << n;
    EXPECT_EQ(on_cpu.offset(), on_gpu.offset());
  }
}

}  // namespace
}  // namespace graft
