// conv2d on the CPU: im2col/col2im + OpenBLAS sgemm, the pointwise (1x1) GEMM case, the dispatch (grouped convs:
// kernels/conv2d_cpu_grouped.cpp), and the direct reference.
// See kernels/conv2d.h for the math. The GEMMs (gemm_cpu_ld), the im2col copies and col2im (whole images per
// thread: its windows overlap only within an image) run on the CPU threads (kernels/cpu_parallel.h).
#include <algorithm>
#include <cstring>
#include <sstream>
#include <vector>

#include "core/error.h"
#include "kernels/conv2d.h"
#include "kernels/cpu_parallel.h"
#include "kernels/gemm.h"

namespace graft {
namespace {

// Row-major C (m,n) = op(A) op(B) + beta C with explicit leading dimensions: a grouped conv reads and writes a
// channel slice of each NHWC row in place.
void gemm_ld(float* c, std::int64_t ldc, const float* a, std::int64_t lda, const float* b, std::int64_t ldb,
             bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k, float beta) {
  gemm_cpu_ld(c, ldc, a, lda, b, ldb, trans_a, trans_b, m, n, k, 1.f, beta);
}

std::int64_t channels_per_group(const Conv2dGeometry& g) { return g.c / g.groups; }
std::int64_t col_row_floats(const Conv2dGeometry& g) { return g.r * g.s * channels_per_group(g); }

// How many output pixels (im2col rows) one pass handles with this workspace.
std::int64_t chunk_rows(const Conv2dGeometry& g, std::size_t workspace_bytes) {
  const std::int64_t row_bytes = col_row_floats(g) * static_cast<std::int64_t>(sizeof(float));
  const std::int64_t rows = static_cast<std::int64_t>(workspace_bytes) / row_bytes;
  GRAFT_CHECK(rows >= 1, "conv2d: workspace of ", workspace_bytes, " bytes is smaller than one im2col row (", row_bytes,
              " bytes) for ", conv2d_geometry_str(g));
  return std::min(rows, g.n * g.p * g.q);
}

// The valid taps [s_lo, s_hi) of a row of S taps starting at input column w0, for dilation_w == 1.
void valid_taps(std::int64_t w0, const Conv2dGeometry& g, std::int64_t& s_lo, std::int64_t& s_hi) {
  s_lo = std::min<std::int64_t>(w0 < 0 ? -w0 : 0, g.s);
  s_hi = std::max(s_lo, std::min<std::int64_t>(g.s, g.w - w0));
}

// col (m1-m0, R*S*Cg): row m = (n,p,q), columns (r,s,c) = the input patch of output pixel m, channels of `group`.
void im2col_rows(float* col, const float* inp, const Conv2dGeometry& g, std::int64_t group, std::int64_t m0,
                 std::int64_t m1) {
  const std::int64_t cg = channels_per_group(g), row_len = col_row_floats(g), pq = g.p * g.q;
  const std::int64_t tap_run = g.s * cg;
  // With unit horizontal dilation and one group, the S taps of one kernel row are one contiguous run of S*C
  // input floats, so a kernel row is (at most) zeros + one memcpy + zeros.
  const bool contiguous_taps = g.dilation_w == 1 && g.groups == 1;
  for (std::int64_t m = m0; m < m1; ++m) {
    const std::int64_t n = m / pq, pix = m % pq, p = pix / g.q, q = pix % g.q;
    const std::int64_t h0 = p * g.stride_h - g.pad_h, w0 = q * g.stride_w - g.pad_w;
    const float* image = inp + n * g.h * g.w * g.c + group * cg;
    float* row = col + (m - m0) * row_len;
    for (std::int64_t r = 0; r < g.r; ++r) {
      float* dst = row + r * tap_run;
      const std::int64_t h = h0 + r * g.dilation_h;
      if (h < 0 || h >= g.h) {
        std::memset(dst, 0, sizeof(float) * tap_run);
        continue;
      }
      const float* src = image + h * g.w * g.c;
      if (contiguous_taps) {
        std::int64_t s_lo, s_hi;
        valid_taps(w0, g, s_lo, s_hi);
        std::memset(dst, 0, sizeof(float) * s_lo * cg);
        if (s_hi > s_lo) std::memcpy(dst + s_lo * cg, src + (w0 + s_lo) * g.c, sizeof(float) * (s_hi - s_lo) * cg);
        std::memset(dst + s_hi * cg, 0, sizeof(float) * (g.s - s_hi) * cg);
      } else {
        for (std::int64_t s = 0; s < g.s; ++s) {
          const std::int64_t w = w0 + s * g.dilation_w;
          if (w < 0 || w >= g.w)
            std::memset(dst + s * cg, 0, sizeof(float) * cg);
          else
            std::memcpy(dst + s * cg, src + w * g.c, sizeof(float) * cg);
        }
      }
    }
  }
}

// im2col_rows over the CPU threads: each thread fills its own rows of col (rows are independent copies).
void im2col_rows_parallel(float* col, const float* inp, const Conv2dGeometry& g, std::int64_t group,
                          std::int64_t m0, std::int64_t m1) {
  const std::int64_t row_len = col_row_floats(g);
  parallel_for(m1 - m0, row_len, [&](std::int64_t lo, std::int64_t hi) {
    im2col_rows(col + lo * row_len, inp, g, group, m0 + lo, m0 + hi);
  });
}

// dinp += col2im(col): the adjoint of im2col_rows.
void col2im_rows(float* dinp, const float* col, const Conv2dGeometry& g, std::int64_t group, std::int64_t m0,
                 std::int64_t m1) {
  const std::int64_t cg = channels_per_group(g), row_len = col_row_floats(g), pq = g.p * g.q;
  const std::int64_t tap_run = g.s * cg;
  const bool contiguous_taps = g.dilation_w == 1 && g.groups == 1;
  for (std::int64_t m = m0; m < m1; ++m) {
    const std::int64_t n = m / pq, pix = m % pq, p = pix / g.q, q = pix % g.q;
    const std::int64_t h0 = p * g.stride_h - g.pad_h, w0 = q * g.stride_w - g.pad_w;
    float* image = dinp + n * g.h * g.w * g.c + group * cg;
    const float* row = col + (m - m0) * row_len;
    for (std::int64_t r = 0; r < g.r; ++r) {
      const std::int64_t h = h0 + r * g.dilation_h;
      if (h < 0 || h >= g.h) continue;
      const float* src = row + r * tap_run;
      float* dst = image + h * g.w * g.c;
      if (contiguous_taps) {
        std::int64_t s_lo, s_hi;
        valid_taps(w0, g, s_lo, s_hi);
        if (s_hi == s_lo) continue;
        float* d = dst + (w0 + s_lo) * g.c;
        const float* v = src + s_lo * cg;
        const std::int64_t len = (s_hi - s_lo) * cg;
        for (std::int64_t i = 0; i < len; ++i) d[i] += v[i];
      } else {
        for (std::int64_t s = 0; s < g.s; ++s) {
          const std::int64_t w = w0 + s * g.dilation_w;
          if (w < 0 || w >= g.w) continue;
          float* d = dst + w * g.c;
          const float* v = src + s * cg;
          for (std::int64_t c = 0; c < cg; ++c) d[c] += v[c];
        }
      }
    }
  }
}

// out rows [0, rows) of K channels each start as the bias.
void fill_bias_rows(float* out, const float* bias, std::int64_t rows, std::int64_t k) {
  for (std::int64_t i = 0; i < rows; ++i) std::memcpy(out + i * k, bias, sizeof(float) * k);
}

// col2im_rows over the CPU threads, whole images per thread: windows overlap only within an image, so images are
// independent, and each image's rows are still added in order (the same bits for any thread count).
void col2im_rows_parallel(float* dinp, const float* col, const Conv2dGeometry& g, std::int64_t group,
                          std::int64_t m0, std::int64_t m1) {
  const std::int64_t pq = g.p * g.q, row_len = col_row_floats(g), first_image = m0 / pq;
  parallel_for((m1 - 1) / pq - first_image + 1, pq * row_len, [&](std::int64_t lo, std::int64_t hi) {
    const std::int64_t a = std::max(m0, (first_image + lo) * pq), b = std::min(m1, (first_image + hi) * pq);
    col2im_rows(dinp, col + (a - m0) * row_len, g, group, a, b);
  });
}


}  // namespace

std::string conv2d_geometry_str(const Conv2dGeometry& g) {
  std::ostringstream s;
  s << "in (" << g.n << "," << g.h << "," << g.w << "," << g.c << ") w (" << g.k << "," << g.r << "," << g.s << ","
    << channels_per_group(g) << ") out (" << g.n << "," << g.p << "," << g.q << "," << g.k << ") stride " << g.stride_h
    << "x" << g.stride_w << " pad " << g.pad_h << "x" << g.pad_w << " dil " << g.dilation_h << "x" << g.dilation_w
    << " groups " << g.groups;
  return s.str();
}

bool conv2d_is_pointwise(const Conv2dGeometry& g) {
  return g.r == 1 && g.s == 1 && g.stride_h == 1 && g.stride_w == 1 && g.pad_h == 0 && g.pad_w == 0;
}

const char* conv2d_cpu_path(const Conv2dGeometry& g) {
  return conv2d_cpu_grouped_applies(g) ? "grouped" : conv2d_is_pointwise(g) ? "pointwise" : "im2col";
}

std::size_t conv2d_workspace_bytes_cpu_im2col(const Conv2dGeometry& g) {
  const std::size_t row_bytes = static_cast<std::size_t>(col_row_floats(g)) * sizeof(float);
  const std::size_t rows_total = static_cast<std::size_t>(std::max<std::int64_t>(g.n * g.p * g.q, 1));
  const std::size_t rows = std::clamp<std::size_t>(kConv2dCpuWorkspaceLimit / row_bytes, 1, rows_total);
  return rows * row_bytes;
}

std::size_t conv2d_workspace_bytes_cpu(const Conv2dGeometry& g) {
  return conv2d_cpu_grouped_applies(g) || conv2d_is_pointwise(g) ? 0 : conv2d_workspace_bytes_cpu_im2col(g);
}

// ---- dispatch ----------------------------------------------------------------------------------------------
void conv2d_forward_cpu(float* out, const float* inp, const float* weight, const float* bias, const Conv2dGeometry& g,
                        float* workspace, std::size_t workspace_bytes) {
  if (conv2d_cpu_grouped_applies(g))
    conv2d_forward_cpu_grouped(out, inp, weight, bias, g);
  else if (conv2d_is_pointwise(g))
    conv2d_forward_cpu_pointwise(out, inp, weight, bias, g);
  else
    conv2d_forward_cpu_im2col(out, inp, weight, bias, g, workspace, workspace_bytes);
}

void conv2d_backward_data_cpu(float* dinp, const float* dout, const float* weight, const Conv2dGeometry& g,
                              float* workspace, std::size_t workspace_bytes) {
  if (conv2d_cpu_grouped_applies(g))
    conv2d_backward_data_cpu_grouped(dinp, dout, weight, g);
  else if (conv2d_is_pointwise(g))
    conv2d_backward_data_cpu_pointwise(dinp, dout, weight, g);
  else
    conv2d_backward_data_cpu_im2col(dinp, dout, weight, g, workspace, workspace_bytes);
}

void conv2d_backward_filter_cpu(float* dweight, const float* dout, const float* inp, const Conv2dGeometry& g,
                                float* workspace, std::size_t workspace_bytes) {
  if (conv2d_cpu_grouped_applies(g))
    conv2d_backward_filter_cpu_grouped(dweight, dout, inp, g);
  else if (conv2d_is_pointwise(g))
    conv2d_backward_filter_cpu_pointwise(dweight, dout, inp, g);
  else
    conv2d_backward_filter_cpu_im2col(dweight, dout, inp, g, workspace, workspace_bytes);
}

// ---- im2col + GEMM -----------------------------------------------------------------------------------------
void conv2d_forward_cpu_im2col(float* out, const float* inp, const float* weight, const float* bias,
                               const Conv2dGeometry& g, float* workspace, std::size_t workspace_bytes) {
  const std::int64_t rows_total = g.n * g.p * g.q, row_len = col_row_floats(g), kg = g.k / g.groups;
  const std::int64_t chunk = chunk_rows(g, workspace_bytes);
  for (std::int64_t m0 = 0; m0 < rows_total; m0 += chunk) {
    const std::int64_t rows = std::min(chunk, rows_total - m0);
    float* out_rows = out + m0 * g.k;
    if (bias) fill_bias_rows(out_rows, bias, rows, g.k);
    for (std::int64_t grp = 0; grp < g.groups; ++grp) {
      im2col_rows_parallel(workspace, inp, g, grp, m0, m0 + rows);
      // out[rows, grp slice] (+)= col (rows, RSCg) x W_grp^T, W_grp (Kg, RSCg)
      gemm_ld(out_rows + grp * kg, g.k, workspace, row_len, weight + grp * kg * row_len, row_len, false, true, rows, kg,
              row_len, bias ? 1.f : 0.f);
    }
  }
}

void conv2d_backward_data_cpu_im2col(float* dinp, const float* dout, const float* weight, const Conv2dGeometry& g,
                                     float* workspace, std::size_t workspace_bytes) {
  const std::int64_t rows_total = g.n * g.p * g.q, row_len = col_row_floats(g), kg = g.k / g.groups;
  const std::int64_t chunk = chunk_rows(g, workspace_bytes);
  std::memset(dinp, 0, sizeof(float) * static_cast<std::size_t>(g.n * g.h * g.w * g.c));
  for (std::int64_t m0 = 0; m0 < rows_total; m0 += chunk) {
    const std::int64_t rows = std::min(chunk, rows_total - m0);
    for (std::int64_t grp = 0; grp < g.groups; ++grp) {
      // dcol (rows, RSCg) = dout[rows, grp slice] (rows, Kg) x W_grp (Kg, RSCg)
      gemm_ld(workspace, row_len, dout + m0 * g.k + grp * kg, g.k, weight + grp * kg * row_len, row_len, false, false,
              rows, row_len, kg, 0.f);
      col2im_rows_parallel(dinp, workspace, g, grp, m0, m0 + rows);
    }
  }
}

void conv2d_backward_filter_cpu_im2col(float* dweight, const float* dout, const float* inp, const Conv2dGeometry& g,
                                       float* workspace, std::size_t workspace_bytes) {
  const std::int64_t rows_total = g.n * g.p * g.q, row_len = col_row_floats(g), kg = g.k / g.groups;
  const std::int64_t chunk = chunk_rows(g, workspace_bytes);
  if (rows_total == 0) std::memset(dweight, 0, sizeof(float) * static_cast<std::size_t>(g.k * row_len));
  for (std::int64_t m0 = 0; m0 < rows_total; m0 += chunk) {
    const std::int64_t rows = std::min(chunk, rows_total - m0);
    for (std::int64_t grp = 0; grp < g.groups; ++grp) {
      im2col_rows_parallel(workspace, inp, g, grp, m0, m0 + rows);
      // dW_grp (Kg, RSCg) (+)= dout[rows, grp slice]^T (Kg, rows) x col (rows, RSCg)
      gemm_ld(dweight + grp * kg * row_len, row_len, dout + m0 * g.k + grp * kg, g.k, workspace, row_len, true, false,
              kg, row_len, rows, m0 == 0 ? 0.f : 1.f);
    }
  }
}

// ---- pointwise: the input rows are the im2col rows ------------------------------------------------------------
void conv2d_forward_cpu_pointwise(float* out, const float* inp, const float* weight, const float* bias,
                                  const Conv2dGeometry& g) {
  const std::int64_t rows = g.n * g.h * g.w, cg = channels_per_group(g), kg = g.k / g.groups;
  if (bias) fill_bias_rows(out, bias, rows, g.k);
  for (std::int64_t grp = 0; grp < g.groups; ++grp)
    gemm_ld(out + grp * kg, g.k, inp + grp * cg, g.c, weight + grp * kg * cg, cg, false, true, rows, kg, cg,
            bias ? 1.f : 0.f);
}

void conv2d_backward_data_cpu_pointwise(float* dinp, const float* dout, const float* weight, const Conv2dGeometry& g) {
  const std::int64_t rows = g.n * g.h * g.w, cg = channels_per_group(g), kg = g.k / g.groups;
  for (std::int64_t grp = 0; grp < g.groups; ++grp)
    gemm_ld(dinp + grp * cg, g.c, dout + grp * kg, g.k, weight + grp * kg * cg, cg, false, false, rows, cg, kg, 0.f);
}

void conv2d_backward_filter_cpu_pointwise(float* dweight, const float* dout, const float* inp,
                                          const Conv2dGeometry& g) {
  const std::int64_t rows = g.n * g.h * g.w, cg = channels_per_group(g), kg = g.k / g.groups;
  if (rows == 0) {
    std::memset(dweight, 0, sizeof(float) * static_cast<std::size_t>(g.k * cg));
    return;
  }
  for (std::int64_t grp = 0; grp < g.groups; ++grp)
    gemm_ld(dweight + grp * kg * cg, cg, dout + grp * kg, g.k, inp + grp * cg, g.c, true, false, kg, cg, rows, 0.f);
}

// ---- direct reference --------------------------------------------------------------------------------------
void conv2d_forward_cpu_direct(float* out, const float* inp, const float* weight, const float* bias,
                               const Conv2dGeometry& g) {
  const std::int64_t cg = channels_per_group(g), kg = g.k / g.groups;
  for (std::int64_t n = 0; n < g.n; ++n)
    for (std::int64_t p = 0; p < g.p; ++p)
      for (std::int64_t q = 0; q < g.q; ++q)
        for (std::int64_t k = 0; k < g.k; ++k) {
          const std::int64_t grp = k / kg;
          double acc = bias ? bias[k] : 0.0;
          for (std::int64_t r = 0; r < g.r; ++r) {
            const std::int64_t h = p * g.stride_h - g.pad_h + r * g.dilation_h;
            if (h < 0 || h >= g.h) continue;
            for (std::int64_t s = 0; s < g.s; ++s) {
              const std::int64_t w = q * g.stride_w - g.pad_w + s * g.dilation_w;
              if (w < 0 || w >= g.w) continue;
              for (std::int64_t c = 0; c < cg; ++c)
                acc += double(inp[((n * g.h + h) * g.w + w) * g.c + grp * cg + c]) *
                       weight[((k * g.r + r) * g.s + s) * cg + c];
            }
          }
          out[((n * g.p + p) * g.q + q) * g.k + k] = static_cast<float>(acc);
        }
}

void conv2d_backward_data_cpu_direct(float* dinp, const float* dout, const float* weight, const Conv2dGeometry& g) {
  const std::int64_t cg = channels_per_group(g), kg = g.k / g.groups;
  std::vector<double> acc(static_cast<std::size_t>(g.n * g.h * g.w * g.c), 0.0);
  for (std::int64_t n = 0; n < g.n; ++n)
    for (std::int64_t p = 0; p < g.p; ++p)
      for (std::int64_t q = 0; q < g.q; ++q)
        for (std::int64_t k = 0; k < g.k; ++k) {
          const std::int64_t grp = k / kg;
          const double d = dout[((n * g.p + p) * g.q + q) * g.k + k];
          for (std::int64_t r = 0; r < g.r; ++r) {
            const std::int64_t h = p * g.stride_h - g.pad_h + r * g.dilation_h;
            if (h < 0 || h >= g.h) continue;
            for (std::int64_t s = 0; s < g.s; ++s) {
              const std::int64_t w = q * g.stride_w - g.pad_w + s * g.dilation_w;
              if (w < 0 || w >= g.w) continue;
              for (std::int64_t c = 0; c < cg; ++c)
                acc[static_cast<std::size_t>(((n * g.h + h) * g.w + w) * g.c + grp * cg + c)] +=
                    d * weight[((k * g.r + r) * g.s + s) * cg + c];
            }
          }
        }
  for (std::size_t i = 0; i < acc.size(); ++i) dinp[i] = static_cast<float>(acc[i]);
}

void conv2d_backward_filter_cpu_direct(float* dweight, const float* dout, const float* inp, const Conv2dGeometry& g) {
  const std::int64_t cg = channels_per_group(g), kg = g.k / g.groups;
  for (std::int64_t k = 0; k < g.k; ++k) {
    const std::int64_t grp = k / kg;
    for (std::int64_t r = 0; r < g.r; ++r)
      for (std::int64_t s = 0; s < g.s; ++s)
        for (std::int64_t c = 0; c < cg; ++c) {
          double acc = 0.0;
          for (std::int64_t n = 0; n < g.n; ++n)
            for (std::int64_t p = 0; p < g.p; ++p) {
              const std::int64_t h = p * g.stride_h - g.pad_h + r * g.dilation_h;
              if (h < 0 || h >= g.h) continue;
              for (std::int64_t q = 0; q < g.q; ++q) {
                const std::int64_t w = q * g.stride_w - g.pad_w + s * g.dilation_w;
                if (w < 0 || w >= g.w) continue;
                acc += double(dout[((n * g.p + p) * g.q + q) * g.k + k]) *
                       inp[((n * g.h + h) * g.w + w) * g.c + grp * cg + c];
              }
            }
          dweight[((k * g.r + r) * g.s + s) * cg + c] = static_cast<float>(acc);
        }
  }
}

}  // namespace graft
