// CUDA benchmarks of the layer kernels other than convolutions at ResNet-50 (torchvision) training shapes, batch 64,
// 224x224 input: the very launchers of kernels/*.h that the engine calls, on graft's compute stream, timed with CUDA
// events after a warm-up (helpers and conventions: bench/cuda_bench.h, bench/README.md; the convolutions:
// bench/bench_conv_cuda.cpp).
// - batch norm (training: batch statistics + normalise; backward: reduce + input gradient), max pool 3x3/2 and
//   global average pool: bytes/s (every byte read plus every byte written once, as the copy baseline counts) and
//   pct_of_copy against the device-to-device copy measured at start (bench_cuda_main.cpp); batch norm also as
//   cuDNN runs it (cudnnBatchNormalization*), the library reference, with the same byte counts.
// - one optimizer step (SGD momentum, AdamW) over all 161 ResNet-50 parameter tensors (25.6M floats), one launch
//   per tensor, and the SGD step with the multi-tensor launcher graft's optimizers use on CUDA (3 launches of up
//   to kOptimizerMultiTensors tensors, table built on the host inside the timing): bytes/s and pct_of_copy.
// Operands rotate over rotation_sets() copies so that no launch finds the previous launch's operands in L2.
#include <cudnn.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "bench/cuda_bench.h"
#include "kernels/batch_norm.h"
#include "kernels/cudnn_check.h"
#include "kernels/optimizer.h"
#include "kernels/pool.h"

