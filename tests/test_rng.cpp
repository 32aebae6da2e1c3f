// Philox-4x32-10 and the random factories: known answers, the draw layout, reproducibility, disjoint generator
// offsets, and the statistics of uniform and normal draws.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <numbers>
#include <vector>

#include "core/rng.h"
#include "core/tensor.h"
#include "kernels/philox.h"

namespace graft {
namespace {

using Words = std::array<std::uint32_t, 4>;

// An independent Philox-4x32-10 with the full 128-bit counter, written from Random123's philox.h (round:
// (hi(M0*c0), lo) and (hi(M1*c2), lo) -> {hi1^c1^k0, lo1, hi0^c3^k1, lo0}; key bumped by the Weyl constants
// between rounds). Used to check graft's 64-bit-counter version against the published KATs and on many inputs.
Words philox_reference(Words ctr, std::array<std::uint32_t, 2> key) {
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      key[0] += 0x9E3779B9u;
      key[1] += 0xBB67AE85u;
    }
    std::uint64_t p0 = std::uint64_t{0xD2511F53u} * ctr[0];
    std::uint64_t p1 = std::uint64_t{0xCD9E8D57u} * ctr[2];
    ctr = Words{static_cast<std::uint32_t>(p1 >> 32) ^ ctr[1] ^ key[0], static_cast<std::uint32_t>(p1),
                static_cast<std::uint32_t>(p0 >> 32) ^ ctr[3] ^ key[1], static_cast<std::uint32_t>(p0)};
  }
  return ctr;
}

Words words(const Philox4& p) { return Words{p.x[0], p.x[1], p.x[2], p.x[3]}; }

Words reference_for(std::uint64_t counter, std::uint64_t seed) {
  return philox_reference(
      Words{static_cast<std::uint32_t>(counter), static_cast<std::uint32_t>(counter >> 32), 0, 0},
      {static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32)});
}

