// Seeded, counter-based random numbers (Philox-4x32-10, Salmon et al., SC'11).
// Element i of a draw depends only on (seed, offset, i), so CPU and CUDA produce the same numbers and a draw
// can be split across threads freely. A Generator hands out disjoint counter ranges: each draw advances `offset`.
#pragma once
#include <cstdint>

namespace graft {

class Generator {
 public:
  explicit Generator(std::uint64_t seed = 0) : seed_(seed) {}
  std::uint64_t seed() const { return seed_; }
  std::uint64_t offset() const { return offset_; }
  void set_state(std::uint64_t seed, std::uint64_t offset) { seed_ = seed, offset_ = offset; }
  // Reserves `counters` Philox counters and returns the first.
  std::uint64_t advance(std::uint64_t counters) {
    std::uint64_t first = offset_;
    offset_ += counters;
    return first;
  }

 private:
  std::uint64_t seed_;
  std::uint64_t offset_ = 0;
};

// The process-wide default generator (seed 0 unless set).
Generator& default_generator();
void manual_seed(std::uint64_t seed);

}  // namespace graft
