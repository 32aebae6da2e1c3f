#include <algorithm>
#include <cmath>

#include "kernels/elementwise.h"

namespace graft {

// The index of element i of an operand broadcast in mode `mode` (see kernels/elementwise.h).
static inline std::int64_t operand_index(Broadcast mode, std::int64_t i, std::int64_t channels) {
  switch (mode) {
    case Broadcast::Full: return i;
    case Broadcast::Channel: return i % channels;
    case Broadcast::Scalar: return 0;
  }
  return i;
}

template <typename F>
static void binary_loop(float* out, const float* a, Broadcast ia, const float* b, Broadcast ib, std::int64_t n,
                        std::int64_t channels, F f) {
  if (ia == Broadcast::Full && ib == Broadcast::Full) {
    for (std::int64_t i = 0; i < n; ++i) out[i] = f(a[i], b[i]);
  } else if (ia == Broadcast::Full && ib == Broadcast::Channel) {
    for (std::int64_t row = 0; row < n; row += channels)
      for (std::int64_t c = 0; c < channels; ++c) out[row + c] = f(a[row + c], b[c]);
  } else {
    for (std::int64_t i = 0; i < n; ++i)
      out[i] = f(a[operand_index(ia, i, channels)], b[operand_index(ib, i, channels)]);
  }
}

void binary_forward_cpu(float* out, const float* a, Broadcast ia, const float* b, Broadcast ib, BinaryOp op,
                        std::int64_t n, std::int64_t channels) {
  switch (op) {
    case BinaryOp::Add: return binary_loop(out, a, ia, b, ib, n, channels, [](float x, float y) { return x + y; });
    case BinaryOp::Sub: return binary_loop(out, a, ia, b, ib, n, channels, [](float x, float y) { return x - y; });
    case BinaryOp::Mul: return binary_loop(out, a, ia, b, ib, n, channels, [](float x, float y) { return x * y; });
    case BinaryOp::Div: return binary_loop(out, a, ia, b, ib, n, channels, [](float x, float y) { return x / y; });
  }
}

void unary_forward_cpu(float* out, const float* inp, UnaryOp op, std::int64_t n) {
  switch (op) {
    case UnaryOp::Neg:
      for (std::int64_t i = 0; i < n; ++i) out[i] = -inp[i];
      return;
    case UnaryOp::Relu:
      for (std::int64_t i = 0; i < n; ++i) out[i] = inp[i] > 0.f ? inp[i] : 0.f;
      return;
    case UnaryOp::Exp:
      for (std::int64_t i = 0; i < n; ++i) out[i] = std::exp(inp[i]);
      return;
    case UnaryOp::Log:
      for (std::int64_t i = 0; i < n; ++i) out[i] = std::log(inp[i]);
      return;
  }
}

void scale_shift_cpu(float* out, const float* inp, float scale, float shift, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) out[i] = inp[i] * scale + shift;
}

void relu_backward_cpu(float* dinp, const float* dout, const float* out, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) dinp[i] = out[i] > 0.f ? dout[i] : 0.f;
}

void fill_cpu(float* out, float value, std::int64_t n) { std::fill(out, out + n, value); }

void arange_cpu(float* out, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) out[i] = static_cast<float>(i);
}

}  // namespace graft