namespace graft::bench {
namespace {

constexpr std::int64_t kBatch = 64;

// ---- batch norm (training) at ResNet-50 activation shapes, viewed as (M = N*H*W, C) ---------------------------

// forward: batch_norm_stats (one pass: sum x, sum x^2 per channel, plus the running update) + batch_norm_forward.
//   bytes = read x (stats) + read x, write y (normalise) = 3*M*C floats (the per-channel vectors are negligible).
void BM_batch_norm_forward_cuda(benchmark::State& state) {
  guarded(state, [&] {
    const std::int64_t hw = state.range(0), c = state.range(1), m = kBatch * hw * hw, n = m * c;
    const int sets = rotation_sets(3 * n * kF);
    auto x = random_buffers(sets, n, 600), y = random_buffers(sets, n, 601);
    auto gamma = random_buffers(1, c, 602, 0.5f, 1.5f), beta = random_buffers(1, c, 603);
    auto mean = random_buffers(1, c, 604), invstd = random_buffers(1, c, 605);
    auto running_mean = random_buffers(1, c, 606), running_var = random_buffers(1, c, 607, 0.5f, 1.5f);
    DeviceBuffer workspace(std::max<std::size_t>(batch_norm_workspace_cuda(m, c), 8));
    const double t = run_timed(state, sets, [&](int s) {
      batch_norm_stats_cuda(mean[0].f(), invstd[0].f(), running_mean[0].f(), running_var[0].f(), x[s].f(), m, c,
                            1e-5f, 0.1f, workspace.f());
      batch_norm_forward_cuda(y[s].f(), x[s].f(), mean[0].f(), invstd[0].f(), gamma[0].f(), beta[0].f(), m, c);
    });
    report_bandwidth(state, sets, 3 * n * kF, t, tuple_label({kBatch, hw, hw, c}) + " stats+normalise");
  });
}

// backward (batch statistics): batch_norm_backward_reduce (read dy, x) + batch_norm_backward_input (read dy, x,
// write dx) = 5*M*C floats.
void BM_batch_norm_backward_cuda(benchmark::State& state) {
  guarded(state, [&] {
    const std::int64_t hw = state.range(0), c = state.range(1), m = kBatch * hw * hw, n = m * c;
    const int sets = rotation_sets(5 * n * kF);
    auto x = random_buffers(sets, n, 610), dy = random_buffers(sets, n, 611), dx = random_buffers(sets, n, 612);
    auto gamma = random_buffers(1, c, 613, 0.5f, 1.5f);
    auto mean = random_buffers(1, c, 614, -0.1f, 0.1f), invstd = random_buffers(1, c, 615, 0.5f, 2.f);
    auto dgamma = random_buffers(1, c, 616), dbeta = random_buffers(1, c, 617);
    DeviceBuffer workspace(std::max<std::size_t>(batch_norm_workspace_cuda(m, c), 8));
    const double t = run_timed(state, sets, [&](int s) {
      batch_norm_backward_reduce_cuda(dgamma[0].f(), dbeta[0].f(), dy[s].f(), x[s].f(), mean[0].f(), invstd[0].f(),
                                      m, c, workspace.f());
      batch_norm_backward_input_cuda(dx[s].f(), dy[s].f(), x[s].f(), mean[0].f(), invstd[0].f(), gamma[0].f(),
                                     dbeta[0].f(), dgamma[0].f(), m, c, true);
    });
    report_bandwidth(state, sets, 5 * n * kF, t, tuple_label({kBatch, hw, hw, c}) + " reduce+input");
  });
}
// backward of the fused bn -> relu (no residual), its relu mask y > 0 taken two ways (kernels/batch_norm.h
// ReluMask): read from the saved output y (from_y: reduce reads dy, x, y; input reads dy, x, y, writes dx = 7*M*C
// floats), or recomputed from x as gamma xhat + beta > 0 (from_x: 5*M*C floats, what the op does since 2026-11-27).
// Compare the times: each row's pct_of_copy counts its own bytes.
void BM_batch_norm_relu_backward_cuda(benchmark::State& state) {
  guarded(state, [&] {
    const std::int64_t hw = state.range(0), c = state.range(1), m = kBatch * hw * hw, n = m * c;
    const bool from_x = state.range(2) != 0;
    const std::int64_t floats = (from_x ? 5 : 7) * n;
    const int sets = rotation_sets(7 * n * kF);
    auto x = random_buffers(sets, n, 620), dy = random_buffers(sets, n, 621), dx = random_buffers(sets, n, 622);
    auto y = random_buffers(sets, n, 623);
    auto gamma = random_buffers(1, c, 624, 0.5f, 1.5f), beta = random_buffers(1, c, 625);
    auto mean = random_buffers(1, c, 626, -0.1f, 0.1f), invstd = random_buffers(1, c, 627, 0.5f, 2.f);
    auto dgamma = random_buffers(1, c, 628), dbeta = random_buffers(1, c, 629);
    DeviceBuffer workspace(std::max<std::size_t>(batch_norm_workspace_cuda(m, c), 8));
    const double t = run_timed(state, sets, [&](int s) {
      const ReluMask relu = from_x ? ReluMask::of_input(gamma[0].f(), beta[0].f()) : ReluMask::of_output(y[s].f());
      batch_norm_backward_reduce_cuda(dgamma[0].f(), dbeta[0].f(), dy[s].f(), x[s].f(), mean[0].f(), invstd[0].f(),
                                      m, c, workspace.f(), relu);
      batch_norm_backward_input_cuda(dx[s].f(), dy[s].f(), x[s].f(), mean[0].f(), invstd[0].f(), gamma[0].f(),
                                     dbeta[0].f(), dgamma[0].f(), m, c, true, relu);
    });
    const std::string mask = from_x ? " relu mask from x (5 passes)" : " relu mask from y (7 passes)";
    report_bandwidth(state, sets, floats * kF, t, tuple_label({kBatch, hw, hw, c}) + mask);
  });
}

// (H=W, C): the bottleneck outputs of layer1, layer3, layer4, and the stem's 112x112x64.
BENCHMARK(BM_batch_norm_forward_cuda)
    ->ArgNames({"hw", "c"})->Args({112, 64})->Args({56, 256})->Args({14, 1024})->Args({7, 2048})
    ->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_batch_norm_backward_cuda)
    ->ArgNames({"hw", "c"})->Args({112, 64})->Args({56, 256})->Args({14, 1024})->Args({7, 2048})
    ->UseManualTime()->Unit(benchmark::kMicrosecond);
// (H=W, C, from_x): the stem's bn -> relu and a layer-1 bottleneck's inner one (its 64 channels at 56x56).
BENCHMARK(BM_batch_norm_relu_backward_cuda)
    ->ArgNames({"hw", "c", "from_x"})->Args({112, 64, 0})->Args({112, 64, 1})->Args({56, 64, 0})->Args({56, 64, 1})
    ->UseManualTime()->Unit(benchmark::kMicrosecond);

// The library reference: cuDNN's own batch norm (cudnnBatchNormalizationForwardTrainingEx / BackwardEx, batch
// statistics, the running averages updated; the calls PyTorch makes for channels_last tensors) on the same NHWC
// float tensors, counted with the same bytes as graft's rows above, so the two pct_of_copy columns compare directly.
// Mode CUDNN_BATCHNORM_SPATIAL_PERSISTENT (cuDNN's NHWC "semiPersist" kernels), or CUDNN_BATCHNORM_SPATIAL where
// cuDNN does not support it for a shape; the label names the mode the calls were accepted in. (The first H100 run of
// these rows, 2026-11-27, used the non-Ex calls: on NHWC tensors cuDNN then ran generic kernels at 3-7% of the copy,
// no fair reference; PyTorch's channels_last profile shows the Ex kernels at full speed.)
class CudnnBatchNorm {
 public:
  CudnnBatchNorm(std::int64_t n, std::int64_t hw, std::int64_t c) {
    GRAFT_CUDNN_CHECK(cudnnSetStream(handle_.get(), cuda::stream()));
    GRAFT_CUDNN_CHECK(cudnnSetTensor4dDescriptor(x_.get(), CUDNN_TENSOR_NHWC, CUDNN_DATA_FLOAT, static_cast<int>(n),
                                                 static_cast<int>(c), static_cast<int>(hw), static_cast<int>(hw)));
    GRAFT_CUDNN_CHECK(cudnnDeriveBNTensorDescriptor(bn_.get(), x_.get(), CUDNN_BATCHNORM_SPATIAL));
    // Each mode's workspace and reserve-space sizes, asked once here so that the timed calls make no queries. A
    // mode cuDNN does not support for this shape answers NOT_SUPPORTED (its sizes stay 0: its calls will be refused
    // too); any other failure is an error here rather than a confusing one later.
    for (int m = 0; m < 2; ++m) {
      const cudnnBatchNormMode_t mode = kModes[m];
      auto ask = [&](cudnnStatus_t status, std::size_t bytes, std::size_t& into) {
        if (status == CUDNN_STATUS_SUCCESS) into = std::max(into, bytes);
        else GRAFT_CHECK(CUDNN_STATUS_CATEGORY(status) == CUDNN_STATUS_NOT_SUPPORTED,
                         "cuDNN batch norm size query: ", cudnnGetErrorString(status));
      };
      std::size_t bytes = 0;
      // The descriptors as PyTorch's size queries pass them (x for z and y; no dz).
      ask(cudnnGetBatchNormalizationForwardTrainingExWorkspaceSize(handle_.get(), mode, CUDNN_BATCHNORM_OPS_BN,
                                                                   x_.get(), x_.get(), x_.get(), bn_.get(), nullptr,
                                                                   &bytes),
          bytes, workspace_bytes_[m]);
      bytes = 0;
      ask(cudnnGetBatchNormalizationBackwardExWorkspaceSize(handle_.get(), mode, CUDNN_BATCHNORM_OPS_BN, x_.get(),
                                                            x_.get(), x_.get(), nullptr, x_.get(), bn_.get(), nullptr,
                                                            &bytes),
          bytes, workspace_bytes_[m]);
      bytes = 0;
      ask(cudnnGetBatchNormalizationTrainingExReserveSpaceSize(handle_.get(), mode, CUDNN_BATCHNORM_OPS_BN, nullptr,
                                                               x_.get(), &bytes),
          bytes, reserve_bytes_[m]);
    }
    cudaGetLastError();
    const std::size_t workspace = std::max(workspace_bytes_[0], workspace_bytes_[1]);
    workspace_ = std::make_unique<DeviceBuffer>(workspace);  // of 0 bytes: a null pointer
  }
  // The mode cuDNN accepted the calls in (the legacy API does not say which kernels it ran in it).
  const char* mode_name() const { return mode_ == CUDNN_BATCHNORM_SPATIAL_PERSISTENT ? "persistent" : "spatial"; }
  // Room for the reserve space a forward fills and its backward reads, in either mode (bytes; may be 0).
  std::size_t reserve_bytes() const { return std::max(reserve_bytes_[0], reserve_bytes_[1]); }

