// CUDA random fills (layout in kernels/random.h and kernels/philox.h).
// Both fills use 4 outputs per Philox counter, so one thread owns one counter: it evaluates the 10 Philox rounds
// (and, for normals, two double-precision Box-Muller transforms) once and writes its 4 elements, as one 16-byte
// store when the output is aligned. The draws come from the same inline functions of kernels/philox.h as the CPU
// version, so element i agrees bit for bit. The affine transforms use __fmul_rn/__fadd_rn: nvcc would otherwise
// contract low + (high - low) * u into one FMA, which rounds once where the CPU rounds twice.
#include <cstdint>

#include "kernels/cuda_device.h"
#include "kernels/philox.h"
#include "kernels/random.h"

namespace graft {
namespace {

using std::int64_t;
using std::uint64_t;

struct UniformDraw {
  __device__ void operator()(uint64_t counter, uint64_t seed, uint64_t offset, float (&u)[4]) const {
    const Philox4 r = philox4x32_10(offset + counter, seed);
#pragma unroll
    for (int k = 0; k < 4; ++k) u[k] = philox_unit_float(r.x[k]);
  }
};

struct NormalDraw {
  __device__ void operator()(uint64_t counter, uint64_t seed, uint64_t offset, float (&z)[4]) const {
    philox_normal4(counter, seed, offset, z);
  }
};

// out[i] = base + width * draw_i for the 4 draws of each counter.
template <class Draw>
__global__ void random_fill_kernel(float* out, int64_t n, uint64_t seed, uint64_t offset, float base, float width,
                                   bool aligned, Draw draw) {
  const int64_t counters = (n + 3) / 4;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t j = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; j < counters; j += stride) {
    float v[4];
    draw(static_cast<uint64_t>(j), seed, offset, v);
#pragma unroll
    for (int k = 0; k < 4; ++k) v[k] = __fadd_rn(base, __fmul_rn(width, v[k]));
    const int64_t i = 4 * j;
    if (aligned && i + 4 <= n) {
      *reinterpret_cast<float4*>(out + i) = make_float4(v[0], v[1], v[2], v[3]);
    } else {
#pragma unroll
      for (int k = 0; k < 4; ++k)
        if (i + k < n) out[i + k] = v[k];
    }
  }
}

template <class Draw>
void launch_fill(float* out, int64_t n, uint64_t seed, uint64_t offset, float base, float width, Draw draw) {
  if (n <= 0) return;
  const bool aligned = reinterpret_cast<std::uintptr_t>(out) % 16 == 0;
  random_fill_kernel<<<cuda::grid_for((n + 3) / 4), cuda::kBlock, 0, cuda::stream()>>>(out, n, seed, offset, base,
                                                                                       width, aligned, draw);
  GRAFT_CUDA_CHECK_LAUNCH("random_fill_kernel");
}

}  // namespace

void uniform_cuda(float* out, std::int64_t n, std::uint64_t seed, std::uint64_t offset, float low, float high) {
  launch_fill(out, n, seed, offset, low, high - low, UniformDraw{});
}

void normal_cuda(float* out, std::int64_t n, std::uint64_t seed, std::uint64_t offset, float mean, float stddev) {
  launch_fill(out, n, seed, offset, mean, stddev, NormalDraw{});
}

}  // namespace graft