// A small independent 64-bit mixer (splitmix64) to pick test inputs.
std::uint64_t splitmix(std::uint64_t& state) {
  std::uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// ---- Philox known answers ----------------------------------------------------------------------------------------------

TEST(Philox, KnownAnswerZeroCounterZeroKey) {
  // Random123 kat_vectors: philox4x32 10, counter {0,0,0,0}, key {0,0}
  const Words expected{0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u};
  EXPECT_EQ(words(philox4x32_10(0, 0)), expected);
  EXPECT_EQ(philox_reference({0, 0, 0, 0}, {0, 0}), expected);
}

TEST(Philox, ReferenceMatchesPublishedKats) {
  // The two other Random123 vectors need the upper counter words, which graft fixes to 0: they validate the
  // local reference, which then validates graft on many (counter, key) pairs below.
  EXPECT_EQ(philox_reference({0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}, {0xffffffffu, 0xffffffffu}),
            (Words{0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu}));
  EXPECT_EQ(philox_reference({0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}, {0xa4093822u, 0x299f31d0u}),
            (Words{0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}));
}

TEST(Philox, GraftMatchesReferenceOnManyInputs) {
  std::uint64_t state = 42;
  for (int trial = 0; trial < 2000; ++trial) {
    std::uint64_t counter = splitmix(state), seed = splitmix(state);
    if (trial % 4 == 0) counter &= 0xffffffffu;  // small counters, as real draws use
    ASSERT_EQ(words(philox4x32_10(counter, seed)), reference_for(counter, seed))
        << "counter " << counter << " seed " << seed;
  }
  // the counter's high word and the key's high word matter
  EXPECT_NE(words(philox4x32_10(std::uint64_t{1} << 32, 0)), words(philox4x32_10(0, 0)));
  EXPECT_NE(words(philox4x32_10(0, std::uint64_t{1} << 32)), words(philox4x32_10(0, 0)));
}

TEST(Philox, UnitFloatIsTop24Bits) {
  EXPECT_EQ(philox_unit_float(0u), 0.f);
  EXPECT_EQ(philox_unit_float(0xffffffffu), 1.f - 1.f / 16777216.f);
  EXPECT_LT(philox_unit_float(0xffffffffu), 1.f);
  EXPECT_EQ(philox_unit_float(0x80000000u), 0.5f);
  EXPECT_EQ(philox_unit_float(0x000000ffu), 0.f) << "the low 8 bits are dropped";
  EXPECT_EQ(philox_unit_float(0x00000100u), 1.f / 16777216.f);
}

// ---- the draw layout (kernels/philox.h) --------------------------------------------------------------------------------

TEST(Rng, UniformFollowsDocumentedLayout) {
  const std::uint64_t seed = 0x1234567890abcdefull;
  Generator gen(seed);
  gen.set_state(seed, 17);
  std::vector<float> v = Tensor::uniform({11}, gen, 2.f, 6.f).to_vector();
  EXPECT_EQ(gen.offset(), 17u + 3u) << "11 uniforms use ceil(11/4) counters";
  for (std::uint64_t i = 0; i < 11; ++i) {
    Words r = reference_for(17 + i / 4, seed);
    float u = static_cast<float>(r[i % 4] >> 8) / 16777216.f;
    EXPECT_EQ(v[i], 2.f + 4.f * u) << "element " << i;
  }
}

TEST(Rng, NormalFollowsDocumentedLayout) {
  // element i: counter offset + i/4; Box-Muller on lanes (0,1) gives elements 4j, 4j+1 (cos, sin), on lanes (2,3)
  // elements 4j+2, 4j+3; computed in double and rounded once, so the same float bit for bit
  const std::uint64_t seed = 77;
  Generator gen(seed);
  gen.set_state(seed, 5);
  std::vector<float> v = Tensor::randn({11}, gen).to_vector();
  EXPECT_EQ(gen.offset(), 5u + 3u) << "11 normals use ceil(11/4) counters";
  for (std::uint64_t i = 0; i < 11; ++i) {
    Words r = reference_for(5 + i / 4, seed);
    std::size_t lane = i % 4 < 2 ? 0 : 2;
    double u1 = (static_cast<double>(r[lane] >> 8) + 1.0) / 16777216.0;
    double theta = 2.0 * std::numbers::pi * (static_cast<double>(r[lane + 1] >> 8) / 16777216.0);
    double radius = std::sqrt(-2.0 * std::log(u1));
    double z = i % 2 == 0 ? radius * std::cos(theta) : radius * std::sin(theta);
    EXPECT_EQ(v[i], static_cast<float>(z)) << "element " << i;
  }
  // mean and stddev are applied after the standard draw
  Generator again(seed);
  again.set_state(seed, 5);
  std::vector<float> shifted = Tensor::randn({11}, again, kCPU, -1.f, 0.5f).to_vector();
  for (std::size_t i = 0; i < 11; ++i) EXPECT_NEAR(shifted[i], -1.f + 0.5f * v[i], 1e-6f);
}

// ---- reproducibility and offsets ------------------------------------------------------------------------------------------

TEST(Rng, SameSeedSameNumbers) {
  Generator a(2024), b(2024), c(2025);
  std::vector<float> va = Tensor::randn({3, 5, 7}, a).to_vector();
  std::vector<float> vb = Tensor::randn({3, 5, 7}, b).to_vector();
  std::vector<float> vc = Tensor::randn({3, 5, 7}, c).to_vector();
  EXPECT_EQ(va, vb);
  EXPECT_NE(va, vc);
  EXPECT_EQ(Tensor::uniform({9}, a).to_vector(), Tensor::uniform({9}, b).to_vector());
  EXPECT_EQ(a.offset(), b.offset());
}

TEST(Rng, SuccessiveDrawsDiffer) {
  Generator gen(3);
  std::vector<float> first = Tensor::uniform({16}, gen).to_vector();
  std::vector<float> second = Tensor::uniform({16}, gen).to_vector();
  EXPECT_NE(first, second);
}

TEST(Rng, GeneratorOffsetsAreDisjoint) {
  // two draws of 5 uniforms take counters [0,2) and [2,4): they are elements 0..4 and 8..12 of one long draw
  Generator split(8), whole(8);
  std::vector<float> first = Tensor::uniform({5}, split).to_vector();
  EXPECT_EQ(split.offset(), 2u);
  std::vector<float> second = Tensor::uniform({5}, split).to_vector();
  EXPECT_EQ(split.offset(), 4u);
  std::vector<float> all = Tensor::uniform({16}, whole).to_vector();
  for (std::size_t i = 0; i < 5; ++i) {
    EXPECT_EQ(first[i], all[i]);
    EXPECT_EQ(second[i], all[8 + i]);
  }
  // normals: 5 take counters [0,2), the next 4 take [2,3) -> elements 8..11 of one draw of 12
  Generator nsplit(9), nwhole(9);
  Tensor::randn({5}, nsplit);
  EXPECT_EQ(nsplit.offset(), 2u);
  std::vector<float> later = Tensor::randn({4}, nsplit).to_vector();
  std::vector<float> nall = Tensor::randn({12}, nwhole).to_vector();
  for (std::size_t i = 0; i < 4; ++i) EXPECT_EQ(later[i], nall[8 + i]);
}

TEST(Rng, SetStateReplaysADraw) {
  Generator gen(10);
  Tensor::uniform({100}, gen);
  const std::uint64_t offset = gen.offset();
  std::vector<float> v = Tensor::randn({33}, gen).to_vector();
  gen.set_state(10, offset);
  EXPECT_EQ(Tensor::randn({33}, gen).to_vector(), v);
  Generator other(0);
  EXPECT_EQ(other.advance(5), 0u);
  EXPECT_EQ(other.advance(3), 5u);
  EXPECT_EQ(other.offset(), 8u);
}

TEST(Rng, ManualSeedResetsDefaultGenerator) {
  manual_seed(123);
  EXPECT_EQ(default_generator().seed(), 123u);
  EXPECT_EQ(default_generator().offset(), 0u);
  std::vector<float> a = Tensor::randn({10}, default_generator()).to_vector();
  EXPECT_GT(default_generator().offset(), 0u);
  manual_seed(123);
  EXPECT_EQ(Tensor::randn({10}, default_generator()).to_vector(), a);
  manual_seed(0);
}

// ---- statistics ----------------------------------------------------------------------------------------------------------

TEST(Rng, UniformInRangeWithExpectedMoments) {
  Generator gen(31);
  const float low = -2.f, high = 3.f;
  std::vector<float> v = Tensor::uniform({100000}, gen, low, high).to_vector();
  double s = 0, s2 = 0, lo = 1e9, hi = -1e9;
  std::vector<int> bins(10, 0);
  for (float x : v) {
    ASSERT_GE(x, low);
    ASSERT_LT(x, high);
    s += x, s2 += double(x) * x;
    lo = std::min<double>(lo, x), hi = std::max<double>(hi, x);
    ++bins[static_cast<std::size_t>(std::min(9.0, (double(x) - low) / (high - low) * 10.0))];
  }
  const double n = static_cast<double>(v.size()), mean = s / n, var = s2 / n - mean * mean;
  EXPECT_NEAR(mean, 0.5, 0.03);            // standard error 5/sqrt(12e5) ~ 0.005
  EXPECT_NEAR(var, 25.0 / 12.0, 0.05);
  EXPECT_LT(lo, low + 0.01);
  EXPECT_GT(hi, high - 0.01);
  for (int count : bins) EXPECT_NEAR(count, 10000, 500);  // sd of a bin ~ 95
}

TEST(Rng, NormalMomentsOnManySamples) {
  Generator gen(32);
  std::vector<float> v = Tensor::randn({100000}, gen).to_vector();
  double s = 0, s2 = 0, s4 = 0;
  std::size_t within_one = 0;
  for (float x : v) {
    ASSERT_TRUE(std::isfinite(x));
    s += x, s2 += double(x) * x, s4 += double(x) * x * x * x;
    within_one += std::fabs(x) < 1.f;
  }
  const double n = static_cast<double>(v.size()), mean = s / n;
  EXPECT_NEAR(mean, 0.0, 0.015);                          // standard error 0.003
  EXPECT_NEAR(std::sqrt(s2 / n - mean * mean), 1.0, 0.015);
  EXPECT_NEAR(s4 / n, 3.0, 0.15);                         // kurtosis of a Gaussian
  EXPECT_NEAR(within_one / n, 0.6827, 0.01);
}

TEST(Rng, NormalWithMeanAndStddev) {
  Generator gen(33);
  std::vector<float> v = Tensor::randn({100000}, gen, kCPU, 5.f, 0.25f).to_vector();
  double s = 0, s2 = 0;
  for (float x : v) s += x, s2 += double(x) * x;
  const double n = static_cast<double>(v.size()), mean = s / n;
  EXPECT_NEAR(mean, 5.0, 0.005);
  EXPECT_NEAR(std::sqrt(s2 / n - mean * mean), 0.25, 0.005);
}

}  // namespace
}  // namespace graft
