// Plain CPU reference of the pooling kernels (math in kernels/pool.h). Forward loops put the channels innermost
// so memory is walked in order; every sum runs over the window in row-major order in float, exactly as the CUDA
// threads do, and the backward passes are the same gathers as on CUDA.
#include <cmath>
#include <limits>

#include "kernels/cpu_parallel.h"
#include "kernels/cpu_select.h"
#include "kernels/pool.h"

namespace graft {
namespace {

// f(n, row) for every image n and row of the output (forward) or input (backward) grid, rows spread over the CPU
// threads. Each row's outputs are computed by the same loop whatever the split: the bits do not depend on the
// thread count.
template <typename F>
void for_each_row(std::int64_t images, int rows, std::int64_t work_per_row, F f) {
  parallel_for(images * rows, work_per_row, [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t i = lo; i < hi; ++i) f(i / rows, static_cast<int>(i % rows));
  });
}

}  // namespace

void max_pool2d_forward_cpu(float* out, std::int32_t* argmax, const float* inp, const Pool2dShape& s) {
  const std::int64_t c = s.c;
  for_each_row(s.n, s.p, s.q * c * s.kernel_h * s.kernel_w, [&](std::int64_t n, int p) {
    for (int q = 0; q < s.q; ++q) {
      PoolWindow wh = pool_window(p, s.h, s.kernel_h, s.stride_h, s.pad_h);
      PoolWindow ww = pool_window(q, s.w, s.kernel_w, s.stride_w, s.pad_w);
      float* o = out + ((n * s.p + p) * s.q + q) * c;
      std::int32_t* a = argmax + ((n * s.p + p) * s.q + q) * c;
      for (std::int64_t j = 0; j < c; ++j) {
        o[j] = -std::numeric_limits<float>::infinity();
        a[j] = wh.lo * s.w + ww.lo;
      }
      for (int h = wh.lo; h < wh.hi; ++h)
        for (int w = ww.lo; w < ww.hi; ++w) {
          const float* x = inp + ((n * s.h + h) * s.w + w) * c;
          const std::int32_t index = h * s.w + w;
          for (std::int64_t j = 0; j < c; ++j) {  // selects, not branches: the data decides, so they mispredict
            const float v = x[j];
            const bool take = v > o[j] || std::isnan(v);  // NaN wins (the last NaN in the window)
            o[j] = take ? v : o[j];
            a[j] = take ? index : a[j];
          }
        }
    }
  });
}

void max_pool2d_backward_cpu(float* dinp, const float* dout, const std::int32_t* argmax, const Pool2dShape& s) {
  const std::int64_t c = s.c;
  for_each_row(s.n, s.h, s.w * c * s.kernel_h * s.kernel_w, [&](std::int64_t n, int h) {
    for (int w = 0; w < s.w; ++w) {
      int p0, p1, q0, q1;
      pool_covering(h, s.kernel_h, s.stride_h, s.pad_h, s.p, &p0, &p1);
      pool_covering(w, s.kernel_w, s.stride_w, s.pad_w, s.q, &q0, &q1);
      const std::int32_t self = h * s.w + w;
      float* d = dinp + ((n * s.h + h) * s.w + w) * c;
      for (std::int64_t j = 0; j < c; ++j) {
        float acc = 0.f;
        for (int p = p0; p <= p1; ++p)
          for (int q = q0; q <= q1; ++q) {
            std::int64_t o = ((n * s.p + p) * s.q + q) * c + j;
            acc += keep_if(argmax[o] == self, dout[o]);  // + (+0): the bits of the old `if (...) acc += g`
          }
        d[j] = acc;
      }
    }
  });
}

