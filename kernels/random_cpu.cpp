#include "kernels/philox.h"
#include "kernels/random.h"

namespace graft {

void uniform_cpu(float* out, std::int64_t n, std::uint64_t seed, std::uint64_t offset, float low, float high) {
  const float span = high - low;
  for (std::int64_t i = 0; i < n; ++i)
    out[i] = low + span * philox_uniform(static_cast<std::uint64_t>(i), seed, offset);
}

// One Philox evaluation per 4 outputs (the layout of kernels/philox.h); a partial last block is cut short.
void normal_cpu(float* out, std::int64_t n, std::uint64_t seed, std::uint64_t offset, float mean, float stddev) {
  float z[4];
  for (std::int64_t block = 0; block * 4 < n; ++block) {
    philox_normal4(static_cast<std::uint64_t>(block), seed, offset, z);
    for (std::int64_t k = 0; k < 4 && block * 4 + k < n; ++k) out[block * 4 + k] = mean + stddev * z[k];
  }
}

}  // namespace graft
