// The CUDA runtime as the engine uses it: device round trips, views, the memory counters and pool, running out
// of memory, device mismatches, training on the GPU, NoGrad, that a frozen prefix saves no activations, and
// weight files into and out of a GPU model.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "core/allocator.h"
#include "core/autograd.h"
#include "core/error.h"
#include "core/ops.h"
#include "core/rng.h"
#include "io/hdf5.h"
#include "io/weights.h"
#include "models/zoo.h"
#include "tests/check.h"
#if GRAFT_HAS_CUDA
#include "kernels/cuda_device.h"
#endif

namespace graft {
namespace {

using testing::all_close;

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

std::int64_t cuda_bytes() { return memory_stats(kCUDA).current_bytes; }

TEST(CudaRuntime, FloatRoundTripIsExact) {
  GRAFT_REQUIRE_CUDA();
  Generator gen(1);
  for (std::int64_t n : {0, 1, 7, 33, 1000003}) {
    Tensor host = Tensor::randn({n}, gen);
    Tensor dev = host.to(kCUDA);
    EXPECT_TRUE(dev.is_cuda());
    EXPECT_EQ(dev.shape(), host.shape());
    EXPECT_EQ(dev.dtype(), DType::Float32);
    EXPECT_EQ(dev.to(kCUDA).data<float>(), dev.data<float>()) << "to(own device) must not copy";
    Tensor back = dev.to(kCPU);
    EXPECT_TRUE(back.device().is_cpu());
    EXPECT_TRUE(same_bits(back.to_vector(), host.to_vector())) << "n=" << n;
    EXPECT_TRUE(same_bits(dev.to_vector(), host.to_vector())) << "to_vector of a CUDA tensor, n=" << n;
  }
  Tensor from_values = Tensor::from_vector(std::vector<float>{1.5f, -2.f, 3.25f, 0.f, -0.f, 1e-30f}, {2, 3}, kCUDA);
  EXPECT_TRUE(from_values.is_cuda());
  EXPECT_EQ(from_values.to_vector(), (std::vector<float>{1.5f, -2.f, 3.25f, 0.f, -0.f, 1e-30f}));
}

TEST(CudaRuntime, Int32RoundTripIsExact) {
  GRAFT_REQUIRE_CUDA();
  for (std::int64_t n : {1, 7, 1000003}) {
    std::vector<std::int32_t> values(static_cast<std::size_t>(n));
    for (std::int64_t i = 0; i < n; ++i) values[static_cast<std::size_t>(i)] = static_cast<std::int32_t>(i * 2654435761u);
    values[0] = INT_MIN;
    values.back() = INT_MAX;
    Tensor dev = Tensor::from_vector(values, {n}, kCUDA);
    EXPECT_TRUE(dev.is_cuda());
    EXPECT_EQ(dev.dtype(), DType::Int32);
    EXPECT_EQ(dev.to_int_vector(), values);
    Tensor host = dev.to(kCPU);
    EXPECT_EQ(host.dtype(), DType::Int32);
    EXPECT_EQ(host.to_int_vector(), values);
    EXPECT_EQ(host.to(kCUDA).to(kCPU).to_int_vector(), values);
  }
}

// copy_from between overlapping views of a CUDA tensor, either way round: staged through a temporary (a device copy
// between overlapping ranges is undefined).
TEST(CudaRuntime, CopyBetweenOverlappingViews) {
  GRAFT_REQUIRE_CUDA();
  Tensor t = Tensor::arange(6).to(kCUDA);
  t.slice(0, 5).copy_from(t.slice(1, 6));
  EXPECT_EQ(t.to_vector(), (std::vector<float>{1, 2, 3, 4, 5, 5}));
  Tensor u = Tensor::arange(6).to(kCUDA);
  u.slice(1, 6).copy_from(u.slice(0, 5));
  EXPECT_EQ(u.to_vector(), (std::vector<float>{0, 0, 1, 2, 3, 4}));
}

TEST(CudaRuntime, ViewsAndSlicesOfCudaTensors) {
  GRAFT_REQUIRE_CUDA();
  Generator gen(2);
  Tensor host = Tensor::uniform({6, 5, 3}, gen, -1.f, 1.f);
  Tensor dev = host.to(kCUDA);
  Tensor rows = dev.slice(2, 5);  // a view 30 floats in: not 16-byte aligned
  EXPECT_TRUE(rows.is_cuda());
  EXPECT_EQ(rows.data<float>(), dev.data<float>() + 2 * 5 * 3);
  EXPECT_TRUE(same_bits(rows.to_vector(), host.slice(2, 5).to_vector()));
  EXPECT_EQ(dev.reshape({30, 3}).data<float>(), dev.data<float>());
  EXPECT_TRUE(same_bits(dev.flatten(1).to_vector(), host.to_vector()));
  EXPECT_TRUE(same_bits(host.slice(1, 4).to(kCUDA).to_vector(), host.slice(1, 4).to_vector())) << "CPU view upload";
  // Ops on misaligned views read the right window.
  EXPECT_TRUE(all_close(relu(dev.slice(1, 4)), relu(host.slice(1, 4)), 0.f, 0.f));
  EXPECT_TRUE(all_close(add(dev.slice(1, 4), dev.slice(3, 6)), add(host.slice(1, 4), host.slice(3, 6)), 0.f, 0.f));
  EXPECT_TRUE(all_close(sum(dev.slice(1, 6), 0), sum(host.slice(1, 6), 0), 1e-6f, 1e-6f));  // 5 terms of size 1
  // clone is a deep copy on the device.
  Tensor copy = dev.clone();
  EXPECT_TRUE(copy.is_cuda());
  EXPECT_NE(copy.data<float>(), dev.data<float>());
  EXPECT_TRUE(same_bits(copy.to_vector(), host.to_vector()));
  // The gradient through a slice lands in the sliced rows only.
  Tensor leaf = host.to(kCUDA);
  leaf.set_requires_grad(true);
  Tensor w = Tensor::uniform({3, 5, 3}, gen, 0.5f, 1.5f);
  sum(mul(leaf.slice(2, 5), w.to(kCUDA))).backward();
  ASSERT_TRUE(leaf.grad().defined());
  EXPECT_TRUE(leaf.grad().is_cuda());
  std::vector<float> expected(6 * 5 * 3, 0.f), wv = w.to_vector();
  std::copy(wv.begin(), wv.end(), expected.begin() + 2 * 5 * 3);
  EXPECT_EQ(leaf.grad().to_vector(), expected);
}

TEST(CudaRuntime, MemoryStatsFollowAllocationsAndThePoolKeepsMemory) {
  GRAFT_REQUIRE_CUDA();
#if GRAFT_HAS_CUDA
  cuda::synchronize();  // creates the context; pending frees of earlier tests settle
  reset_peak_memory(kCUDA);
  const MemoryStats before = memory_stats(kCUDA);
  EXPECT_EQ(before.peak_bytes, before.current_bytes);
  const std::int64_t n = 1000003, bytes = 4 * n;
  cudaMemPool_t pool = nullptr;
  GRAFT_CUDA_CHECK(cudaDeviceGetDefaultMemPool(&pool, 0));
  auto pool_bytes = [&](cudaMemPoolAttr attribute) {
    cuda::synchronize();
    std::uint64_t value = 0;
    GRAFT_CUDA_CHECK(cudaMemPoolGetAttribute(pool, attribute, &value));
    return static_cast<std::int64_t>(value);
  };
  std::int64_t reserved_while_held = 0, used_while_held = 0;
  {
    Tensor t = Tensor::empty({n}, kCUDA);
    EXPECT_EQ(memory_stats(kCUDA).current_bytes, before.current_bytes + bytes);
    EXPECT_EQ(memory_stats(kCUDA).peak_bytes, before.current_bytes + bytes);
    Tensor view = t.slice(10, 20).reshape({-1});
    Tensor host = t.to(kCPU);  // host memory is counted separately
    EXPECT_EQ(memory_stats(kCUDA).current_bytes, before.current_bytes + bytes) << "views and host copies are free";
    reserved_while_held = pool_bytes(cudaMemPoolAttrReservedMemCurrent);
    used_while_held = pool_bytes(cudaMemPoolAttrUsedMemCurrent);
    EXPECT_GE(used_while_held, bytes);
  }
  const MemoryStats after = memory_stats(kCUDA);
  EXPECT_EQ(after.current_bytes, before.current_bytes) << "graft's counter drops at free";
  EXPECT_EQ(after.peak_bytes, before.current_bytes + bytes) << "the peak remembers";
  EXPECT_LE(pool_bytes(cudaMemPoolAttrUsedMemCurrent), used_while_held - bytes) << "the block went back to the pool";
  EXPECT_EQ(pool_bytes(cudaMemPoolAttrReservedMemCurrent), reserved_while_held) << "the pool keeps freed memory";
  reset_peak_memory(kCUDA);
  EXPECT_EQ(memory_stats(kCUDA).peak_bytes, before.current_bytes);
#endif
}

TEST(CudaRuntime, AllocatingMoreThanTheCardThrowsAndTheEngineStaysUsable) {
  GRAFT_REQUIRE_CUDA();
#if GRAFT_HAS_CUDA
  const std::int64_t n = testing::floats_beyond_the_card();
  const std::int64_t before = cuda_bytes();
  try {
    Tensor too_big = Tensor::empty({n}, kCUDA);
    ADD_FAILURE() << "allocating " << 4 * n << " bytes (more than the card) did not throw";
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find(std::to_string(4 * n)), std::string::npos) << message;
    EXPECT_NE(message.find("bytes"), std::string::npos) << message;
  }
  EXPECT_EQ(cuda_bytes(), before) << "a failed allocation is not counted";
  Generator gen(3);
  Tensor x = Tensor::randn({1000, 33}, gen);
  EXPECT_TRUE(all_close(relu(add(x.to(kCUDA), 0.5f)), relu(add(x, 0.5f)), 0.f, 0.f));
  EXPECT_TRUE(all_close(sum(x.to(kCUDA), 0), sum(x, 0), 1e-4f, 1e-5f));  // 1000 terms of size 1
#endif
}

TEST(CudaRuntime, MixedDeviceOpsThrow) {
  GRAFT_REQUIRE_CUDA();
  Tensor cpu = Tensor::ones({4, 3}), gpu = Tensor::ones({4, 3}, kCUDA);
  Tensor labels = Tensor::from_vector(std::vector<std::int32_t>{0, 1, 2, 0}, {4});
  auto expect_device_error = [](const auto& run, const char* op) {
    try {
      run();
      ADD_FAILURE() << op << " on mixed devices did not throw";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("different devices"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(op), std::string::npos) << e.what();
    }
  };
  expect_device_error([&] { add(cpu, gpu); }, "add");
  expect_device_error([&] { div(gpu, cpu); }, "div");
  expect_device_error([&] { matmul(cpu, gpu.reshape({3, 4})); }, "matmul");
  expect_device_error([&] { linear(cpu, gpu); }, "linear");
  expect_device_error([&] { linear(gpu, gpu, Tensor::ones({4})); }, "linear");
  expect_device_error([&] { softmax_cross_entropy(gpu, labels); }, "softmax_cross_entropy");
  // conv2d's input, weight and bias (test_conv.cpp's Conv2dErrors.DeviceMix, which sits in the CPU binary)
  Tensor image = Tensor::zeros({1, 5, 5, 3}, kCUDA), filters = Tensor::zeros({4, 3, 3, 3});
  expect_device_error([&] { conv2d(image, filters, std::nullopt); }, "conv2d");
  expect_device_error([&] { conv2d(image, filters.to(kCUDA), Tensor::zeros({4})); }, "conv2d");
}

// A label outside [0, C) on the GPU: the kernel, not a host read (which would synchronise every step), checks it
// and makes that loss and its gradient NaN, which the trainer reports; a valid batch is unaffected.
TEST(CudaRuntime, CrossEntropyBadLabelOnTheGpuGivesNaN) {
  GRAFT_REQUIRE_CUDA();
  Generator gen(31);
  Tensor logits = Tensor::randn({3, 5}, gen).to(kCUDA);
  logits.set_requires_grad(true);
  Tensor loss = softmax_cross_entropy(logits, Tensor::from_vector(std::vector<std::int32_t>{1, 7, 0}, {3}, kCUDA));
  EXPECT_TRUE(std::isnan(loss.item()));
  loss.backward();
  const std::vector<float> grad = logits.grad().to_vector();
  EXPECT_TRUE(std::isnan(grad[5]) && std::isnan(grad[9])) << "row 1's gradient";
  EXPECT_FALSE(std::isnan(softmax_cross_entropy(logits.detach(), Tensor::from_vector(std::vector<std::int32_t>{1, 4, 0},
                                                                                       {3}, kCUDA)).item()));
}

// Labels a linear teacher gives x: learnable, so the loss must fall.
Tensor teacher_labels(const Tensor& x, const Tensor& teacher) {
  const std::vector<float> scores = matmul(x, teacher).to_vector();
  const std::int64_t rows = x.dim(0), classes = teacher.dim(1);
  std::vector<std::int32_t> labels;
  for (std::int64_t r = 0; r < rows; ++r) {
    auto row = scores.begin() + r * classes;
    labels.push_back(static_cast<std::int32_t>(std::max_element(row, row + classes) - row));
  }
  return Tensor::from_vector(labels, {rows});
}

// One SGD step on params (in place of the vector), returning the loss.
float sgd_step(std::vector<Tensor>& p, const Tensor& x, const Tensor& labels, float lr) {
  Tensor h = relu(linear(x, p[0], p[1]));
  Tensor loss = softmax_cross_entropy(linear(h, p[2], p[3]), labels, 0.1f);
  loss.backward();
  NoGradGuard no_grad;
  for (Tensor& t : p) {
    t = sub(t, mul(t.grad(), lr));
    t.set_requires_grad(true);
  }
  return loss.item();
}

// Strict FP32 on both devices: only summation order differs, ~1e-6, which 20 steps do not amplify past 1e-4.
TEST(CudaRuntime, MlpTrainsTheSameOnCpuAndCuda) {
  GRAFT_REQUIRE_CUDA();
#if GRAFT_HAS_CUDA
  struct Strict {
    bool saved = cuda::tf32_allowed();
    Strict() { cuda::set_tf32_allowed(false); }
    ~Strict() { cuda::set_tf32_allowed(saved); }
  } strict;
#endif
  Generator gen(4);
  Tensor x = Tensor::randn({64, 20}, gen);
  Tensor labels = teacher_labels(x, Tensor::randn({20, 5}, gen));
  std::vector<Tensor> cpu = {Tensor::randn({32, 20}, gen, kCPU, 0.f, 0.3f), Tensor::uniform({32}, gen, -0.1f, 0.1f),
                             Tensor::randn({5, 32}, gen, kCPU, 0.f, 0.3f), Tensor::uniform({5}, gen, -0.1f, 0.1f)};
  std::vector<Tensor> gpu;
  for (Tensor& t : cpu) {
    gpu.push_back(t.to(kCUDA));
    t.set_requires_grad(true);
    gpu.back().set_requires_grad(true);
  }
  Tensor x_gpu = x.to(kCUDA), labels_gpu = labels.to(kCUDA);
  std::vector<float> losses_cpu, losses_gpu;
  for (int step = 0; step < 20; ++step) {
    losses_cpu.push_back(sgd_step(cpu, x, labels, 0.5f));
    losses_gpu.push_back(sgd_step(gpu, x_gpu, labels_gpu, 0.5f));
    EXPECT_NEAR(losses_gpu.back(), losses_cpu.back(), 1e-4 * std::fabs(losses_cpu.back())) << "step " << step;
  }
  EXPECT_LT(losses_cpu.back(), 0.8f * losses_cpu.front()) << "the MLP did not learn";
  for (std::size_t i = 0; i < cpu.size(); ++i) {
    EXPECT_TRUE(gpu[i].is_cuda());
    EXPECT_TRUE(all_close(gpu[i], cpu[i], 1e-5f, 1e-4f)) << "parameter " << i;
  }
}

TEST(CudaRuntime, BackwardOnCudaAccumulates) {
  GRAFT_REQUIRE_CUDA();
  Generator gen(5);
  Tensor host = Tensor::uniform({33, 7}, gen, -1.f, 1.f);
  Tensor x = host.to(kCUDA);
  x.set_requires_grad(true);
  sum(mul(exp(x), x)).backward();  // d/dx x e^x = e^x (1 + x)
  ASSERT_TRUE(x.grad().defined());
  EXPECT_TRUE(x.grad().is_cuda());
  Tensor expected = mul(exp(host), add(host, 1.f));
  EXPECT_TRUE(all_close(x.grad(), expected, 1e-6f, 1e-5f));
  sum(mul(exp(x), x)).backward();  // gradients accumulate
  EXPECT_TRUE(all_close(x.grad(), mul(expected, 2.f), 1e-6f, 1e-5f));
  x.zero_grad();
  EXPECT_FALSE(x.grad().defined());
}

TEST(CudaRuntime, NoGradRecordsNothingAndHoldsOnlyTheOutput) {
  GRAFT_REQUIRE_CUDA();
  Generator gen(6);
  Tensor x = Tensor::randn({64, 300}, gen).to(kCUDA), w = Tensor::randn({500, 300}, gen).to(kCUDA);
  w.set_requires_grad(true);
  const std::int64_t before = cuda_bytes();
  NoGradGuard no_grad;
  Tensor y = relu(linear(exp(x), w));  // the intermediates die with their temporaries
  EXPECT_FALSE(y.requires_grad());
  EXPECT_TRUE(y.is_leaf());
  EXPECT_EQ(cuda_bytes() - before, 64 * 500 * 4) << "only the output is alive";
}

// Weight files and a model on the GPU, without fixture files (the device check has none): a CPU model's export
// loads into a GPU model, and the GPU model's exports (torchvision and Keras) are the CPU's, dataset for dataset.
TEST(CudaRuntime, WeightFilesLoadIntoAndExportFromAGpuModel) {
  GRAFT_REQUIRE_CUDA();
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("graft_cuda_weights_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  for (Dialect dialect : {Dialect::Torchvision, Dialect::Keras}) {
    ModelOptions options;
    options.dialect = dialect, options.num_classes = 7;
    options.seed = 1;
    auto cpu = make_model("resnet50", options);
    options.seed = 2;
    auto gpu = make_model("resnet50", options);
    gpu->to(kCUDA);
    const bool torch = dialect == Dialect::Torchvision;
    auto write = [&](const Module& m, const std::string& name) {
      const std::string path = (dir / name).string();
      torch ? export_torchvision(m, path) : export_keras(m, path);
      return path;
    };
    const std::string from_cpu = write(*cpu, "from_cpu.h5");
    load_weights(*gpu, from_cpu);
    for (auto& [name, t] : cpu->state()) {
      ASSERT_TRUE(gpu->state()[name].is_cuda()) << name;
      EXPECT_TRUE(same_bits(t.to_vector(), gpu->state()[name].to(kCPU).to_vector())) << name;
    }
    testing::expect_same_datasets(from_cpu, write(*gpu, "from_gpu.h5"));
  }
  std::filesystem::remove_all(dir);
}

// A frozen prefix records no graph, so its activations are freed as soon as the forward moves on; with the
// same prefix trainable, the first hidden activation stays saved for the backward.
TEST(CudaRuntime, FrozenPrefixSavesNoActivations) {
  GRAFT_REQUIRE_CUDA();
  Generator gen(7);
  const std::int64_t batch = 64, hidden = 1000, classes = 10;
  Tensor x = Tensor::randn({batch, 100}, gen).to(kCUDA);
  Tensor labels = Tensor::from_vector(std::vector<std::int32_t>(batch, 3), {batch}, kCUDA);
  Tensor w1 = Tensor::randn({hidden, 100}, gen, kCPU, 0.f, 0.1f).to(kCUDA);
  Tensor w2 = Tensor::randn({hidden, hidden}, gen, kCPU, 0.f, 0.03f).to(kCUDA);
  Tensor head = Tensor::randn({classes, hidden}, gen, kCPU, 0.f, 0.03f).to(kCUDA);
  head.set_requires_grad(true);
  auto loss_fn = [&] {
    Tensor h2 = relu(linear(relu(linear(x, w1)), w2));
    return softmax_cross_entropy(linear(h2, head), labels);
  };
  const std::int64_t activation = batch * hidden * 4;

  std::int64_t before = cuda_bytes();
  Tensor frozen_loss = loss_fn();
  const std::int64_t frozen_held = cuda_bytes() - before;
  // Held: h2 (saved by the head), the softmax probabilities and the loss itself; nothing of the prefix.
  EXPECT_LE(frozen_held, activation + batch * classes * 4 + 1024);
  frozen_loss.backward();
  EXPECT_TRUE(head.grad().defined());
  EXPECT_FALSE(w1.grad().defined());
  EXPECT_FALSE(w2.grad().defined());
  frozen_loss = Tensor();

  w1.set_requires_grad(true);
  w2.set_requires_grad(true);
  before = cuda_bytes();
  Tensor trainable_loss = loss_fn();
  const std::int64_t trainable_held = cuda_bytes() - before;
  EXPECT_GE(trainable_held, frozen_held + activation) << "the trainable prefix keeps relu(x w1^T) for w2's gradient";
  trainable_loss.backward();
  EXPECT_TRUE(w1.grad().defined() && w2.grad().defined());
  EXPECT_TRUE(w1.grad().is_cuda());
}

}  // namespace
}  // namespace graft
