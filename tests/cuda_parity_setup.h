// What the CPU-vs-CUDA parity tests of the foundation ops share (tests/test_cuda_parity.cpp for the raw kernels,
// test_cuda_op_parity.cpp for the public ops): fresh random inputs, NaN-poisoned outputs at odd offsets with a guard
// after them (Poisoned), and the comparisons - bitwise, up to a rare ulp, within a bound.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "core/ops.h"
#include "core/rng.h"
#include "kernels/elementwise.h"
#include "kernels/gemm.h"
#include "kernels/random.h"
#include "kernels/reduce.h"
#include "kernels/softmax.h"
#include "tests/check.h"
#if GRAFT_HAS_CUDA
#include "kernels/cuda_device.h"
#endif

namespace graft::cuda_parity_test {

using testing::all_close;

inline constexpr std::int64_t kSizes[] = {1, 7, 33, 1000003};
// (output offset, input offset) in floats: both aligned, both misaligned, mixed.
inline constexpr std::int64_t kOffsets[][2] = {{0, 0}, {1, 1}, {0, 1}};

inline Tensor rand_cpu(const Shape& shape, Generator& gen, float low = -1.f, float high = 1.f) {
  return Tensor::uniform(shape, gen, low, high);
}

inline std::string describe(const char* what, std::initializer_list<std::int64_t> values) {
  std::ostringstream s;
  s << what;
  for (std::int64_t v : values) s << ' ' << v;
  return s.str();
}

// Bit-for-bit equality (NaN poison left in `a` fails it too).
inline ::testing::AssertionResult bitwise_equal(const Tensor& a, const Tensor& ref) {
  std::vector<float> x = a.to_vector(), y = ref.to_vector();
  if (x.size() != y.size()) return ::testing::AssertionFailure() << x.size() << " vs " << y.size() << " elements";
  std::size_t mismatches = 0, first = 0;
  for (std::size_t i = 0; i < x.size(); ++i)
    if (std::memcmp(&x[i], &y[i], sizeof(float)) != 0 && mismatches++ == 0) first = i;
  if (mismatches == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << mismatches << " of " << x.size() << " elements differ, first at " << first
                                       << ": " << x[first] << " vs " << y[first];
}

// Normals come from a double-precision Box-Muller rounded once to float. CUDA's double log/sin/cos may differ from
// glibc's by 1-2 double ulp, which flips the rounded float by one ulp in about 1 of 10^8 draws - so a normal may
// differ from the CPU's by at most one float ulp, and only rarely (at most 1 in 10^6 here). Uniforms are exact.
inline ::testing::AssertionResult equal_up_to_rare_ulp(const Tensor& a, const Tensor& ref) {
  std::vector<float> x = a.to_vector(), y = ref.to_vector();
  if (x.size() != y.size()) return ::testing::AssertionFailure() << x.size() << " vs " << y.size() << " elements";
  std::size_t off_by_one = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    std::int32_t bx, by;
    std::memcpy(&bx, &x[i], 4);
    std::memcpy(&by, &y[i], 4);
    if (bx == by) continue;
    if (std::abs(static_cast<long long>(bx) - by) > 1)
      return ::testing::AssertionFailure() << "element " << i << ": " << x[i] << " vs " << y[i] << " (more than 1 ulp)";
    ++off_by_one;
  }
  if (off_by_one <= 1 + x.size() / 1000000) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << off_by_one << " of " << x.size() << " elements differ by one ulp";
}

#if GRAFT_HAS_CUDA
// |got - ref| <= bound elementwise, for tolerances that scale with something other than |ref|.
inline ::testing::AssertionResult within(const Tensor& got, const Tensor& ref, const std::vector<double>& bound) {
  std::vector<float> x = got.to_vector(), y = ref.to_vector();
  for (std::size_t i = 0; i < y.size(); ++i)
    if (!(std::fabs(double(x[i]) - y[i]) <= bound[i]))
      return ::testing::AssertionFailure() << "element " << i << " of " << y.size() << ": " << x[i] << " vs "
                                           << y[i] << " (bound " << bound[i] << ")";
  return ::testing::AssertionSuccess();
}

// n floats at `offset` floats into a GPU allocation whose every byte is 0xFF (a NaN), one guard float after them.
class Poisoned {
 public:
  explicit Poisoned(std::int64_t n, std::int64_t offset = 0)
      : n_(n), offset_(offset), all_(Tensor::empty({offset + n + 1}, kCUDA)) {
    GRAFT_CUDA_CHECK(cudaMemsetAsync(all_.data<void>(), 0xFF, all_.nbytes(), cuda::stream()));
  }
  static Poisoned upload(const Tensor& host, std::int64_t offset = 0) {
    Poisoned p(host.numel(), offset);
    cuda::copy_to_device(p.ptr(), host.data<float>(), host.nbytes());
    return p;
  }
  float* ptr() const { return all_.data<float>() + offset_; }
  Tensor values(const Shape& shape) const { return all_.slice(offset_, offset_ + n_).reshape(shape); }
  ::testing::AssertionResult guards_intact() const {
    std::vector<float> v = all_.to_vector();
    for (std::int64_t i = 0; i < offset_; ++i)
      if (!std::isnan(v[static_cast<std::size_t>(i)])) return ::testing::AssertionFailure() << "wrote before the output";
    if (!std::isnan(v.back())) return ::testing::AssertionFailure() << "wrote past the end of the output";
    return ::testing::AssertionSuccess();
  }

 private:
  std::int64_t n_, offset_;
  Tensor all_;
};

inline void expect_close(const Poisoned& out, const Tensor& ref, float atol, float rtol) {
  EXPECT_TRUE(all_close(out.values(ref.shape()), ref, atol, rtol));
  EXPECT_TRUE(out.guards_intact());
}

// Best effort: NaN-fill 64 MiB and free it, so the op outputs allocated next from the pool start as NaN.
inline void poison_pool() { Poisoned nan_block(16 << 20); }
#endif

}  // namespace graft::cuda_parity_test
