// 2-D convolution (cross-correlation, like PyTorch), NHWC activations, weights (K,R,S,C/groups).
//
// Forward, for output channel k in group g = k / (K/groups), with Cg = C/groups:
//   out[n,p,q,k] = bias[k] + sum_{r,s,c<Cg} inp[n, h(p,r), w(q,s), g*Cg + c] * weight[k,r,s,c]
//   h(p,r) = p*stride_h - pad_h + r*dilation_h,  w(q,s) = q*stride_w - pad_w + s*dilation_w  (zero outside)
//   P = (H + 2 pad_h - dilation_h (R-1) - 1) / stride_h + 1,  Q likewise.
// Gradients (dout = dL/dout):
//   dinp[n,h,w,g*Cg+c] = sum_{p,q,r,s: h(p,r)=h, w(q,s)=w} sum_{k in g} dout[n,p,q,k] * weight[k,r,s,c]
//   dweight[k,r,s,c]   = sum_{n,p,q} dout[n,p,q,k] * inp[n, h(p,r), w(q,s), g*Cg + c]
//   dbias[k]           = sum_{n,p,q} dout[n,p,q,k]   (the op uses sum_axis from kernels/reduce.h)
//
// As GEMMs, per group, with the output pixels (n,p,q) as rows (M = N*P*Q) and col = im2col(inp) (M, R*S*Cg):
//   out_g (M,Kg) = col (M,RSCg) x W_g^T,   dcol = dout_g (M,Kg) x W_g,  inp += col2im(dcol),
//   dW_g (Kg,RSCg) = dout_g^T x col.
// A 1x1, stride-1, unpadded conv needs no im2col: col is the input itself, [N*H*W, C] x [C, K]^T.
//
//   conv2d_*_cpu_im2col    im2col / col2im + OpenBLAS sgemm, rows processed in chunks that fit the workspace
//   conv2d_*_cpu_pointwise the 1x1 stride-1 unpadded case as plain GEMMs, no workspace
//   conv2d_*_cpu_grouped   grouped non-pointwise convs with 4..64 channels per group (ResNeXt): direct loops, no
//                          workspace
//                          (kernels/conv2d_cpu_grouped.cpp says why)
//   conv2d_*_cpu           picks one of the three (what the op calls)
//   conv2d_*_cpu_direct    the 7-loop definition above (double accumulation); test oracle only, slow
//   conv2d_*_cudnn         cuDNN 9 (NHWC tensors and filters), algorithm found once per shape and math mode
//   conv2d_forward_cuda_direct / _im2col  hand-written CUDA forward kernels for the kernel lab (not used by the op)
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace graft {

// Sizes of one convolution. Input (n,h,w,c), weight (k,r,s,c/groups), output (n,p,q,k).
struct Conv2dGeometry {
  std::int64_t n = 0, h = 0, w = 0, c = 0;
  std::int64_t k = 0, r = 0, s = 0;
  std::int64_t p = 0, q = 0;
  int stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0, dilation_h = 1, dilation_w = 1, groups = 1;
};

// "in (2,56,56,64) w (64,3,3,64) out (2,56,56,64) stride 1x1 pad 1x1 dil 1x1 groups 1"
std::string conv2d_geometry_str(const Conv2dGeometry& g);

// True for a 1x1, stride-1, unpadded conv: the conv is a plain GEMM and needs no workspace.
bool conv2d_is_pointwise(const Conv2dGeometry& g);

// ---- CPU ---------------------------------------------------------------------------------------------------
// Which CPU path conv2d_*_cpu takes for g: "grouped", "pointwise" or "im2col".
const char* conv2d_cpu_path(const Conv2dGeometry& g);
// True when g is not pointwise and has groups > 1 with 4, 8, 16, 32 or 64 input and output channels per group.
bool conv2d_cpu_grouped_applies(const Conv2dGeometry& g);
// The column buffer the op should pass to the conv2d_*_cpu functions: one chunk of im2col rows, at most
// kConv2dCpuWorkspaceLimit bytes (but always at least one row); 0 for pointwise and grouped convs.
inline constexpr std::size_t kConv2dCpuWorkspaceLimit = std::size_t(64) << 20;
std::size_t conv2d_workspace_bytes_cpu(const Conv2dGeometry& g);
// The same for the im2col path whatever the shape (tests call the im2col functions on 1x1 convs too).
std::size_t conv2d_workspace_bytes_cpu_im2col(const Conv2dGeometry& g);

// inp (N,H,W,C), weight (K,R,S,C/groups), bias (K) or nullptr -> out (N,P,Q,K)
// `workspace` holds `workspace_bytes` (>= one im2col row, R*S*C/groups floats); more bytes = fewer, larger GEMMs.
void conv2d_forward_cpu(float* out, const float* inp, const float* weight, const float* bias, const Conv2dGeometry& g,
                        float* workspace, std::size_t workspace_bytes);
// dout (N,P,Q,K), weight (K,R,S,C/groups) -> dinp (N,H,W,C), overwritten
void conv2d_backward_data_cpu(float* dinp, const float* dout, const float* weight, const Conv2dGeometry& g,
                              float* workspace, std::size_t workspace_bytes);
// dout (N,P,Q,K), inp (N,H,W,C) -> dweight (K,R,S,C/groups), overwritten
void conv2d_backward_filter_cpu(float* dweight, const float* dout, const float* inp, const Conv2dGeometry& g,
                                float* workspace, std::size_t workspace_bytes);

void conv2d_forward_cpu_im2col(float* out, const float* inp, const float* weight, const float* bias,
                               const Conv2dGeometry& g, float* workspace, std::size_t workspace_bytes);
void conv2d_backward_data_cpu_im2col(float* dinp, const float* dout, const float* weight, const Conv2dGeometry& g,
                                     float* workspace, std::size_t workspace_bytes);
void conv2d_backward_filter_cpu_im2col(float* dweight, const float* dout, const float* inp, const Conv2dGeometry& g,
                                       float* workspace, std::size_t workspace_bytes);

// Only for conv2d_is_pointwise(g).
void conv2d_forward_cpu_pointwise(float* out, const float* inp, const float* weight, const float* bias,
                                  const Conv2dGeometry& g);
void conv2d_backward_data_cpu_pointwise(float* dinp, const float* dout, const float* weight, const Conv2dGeometry& g);
void conv2d_backward_filter_cpu_pointwise(float* dweight, const float* dout, const float* inp, const Conv2dGeometry& g);

// Only for conv2d_cpu_grouped_applies(g). They run the AVX2+FMA build of their kernels on CPUs that have it, else
// the SSE build: conv2d_cpu_grouped_isa() says which ("avx2+fma" or "sse"); GRAFT_CPU_AVX2=0 in the environment or
// conv2d_cpu_grouped_use_avx2(false) forces SSE (true throws where the CPU lacks AVX2 or FMA).
const char* conv2d_cpu_grouped_isa();
void conv2d_cpu_grouped_use_avx2(bool on);
void conv2d_forward_cpu_grouped(float* out, const float* inp, const float* weight, const float* bias,
                                const Conv2dGeometry& g);
void conv2d_backward_data_cpu_grouped(float* dinp, const float* dout, const float* weight, const Conv2dGeometry& g);
void conv2d_backward_filter_cpu_grouped(float* dweight, const float* dout, const float* inp, const Conv2dGeometry& g);

// Test oracles: the definition, loop by loop.
void conv2d_forward_cpu_direct(float* out, const float* inp, const float* weight, const float* bias,
                               const Conv2dGeometry& g);
void conv2d_backward_data_cpu_direct(float* dinp, const float* dout, const float* weight, const Conv2dGeometry& g);
void conv2d_backward_filter_cpu_direct(float* dweight, const float* dout, const float* inp, const Conv2dGeometry& g);

// ---- CUDA (cuDNN) --------------------------------------------------------------------------------------------
#if GRAFT_HAS_CUDA
// All on graft::cuda::stream(); outputs are overwritten (beta = 0). TF32 tensor-core math when
// graft::cuda::tf32_allowed(), strict FP32 (CUDNN_FMA_MATH) otherwise. The algorithm is found with
// cudnnFind*AlgorithmEx the first time a (geometry, direction, math mode, pointer alignment) is seen and cached;
// workspace comes from graft's allocator (graft::cuda::malloc_async: the stream-ordered pool, or a captured graph's
// own memory while one is being captured).
void conv2d_forward_cudnn(float* out, const float* inp, const float* weight, const float* bias,
                          const Conv2dGeometry& g);
// accumulate: dinp += the input gradient (cuDNN's beta = 1, in the convolution's own output pass) instead of
// dinp = it; the algorithm is the one found for the plain call (found on a scratch output, never on dinp).
void conv2d_backward_data_cudnn(float* dinp, const float* dout, const float* weight, const Conv2dGeometry& g,
                                bool accumulate = false);
void conv2d_backward_filter_cudnn(float* dweight, const float* dout, const float* inp, const Conv2dGeometry& g);
// out[m,k] += bias[k] over the (N*P*Q, K) output rows, in place on graft's stream; nothing when bias is null. The
// bias step of conv2d_forward_cudnn and of the kernel lab's convolutions.
void conv2d_add_bias_cuda(float* out, const float* bias, const Conv2dGeometry& g);

// One line per cached (geometry, direction, math mode, alignment): the chosen algorithm, its math type, whether cuDNN
// reports it deterministic, and its workspace, e.g.
// "forward in (...) ... groups 1 align 16 tf32: IMPLICIT_PRECOMP_GEMM math=TENSOR_OP deterministic=yes workspace=0".
std::vector<std::string> conv2d_cudnn_algorithms_used();
// True when every cached choice is deterministic (always, for choices made in graft::cuda::deterministic() mode).
bool conv2d_cudnn_all_deterministic();
// Opt-in: choose each convolution's kernel among all of cuDNN's graph-API engine configurations (timed on first
// use, as PyTorch's cudnn.benchmark) instead of the legacy API's algorithms; a shape no engine takes falls back to
// the legacy path (kernels/conv2d_cudnn_engines.h). Off by default; GRAFT_CUDNN_ENGINES=1 in the environment turns
// it on at start. Choices made either way are cached separately and both appear in conv2d_cudnn_algorithms_used().
void conv2d_cudnn_set_engine_search(bool on);
bool conv2d_cudnn_engine_search();

// ---- CUDA (hand-written, the kernel lab) -------------------------------------------------------------------------
// Forward only, strict FP32 (every product an fmaf, no tensor cores), on graft::cuda::stream(); kept to study and to
// measure against cuDNN's strict-FP32 forward (bench/bench_conv_cuda.cpp). The conv2d op never calls them.
// kernels/conv2d_cuda_lab.cu says how each works and what limits it.
//   direct: implicit GEMM - output tiles accumulate slabs of taps gathered straight from the input (no im2col
//           buffer); any geometry, groups included.
//   im2col: im2col chunks in `workspace` + graft's hand-written SGEMM (gemm_cuda_tiled); groups == 1 only (throws
//           graft::Error otherwise); a pointwise conv is the SGEMM on the input itself and needs no workspace.
void conv2d_forward_cuda_direct(float* out, const float* inp, const float* weight, const float* bias,
                                const Conv2dGeometry& g);
// The workspace the im2col path wants: the whole column matrix up to kConv2dCudaIm2colWorkspaceLimit bytes, at least
// one row (R*S*C/groups floats); 0 for a pointwise conv. Less (but >= one row) works too, in more chunks.
inline constexpr std::size_t kConv2dCudaIm2colWorkspaceLimit = std::size_t(256) << 20;
std::size_t conv2d_workspace_bytes_cuda_im2col(const Conv2dGeometry& g);
void conv2d_forward_cuda_im2col(float* out, const float* inp, const float* weight, const float* bias,
                                const Conv2dGeometry& g, float* workspace, std::size_t workspace_bytes);
#endif

}  // namespace graft
