// Elementwise kernels. Raw pointers, outputs first; no Tensor, no autograd, no allocation.
//   binary:  out[i] = a[ia(i)] (op) b[ib(i)]   op in {+, -, *, /}
//   unary:   out = -x | max(x,0) | e^x | ln x      (relu keeps a NaN: kernels/host_device.h relu_value)
//   scale_shift: out = x*scale + shift
//   relu backward: dinp = dout * [out > 0]
// Broadcast says how an operand is indexed for output element i of n elements laid out as rows of `channels`:
// Full -> i, Channel -> i % channels (per-channel over the last axis), Scalar -> 0.
// In-place use (out == a) is allowed. The CUDA versions run on graft's compute stream.
#pragma once
#include <cstdint>

namespace graft {

enum class BinaryOp { Add, Sub, Mul, Div };
enum class UnaryOp { Neg, Relu, Exp, Log };
enum class Broadcast { Full, Channel, Scalar };

void binary_forward_cpu(float* out, const float* a, Broadcast ia, const float* b, Broadcast ib, BinaryOp op,
                        std::int64_t n, std::int64_t channels);
void unary_forward_cpu(float* out, const float* inp, UnaryOp op, std::int64_t n);
void scale_shift_cpu(float* out, const float* inp, float scale, float shift, std::int64_t n);
void relu_backward_cpu(float* dinp, const float* dout, const float* out, std::int64_t n);
void fill_cpu(float* out, float value, std::int64_t n);
void arange_cpu(float* out, std::int64_t n);

#if GRAFT_HAS_CUDA
void binary_forward_cuda(float* out, const float* a, Broadcast ia, const float* b, Broadcast ib, BinaryOp op,
                         std::int64_t n, std::int64_t channels);
void unary_forward_cuda(float* out, const float* inp, UnaryOp op, std::int64_t n);
void scale_shift_cuda(float* out, const float* inp, float scale, float shift, std::int64_t n);
void relu_backward_cuda(float* dinp, const float* dout, const float* out, std::int64_t n);
void fill_cuda(float* out, float value, std::int64_t n);
void arange_cuda(float* out, std::int64_t n);
#endif

}  // namespace graft