  // y = BN(x) with batch statistics; saves mean and 1/std, updates the running averages, fills `reserve`.
  cudnnStatus_t forward(float* y, const float* x, const float* gamma, const float* beta, float* running_mean,
                        float* running_var, float* save_mean, float* save_invstd, void* reserve) const {
    const float one = 1.f, zero = 0.f;
    return cudnnBatchNormalizationForwardTrainingEx(
        handle_.get(), mode_, CUDNN_BATCHNORM_OPS_BN, &one, &zero, x_.get(), x, nullptr, nullptr, x_.get(), y,
        bn_.get(), gamma, beta, 0.1, running_mean, running_var, 1e-5, save_mean, save_invstd, nullptr, workspace(),
        workspace_bytes_[index()], reserve, reserve_bytes_[index()]);
  }
  // dx, dgamma, dbeta from dy and what the forward of the same x saved (mean, 1/std, `reserve`).
  cudnnStatus_t backward(float* dx, const float* dy, const float* x, const float* gamma, const float* beta,
                         float* dgamma, float* dbeta, const float* save_mean, const float* save_invstd,
                         void* reserve) const {
    const float one = 1.f, zero = 0.f;
    return cudnnBatchNormalizationBackwardEx(
        handle_.get(), mode_, CUDNN_BATCHNORM_OPS_BN, &one, &zero, &one, &zero, x_.get(), x, nullptr, nullptr,
        x_.get(), dy, nullptr, nullptr, x_.get(), dx, bn_.get(), gamma, beta, dgamma, dbeta, 1e-5, save_mean,
        save_invstd, nullptr, workspace(), workspace_bytes_[index()], reserve, reserve_bytes_[index()]);
  }
  // Runs `call` in persistent mode; if cuDNN does not support that mode here, switches to spatial and runs it again.
  // Any other failure is an error.
  template <typename Call>
  void choose_mode(Call&& call) {
    mode_ = CUDNN_BATCHNORM_SPATIAL_PERSISTENT;
    const cudnnStatus_t status = call();
    if (status == CUDNN_STATUS_SUCCESS) return;
    GRAFT_CHECK(CUDNN_STATUS_CATEGORY(status) == CUDNN_STATUS_NOT_SUPPORTED,
                "cuDNN batch norm in persistent mode: ", cudnnGetErrorString(status));
    cudaGetLastError();
    mode_ = CUDNN_BATCHNORM_SPATIAL;
    GRAFT_CUDNN_CHECK(call());
  }

