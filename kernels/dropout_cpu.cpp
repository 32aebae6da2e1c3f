// Plain CPU reference of inverted dropout (math in kernels/dropout.h): one Philox block serves four elements.
#include "kernels/dropout.h"
#include "kernels/philox.h"

namespace graft {

void dropout_forward_cpu(float* out, const float* inp, std::int64_t n, float p, std::uint64_t seed,
                         std::uint64_t offset) {
  const float scale = 1.f / (1.f - p);
  for (std::int64_t base = 0; base < n; base += 4) {
    Philox4 r = philox4x32_10(offset + static_cast<std::uint64_t>(base / 4), seed);
    for (int lane = 0; lane < 4 && base + lane < n; ++lane) {
      const std::int64_t i = base + lane;
      out[i] = philox_unit_float(r.x[lane]) >= p ? inp[i] * scale : 0.f;
    }
  }
}

}  // namespace graft
