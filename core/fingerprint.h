// 64-bit FNV-1a (Fowler-Noll-Vo): an exact, fast, non-cryptographic fingerprint of a sequence of 32-bit words or
// bytes. Equal sequences give equal fingerprints; two different ones collide with a probability of about 2^-64.
// Used to tell that values stayed bit for bit as they were (layers/module.h state_fingerprint) and that a resumed run
// reads the same data (train/run_settings.cpp). Not for anything an attacker chooses.
#pragma once
#include <cstdint>

namespace graft {

class Fnv1a {
 public:
  void add(std::uint32_t word) { hash_ = (hash_ ^ word) * kPrime; }
  std::uint64_t value() const { return hash_; }

 private:
  static constexpr std::uint64_t kOffsetBasis = 14695981039346656037ull, kPrime = 1099511628211ull;
  std::uint64_t hash_ = kOffsetBasis;
};

}  // namespace graft
