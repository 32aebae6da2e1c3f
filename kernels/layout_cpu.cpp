// Plain CPU reference of the layout kernels (math in kernels/layout.h): whole channel rows are copied at once.
#include <algorithm>

#include "kernels/layout.h"

namespace graft {

void pad2d_forward_cpu(float* out, const float* inp, std::int64_t n, int h, int w, std::int64_t c, int top,
                       int bottom, int left, int right) {
  const int ho = h + top + bottom, wo = w + left + right;
  for (std::int64_t b = 0; b < n; ++b)
    for (int y = 0; y < ho; ++y)
      for (int x = 0; x < wo; ++x) {
        float* dst = out + ((b * ho + y) * wo + x) * c;
        const int iy = y - top, ix = x - left;
        if (iy >= 0 && iy < h && ix >= 0 && ix < w)
          std::copy(inp + ((b * h + iy) * w + ix) * c, inp + ((b * h + iy) * w + ix + 1) * c, dst);
        else
          std::fill(dst, dst + c, 0.f);
      }
}

void pad2d_backward_cpu(float* dinp, const float* dout, std::int64_t n, int h, int w, std::int64_t c, int top,
                        int bottom, int left, int right) {
  const int ho = h + top + bottom, wo = w + left + right;
  for (std::int64_t b = 0; b < n; ++b)
    for (int y = 0; y < h; ++y) {
      const float* src = dout + ((b * ho + y + top) * wo + left) * c;
      std::copy(src, src + static_cast<std::int64_t>(w) * c, dinp + (b * h + y) * w * c);
    }
}

void concat_channels_forward_cpu(float* out, const float* inp, std::int64_t rows, std::int64_t c_in,
                                 std::int64_t c_out, std::int64_t offset) {
  for (std::int64_t r = 0; r < rows; ++r) std::copy(inp + r * c_in, inp + (r + 1) * c_in, out + r * c_out + offset);
}

void slice_channels_cpu(float* dinp, const float* dout, std::int64_t rows, std::int64_t c_in, std::int64_t c_out,
                        std::int64_t offset) {
  for (std::int64_t r = 0; r < rows; ++r)
    std::copy(dout + r * c_out + offset, dout + r * c_out + offset + c_in, dinp + r * c_in);
}

}  // namespace graft