 private:
  static constexpr cudnnBatchNormMode_t kModes[2] = {CUDNN_BATCHNORM_SPATIAL_PERSISTENT, CUDNN_BATCHNORM_SPATIAL};
  int index() const { return mode_ == kModes[0] ? 0 : 1; }
  void* workspace() const { return workspace_->as<void>(); }

  cudnn::Owned<cudnnHandle_t, cudnnCreate, cudnnDestroy> handle_;
  cudnn::Owned<cudnnTensorDescriptor_t, cudnnCreateTensorDescriptor, cudnnDestroyTensorDescriptor> x_, bn_;
  cudnnBatchNormMode_t mode_ = CUDNN_BATCHNORM_SPATIAL_PERSISTENT;
  std::unique_ptr<DeviceBuffer> workspace_;
  std::size_t workspace_bytes_[2] = {0, 0}, reserve_bytes_[2] = {0, 0};  // per mode, kModes' order
};

void BM_batch_norm_forward_cudnn(benchmark::State& state) {
  guarded(state, [&] {
    const std::int64_t hw = state.range(0), c = state.range(1), n = kBatch * hw * hw * c;
    const int sets = rotation_sets(3 * n * kF);
    auto x = random_buffers(sets, n, 600), y = random_buffers(sets, n, 601);
    auto gamma = random_buffers(1, c, 602, 0.5f, 1.5f), beta = random_buffers(1, c, 603);
    auto mean = random_buffers(1, c, 604), invstd = random_buffers(1, c, 605);
    auto running_mean = random_buffers(1, c, 606), running_var = random_buffers(1, c, 607, 0.5f, 1.5f);
    CudnnBatchNorm bn(kBatch, hw, c);
    const DeviceBuffer reserve(bn.reserve_bytes());  // of 0 bytes: a null pointer
    auto launch = [&](int s) {
      return bn.forward(y[s].f(), x[s].f(), gamma[0].f(), beta[0].f(), running_mean[0].f(), running_var[0].f(),
                        mean[0].f(), invstd[0].f(), reserve.as<void>());
    };
    bn.choose_mode([&] { return launch(0); });
    const double t = run_timed(state, sets, [&](int s) { GRAFT_CUDNN_CHECK(launch(s)); });
    report_bandwidth(state, sets, 3 * n * kF, t,
                     tuple_label({kBatch, hw, hw, c}) + " cuDNN " + bn.mode_name() + " stats+normalise");
  });
}

void BM_batch_norm_backward_cudnn(benchmark::State& state) {
  guarded(state, [&] {
    const std::int64_t hw = state.range(0), c = state.range(1), n = kBatch * hw * hw * c;
    const int sets = rotation_sets(5 * n * kF);
    auto x = random_buffers(sets, n, 610), dy = random_buffers(sets, n, 611), dx = random_buffers(sets, n, 612);
    auto gamma = random_buffers(1, c, 613, 0.5f, 1.5f), beta = random_buffers(1, c, 618);
    auto mean = random_buffers(sets, c, 614), invstd = random_buffers(sets, c, 615);
    auto running_mean = random_buffers(1, c, 619), running_var = random_buffers(1, c, 620, 0.5f, 1.5f);
    auto dgamma = random_buffers(1, c, 616), dbeta = random_buffers(1, c, 617);
    CudnnBatchNorm bn(kBatch, hw, c);
    std::vector<DeviceBuffer> reserve;
    for (int s = 0; s < sets; ++s) reserve.emplace_back(bn.reserve_bytes());
    // Each set's forward (untimed) saves the statistics and the reserve space its backward reads, in the mode the
    // backward then runs in.
    auto forward_all = [&] {
      for (int s = 0; s < sets; ++s) {
        const cudnnStatus_t status = bn.forward(dx[s].f(), x[s].f(), gamma[0].f(), beta[0].f(), running_mean[0].f(),
                                                running_var[0].f(), mean[s].f(), invstd[s].f(), reserve[s].as<void>());
        if (status != CUDNN_STATUS_SUCCESS) return status;
      }
      return CUDNN_STATUS_SUCCESS;
    };
    auto launch = [&](int s) {
      return bn.backward(dx[s].f(), dy[s].f(), x[s].f(), gamma[0].f(), beta[0].f(), dgamma[0].f(), dbeta[0].f(),
                         mean[s].f(), invstd[s].f(), reserve[s].as<void>());
    };
    bn.choose_mode([&] {
      const cudnnStatus_t status = forward_all();
      return status == CUDNN_STATUS_SUCCESS ? launch(0) : status;
    });
    const double t = run_timed(state, sets, [&](int s) { GRAFT_CUDNN_CHECK(launch(s)); });
    report_bandwidth(state, sets, 5 * n * kF, t,
                     tuple_label({kBatch, hw, hw, c}) + " cuDNN " + bn.mode_name() + " reduce+input");
  });
}
BENCHMARK(BM_batch_norm_forward_cudnn)
    ->ArgNames({"hw", "c"})->Args({112, 64})->Args({56, 256})->Args({14, 1024})->Args({7, 2048})
    ->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_batch_norm_backward_cudnn)
    ->ArgNames({"hw", "c"})->Args({112, 64})->Args({56, 256})->Args({14, 1024})->Args({7, 2048})
    ->UseManualTime()->Unit(benchmark::kMicrosecond);

