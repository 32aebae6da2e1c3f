// Grouped convolutions on the CPU without im2col (ResNeXt's 3x3 convs: 32 groups of 4 to 64 channels).
//
// Why not im2col + GEMM as for groups == 1: per group that is one column buffer of R*S*Cg floats per output pixel
// (9x the input's bytes, written and read back) and one GEMM of Kg = 4..64 columns - too thin for OpenBLAS to
// reach speed. Here each output element is a short dot product read straight from the input and the weights, with
// the group's channels (Kg or Cg: 4..64, a template parameter) as the vector dimension, in SSE registers of four
// floats, and a block of pixels computed together (independent add chains; each weight load serves the block):
//   forward         out[n,p,q, g,j] = bias + sum_{r,s,c} inp[n,h,w, g,c] * W[g,j,r,s,c]     (vector over j)
//   backward data   dinp[n,h,w, g,c] = sum_{r,s: (p,q) hits (h,w)} sum_j dout[n,p,q, g,j] * W[g,j,r,s,c]
//                                      (gathered per input pixel; vector over c)
//   backward filter dW[g,j,r,s,c] = sum_{n,p,q} dout[n,p,q, g,j] * inp[n,h,w, g,c]
//                                      (a block of outputs x channels in registers; the compiler vectorises c)
// with h = p*stride_h - pad_h + r*dilation_h, w = q*stride_w - pad_w + s*dilation_w (kernels/conv2d.h).
// Measured (graft_bench_cpu --benchmark_filter='conv2d.*g:32', 2 threads, bench/RESULTS.md 2026-11-27): ResNeXt-50's
// layer1 conv (8,56,56,128), 32 groups of 4: forward 72.6 -> 15.1 ms, input gradient 65.8 -> 14.4 ms, filter
// gradient 75.6 -> 11.4 ms against im2col + GEMM. (1x1 grouped convs keep the pointwise GEMMs: faster for wide
// groups.)
// Threads: forward and backward data split rows, backward filter splits groups; every element is summed by one
// loop in one order, so results are bitwise the same for any thread count (kernels/cpu_parallel.h).
#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

#include "core/error.h"
#include "kernels/conv2d.h"
#include "kernels/cpu_parallel.h"

