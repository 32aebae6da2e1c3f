#include <vector>

#include "kernels/reduce.h"

namespace graft {

// Accumulates in double so the CPU reference is accurate for long axes (it is the test oracle).
void sum_axis_cpu(float* out, const float* inp, std::int64_t outer, std::int64_t len, std::int64_t inner,
                  float scale) {
  std::vector<double> acc(static_cast<std::size_t>(inner));
  for (std::int64_t o = 0; o < outer; ++o) {
    std::fill(acc.begin(), acc.end(), 0.0);
    const float* block = inp + o * len * inner;
    for (std::int64_t l = 0; l < len; ++l) {
      const float* row = block + l * inner;
      for (std::int64_t i = 0; i < inner; ++i) acc[static_cast<std::size_t>(i)] += row[i];
    }
    for (std::int64_t i = 0; i < inner; ++i) out[o * inner + i] = static_cast<float>(acc[static_cast<std::size_t>(i)] * scale);
  }
}

void broadcast_axis_cpu(float* dinp, const float* dout, std::int64_t outer, std::int64_t len, std::int64_t inner,
                        float scale) {
  for (std::int64_t o = 0; o < outer; ++o)
    for (std::int64_t l = 0; l < len; ++l) {
      float* row = dinp + (o * len + l) * inner;
      const float* src = dout + o * inner;
      for (std::int64_t i = 0; i < inner; ++i) row[i] = src[i] * scale;
    }
}

}  // namespace graft