// ---- pooling --------------------------------------------------------------------------------------------------

// The stem's max pool: 3x3, stride 2, pad 1, 64x112x112x64 -> 64x56x56x64.
Pool2dShape stem_max_pool() {
  return Pool2dShape{kBatch, 112, 112, 64, 56, 56, 3, 3, 2, 2, 1, 1};
}

// forward: read the input, write the output and the int32 argmax: (n_in + 2*n_out) * 4 bytes.
void BM_max_pool2d_forward_cuda(benchmark::State& state) {
  guarded(state, [&] {
    const Pool2dShape ps = stem_max_pool();
    const std::int64_t n_in = ps.n * ps.h * ps.w * ps.c, n_out = ps.n * ps.p * ps.q * ps.c;
    const std::int64_t bytes = (n_in + 2 * n_out) * kF;
    const int sets = rotation_sets(bytes);
    auto x = random_buffers(sets, n_in, 620), y = random_buffers(sets, n_out, 621);
    auto argmax = random_buffers(sets, n_out, 622);  // int32 storage, same size as floats
    const double t = run_timed(state, sets, [&](int s) {
      max_pool2d_forward_cuda(y[s].f(), argmax[s].as<std::int32_t>(), x[s].f(), ps);
    });
    report_bandwidth(state, sets, bytes, t, tuple_label({ps.n, ps.h, ps.w, ps.c}) + " 3x3/2 pad 1");
  });
}
BENCHMARK(BM_max_pool2d_forward_cuda)->UseManualTime()->Unit(benchmark::kMicrosecond);

