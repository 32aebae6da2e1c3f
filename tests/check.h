// Shared test helpers: closeness with a per-op tolerance, CUDA skipping, finite-difference gradient checks.
#pragma once
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "core/autograd.h"
#include "core/error.h"
#include "core/ops.h"
#include "core/rng.h"
#include "core/tensor.h"
#include "io/hdf5.h"
#if GRAFT_HAS_CUDA
#include "kernels/conv2d.h"
#include "kernels/cuda_device.h"
#endif

namespace graft::testing {

// |a - ref| <= atol + rtol * |ref| elementwise; reports the worst element.
inline ::testing::AssertionResult all_close(const Tensor& a, const Tensor& ref, float atol, float rtol) {
  if (a.shape() != ref.shape())
    return ::testing::AssertionFailure() << "shape " << shape_str(a.shape()) << " vs " << shape_str(ref.shape());
  std::vector<float> x = a.to(kCPU).to_vector(), y = ref.to(kCPU).to_vector();
  std::size_t worst = 0;
  double worst_excess = -1;
  for (std::size_t i = 0; i < x.size(); ++i) {
    double excess = std::fabs(double(x[i]) - y[i]) - (atol + rtol * std::fabs(double(y[i])));
    if (!(excess <= 0) || std::isnan(x[i]) != std::isnan(y[i])) {
      if (std::isnan(excess) || excess > worst_excess) worst_excess = std::isnan(excess) ? 1e30 : excess, worst = i;
    }
  }
  if (worst_excess < 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "element " << worst << " of " << x.size() << ": " << x[worst]
                                       << " vs reference " << y[worst] << " (atol " << atol << ", rtol " << rtol << ")";
}

#if GRAFT_HAS_CUDA
// Scoped switches of the CUDA math modes (restored on scope exit, also when a test fails by exception):
// TF32 for convolutions and GEMMs, and deterministic cuDNN algorithm choice (kernels/cuda_device.h).
using Tf32Guard = cuda::Tf32Scope;
// conv2d_cudnn_set_engine_search(on) for one scope (kernels/conv2d.h).
using EngineSearchGuard = cuda::ScopedSwitch<conv2d_cudnn_engine_search, conv2d_cudnn_set_engine_search>;
// cuda::set_deterministic(true) for one scope.
class DeterministicMode : public cuda::ScopedSwitch<cuda::deterministic, cuda::set_deterministic> {
 public:
  DeterministicMode() : ScopedSwitch(true) {}
};
// A float count whose bytes exceed the whole card by 1 GiB: a tensor no allocation on this device can serve.
inline std::int64_t floats_beyond_the_card() {
  std::size_t free_bytes = 0, total_bytes = 0;
  GRAFT_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
  return static_cast<std::int64_t>(total_bytes / 4) + (std::int64_t{1} << 28);
}
#endif

// The same bits, element for element (memcmp: +0 and -0 differ, NaNs compare by payload).
inline bool bitwise_equal(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

// The same bits, element for element, except that any two NaNs are equal: a GPU's arithmetic returns one canonical
// NaN (0x7fffffff on NVIDIA cards) where x86 keeps the operand's payload.
inline bool bitwise_equal_any_nan(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (!(std::isnan(a[i]) && std::isnan(b[i])) && std::memcmp(&a[i], &b[i], sizeof(float)) != 0) return false;
  return true;
}

// Every dataset of the HDF5 files `a` and `b`: the same paths, shapes and dtypes, float values bitwise equal.
inline void expect_same_datasets(const std::string& a, const std::string& b) {
  hdf5::File fa(a), fb(b);
  std::vector<hdf5::DatasetInfo> da = fa.datasets_below("/"), db = fb.datasets_below("/");
  ASSERT_EQ(da.size(), db.size());
  for (std::size_t i = 0; i < da.size(); ++i) {
    ASSERT_EQ(da[i].path, db[i].path);
    EXPECT_EQ(da[i].shape, db[i].shape) << da[i].path;
    EXPECT_EQ(da[i].dtype, db[i].dtype) << da[i].path;
    if (da[i].dtype == "float32") {
      EXPECT_TRUE(bitwise_equal(fa.read_floats(da[i].path), fb.read_floats(db[i].path))) << da[i].path;
    }
  }
}

// The message (without the source location) of the graft::Error `f` throws; "(no graft::Error)" when it throws none.
inline std::string error_message(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.message();
  }
  return "(no graft::Error)";
}

// Runs `f` and expects a graft::Error whose message (without the source location) contains every fragment;
// any other exception, or none, fails the test.
inline void expect_error(const std::function<void()>& f, const std::vector<std::string>& fragments) {
  try {
    f();
    ADD_FAILURE() << "no graft::Error thrown (expected one mentioning '" << fragments.front() << "')";
  } catch (const Error& e) {
    const std::string message = e.message();
    for (const std::string& part : fragments)
      EXPECT_NE(message.find(part), std::string::npos) << "'" << part << "' missing in: " << message;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "a non-graft exception escaped: " << e.what();
  }
}

// Runs `body` in a child process whose files may not grow past `bytes`: a write past that fails with EFBIG, as on a
// full disk (SIGXFSZ is ignored), and the limit reaches no other test. Returns the child's exit status - what `body`
// returned - or minus the signal that killed it (-SIGALRM: it ran past 120 s; -1000: fork or waitpid failed). The
// child ends with _exit: no destructors, no exit-time clean-up (libhdf5 keeps a failed file's chunk cache, which
// LeakSanitizer would report at a normal exit). The child is a fork of a process that may run threads: `body` should
// stay on its one thread (a lock another thread held at the fork would never be released); the alarm ends a child
// that hangs anyway. EXPECT_* inside `body` reach nobody: return a status instead.
inline int exit_status_under_file_size_limit(rlim_t bytes, const std::function<int()>& body) {
  std::fflush(nullptr);  // what the parent buffered is not written twice
  const pid_t child = fork();
  if (child < 0) return -1000;
  if (child == 0) {
    alarm(120);
    std::signal(SIGXFSZ, SIG_IGN);
    rlimit limit{};
    getrlimit(RLIMIT_FSIZE, &limit);
    limit.rlim_cur = bytes;
    setrlimit(RLIMIT_FSIZE, &limit);
    int code = 99;
    try {
      code = body();
    } catch (...) {
      code = 98;  // an exception `body` did not expect
    }
    _exit(code);
  }
  int status = 0;
  pid_t waited;
  do {
    waited = waitpid(child, &status, 0);
  } while (waited < 0 && errno == EINTR);
  if (waited != child) return -1000;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
}

// The names of the temporaries beside `path` (PATH.tmp-graft*, io/temporary_file.h) that are still on disk.
inline std::vector<std::string> temporaries_beside(const std::string& path) {
  namespace fs = std::filesystem;
  const fs::path target(path);
  const std::string prefix = target.filename().string() + ".tmp-graft";
  std::vector<std::string> left;
  std::error_code ec;
  for (fs::directory_iterator it(target.has_parent_path() ? target.parent_path() : fs::path("."), ec), end;
       !ec && it != end; it.increment(ec))
    if (it->path().filename().string().rfind(prefix, 0) == 0) left.push_back(it->path().string());
  return left;
}

#define GRAFT_REQUIRE_CUDA()                                                           \
  do {                                                                                 \
    if (!::graft::cuda_available()) GTEST_SKIP() << ::graft::cuda_unavailable_reason(); \
  } while (0)

// Central-difference gradient check of f at `inputs` (float32 CPU leaves). The scalar checked is
// sum(f(inputs) * w) for a fixed random w, so every output element contributes with a distinct weight.
inline void expect_gradients_match(const std::function<Tensor(const std::vector<Tensor>&)>& f,
                                   std::vector<Tensor> inputs, float eps = 1e-2f, float atol = 2e-3f,
                                   float rtol = 2e-2f) {
  for (auto& x : inputs) x.set_requires_grad(true);
  Tensor out = f(inputs);
  Generator gen(1234);
  Tensor w = Tensor::uniform(out.shape(), gen, 0.5f, 1.5f);
  sum(mul(out, w)).backward();
  for (std::size_t which = 0; which < inputs.size(); ++which) {
    Tensor& x = inputs[which];
    ASSERT_TRUE(x.grad().defined()) << "input " << which << " got no gradient";
    std::vector<float> analytic = x.grad().to_vector();
    float* p = x.data<float>();
    for (std::int64_t i = 0; i < x.numel(); ++i) {
      NoGradGuard no_grad;
      float saved = p[i];
      p[i] = saved + eps;
      double plus = sum(mul(f(inputs), w)).item();
      p[i] = saved - eps;
      double minus = sum(mul(f(inputs), w)).item();
      p[i] = saved;
      double numeric = (plus - minus) / (2.0 * eps);
      EXPECT_NEAR(analytic[static_cast<std::size_t>(i)], numeric, atol + rtol * std::fabs(numeric))
          << "input " << which << " element " << i;
    }
  }
}

}  // namespace graft::testing