namespace graft {
namespace {

// First and one-past-last output column q whose input column w = q*stride - pad + s*dilation is inside [0, W).
void valid_columns(const Conv2dGeometry& g, std::int64_t s, std::int64_t& q_lo, std::int64_t& q_hi) {
  const std::int64_t offset = s * g.dilation_w - g.pad_w;  // w = q*stride + offset
  q_lo = offset >= 0 ? 0 : std::min<std::int64_t>(g.q, (-offset + g.stride_w - 1) / g.stride_w);
  q_hi = g.w - 1 - offset < 0 ? 0 : std::min<std::int64_t>(g.q, (g.w - 1 - offset) / g.stride_w + 1);
  q_hi = std::max(q_hi, q_lo);
}

// W (K,R,S,Cg) -> wt[g][r][s][c][j]: one tap's weights for the forward pass, Kg outputs contiguous per channel.
std::vector<float> forward_weights(const float* weight, const Conv2dGeometry& g) {
  const std::int64_t cg = g.c / g.groups, kg = g.k / g.groups;
  std::vector<float> wt(static_cast<std::size_t>(g.k * g.r * g.s * cg));
  for (std::int64_t grp = 0; grp < g.groups; ++grp)
    for (std::int64_t j = 0; j < kg; ++j)
      for (std::int64_t t = 0; t < g.r * g.s; ++t)
        for (std::int64_t c = 0; c < cg; ++c)
          wt[static_cast<std::size_t>(((grp * g.r * g.s + t) * cg + c) * kg + j)] =
              weight[((grp * kg + j) * g.r * g.s + t) * cg + c];
  return wt;
}

// W (K,R,S,Cg) -> wd[g][r][s][j][c]: one tap's weights for the input gradient, Cg channels contiguous per output.
std::vector<float> data_weights(const float* weight, const Conv2dGeometry& g) {
  const std::int64_t cg = g.c / g.groups, kg = g.k / g.groups;
  std::vector<float> wd(static_cast<std::size_t>(g.k * g.r * g.s * cg));
  for (std::int64_t grp = 0; grp < g.groups; ++grp)
    for (std::int64_t j = 0; j < kg; ++j)
      for (std::int64_t t = 0; t < g.r * g.s; ++t)
        std::memcpy(&wd[static_cast<std::size_t>(((grp * g.r * g.s + t) * kg + j) * cg)],
                    weight + ((grp * kg + j) * g.r * g.s + t) * cg, sizeof(float) * static_cast<std::size_t>(cg));
  return wd;
}

// Output columns q whose window lies inside the input horizontally for every tap s: [lo, hi) (maybe empty).
void interior_columns(const Conv2dGeometry& g, std::int64_t& lo, std::int64_t& hi) {
  lo = 0, hi = g.q;
  for (std::int64_t s = 0; s < g.s; ++s) {
    std::int64_t a, b;
    valid_columns(g, s, a, b);
    lo = std::max(lo, a), hi = std::min(hi, b);
  }
  hi = std::max(hi, lo);
}

// Pixels computed together: PX * (KG or CG) accumulators - independent add chains - and each weight load serves
// PX pixels.
constexpr int pixels_per_block(int width) { return width >= 32 ? 1 : 32 / width; }

// Four floats as one SSE register (GCC/Clang vector extension; a scalar operand is broadcast). Loads and stores
// go through memcpy: the rows are not 16-byte aligned.
using Float4 = float __attribute__((vector_size(16)));
inline Float4 load4(const float* p) {
  Float4 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline void store4(float* p, Float4 v) { std::memcpy(p, &v, sizeof v); }

// acc[px] (KG floats as KG/4 vectors) += sum_c x_px[c] * w[c][0..KG) over one tap, for PX pixels
// x_px = x + px * x_step.
template <int KG, int PX>
inline void forward_tap(Float4 (&acc)[PX][KG / 4], const float* x, std::int64_t x_step, const float* w,
                        std::int64_t cg) {
  for (std::int64_t c = 0; c < cg; ++c) {
    Float4 wc[KG / 4];
    for (int v = 0; v < KG / 4; ++v) wc[v] = load4(w + c * KG + 4 * v);
    for (int px = 0; px < PX; ++px) {
      const float xv = x[px * x_step + c];
      for (int v = 0; v < KG / 4; ++v) acc[px][v] += xv * wc[v];
    }
  }
}

// Output rows (n,p) [row0, row1): the KG outputs of every group at every pixel; PX pixels at a time where every
// tap is inside the input, one at a time at the borders.
template <int KG>
void forward_rows(float* out, const float* inp, const float* wt, const float* bias, const Conv2dGeometry& g,
                  std::int64_t row0, std::int64_t row1) {
  constexpr int PX = pixels_per_block(KG);
  const std::int64_t cg = g.c / g.groups, x_step = g.stride_w * g.c;
  std::int64_t inner_lo, inner_hi;
  interior_columns(g, inner_lo, inner_hi);
  for (std::int64_t row = row0; row < row1; ++row) {
    const std::int64_t n = row / g.p, p = row % g.p;
    for (std::int64_t grp = 0; grp < g.groups; ++grp) {
      // `Pixels` pixels from column q (all taps inside when Pixels == PX; bounds checked per tap when 1)
      auto pixels = [&](auto block, std::int64_t q) {
        constexpr int Pixels = decltype(block)::value;
        Float4 acc[Pixels][KG / 4];
        for (int px = 0; px < Pixels; ++px)
          for (int v = 0; v < KG / 4; ++v) acc[px][v] = bias ? load4(bias + grp * KG + 4 * v) : Float4{};
        for (std::int64_t r = 0; r < g.r; ++r) {
          const std::int64_t h = p * g.stride_h - g.pad_h + r * g.dilation_h;
          if (h < 0 || h >= g.h) continue;
          for (std::int64_t s = 0; s < g.s; ++s) {
            const std::int64_t w = q * g.stride_w - g.pad_w + s * g.dilation_w;
            if (Pixels == 1 && (w < 0 || w >= g.w)) continue;
            forward_tap<KG, Pixels>(acc, inp + ((n * g.h + h) * g.w + w) * g.c + grp * cg, x_step,
                               wt + ((grp * g.r + r) * g.s + s) * cg * KG, cg);
          }
        }
        for (int px = 0; px < Pixels; ++px)
          for (int v = 0; v < KG / 4; ++v) store4(out + (row * g.q + q + px) * g.k + grp * KG + 4 * v, acc[px][v]);
      };
      using One = std::integral_constant<int, 1>;
      using Block = std::integral_constant<int, PX>;
      std::int64_t q = 0;
      for (; q < inner_lo; ++q) pixels(One{}, q);
      for (; q + PX <= inner_hi; q += PX) pixels(Block{}, q);
      for (; q < g.q; ++q) pixels(One{}, q);
    }
  }
}

// acc[px] (CG floats as CG/4 vectors) += sum_j dy_px[j] * w[j][0..CG) over one tap, for PX input pixels whose output
// pixels are dy_px = dy + px * dy_step.
template <int CG, int PX>
inline void data_tap(Float4 (&acc)[PX][CG / 4], const float* dy, std::int64_t dy_step, const float* w,
                     std::int64_t kg) {
  for (std::int64_t j = 0; j < kg; ++j) {
    Float4 wj[CG / 4];
    for (int v = 0; v < CG / 4; ++v) wj[v] = load4(w + j * CG + 4 * v);
    for (int px = 0; px < PX; ++px) {
      const float dv = dy[px * dy_step + j];
      for (int v = 0; v < CG / 4; ++v) acc[px][v] += dv * wj[v];
    }
  }
}

// Input rows (n,h) [row0, row1): every input pixel's CG channel gradients of every group, gathered from the output
// pixels whose windows cover it; with stride 1, PX pixels at a time where every tap's output pixel exists.
template <int CG>
void backward_data_rows(float* dinp, const float* dout, const float* wd, const Conv2dGeometry& g, std::int64_t row0,
                        std::int64_t row1) {
  constexpr int PX = pixels_per_block(CG);
  const std::int64_t kg = g.k / g.groups;
  // Input columns w whose every tap s lands on an output column q = w + pad - s*dilation in [0, Q) (stride 1).
  std::int64_t inner_lo = 0, inner_hi = 0;
  if (g.stride_w == 1) {
    inner_lo = std::clamp<std::int64_t>((g.s - 1) * g.dilation_w - g.pad_w, 0, g.w);
    inner_hi = std::max(inner_lo, std::min<std::int64_t>(g.w, g.q - g.pad_w));
  }
  for (std::int64_t row = row0; row < row1; ++row) {
    const std::int64_t n = row / g.h, h = row % g.h;
    for (std::int64_t grp = 0; grp < g.groups; ++grp) {
      auto pixels = [&](auto block, std::int64_t w) {
        constexpr int Pixels = decltype(block)::value;
        Float4 acc[Pixels][CG / 4] = {};
        for (std::int64_t r = 0; r < g.r; ++r) {
          const std::int64_t ph = h + g.pad_h - r * g.dilation_h;  // = p * stride_h
          if (ph < 0 || ph % g.stride_h != 0 || ph / g.stride_h >= g.p) continue;
          const std::int64_t p = ph / g.stride_h;
          for (std::int64_t s = 0; s < g.s; ++s) {
            const std::int64_t qw = w + g.pad_w - s * g.dilation_w;  // = q * stride_w
            if (Pixels == 1 && (qw < 0 || qw % g.stride_w != 0 || qw / g.stride_w >= g.q)) continue;
            data_tap<CG, Pixels>(acc, dout + ((n * g.p + p) * g.q + qw / g.stride_w) * g.k + grp * kg, g.k,
                            wd + ((grp * g.r + r) * g.s + s) * kg * CG, kg);
          }
        }
        for (int px = 0; px < Pixels; ++px)
          for (int v = 0; v < CG / 4; ++v) store4(dinp + (row * g.w + w + px) * g.c + grp * CG + 4 * v, acc[px][v]);
      };
      using One = std::integral_constant<int, 1>;
      using Block = std::integral_constant<int, PX>;
      std::int64_t w = 0;
      for (; w < inner_lo; ++w) pixels(One{}, w);
      for (; w + PX <= inner_hi; w += PX) pixels(Block{}, w);
      for (; w < g.w; ++w) pixels(One{}, w);
    }
  }
}

// dW of groups [grp0, grp1), zeroed here: for every output row (n,p) in order, every tap's (JB x CG) block of
// outputs x channels is added to in registers over the row's pixels.
template <int CG>
void backward_filter_groups(float* dweight, const float* dout, const float* inp, const Conv2dGeometry& g,
                            std::int64_t grp0, std::int64_t grp1) {
  constexpr int JB = CG <= 16 ? 4 : CG == 32 ? 2 : 1;  // outputs per register block (JB*CG accumulators)
  const std::int64_t kg = g.k / g.groups, taps = g.r * g.s;
  std::memset(dweight + grp0 * kg * taps * CG, 0, sizeof(float) * static_cast<std::size_t>((grp1 - grp0) * kg * taps * CG));
  for (std::int64_t row = 0; row < g.n * g.p; ++row) {
    const std::int64_t n = row / g.p, p = row % g.p;
    for (std::int64_t r = 0; r < g.r; ++r) {
      const std::int64_t h = p * g.stride_h - g.pad_h + r * g.dilation_h;
      if (h < 0 || h >= g.h) continue;
      const float* in_row = inp + (n * g.h + h) * g.w * g.c;
      for (std::int64_t s = 0; s < g.s; ++s) {
        std::int64_t q_lo, q_hi;
        valid_columns(g, s, q_lo, q_hi);
        if (q_hi == q_lo) continue;
        const std::int64_t w_lo = q_lo * g.stride_w - g.pad_w + s * g.dilation_w;
        for (std::int64_t grp = grp0; grp < grp1; ++grp)
          for (std::int64_t j0 = 0; j0 < kg; j0 += JB) {
            float* dw = dweight + (((grp * kg + j0) * g.r + r) * g.s + s) * CG;  // row jj at + jj * taps * CG
            float acc[JB][CG];
            for (int jj = 0; jj < JB; ++jj) std::memcpy(acc[jj], dw + jj * taps * CG, sizeof acc[jj]);
            const float* dy = dout + (row * g.q + q_lo) * g.k + grp * kg + j0;
            const float* x = in_row + w_lo * g.c + grp * CG;
            for (std::int64_t q = q_lo; q < q_hi; ++q, dy += g.k, x += g.stride_w * g.c)
              for (int jj = 0; jj < JB; ++jj) {
                const float dv = dy[jj];
                for (int c = 0; c < CG; ++c) acc[jj][c] += dv * x[c];
              }
            for (int jj = 0; jj < JB; ++jj) std::memcpy(dw + jj * taps * CG, acc[jj], sizeof acc[jj]);
          }
      }
    }
  }
}

bool is_vector_width(std::int64_t v) { return v == 4 || v == 8 || v == 16 || v == 32 || v == 64; }

}  // namespace

bool conv2d_cpu_grouped_applies(const Conv2dGeometry& g) {
  return g.groups > 1 && !conv2d_is_pointwise(g) && is_vector_width(g.c / g.groups) && is_vector_width(g.k / g.groups);
}

void conv2d_forward_cpu_grouped(float* out, const float* inp, const float* weight, const float* bias,
                                const Conv2dGeometry& g) {
  GRAFT_CHECK(conv2d_cpu_grouped_applies(g), "conv2d_forward_cpu_grouped: no grouped kernel for ",
              conv2d_geometry_str(g));
  const std::vector<float> wt = forward_weights(weight, g);
  const std::int64_t kg = g.k / g.groups, work = g.q * g.k * g.r * g.s * (g.c / g.groups);
  parallel_for(g.n * g.p, work, [&](std::int64_t lo, std::int64_t hi) {
    switch (kg) {
      case 4: return forward_rows<4>(out, inp, wt.data(), bias, g, lo, hi);
      case 8: return forward_rows<8>(out, inp, wt.data(), bias, g, lo, hi);
      case 16: return forward_rows<16>(out, inp, wt.data(), bias, g, lo, hi);
      case 32: return forward_rows<32>(out, inp, wt.data(), bias, g, lo, hi);
      default: return forward_rows<64>(out, inp, wt.data(), bias, g, lo, hi);
    }
  });
}

void conv2d_backward_data_cpu_grouped(float* dinp, const float* dout, const float* weight, const Conv2dGeometry& g) {
  GRAFT_CHECK(conv2d_cpu_grouped_applies(g), "conv2d_backward_data_cpu_grouped: no grouped kernel for ",
              conv2d_geometry_str(g));
  const std::vector<float> wd = data_weights(weight, g);
  const std::int64_t cg = g.c / g.groups, work = g.w * g.c * g.r * g.s * (g.k / g.groups);
  parallel_for(g.n * g.h, work, [&](std::int64_t lo, std::int64_t hi) {
    switch (cg) {
      case 4: return backward_data_rows<4>(dinp, dout, wd.data(), g, lo, hi);
      case 8: return backward_data_rows<8>(dinp, dout, wd.data(), g, lo, hi);
      case 16: return backward_data_rows<16>(dinp, dout, wd.data(), g, lo, hi);
      case 32: return backward_data_rows<32>(dinp, dout, wd.data(), g, lo, hi);
      default: return backward_data_rows<64>(dinp, dout, wd.data(), g, lo, hi);
    }
  });
}

void conv2d_backward_filter_cpu_grouped(float* dweight, const float* dout, const float* inp, const Conv2dGeometry& g) {
  GRAFT_CHECK(conv2d_cpu_grouped_applies(g), "conv2d_backward_filter_cpu_grouped: no grouped kernel for ",
              conv2d_geometry_str(g));
  const std::int64_t cg = g.c / g.groups, work = g.n * g.p * g.q * (g.k / g.groups) * g.r * g.s * cg;
  parallel_for(g.groups, work, [&](std::int64_t lo, std::int64_t hi) {
    switch (cg) {
      case 4: return backward_filter_groups<4>(dweight, dout, inp, g, lo, hi);
      case 8: return backward_filter_groups<8>(dweight, dout, inp, g, lo, hi);
      case 16: return backward_filter_groups<16>(dweight, dout, inp, g, lo, hi);
      case 32: return backward_filter_groups<32>(dweight, dout, inp, g, lo, hi);
      default: return backward_filter_groups<64>(dweight, dout, inp, g, lo, hi);
    }
  });
}

}  // namespace graft
