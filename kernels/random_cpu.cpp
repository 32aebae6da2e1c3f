#include "kernels/philox.h"
#include "kernels/random.h"

namespace graft {

void uniform_cpu(float* out, std::int64_t n, std::uint64_t seed, std::uint64_t offset, float low, float high) {
  const float span = high - low;
  for (std::int64_t i = 0; i < n; ++i)
    out[i] = low + span * philox_uniform(static_cast<std::uint64_t>(i), seed, offset);
}

void normal_cpu(float* out, std::int64_t n, std::uint64_t seed, std::uint64_t offset, float mean, float stddev) {
  for (std::int64_t i = 0; i < n; ++i)
    out[i] = mean + stddev * philox_normal(static_cast<std::uint64_t>(i), seed, offset);
}

}  // namespace graft