void avg_pool2d_forward_cpu(float* out, const float* inp, const Pool2dShape& s, bool count_include_pad) {
  const std::int64_t c = s.c;
  for_each_row(s.n, s.p, s.q * c * s.kernel_h * s.kernel_w, [&](std::int64_t n, int p) {
    for (int q = 0; q < s.q; ++q) {
      PoolWindow wh = pool_window(p, s.h, s.kernel_h, s.stride_h, s.pad_h);
      PoolWindow ww = pool_window(q, s.w, s.kernel_w, s.stride_w, s.pad_w);
      float* o = out + ((n * s.p + p) * s.q + q) * c;
      for (std::int64_t j = 0; j < c; ++j) o[j] = 0.f;
      for (int h = wh.lo; h < wh.hi; ++h)
        for (int w = ww.lo; w < ww.hi; ++w) {
          const float* x = inp + ((n * s.h + h) * s.w + w) * c;
          for (std::int64_t j = 0; j < c; ++j) o[j] += x[j];
        }
      int count = count_include_pad ? wh.padded * ww.padded : (wh.hi - wh.lo) * (ww.hi - ww.lo);
      for (std::int64_t j = 0; j < c; ++j) o[j] = count > 0 ? o[j] / static_cast<float>(count) : 0.f;
    }
  });
}

void avg_pool2d_backward_cpu(float* dinp, const float* dout, const Pool2dShape& s, bool count_include_pad) {
  const std::int64_t c = s.c;
  for_each_row(s.n, s.h, s.w * c * s.kernel_h * s.kernel_w, [&](std::int64_t n, int h) {
    for (int w = 0; w < s.w; ++w) {
      int p0, p1, q0, q1;
      pool_covering(h, s.kernel_h, s.stride_h, s.pad_h, s.p, &p0, &p1);
      pool_covering(w, s.kernel_w, s.stride_w, s.pad_w, s.q, &q0, &q1);
      float* d = dinp + ((n * s.h + h) * s.w + w) * c;
      for (std::int64_t j = 0; j < c; ++j) d[j] = 0.f;
      for (int p = p0; p <= p1; ++p)
        for (int q = q0; q <= q1; ++q) {
          PoolWindow wh = pool_window(p, s.h, s.kernel_h, s.stride_h, s.pad_h);
          PoolWindow ww = pool_window(q, s.w, s.kernel_w, s.stride_w, s.pad_w);
          int count = count_include_pad ? wh.padded * ww.padded : (wh.hi - wh.lo) * (ww.hi - ww.lo);
          const float* g = dout + ((n * s.p + p) * s.q + q) * c;
          for (std::int64_t j = 0; j < c; ++j) d[j] += g[j] / static_cast<float>(count);
        }
    }
  });
}

void adaptive_avg_pool2d_forward_cpu(float* out, const float* inp, std::int64_t n, int h, int w, int c, int p,
                                     int q) {
  for (std::int64_t b = 0; b < n; ++b)
    for (int i = 0; i < p; ++i)
      for (int k = 0; k < q; ++k) {
        int h0 = adaptive_start(i, h, p), h1 = adaptive_end(i, h, p);
        int w0 = adaptive_start(k, w, q), w1 = adaptive_end(k, w, q);
        float* o = out + ((b * p + i) * q + k) * c;
        for (int j = 0; j < c; ++j) o[j] = 0.f;
        for (int y = h0; y < h1; ++y)
          for (int x = w0; x < w1; ++x) {
            const float* src = inp + ((b * h + y) * w + x) * c;
            for (int j = 0; j < c; ++j) o[j] += src[j];
          }
        const float count = static_cast<float>((h1 - h0) * (w1 - w0));
        for (int j = 0; j < c; ++j) o[j] /= count;
      }
}

void adaptive_avg_pool2d_backward_cpu(float* dinp, const float* dout, std::int64_t n, int h, int w, int c, int p,
                                      int q) {
  for (std::int64_t b = 0; b < n; ++b)
    for (int y = 0; y < h; ++y)
      for (int x = 0; x < w; ++x) {
        int i0, i1, k0, k1;
        adaptive_covering(y, h, p, &i0, &i1);
        adaptive_covering(x, w, q, &k0, &k1);
        float* d = dinp + ((b * h + y) * w + x) * c;
        for (int j = 0; j < c; ++j) d[j] = 0.f;
        for (int i = i0; i <= i1; ++i)
          for (int k = k0; k <= k1; ++k) {
            const float count =
                static_cast<float>((adaptive_end(i, h, p) - adaptive_start(i, h, p)) *
                                   (adaptive_end(k, w, q) - adaptive_start(k, w, q)));
            const float* g = dout + ((b * p + i) * q + k) * c;
            for (int j = 0; j < c; ++j) d[j] += g[j] / count;
          }
      }
}

}  // namespace graft
