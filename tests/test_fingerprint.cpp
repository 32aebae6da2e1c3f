// core/fingerprint.h: graft's FNV-1a is the published 64-bit FNV-1a (checkpoints store its values: run_settings'
// train-labels and train-class-names, which a resumed run must reproduce), over bytes and over 32-bit words.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>

#include "core/fingerprint.h"

namespace graft {
namespace {

std::uint64_t of_bytes(const std::string& text) {
  Fnv1a hash;
  for (const char ch : text) hash.add(static_cast<unsigned char>(ch));
  return hash.value();
}

TEST(Fnv1a, MatchesThePublishedTestVectors) {
  // The 64-bit FNV-1a values of the reference implementation's test suite (Fowler, Noll, Vo: fnv_test.c).
  EXPECT_EQ(of_bytes(""), 0xcbf29ce484222325ull);
  EXPECT_EQ(of_bytes("a"), 0xaf63dc4c8601ec8cull);
  EXPECT_EQ(of_bytes("foobar"), 0x85944171f73967e8ull);
}

TEST(Fnv1a, AWordIsMixedWholeNotByteByByte) {
  // state_fingerprint mixes one 32-bit word per element: one xor with the whole word, then one multiply.
  Fnv1a word;
  word.add(0x01020304u);
  EXPECT_EQ(word.value(), (0xcbf29ce484222325ull ^ 0x01020304u) * 1099511628211ull);
  Fnv1a bytes;
  for (std::uint32_t b : {4u, 3u, 2u, 1u}) bytes.add(b);
  EXPECT_NE(word.value(), bytes.value());
  Fnv1a swapped;  // order matters
  swapped.add(2u);
  swapped.add(1u);
  Fnv1a in_order;
  in_order.add(1u);
  in_order.add(2u);
  EXPECT_NE(swapped.value(), in_order.value());
}

}  // namespace
}  // namespace graft
