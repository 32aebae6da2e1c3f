// Philox-4x32-10 (Salmon, Moraes, Dror, Shaw: "Parallel random numbers: as easy as 1, 2, 3", SC'11).
// A pure function of (counter, key): the same inline code runs on host and device, so CPU and CUDA draws agree.
// Draw layout shared by every random kernel (uniform, normal, dropout):
//   uniform element i: counter (offset + i/4, seed), lane i%4             -> ceil(n/4) counters
//   normal element i:  counter (offset + i/4, seed); Box-Muller on lanes (0,1) gives elements 4j, 4j+1 (cos, sin),
//                      on lanes (2,3) elements 4j+2, 4j+3                  -> ceil(n/4) counters
// Floats come from the top 24 bits: u = (x >> 8) * 2^-24 in [0,1), exact on both devices. The normal transform
// is computed in double and rounded once, so both devices give the same float - except in about 1 of 10^8 draws,
// where CUDA's double log/sin/cos (1-2 ulp from glibc's) land on the other side of a float rounding boundary and
// the two devices differ by one float ulp.
#pragma once
#include <cmath>
#include <cstdint>

#include "kernels/host_device.h"

namespace graft {

struct Philox4 {
  std::uint32_t x[4];
};

GRAFT_HOST_DEVICE std::uint32_t philox_mulhilo(std::uint32_t a, std::uint32_t b, std::uint32_t* hi) {
  std::uint64_t product = static_cast<std::uint64_t>(a) * b;
  *hi = static_cast<std::uint32_t>(product >> 32);
  return static_cast<std::uint32_t>(product);
}

// counter: 64-bit block index (the upper 64 counter bits are 0); key: the 64-bit seed.
GRAFT_HOST_DEVICE Philox4 philox4x32_10(std::uint64_t counter, std::uint64_t seed) {
  std::uint32_t c0 = static_cast<std::uint32_t>(counter), c1 = static_cast<std::uint32_t>(counter >> 32);
  std::uint32_t c2 = 0, c3 = 0;
  std::uint32_t k0 = static_cast<std::uint32_t>(seed), k1 = static_cast<std::uint32_t>(seed >> 32);
  for (int round = 0; round < 10; ++round) {
    std::uint32_t hi0, hi1;
    std::uint32_t lo0 = philox_mulhilo(0xD2511F53u, c0, &hi0);
    std::uint32_t lo1 = philox_mulhilo(0xCD9E8D57u, c2, &hi1);
    std::uint32_t n0 = hi1 ^ c1 ^ k0, n1 = lo1, n2 = hi0 ^ c3 ^ k1, n3 = lo0;
    c0 = n0, c1 = n1, c2 = n2, c3 = n3;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return Philox4{{c0, c1, c2, c3}};
}

GRAFT_HOST_DEVICE float philox_unit_float(std::uint32_t bits) {  // [0, 1)
  return static_cast<float>(bits >> 8) * (1.0f / 16777216.0f);
}

GRAFT_HOST_DEVICE float philox_uniform(std::uint64_t i, std::uint64_t seed, std::uint64_t offset) {
  Philox4 r = philox4x32_10(offset + i / 4, seed);
  return philox_unit_float(r.x[i % 4]);
}

// Box-Muller on two 24-bit uniforms: (r cos(theta), r sin(theta)), computed in double, rounded once.
GRAFT_HOST_DEVICE void philox_box_muller(std::uint32_t bits1, std::uint32_t bits2, float* z_cos, float* z_sin) {
  double u1 = (static_cast<double>(bits1 >> 8) + 1.0) * (1.0 / 16777216.0);  // (0,1] so the log is finite
  double theta = 6.283185307179586 * static_cast<double>(bits2 >> 8) * (1.0 / 16777216.0);
  double radius = std::sqrt(-2.0 * std::log(u1));
  *z_cos = static_cast<float>(radius * std::cos(theta));
  *z_sin = static_cast<float>(radius * std::sin(theta));
}

// The four normals of counter `block` (elements 4*block .. 4*block+3).
GRAFT_HOST_DEVICE void philox_normal4(std::uint64_t block, std::uint64_t seed, std::uint64_t offset, float out[4]) {
  Philox4 r = philox4x32_10(offset + block, seed);
  philox_box_muller(r.x[0], r.x[1], &out[0], &out[1]);
  philox_box_muller(r.x[2], r.x[3], &out[2], &out[3]);
}

GRAFT_HOST_DEVICE float philox_normal(std::uint64_t i, std::uint64_t seed, std::uint64_t offset) {
  Philox4 r = philox4x32_10(offset + i / 4, seed);
  unsigned lane = static_cast<unsigned>(i % 4) < 2 ? 0u : 2u;
  float z[2];
  philox_box_muller(r.x[lane], r.x[lane + 1], &z[0], &z[1]);
  return z[i % 2];
}

}  // namespace graft
