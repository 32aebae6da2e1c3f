// Counter-based (Philox) draws: element i depends only on (seed, offset, i), so the CPU threads take ranges of
// elements (kernels/cpu_parallel.h) and the values are the same for any thread count.
#include "kernels/cpu_parallel.h"
#include "kernels/philox.h"
#include "kernels/random.h"

namespace graft {

void uniform_cpu(float* out, std::int64_t n, std::uint64_t seed, std::uint64_t offset, float low, float high) {
  const float span = high - low;
  const std::int64_t blocks = (n + 3) / 4;
  // one Philox evaluation per 4 outputs: lane k of block b is philox_uniform(4b + k)'s value
  parallel_for(blocks, 64, [&](std::int64_t first, std::int64_t last) {
    for (std::int64_t block = first; block < last; ++block) {
      const Philox4 r = philox4x32_10(offset + static_cast<std::uint64_t>(block), seed);
      for (std::int64_t k = 0; k < 4 && block * 4 + k < n; ++k)
        out[block * 4 + k] = low + span * philox_unit_float(r.x[k]);
    }
  });
}

// One Philox evaluation per 4 outputs (the layout of kernels/philox.h); a partial last block is cut short.
void normal_cpu(float* out, std::int64_t n, std::uint64_t seed, std::uint64_t offset, float mean, float stddev) {
  const std::int64_t blocks = (n + 3) / 4;
  parallel_for(blocks, 256, [&](std::int64_t first, std::int64_t last) {  // Philox + log, sqrt, sincos per block
    float z[4];
    for (std::int64_t block = first; block < last; ++block) {
      philox_normal4(static_cast<std::uint64_t>(block), seed, offset, z);
      for (std::int64_t k = 0; k < 4 && block * 4 + k < n; ++k) out[block * 4 + k] = mean + stddev * z[k];
    }
  });
}

}  // namespace graft
