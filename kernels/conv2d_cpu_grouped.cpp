// Grouped convolutions on the CPU without im2col (ResNeXt's 3x3 convs: 32 groups of 4 to 64 channels).
//
// Why not im2col + GEMM as for groups == 1: per group that is one column buffer of R*S*Cg floats per output pixel
// (9x the input's bytes, written and read back) and one GEMM of Kg = 4..64 columns - too thin for OpenBLAS to
// reach speed. Here each output element is a short dot product read straight from the input and the weights, with
// the group's channels (Kg or Cg: 4..64, a template parameter) as the vector dimension, in registers of 4 floats
// (SSE) or, on CPUs with AVX2 and FMA, 8 floats with fused multiply-adds (kernels/conv2d_cpu_grouped_rows.h, built
// twice), and a block of pixels computed together (independent add chains; each weight load serves the block):
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
// loop in one order, so results are bitwise the same for any thread count (kernels/cpu_parallel.h). The AVX2 build
// rounds differently (fused multiply-adds): results depend on which build runs, which the machine decides
// (conv2d_cpu_grouped_isa(); GRAFT_CPU_AVX2=0 in the environment or conv2d_cpu_grouped_use_avx2(false) forces the
// SSE build).
#include <atomic>
#include <cstdlib>
#include <string>
#include <vector>

#include "core/error.h"
#include "kernels/conv2d.h"
#include "kernels/conv2d_cpu_grouped_rows.h"
#include "kernels/cpu_parallel.h"

namespace graft {

GroupedRowKernels grouped_row_kernels_sse() {
  return {grouped_forward_rows, grouped_backward_data_rows, grouped_backward_filter};
}

namespace {

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

bool is_vector_width(std::int64_t v) { return v == 4 || v == 8 || v == 16 || v == 32 || v == 64; }

bool cpu_has_avx2_fma() {
#if defined(__x86_64__)
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
  return false;  // the AVX2 build exists on x86-64 only
#endif
}

// On where the CPU can, unless GRAFT_CPU_AVX2=0 (the same bits as on a CPU without AVX2).
std::atomic<bool>& avx2_flag() {
  static std::atomic<bool> on{[] {
    const char* v = std::getenv("GRAFT_CPU_AVX2");
    return cpu_has_avx2_fma() && !(v != nullptr && std::string(v) == "0");
  }()};
  return on;
}

GroupedRowKernels kernels() {
#if defined(__x86_64__)
  if (avx2_flag().load(std::memory_order_relaxed)) return grouped_row_kernels_avx2();
#endif
  return grouped_row_kernels_sse();
}

}  // namespace

const char* conv2d_cpu_grouped_isa() { return avx2_flag().load(std::memory_order_relaxed) ? "avx2+fma" : "sse"; }

void conv2d_cpu_grouped_use_avx2(bool on) {
  GRAFT_CHECK(!on || cpu_has_avx2_fma(), "conv2d_cpu_grouped_use_avx2: this CPU (or build) has no AVX2 with FMA");
  avx2_flag().store(on, std::memory_order_relaxed);
}

bool conv2d_cpu_grouped_applies(const Conv2dGeometry& g) {
  return g.groups > 1 && !conv2d_is_pointwise(g) && is_vector_width(g.c / g.groups) && is_vector_width(g.k / g.groups);
}

void conv2d_forward_cpu_grouped(float* out, const float* inp, const float* weight, const float* bias,
                                const Conv2dGeometry& g) {
  GRAFT_CHECK(conv2d_cpu_grouped_applies(g), "conv2d_forward_cpu_grouped: no grouped kernel for ",
              conv2d_geometry_str(g));
  const std::vector<float> wt = forward_weights(weight, g);
  const GroupedRowKernels k = kernels();
  const std::int64_t work = g.q * g.k * g.r * g.s * (g.c / g.groups);
  parallel_for(g.n * g.p, work, [&](std::int64_t lo, std::int64_t hi) { k.forward(out, inp, wt.data(), bias, g, lo, hi); });
}

void conv2d_backward_data_cpu_grouped(float* dinp, const float* dout, const float* weight, const Conv2dGeometry& g) {
  GRAFT_CHECK(conv2d_cpu_grouped_applies(g), "conv2d_backward_data_cpu_grouped: no grouped kernel for ",
              conv2d_geometry_str(g));
  const std::vector<float> wd = data_weights(weight, g);
  const GroupedRowKernels k = kernels();
  const std::int64_t work = g.w * g.c * g.r * g.s * (g.k / g.groups);
  parallel_for(g.n * g.h, work, [&](std::int64_t lo, std::int64_t hi) { k.backward_data(dinp, dout, wd.data(), g, lo, hi); });
}

void conv2d_backward_filter_cpu_grouped(float* dweight, const float* dout, const float* inp, const Conv2dGeometry& g) {
  GRAFT_CHECK(conv2d_cpu_grouped_applies(g), "conv2d_backward_filter_cpu_grouped: no grouped kernel for ",
              conv2d_geometry_str(g));
  const GroupedRowKernels k = kernels();
  const std::int64_t work = g.n * g.p * g.q * (g.k / g.groups) * g.r * g.s * (g.c / g.groups);
  parallel_for(g.groups, work, [&](std::int64_t lo, std::int64_t hi) { k.backward_filter(dweight, dout, inp, g, lo, hi); });
}

}  // namespace graft