// backward (a gather: each input element reads the dout/argmax of the windows covering it):
// read dout and argmax, write dinp: (2*n_out + n_in) * 4 bytes.
void BM_max_pool2d_backward_cuda(benchmark::State& state) {
  guarded(state, [&] {
    const Pool2dShape ps = stem_max_pool();
    const std::int64_t n_in = ps.n * ps.h * ps.w * ps.c, n_out = ps.n * ps.p * ps.q * ps.c;
    const std::int64_t bytes = (n_in + 2 * n_out) * kF;
    const int sets = rotation_sets(bytes);
    auto x = random_buffers(sets, n_in, 623), dout = random_buffers(sets, n_out, 624);
    auto argmax = random_buffers(sets, n_out, 625);
    // Real argmax indices from a forward pass (the output goes to dout, overwritten again below).
    for (int s = 0; s < sets; ++s) max_pool2d_forward_cuda(dout[s].f(), argmax[s].as<std::int32_t>(), x[s].f(), ps);
    for (int s = 0; s < sets; ++s) uniform_cuda(dout[s].f(), n_out, 626 + static_cast<std::uint64_t>(s), 0, -1.f, 1.f);
    const double t = run_timed(state, sets, [&](int s) {
      max_pool2d_backward_cuda(x[s].f(), dout[s].f(), argmax[s].as<std::int32_t>(), ps);
    });
    report_bandwidth(state, sets, bytes, t, tuple_label({ps.n, ps.h, ps.w, ps.c}) + " 3x3/2 pad 1");
  });
}
BENCHMARK(BM_max_pool2d_backward_cuda)->UseManualTime()->Unit(benchmark::kMicrosecond);

