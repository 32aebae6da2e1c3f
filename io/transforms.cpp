// Image transforms (see io/transforms.h). Every geometric step - resize, crop, random resized crop, flip - is
// one resampling with per-output-row and per-output-column taps: bilinear pairs, computed like PyTorch's CPU
// upsample_bilinear2d (float math, src = (dst + 0.5) * in/out - 0.5, clamped at 0), or, when an axis shrinks and
// antialiasing is on, the wider triangle filter of interpolate(antialias=True) / PIL. The eval pipeline only
// computes the center window of the resized image, and a random resized crop resamples its box of the source
// directly, so no resized image is materialised (only, when antialiasing, the row-filtered source rows).
#include "io/transforms.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

#include "core/error.h"

namespace graft {
namespace {

// Source taps of `count` consecutive output positions, starting at `first`, of a 1-D resize from `in_size`
// (starting at source position `in_offset`) to `out_size`: per output position k, `width` consecutive source
// indices from start[k], with weights weight[k * width ...].
struct Taps {
  int width = 0;                // taps per output position (the widest; unused weights are 0)
  std::vector<int> start;       // first source index (absolute)
  std::vector<float> weight;    // start.size() x width
  bool bilinear_pairs() const { return width == 2; }
};

// Bilinear, as PyTorch's CPU upsample_bilinear2d: src = (dst + 0.5) * in/out - 0.5, clamped at 0; taps (floor(src),
// floor(src) + 1) with weights (1 - t, t), t = src - floor(src); past the last pixel, the last pixel alone.
Taps bilinear_taps(int in_size, int in_offset, int out_size, int first, int count) {
  Taps t;
  t.width = in_size == 1 ? 1 : 2;  // a one-pixel source: every output is that pixel
  t.start.assign(static_cast<std::size_t>(count), in_offset);
  t.weight.assign(t.start.size() * static_cast<std::size_t>(t.width), 1.f);
  if (in_size == 1) return t;
  const float scale = static_cast<float>(in_size) / static_cast<float>(out_size);
  for (int k = 0; k < count; ++k) {
    float src = scale * (static_cast<float>(first + k) + 0.5f) - 0.5f;
    if (src < 0.f) src = 0.f;
    const int i0 = std::min(static_cast<int>(src), in_size - 1);  // floor: src >= 0
    const std::size_t kk = static_cast<std::size_t>(k);
    if (i0 == in_size - 1) {  // (start, start + 1) must both exist: the pair ending at the last pixel, all on it
      t.start[kk] = in_offset + in_size - 2, t.weight[2 * kk] = 0.f, t.weight[2 * kk + 1] = 1.f;
    } else {
      const float w1 = src - static_cast<float>(i0);
      t.start[kk] = in_offset + i0, t.weight[2 * kk] = 1.f - w1, t.weight[2 * kk + 1] = w1;
    }
  }
  return t;
}

// Antialiased bilinear for downscaling (in_size > out_size), as PyTorch's interpolate(antialias=True) and PIL's
// resize: a triangle filter stretched by the scale, so each output averages every source pixel under it:
//   center = (dst + 0.5) * scale, support = scale, taps [int(center - support + 0.5), int(center + support + 0.5))
//   clipped to the image, weight(j) = max(0, 1 - |j + 0.5 - center| / scale), normalised to sum 1.
Taps antialias_taps(int in_size, int in_offset, int out_size, int first, int count) {
  const double scale = static_cast<double>(in_size) / out_size, support = scale;
  Taps t;
  t.width = static_cast<int>(std::ceil(support)) * 2 + 1;
  t.start.resize(static_cast<std::size_t>(count));
  t.weight.assign(t.start.size() * static_cast<std::size_t>(t.width), 0.f);
  for (int k = 0; k < count; ++k) {
    const double center = scale * (first + k + 0.5);
    const int lo = std::max(static_cast<int>(center - support + 0.5), 0);
    const int hi = std::min(static_cast<int>(center + support + 0.5), in_size);
    float* w = &t.weight[static_cast<std::size_t>(k) * static_cast<std::size_t>(t.width)];
    double total = 0;
    for (int j = lo; j < hi && j - lo < t.width; ++j) {
      const double x = std::abs((j - center + 0.5) / scale);
      w[j - lo] = static_cast<float>(x < 1 ? 1 - x : 0);
      total += w[j - lo];
    }
    for (int j = 0; j < t.width && total > 0; ++j) w[j] = static_cast<float>(w[j] / total);
    // the window may reach past the image's end by width - (hi - lo) taps of weight 0: start it earlier instead
    const int start = std::min(lo, std::max(in_size - t.width, 0));
    if (start != lo) {
      std::copy_backward(w, w + (hi - lo), w + (hi - lo) + (lo - start));
      std::fill(w, w + (lo - start), 0.f);
    }
    t.start[static_cast<std::size_t>(k)] = in_offset + start;
  }
  if (t.width > in_size) {  // a window wider than the image: every tap inside it
    Taps narrow = t;
    narrow.width = in_size;
    narrow.weight.assign(narrow.start.size() * static_cast<std::size_t>(in_size), 0.f);
    for (std::size_t k = 0; k < t.start.size(); ++k)
      for (int j = 0; j < in_size; ++j) narrow.weight[k * static_cast<std::size_t>(in_size) + static_cast<std::size_t>(j)] =
          t.weight[k * static_cast<std::size_t>(t.width) + static_cast<std::size_t>(j)];
    return narrow;
  }
  return t;
}

Taps make_taps(int in_size, int in_offset, int out_size, int first, int count, bool antialias) {
  return antialias && in_size > out_size ? antialias_taps(in_size, in_offset, out_size, first, count)
                                         : bilinear_taps(in_size, in_offset, out_size, first, count);
}

// A horizontal flip: the output columns in reverse order.
void reverse(Taps& t) {
  std::reverse(t.start.begin(), t.start.end());
  const std::size_t width = static_cast<std::size_t>(t.width);
  for (std::size_t a = 0, b = t.start.size(); a + 1 < b; ++a, --b)
    std::swap_ranges(t.weight.begin() + static_cast<std::ptrdiff_t>(a * width),
                     t.weight.begin() + static_cast<std::ptrdiff_t>((a + 1) * width),
                     t.weight.begin() + static_cast<std::ptrdiff_t>((b - 1) * width));
}

// One source row filtered along the row: dst[x, ch] = sum over the taps j of cols (in order) of
// weight[x, j] * row[start[x] + j, ch]. C > 0: the channel count at compile time (the sums stay in registers);
// C == 0: any count `c`. Zero weights (a window's unused taps) are skipped, so the result does not depend on the
// pixels under them.
template <int C, typename T>
void filter_row(const T* row, const Taps& cols, float* dst, std::size_t c = C) {
  const std::size_t uc = C > 0 ? static_cast<std::size_t>(C) : c, width = static_cast<std::size_t>(cols.width);
  for (std::size_t x = 0; x < cols.start.size(); ++x, dst += uc) {
    const T* src = row + static_cast<std::size_t>(cols.start[x]) * uc;
    const float* wx = &cols.weight[x * width];
    if constexpr (C > 0) {
      float sum[C] = {};
      for (std::size_t j = 0; j < width; ++j, src += C) {
        const float w = wx[j];
        if (w == 0.f) continue;
        for (int ch = 0; ch < C; ++ch) sum[ch] += w * static_cast<float>(src[ch]);
      }
      for (int ch = 0; ch < C; ++ch) dst[ch] = sum[ch];
    } else {
      std::fill(dst, dst + uc, 0.f);
      for (std::size_t j = 0; j < width; ++j, src += uc) {
        const float w = wx[j];
        if (w == 0.f) continue;
        for (std::size_t ch = 0; ch < uc; ++ch) dst[ch] += w * static_cast<float>(src[ch]);
      }
    }
  }
}

// out (rows.size(), cols.size(), c) from in (., w, c). Two-tap (bilinear) rows and columns: interpolate along the
// row first, then between rows (the order of PyTorch's CPU kernel). Otherwise separably: every source row the
// rows' taps reach is filtered along the row once, then the rows are combined.
template <typename T>
void resample(const T* in, int w, int c, const Taps& rows, const Taps& cols, float* out) {
  const std::size_t stride = static_cast<std::size_t>(w) * static_cast<std::size_t>(c);
  const std::size_t uc = static_cast<std::size_t>(c), out_w = cols.start.size();
  if (rows.bilinear_pairs() && cols.bilinear_pairs()) {
    for (std::size_t y = 0; y < rows.start.size(); ++y) {
      const T* r0 = in + static_cast<std::size_t>(rows.start[y]) * stride;
      const T* r1 = r0 + stride;
      const float wy0 = rows.weight[2 * y], wy1 = rows.weight[2 * y + 1];
      for (std::size_t x = 0; x < out_w; ++x) {
        const std::size_t a = static_cast<std::size_t>(cols.start[x]) * uc, b = a + uc;
        const float wx0 = cols.weight[2 * x], wx1 = cols.weight[2 * x + 1];
        for (std::size_t ch = 0; ch < uc; ++ch) {
          float top = wx0 * static_cast<float>(r0[a + ch]) + wx1 * static_cast<float>(r0[b + ch]);
          float bottom = wx0 * static_cast<float>(r1[a + ch]) + wx1 * static_cast<float>(r1[b + ch]);
          *out++ = wy0 * top + wy1 * bottom;
        }
      }
    }
    return;
  }
  const int first_row = *std::min_element(rows.start.begin(), rows.start.end());
  const int last_row = *std::max_element(rows.start.begin(), rows.start.end()) + rows.width;  // one past
  // Every element is written by filter_row: no zero-filling (a photo's rows are ~10 MB of them).
  std::unique_ptr<float[]> filtered(new float[static_cast<std::size_t>(last_row - first_row) * out_w * uc]);
  for (int r = first_row; r < last_row; ++r) {
    const T* row = in + static_cast<std::size_t>(r) * stride;
    float* dst = &filtered[static_cast<std::size_t>(r - first_row) * out_w * uc];
    switch (c) {  // the channel count known at compile time keeps each output's sums in registers
      case 1: filter_row<1>(row, cols, dst); break;
      case 3: filter_row<3>(row, cols, dst); break;
      default: filter_row<0>(row, cols, dst, uc);
    }
  }
  const std::size_t row_floats = out_w * uc;
  for (std::size_t y = 0; y < rows.start.size(); ++y, out += row_floats) {
    const float* wy = &rows.weight[y * static_cast<std::size_t>(rows.width)];
    const float* base = &filtered[static_cast<std::size_t>(rows.start[y] - first_row) * row_floats];
    std::fill(out, out + row_floats, 0.f);
    for (int j = 0; j < rows.width; ++j) {  // whole rows at a time
      const float w = wy[j];
      if (w == 0.f) continue;
      const float* src = base + static_cast<std::size_t>(j) * row_floats;
      for (std::size_t i = 0; i < row_floats; ++i) out[i] += w * src[i];
    }
  }
}

template <typename T>
void resize_image(const T* in, int h, int w, int c, float* out, int out_h, int out_w, bool antialias) {
  GRAFT_CHECK(h > 0 && w > 0 && c > 0 && out_h > 0 && out_w > 0, "resize_bilinear: cannot resize ", h, "x", w, "x", c,
              " to ", out_h, "x", out_w, " (every size must be > 0)");
  resample(in, w, c, make_taps(h, 0, out_h, 0, out_h, antialias), make_taps(w, 0, out_w, 0, out_w, antialias), out);
}

// Python's round(): half to even (nearbyint under the default rounding mode).
int round_half_even(double x) { return static_cast<int>(std::nearbyint(x)); }

// torchvision's default eval resize: int(size * 256 / 224).
int eval_resize_to(const TransformOptions& o) {
  return o.resize_to > 0 ? o.resize_to : static_cast<int>(static_cast<double>(o.size) * 256.0 / 224.0);
}

}  // namespace

std::uint64_t random_below(std::mt19937_64& rng, std::uint64_t n) {
  GRAFT_CHECK(n >= 1, "random_below: empty range (n = 0)");
  // Values below 2^64 mod n would be drawn once more often than the rest: reject them.
  const std::uint64_t threshold = (0 - n) % n;
  for (;;) {
    std::uint64_t x = rng();
    if (x >= threshold) return x % n;
  }
}

double random_uniform(std::mt19937_64& rng, double lo, double hi) {
  const double unit = static_cast<double>(rng() >> 11) * 0x1.0p-53;  // [0, 1)
  return lo + (hi - lo) * unit;
}

void resize_bilinear(const std::uint8_t* in, int h, int w, int c, float* out, int out_h, int out_w, bool antialias) {
  resize_image(in, h, w, c, out, out_h, out_w, antialias);
}
void resize_bilinear(const float* in, int h, int w, int c, float* out, int out_h, int out_w, bool antialias) {
  resize_image(in, h, w, c, out, out_h, out_w, antialias);
}

CropBox center_crop_box(int h, int w, int crop_h, int crop_w) {
  GRAFT_CHECK(h > 0 && w > 0 && crop_h > 0 && crop_w > 0 && crop_h <= h && crop_w <= w, "center_crop_box: crop ",
              crop_h, "x", crop_w, " does not fit image ", h, "x", w);
  return CropBox{round_half_even((h - crop_h) / 2.0), round_half_even((w - crop_w) / 2.0), crop_h, crop_w};
}

CropBox random_resized_crop_box(int h, int w, float scale_min, float scale_max, std::mt19937_64& rng) {
  GRAFT_CHECK(h > 0 && w > 0, "random_resized_crop_box: image ", h, "x", w, " is empty");
  GRAFT_CHECK(scale_min > 0.f && scale_min <= scale_max, "random_resized_crop_box: scale range [", scale_min, ", ",
              scale_max, "] must satisfy 0 < min <= max");
  const double area = static_cast<double>(h) * w;
  const double ratio_min = 3.0 / 4.0, ratio_max = 4.0 / 3.0;
  const double log_min = std::log(ratio_min), log_max = std::log(ratio_max);
  for (int attempt = 0; attempt < 10; ++attempt) {
    const double target = area * random_uniform(rng, scale_min, scale_max);
    const double ratio = std::exp(random_uniform(rng, log_min, log_max));
    const int cw = round_half_even(std::sqrt(target * ratio));
    const int ch = round_half_even(std::sqrt(target / ratio));
    if (cw > 0 && cw <= w && ch > 0 && ch <= h) {
      const int top = static_cast<int>(random_below(rng, static_cast<std::uint64_t>(h - ch + 1)));
      const int left = static_cast<int>(random_below(rng, static_cast<std::uint64_t>(w - cw + 1)));
      return CropBox{top, left, ch, cw};
    }
  }
  // Fallback: the whole image, cut to the nearest allowed aspect ratio, centred (floor division as torchvision).
  const double in_ratio = static_cast<double>(w) / h;
  int cw = w, ch = h;
  if (in_ratio < ratio_min)
    ch = std::max(1, round_half_even(cw / ratio_min));
  else if (in_ratio > ratio_max)
    cw = std::max(1, round_half_even(ch * ratio_max));
  ch = std::min(ch, h), cw = std::min(cw, w);
  return CropBox{(h - ch) / 2, (w - cw) / 2, ch, cw};
}

void check_transform_options(const TransformOptions& o) {
  GRAFT_CHECK(o.size > 0, "transform: output size ", o.size, " must be > 0");
  GRAFT_CHECK(o.resize_to >= 0, "transform: resize_to ", o.resize_to, " must be >= 0 (0 = size * 256 / 224)");
  if (!o.random_resized_crop && !o.exact_resize)
    GRAFT_CHECK(eval_resize_to(o) >= o.size, "transform: resize_to ", eval_resize_to(o),
                " is smaller than the center crop ", o.size);
  if (o.random_resized_crop)
    GRAFT_CHECK(o.crop_scale_min > 0.f && o.crop_scale_min <= o.crop_scale_max && o.crop_scale_max <= 1.f,
                "transform: crop scale range [", o.crop_scale_min, ", ", o.crop_scale_max,
                "] must satisfy 0 < min <= max <= 1");
}

void transform_example(const Example& ex, const TransformOptions& o, std::mt19937_64& rng, float* out) {
  check_transform_options(o);
  GRAFT_CHECK(ex.height > 0 && ex.width > 0, "transform: example of ", ex.height, "x", ex.width, " pixels is empty");
  GRAFT_CHECK(ex.channels == 1 || ex.channels == 3, "transform: example ", ex.height, "x", ex.width, " has ",
              ex.channels, " channels (expected 1 or 3)");
  const std::size_t expected =
      static_cast<std::size_t>(ex.height) * static_cast<std::size_t>(ex.width) * static_cast<std::size_t>(ex.channels);
  GRAFT_CHECK(ex.pixels.size() == expected, "transform: example ", ex.height, "x", ex.width, "x", ex.channels,
              " needs ", expected, " bytes, has ", ex.pixels.size());
  const int size = o.size;

  Taps rows, cols;
  if (o.random_resized_crop) {
    CropBox box = random_resized_crop_box(ex.height, ex.width, o.crop_scale_min, o.crop_scale_max, rng);
    rows = make_taps(box.height, box.top, size, 0, size, o.antialias);
    cols = make_taps(box.width, box.left, size, 0, size, o.antialias);
  } else if (o.exact_resize) {
    rows = make_taps(ex.height, 0, size, 0, size, o.antialias);
    cols = make_taps(ex.width, 0, size, 0, size, o.antialias);
  } else {
    // torchvision Resize(int): the shorter side becomes resize_to, the longer int(resize_to * long / short).
    const int short_to = eval_resize_to(o);
    const bool wide = ex.width > ex.height;
    const int short_side = wide ? ex.height : ex.width, long_side = wide ? ex.width : ex.height;
    const int long_to = static_cast<int>(static_cast<double>(short_to) * long_side / short_side);
    const int rh = wide ? short_to : long_to, rw = wide ? long_to : short_to;
    CropBox window = center_crop_box(rh, rw, size, size);
    rows = make_taps(ex.height, 0, rh, window.top, size, o.antialias);
    cols = make_taps(ex.width, 0, rw, window.left, size, o.antialias);
  }
  // torchvision draws the flip after the crop: p = 0.5
  if (o.random_flip && random_uniform(rng, 0.0, 1.0) < 0.5) reverse(cols);

  const std::size_t pixels = static_cast<std::size_t>(size) * static_cast<std::size_t>(size);
  std::vector<float> sampled(pixels * static_cast<std::size_t>(ex.channels));
  resample(ex.pixels.data(), ex.width, ex.channels, rows, cols, sampled.data());

  // gray -> 3 channels, then the preset (a channel permutation plus an affine map)
  const PreprocessAffine a = preprocess_affine(o.normalize);
  for (std::size_t p = 0; p < pixels; ++p)
    for (int c = 0; c < 3; ++c) {
      const float v = ex.channels == 1 ? sampled[p] : sampled[3 * p + static_cast<std::size_t>(a.source[c])];
      out[3 * p + static_cast<std::size_t>(c)] = v * a.scale[c] + a.shift[c];
    }
}

}  // namespace graft
