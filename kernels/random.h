// Random fills from Philox counters (layout in kernels/philox.h).
//   uniform: out[i] = low + (high-low) * u_i          uses ceil(n/4) counters from `offset`
//   normal:  out[i] = mean + stddev * z_i             uses ceil(n/4) counters from `offset`
#pragma once
#include <cstdint>

namespace graft {

inline std::uint64_t uniform_counters(std::int64_t n) { return static_cast<std::uint64_t>((n + 3) / 4); }
inline std::uint64_t normal_counters(std::int64_t n) { return static_cast<std::uint64_t>((n + 3) / 4); }

void uniform_cpu(float* out, std::int64_t n, std::uint64_t seed, std::uint64_t offset, float low, float high);
void normal_cpu(float* out, std::int64_t n, std::uint64_t seed, std::uint64_t offset, float mean, float stddev);

#if GRAFT_HAS_CUDA
void uniform_cuda(float* out, std::int64_t n, std::uint64_t seed, std::uint64_t offset, float low, float high);
void normal_cuda(float* out, std::int64_t n, std::uint64_t seed, std::uint64_t offset, float mean, float stddev);
#endif

}  // namespace graft