// Global average pool before the classifier: 64x7x7x2048 -> 64x1x1x2048 (adaptive, P = Q = 1).
// forward: read n_in, write n_out; backward: read n_out, write n_in.
void BM_global_avg_pool_cuda(benchmark::State& state, bool backward) {
  guarded(state, [&] {
    const int h = 7, w = 7, c = 2048;
    const std::int64_t n_in = kBatch * h * w * c, n_out = kBatch * c;
    const std::int64_t bytes = (n_in + n_out) * kF;
    const int sets = rotation_sets(bytes);
    auto x = random_buffers(sets, n_in, 630), y = random_buffers(sets, n_out, 631);
    const double t = run_timed(state, sets, [&](int s) {
      if (backward)
        adaptive_avg_pool2d_backward_cuda(x[s].f(), y[s].f(), kBatch, h, w, c, 1, 1);
      else
        adaptive_avg_pool2d_forward_cuda(y[s].f(), x[s].f(), kBatch, h, w, c, 1, 1);
    });
    report_bandwidth(state, sets, bytes, t, tuple_label({kBatch, h, w, c}) + " -> (64,1,1,2048)");
  });
}
BENCHMARK_CAPTURE(BM_global_avg_pool_cuda, forward, false)->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_global_avg_pool_cuda, backward, true)->UseManualTime()->Unit(benchmark::kMicrosecond);

// ---- one optimizer step over all ResNet-50 parameters --------------------------------------------------------

// The element counts of ResNet-50's 161 parameter tensors in named_parameters() order (torchvision layout:
// conv1, bn1, layer1..4 bottlenecks [conv1 bn1 conv2 bn2 conv3 bn3 (downsample conv, bn)], fc): 25,557,032
// floats. Convs have no bias; each batch norm has a weight and a bias.
std::vector<std::int64_t> resnet50_parameter_sizes() {
  std::vector<std::int64_t> sizes;
  auto conv = [&](std::int64_t in, std::int64_t out, std::int64_t k) { sizes.push_back(out * k * k * in); };
  auto bn = [&](std::int64_t c) { sizes.insert(sizes.end(), {c, c}); };
  conv(3, 64, 7);
  bn(64);
  std::int64_t in = 64;
  const int blocks[4] = {3, 4, 6, 3};
  for (int layer = 0; layer < 4; ++layer) {
    const std::int64_t width = std::int64_t{64} << layer, out = 4 * width;
    for (int b = 0; b < blocks[layer]; ++b) {
      conv(in, width, 1);
      bn(width);
      conv(width, width, 3);
      bn(width);
      conv(width, out, 1);
      bn(out);
      if (b == 0) {  // downsample
        conv(in, out, 1);
        bn(out);
      }
      in = out;
    }
  }
  sizes.push_back(1000 * 2048);  // fc.weight
  sizes.push_back(1000);         // fc.bias
  return sizes;
}

// One parameter set: every tensor of the model at its own offset in one allocation per role (offsets rounded up to
// 64 floats = 256 bytes, the alignment separate allocations from graft's pool would have).
struct ParamLayout {
  std::vector<std::int64_t> sizes, offsets;
  std::int64_t total = 0, padded = 0;
};
ParamLayout resnet50_layout() {
  ParamLayout l;
  l.sizes = resnet50_parameter_sizes();
  for (std::int64_t size : l.sizes) {
    l.offsets.push_back(l.padded);
    l.total += size;
    l.padded += (size + 63) / 64 * 64;
  }
  return l;
}

std::string params_label(const ParamLayout& l) {
  return std::to_string(l.sizes.size()) + " tensors, " + std::to_string(l.total) + " floats";
}

