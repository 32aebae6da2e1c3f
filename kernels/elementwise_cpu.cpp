#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "kernels/cpu_parallel.h"
#include "kernels/cpu_select.h"
#include "kernels/elementwise.h"
#include "kernels/host_device.h"

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

// Every loop below computes each element on its own, so threads (kernels/cpu_parallel.h) take ranges of elements
// (or of rows) and the bits do not depend on the thread count.
template <typename F>
static void binary_loop(float* out, const float* a, Broadcast ia, const float* b, Broadcast ib, std::int64_t n,
                        std::int64_t channels, F f) {
  if (ia == Broadcast::Full && ib == Broadcast::Full) {
    parallel_for(n, 1, [&](std::int64_t lo, std::int64_t hi) {
      for (std::int64_t i = lo; i < hi; ++i) out[i] = f(a[i], b[i]);
    });
  } else if (ia == Broadcast::Full && ib == Broadcast::Channel) {
    parallel_for(n / channels, channels, [&](std::int64_t r0, std::int64_t r1) {
      for (std::int64_t row = r0 * channels; row < r1 * channels; row += channels)
        for (std::int64_t c = 0; c < channels; ++c) out[row + c] = f(a[row + c], b[c]);
    });
    for (std::int64_t i = n / channels * channels; i < n; ++i) out[i] = f(a[i], b[i % channels]);  // a partial row
  } else {
    parallel_for(n, 1, [&](std::int64_t lo, std::int64_t hi) {
      for (std::int64_t i = lo; i < hi; ++i)
        out[i] = f(a[operand_index(ia, i, channels)], b[operand_index(ib, i, channels)]);
    });
  }
}

// out[i] = f(i) for i in [0, n), in ranges over the CPU threads.
template <typename F>
static void each_element(std::int64_t n, F f) {
  parallel_for(n, 1, [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t i = lo; i < hi; ++i) f(i);
  });
}

void binary_forward_cpu(float* out, const float* a, Broadcast ia, const float* b, Broadcast ib, BinaryOp op,
                        std::int64_t n, std::int64_t channels) {
  GRAFT_CHECK(channels > 0 || (ia != Broadcast::Channel && ib != Broadcast::Channel),
              "binary_forward_cpu: per-channel broadcast needs channels > 0, got ", channels);
  switch (op) {
    case BinaryOp::Add: return binary_loop(out, a, ia, b, ib, n, channels, [](float x, float y) { return x + y; });
    case BinaryOp::Sub: return binary_loop(out, a, ia, b, ib, n, channels, [](float x, float y) { return x - y; });
    case BinaryOp::Mul: return binary_loop(out, a, ia, b, ib, n, channels, [](float x, float y) { return x * y; });
    case BinaryOp::Div: return binary_loop(out, a, ia, b, ib, n, channels, [](float x, float y) { return x / y; });
  }
}

void unary_forward_cpu(float* out, const float* inp, UnaryOp op, std::int64_t n) {
  switch (op) {
    case UnaryOp::Neg: return each_element(n, [&](std::int64_t i) { out[i] = -inp[i]; });
    case UnaryOp::Relu: return each_element(n, [&](std::int64_t i) { out[i] = relu_value(inp[i]); });
    case UnaryOp::Exp: return each_element(n, [&](std::int64_t i) { out[i] = std::exp(inp[i]); });
    case UnaryOp::Log: return each_element(n, [&](std::int64_t i) { out[i] = std::log(inp[i]); });
  }
}

void scale_shift_cpu(float* out, const float* inp, float scale, float shift, std::int64_t n) {
  each_element(n, [&](std::int64_t i) { out[i] = inp[i] * scale + shift; });
}

void relu_backward_cpu(float* dinp, const float* dout, const float* out, std::int64_t n) {
  each_element(n, [&](std::int64_t i) { dinp[i] = keep_if(out[i] > 0.f, dout[i]); });  // kernels/cpu_select.h
}

void fill_cpu(float* out, float value, std::int64_t n) { std::fill(out, out + n, value); }

void arange_cpu(float* out, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) out[i] = static_cast<float>(i);
}

}  // namespace graft
