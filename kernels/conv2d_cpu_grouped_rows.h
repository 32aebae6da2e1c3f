// The row kernels of the grouped CPU convolutions (kernels/conv2d_cpu_grouped.cpp says why they exist and what they
// compute). Included by exactly two files, which build them for two instruction sets:
//   conv2d_cpu_grouped.cpp       the default build (x86-64: SSE registers of 4 floats)
//   conv2d_cpu_grouped_avx2.cpp  compiled with -mavx2 -mfma (registers of 8 floats, fused multiply-adds), run when
//                                the CPU has both
// Everything here has internal linkage and uses no std:: template that the compiler could emit out of line: an
// AVX2 copy of a function shared with the rest of the program could be picked by the linker and run on a CPU
// without AVX2.
#pragma once
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "kernels/conv2d.h"

namespace graft {

// One build of the row kernels. wt / wd: the weights rearranged by the caller (conv2d_cpu_grouped.cpp).
struct GroupedRowKernels {
  // output rows (n,p) [row0, row1), every group
  void (*forward)(float* out, const float* inp, const float* wt, const float* bias, const Conv2dGeometry& g,
                  std::int64_t row0, std::int64_t row1);
  // input rows (n,h) [row0, row1), every group
  void (*backward_data)(float* dinp, const float* dout, const float* wd, const Conv2dGeometry& g, std::int64_t row0,
                        std::int64_t row1);
  // dW of groups [grp0, grp1)
  void (*backward_filter)(float* dweight, const float* dout, const float* inp, const Conv2dGeometry& g,
                          std::int64_t grp0, std::int64_t grp1);
};
GroupedRowKernels grouped_row_kernels_sse();
GroupedRowKernels grouped_row_kernels_avx2();  // only on x86-64 builds

namespace {

inline std::int64_t min64(std::int64_t a, std::int64_t b) { return a < b ? a : b; }
inline std::int64_t max64(std::int64_t a, std::int64_t b) { return a > b ? a : b; }

// First and one-past-last output column q whose input column w = q*stride - pad + s*dilation is inside [0, W).
void valid_columns(const Conv2dGeometry& g, std::int64_t s, std::int64_t& q_lo, std::int64_t& q_hi) {
  const std::int64_t offset = s * g.dilation_w - g.pad_w;  // w = q*stride + offset
  q_lo = offset >= 0 ? 0 : min64(g.q, (-offset + g.stride_w - 1) / g.stride_w);
  q_hi = g.w - 1 - offset < 0 ? 0 : min64(g.q, (g.w - 1 - offset) / g.stride_w + 1);
  q_hi = max64(q_hi, q_lo);
}

// Output columns q whose window lies inside the input horizontally for every tap s: [lo, hi) (maybe empty).
void interior_columns(const Conv2dGeometry& g, std::int64_t& lo, std::int64_t& hi) {
  lo = 0, hi = g.q;
  for (std::int64_t s = 0; s < g.s; ++s) {
    std::int64_t a, b;
    valid_columns(g, s, a, b);
    lo = max64(lo, a), hi = min64(hi, b);
  }
  hi = max64(hi, lo);
}

// Registers: 8 floats (AVX2) in the build compiled with -mavx2 -mfma, else 4 (SSE); a group narrower than that
// (4 channels under AVX2) uses registers of its own width. Vec<L> is L floats as one register (GCC/Clang vector
// extension; a scalar operand is broadcast). Loads and stores go through memcpy: rows are not 16-byte aligned.
#if defined(__AVX2__) && defined(__FMA__)
constexpr int kMaxLanes = 8;
#else
constexpr int kMaxLanes = 4;
#endif
template <int Lanes>
struct VecOf {
  typedef float type __attribute__((vector_size(4 * Lanes)));
};
template <int Lanes>
using Vec = typename VecOf<Lanes>::type;
template <int Width>
constexpr int lanes_for() {
  return Width < kMaxLanes ? Width : kMaxLanes;
}
template <int Lanes>
inline Vec<Lanes> load(const float* p) {
  Vec<Lanes> v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
template <int Lanes>
inline void store(float* p, Vec<Lanes> v) {
  std::memcpy(p, &v, sizeof v);
}

// Pixels computed together: about 8 vector accumulators - independent add chains - and each weight load serves
// that many pixels (SSE: 32 / width pixels, as before the AVX2 build existed).
template <int Width>
constexpr int pixels_per_block() {
  constexpr int vectors = Width / lanes_for<Width>();
  return vectors >= 8 ? 1 : 8 / vectors;
}

// One tap of either direction: acc[px] (N floats as N/L vectors of L) += sum_i a_px[i] * w[i][0..N) for PX
// pixels whose operands are a_px = a + px * a_step, i < count. Forward: a = input channels, w = the tap's weights
// (count = Cg, N = Kg). Input gradient: a = output gradients, w = the tap's transposed weights (count = Kg, N = Cg).
template <int N, int PX, int L = lanes_for<N>()>
inline void accumulate_tap(Vec<L> (&acc)[PX][N / L], const float* a, std::int64_t a_step, const float* w,
                           std::int64_t count) {
  for (std::int64_t i = 0; i < count; ++i) {
    Vec<L> wi[N / L];
    for (int v = 0; v < N / L; ++v) wi[v] = load<L>(w + i * N + L * v);
    for (int px = 0; px < PX; ++px) {
      const float av = a[px * a_step + i];
      for (int v = 0; v < N / L; ++v) acc[px][v] += av * wi[v];
    }
  }
}

// Output rows (n,p) [row0, row1): the KG outputs of every group at every pixel; PX pixels at a time where every
// tap is inside the input, one at a time at the borders.
template <int KG>
void forward_rows(float* out, const float* inp, const float* wt, const float* bias, const Conv2dGeometry& g,
                  std::int64_t row0, std::int64_t row1) {
  constexpr int PX = pixels_per_block<KG>(), L = lanes_for<KG>();
  const std::int64_t cg = g.c / g.groups, x_step = g.stride_w * g.c;
  std::int64_t inner_lo, inner_hi;
  interior_columns(g, inner_lo, inner_hi);
  for (std::int64_t row = row0; row < row1; ++row) {
    const std::int64_t n = row / g.p, p = row % g.p;
    for (std::int64_t grp = 0; grp < g.groups; ++grp) {
      // `Pixels` pixels from column q (all taps inside when Pixels == PX; bounds checked per tap when 1)
      auto pixels = [&](auto block, std::int64_t q) {
        constexpr int Pixels = decltype(block)::value;
        Vec<L> acc[Pixels][KG / L];
        for (int px = 0; px < Pixels; ++px)
          for (int v = 0; v < KG / L; ++v) acc[px][v] = bias ? load<L>(bias + grp * KG + L * v) : Vec<L>{};
        for (std::int64_t r = 0; r < g.r; ++r) {
          const std::int64_t h = p * g.stride_h - g.pad_h + r * g.dilation_h;
          if (h < 0 || h >= g.h) continue;
          for (std::int64_t s = 0; s < g.s; ++s) {
            const std::int64_t w = q * g.stride_w - g.pad_w + s * g.dilation_w;
            if (Pixels == 1 && (w < 0 || w >= g.w)) continue;
            accumulate_tap<KG, Pixels>(acc, inp + ((n * g.h + h) * g.w + w) * g.c + grp * cg, x_step,
                                       wt + ((grp * g.r + r) * g.s + s) * cg * KG, cg);
          }
        }
        for (int px = 0; px < Pixels; ++px)
          for (int v = 0; v < KG / L; ++v) store<L>(out + (row * g.q + q + px) * g.k + grp * KG + L * v, acc[px][v]);
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

// Input rows (n,h) [row0, row1): every input pixel's CG channel gradients of every group, gathered from the output
// pixels whose windows cover it; with stride 1, PX pixels at a time where every tap's output pixel exists.
template <int CG>
void backward_data_rows(float* dinp, const float* dout, const float* wd, const Conv2dGeometry& g, std::int64_t row0,
                        std::int64_t row1) {
  constexpr int PX = pixels_per_block<CG>(), L = lanes_for<CG>();
  const std::int64_t kg = g.k / g.groups;
  // Input columns w whose every tap s lands on an output column q = w + pad - s*dilation in [0, Q) (stride 1).
  std::int64_t inner_lo = 0, inner_hi = 0;
  if (g.stride_w == 1) {
    inner_lo = min64(max64((g.s - 1) * g.dilation_w - g.pad_w, 0), g.w);
    inner_hi = max64(inner_lo, min64(g.w, g.q - g.pad_w));
  }
  for (std::int64_t row = row0; row < row1; ++row) {
    const std::int64_t n = row / g.h, h = row % g.h;
    for (std::int64_t grp = 0; grp < g.groups; ++grp) {
      auto pixels = [&](auto block, std::int64_t w) {
        constexpr int Pixels = decltype(block)::value;
        Vec<L> acc[Pixels][CG / L] = {};
        for (std::int64_t r = 0; r < g.r; ++r) {
          const std::int64_t ph = h + g.pad_h - r * g.dilation_h;  // = p * stride_h
          if (ph < 0 || ph % g.stride_h != 0 || ph / g.stride_h >= g.p) continue;
          const std::int64_t p = ph / g.stride_h;
          for (std::int64_t s = 0; s < g.s; ++s) {
            const std::int64_t qw = w + g.pad_w - s * g.dilation_w;  // = q * stride_w
            if (Pixels == 1 && (qw < 0 || qw % g.stride_w != 0 || qw / g.stride_w >= g.q)) continue;
            accumulate_tap<CG, Pixels>(acc, dout + ((n * g.p + p) * g.q + qw / g.stride_w) * g.k + grp * kg, g.k,
                                       wd + ((grp * g.r + r) * g.s + s) * kg * CG, kg);
          }
        }
        for (int px = 0; px < Pixels; ++px)
          for (int v = 0; v < CG / L; ++v) store<L>(dinp + (row * g.w + w + px) * g.c + grp * CG + L * v, acc[px][v]);
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

// The entry points of this build: the group width picks the template.
void grouped_forward_rows(float* out, const float* inp, const float* wt, const float* bias, const Conv2dGeometry& g,
                          std::int64_t row0, std::int64_t row1) {
  switch (g.k / g.groups) {
    case 4: return forward_rows<4>(out, inp, wt, bias, g, row0, row1);
    case 8: return forward_rows<8>(out, inp, wt, bias, g, row0, row1);
    case 16: return forward_rows<16>(out, inp, wt, bias, g, row0, row1);
    case 32: return forward_rows<32>(out, inp, wt, bias, g, row0, row1);
    default: return forward_rows<64>(out, inp, wt, bias, g, row0, row1);
  }
}

void grouped_backward_data_rows(float* dinp, const float* dout, const float* wd, const Conv2dGeometry& g,
                                std::int64_t row0, std::int64_t row1) {
  switch (g.c / g.groups) {
    case 4: return backward_data_rows<4>(dinp, dout, wd, g, row0, row1);
    case 8: return backward_data_rows<8>(dinp, dout, wd, g, row0, row1);
    case 16: return backward_data_rows<16>(dinp, dout, wd, g, row0, row1);
    case 32: return backward_data_rows<32>(dinp, dout, wd, g, row0, row1);
    default: return backward_data_rows<64>(dinp, dout, wd, g, row0, row1);
  }
}

void grouped_backward_filter(float* dweight, const float* dout, const float* inp, const Conv2dGeometry& g,
                             std::int64_t grp0, std::int64_t grp1) {
  switch (g.c / g.groups) {
    case 4: return backward_filter_groups<4>(dweight, dout, inp, g, grp0, grp1);
    case 8: return backward_filter_groups<8>(dweight, dout, inp, g, grp0, grp1);
    case 16: return backward_filter_groups<16>(dweight, dout, inp, g, grp0, grp1);
    case 32: return backward_filter_groups<32>(dweight, dout, inp, g, grp0, grp1);
    default: return backward_filter_groups<64>(dweight, dout, inp, g, grp0, grp1);
  }
}

}  // namespace
}  // namespace graft