// SGD, momentum 0.9, weight decay 1e-4 (not the first step: the buffer is read): read p, g, buf; write p, buf.
// `multi`: the same operands, bytes and seed through sgd_step_multi_cuda (as SGD::step runs it on CUDA) instead of
// one sgd_step_cuda launch per tensor.
void sgd_step_resnet50(benchmark::State& state, bool multi) {
  guarded(state, [&] {
    const ParamLayout l = resnet50_layout();
    const std::int64_t bytes = 5 * l.total * kF;
    const int sets = rotation_sets(bytes);
    auto p = random_buffers(sets, l.padded, 640), g = random_buffers(sets, l.padded, 641, -1e-2f, 1e-2f);
    auto buf = random_buffers(sets, l.padded, 642, -1e-2f, 1e-2f);
    std::vector<SGDMultiTensor> list(l.sizes.size());
    const double t = run_timed(state, sets, [&](int s) {
      for (std::size_t i = 0; i < l.sizes.size(); ++i) {
        const std::int64_t o = l.offsets[i];
        float *param = p[s].f() + o, *momentum = buf[s].f() + o, *grad = g[s].f() + o;
        if (multi) list[i] = {param, momentum, grad, l.sizes[i], false};
        else sgd_step_cuda(param, momentum, grad, l.sizes[i], 0.1f, 0.9f, 0.f, 1e-4f, false, false);
      }
      if (multi) sgd_step_multi_cuda(list, 0.1f, 0.9f, 0.f, 1e-4f, false);
    });
    const std::int64_t launches = multi ? (static_cast<std::int64_t>(l.sizes.size()) + kOptimizerMultiTensors - 1) /
                                              kOptimizerMultiTensors
                                        : static_cast<std::int64_t>(l.sizes.size());
    report_bandwidth(state, sets, bytes, t,
                     params_label(l) + " momentum" + (multi ? ", " + std::to_string(launches) + " launches" : ""));
  });
}
void BM_sgd_step_resnet50_cuda(benchmark::State& state) { sgd_step_resnet50(state, false); }
void BM_sgd_step_multi_resnet50_cuda(benchmark::State& state) { sgd_step_resnet50(state, true); }
BENCHMARK(BM_sgd_step_resnet50_cuda)->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_sgd_step_multi_resnet50_cuda)->UseManualTime()->Unit(benchmark::kMicrosecond);

// AdamW (decoupled weight decay 0.05), step 10: read p, g, m, v; write p, m, v. `multi`: the same operands
// through adam_step_multi_cuda (as Adam::step runs it on CUDA) instead of one adam_step_cuda launch per tensor.
void adamw_step_resnet50(benchmark::State& state, bool multi) {
  guarded(state, [&] {
    const ParamLayout l = resnet50_layout();
    const std::int64_t bytes = 7 * l.total * kF;
    const int sets = rotation_sets(bytes);
    auto p = random_buffers(sets, l.padded, 650), g = random_buffers(sets, l.padded, 651, -1e-2f, 1e-2f);
    auto m = random_buffers(sets, l.padded, 652, -1e-3f, 1e-3f), v = random_buffers(sets, l.padded, 653, 0.f, 1e-4f);
    std::vector<AdamMultiTensor> list(l.sizes.size());
    const double t = run_timed(state, sets, [&](int s) {
      for (std::size_t i = 0; i < l.sizes.size(); ++i) {
        const std::int64_t o = l.offsets[i];
        if (multi)
          list[i] = {p[s].f() + o, m[s].f() + o, v[s].f() + o, g[s].f() + o, l.sizes[i], 10};
        else
          adam_step_cuda(p[s].f() + o, m[s].f() + o, v[s].f() + o, g[s].f() + o, l.sizes[i], 1e-3f, 0.9f, 0.999f,
                         1e-8f, 0.05f, true, 10);
      }
      if (multi) adam_step_multi_cuda(list, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.05f, true);
    });
    const std::int64_t launches = multi ? (static_cast<std::int64_t>(l.sizes.size()) + kOptimizerMultiTensors - 1) /
                                              kOptimizerMultiTensors
                                        : static_cast<std::int64_t>(l.sizes.size());
    report_bandwidth(state, sets, bytes, t,
                     params_label(l) + (multi ? ", " + std::to_string(launches) + " launches" : ""));
  });
}
void BM_adamw_step_resnet50_cuda(benchmark::State& state) { adamw_step_resnet50(state, false); }
void BM_adamw_step_multi_resnet50_cuda(benchmark::State& state) { adamw_step_resnet50(state, true); }
BENCHMARK(BM_adamw_step_resnet50_cuda)->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_adamw_step_multi_resnet50_cuda)->UseManualTime()->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace graft::bench
