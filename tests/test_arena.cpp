// core/arena.h, the memory of a CUDA graph, tested on the CPU: best fit, splitting, merging within a segment only,
// segment sizes, a failed reserve, bad frees, and a long random sequence checked against a model of its blocks.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <vector>

#include "core/arena.h"
#include "tests/check.h"

namespace graft {
namespace {

constexpr std::size_t kMiB = std::size_t{1} << 20;

// Segments carved one after another from one host buffer, so consecutive segments are adjacent in memory (the case
// where merging across a segment boundary would be wrong and undetectable with separate allocations).
class Segments {
 public:
  explicit Segments(std::size_t capacity) : buffer_(static_cast<char*>(std::aligned_alloc(256, capacity))),
                                            capacity_(capacity) {}
  ~Segments() { std::free(buffer_); }
  Arena::Reserve reserve() {
    return [this](std::size_t bytes) -> void* {
      if (fail_next) {
        fail_next = false;
        GRAFT_FAIL("test: no memory for a segment of ", bytes, " bytes");
      }
      GRAFT_CHECK(used_ + bytes <= capacity_, "test: buffer exhausted");
      void* segment = buffer_ + used_;
      used_ += bytes;
      sizes.push_back(bytes);
      return segment;
    };
  }
  Arena::Release release() {
    return [this](void* segment) { released.insert(segment); };
  }
  char* base() const { return buffer_; }

  bool fail_next = false;
  std::vector<std::size_t> sizes;  // of every segment reserved
  std::set<void*> released;

 private:
  char* buffer_;
  std::size_t capacity_, used_ = 0;
};

TEST(Arena, ReusesAFreedBlockSplittingOffTheRest) {
  Segments memory(8 * kMiB);
  Arena arena(memory.reserve(), memory.release());
  void* a = arena.allocate(1000);
  EXPECT_EQ(a, memory.base());
  EXPECT_EQ(arena.allocated_bytes(), 1024u) << "sizes round up to 256 bytes";
  void* b = arena.allocate(300);
  EXPECT_EQ(static_cast<char*>(b), memory.base() + 1024) << "split off right after the first block";
  arena.free(a);
  EXPECT_EQ(arena.allocate(500), a) << "the freed block, split";
  EXPECT_EQ(static_cast<char*>(arena.allocate(256)), memory.base() + 512) << "the freed block's rest";
  EXPECT_EQ(memory.sizes, std::vector<std::size_t>{2 * kMiB}) << "all from one minimum-size segment";
  EXPECT_EQ(arena.reserved_bytes(), 2 * kMiB);
}

TEST(Arena, BestFitTakesTheSmallestFreeBlockThatFits) {
  Segments memory(8 * kMiB);
  Arena arena(memory.reserve(), memory.release());
  void* big = arena.allocate(8192);
  arena.allocate(256);  // keeps the freed blocks apart
  void* small = arena.allocate(1024);
  arena.allocate(256);
  arena.free(big);
  arena.free(small);
  EXPECT_EQ(arena.allocate(1000), small);
  EXPECT_EQ(arena.allocate(2000), big);
}

TEST(Arena, MergesFreedNeighboursWithinASegment) {
  Segments memory(8 * kMiB);
  Arena arena(memory.reserve(), memory.release());
  void* a = arena.allocate(kMiB / 2);
  void* b = arena.allocate(kMiB / 2);
  void* c = arena.allocate(kMiB);  // fills the 2 MiB segment
  arena.free(a);
  arena.free(c);
  arena.free(b);  // merges with both neighbours: the whole segment is one block again
  EXPECT_EQ(arena.allocated_bytes(), 0u);
  EXPECT_EQ(arena.allocate(2 * kMiB), a);
  EXPECT_EQ(arena.segments(), 1u);
}

// Freed in both orders: the second segment's block must merge neither into the first's (its previous neighbour)
// nor take the first's in (its next neighbour).
TEST(Arena, NeverMergesAcrossSegments) {
  for (const bool second_first : {true, false}) {
    SCOPED_TRACE(second_first ? "second segment freed first" : "first segment freed first");
    Segments memory(16 * kMiB);
    Arena arena(memory.reserve(), memory.release());
    void* first = arena.allocate(2 * kMiB);
    void* second = arena.allocate(2 * kMiB);
    ASSERT_EQ(static_cast<char*>(second), static_cast<char*>(first) + 2 * kMiB) << "adjacent segments";
    arena.free(second_first ? second : first);
    arena.free(second_first ? first : second);
    void* both = arena.allocate(3 * kMiB);
    EXPECT_EQ(static_cast<char*>(both), memory.base() + 4 * kMiB) << "a new segment, not the two free ones joined";
    EXPECT_EQ(arena.segments(), 3u);
    EXPECT_EQ(arena.allocate(2 * kMiB), first);
    EXPECT_EQ(arena.allocate(2 * kMiB), second);
  }
}

TEST(Arena, ALargeRequestGetsASegmentOfItsSizeRoundedTo2MiB) {
  Segments memory(16 * kMiB);
  Arena arena(memory.reserve(), memory.release());
  arena.allocate(5 * kMiB + 1);
  arena.allocate(1);
  EXPECT_EQ(memory.sizes, std::vector<std::size_t>{6 * kMiB}) << "the 1-byte block comes from the rest";
  EXPECT_EQ(arena.allocated_bytes(), 5 * kMiB + 256 + 256);
}

TEST(Arena, AFailedReserveThrowsAndChangesNothing) {
  Segments memory(8 * kMiB);
  Arena arena(memory.reserve(), memory.release());
  void* a = arena.allocate(kMiB);
  memory.fail_next = true;
  const std::string why = testing::error_message([&] { arena.allocate(4 * kMiB); });
  EXPECT_NE(why.find("no memory for a segment of 4194304 bytes"), std::string::npos) << why;
  EXPECT_EQ(arena.reserved_bytes(), 2 * kMiB);
  EXPECT_EQ(arena.allocated_bytes(), kMiB);
  EXPECT_TRUE(arena.allocated(a));
  EXPECT_EQ(static_cast<char*>(arena.allocate(kMiB)), static_cast<char*>(a) + kMiB);
}

TEST(Arena, RefusesForeignAndRepeatedFreesAndEmptyRequests) {
  Segments memory(8 * kMiB);
  Arena arena(memory.reserve(), memory.release());
  void* a = arena.allocate(512);
  int elsewhere = 0;
  EXPECT_NE(testing::error_message([&] { arena.free(&elsewhere); }).find("not a block this arena allocated"),
            std::string::npos);
  EXPECT_NE(testing::error_message([&] { arena.free(static_cast<char*>(a) + 256); }).find("arena: free of"),
            std::string::npos)
      << "inside a block is not a block";
  arena.free(a);
  EXPECT_NE(testing::error_message([&] { arena.free(a); }).find("freed already"), std::string::npos);
  EXPECT_NE(testing::error_message([&] { arena.allocate(0); }).find("allocate of 0 bytes"), std::string::npos);
  EXPECT_EQ(arena.allocated_bytes(), 0u);
}

TEST(Arena, ReleasesEverySegmentWhenDestroyedAllocatedBlocksIncluded) {
  Segments memory(16 * kMiB);
  std::vector<void*> segments;
  {
    Arena arena(memory.reserve(), memory.release());
    segments.push_back(arena.allocate(3 * kMiB));
    segments.push_back(arena.allocate(2 * kMiB));
    arena.free(segments.back());
    EXPECT_TRUE(memory.released.empty()) << "a freed block keeps its segment";
  }
  EXPECT_EQ(memory.released, std::set<void*>(segments.begin(), segments.end()));
}

// 3000 random allocations and frees (1 byte to 3 MiB) against a model of the live blocks: no two overlap, each is
// aligned, inside one segment, and keeps what was written to it; the byte counts agree; freeing everything leaves
// every segment one free block (a request of the segment's size then needs no new segment).
TEST(Arena, ARandomSequenceKeepsBlocksApartAndMergesBackToWholeSegments) {
  Segments memory(256 * kMiB);
  Arena arena(memory.reserve(), memory.release());
  std::mt19937_64 gen(17);
  auto below = [&](std::size_t n) { return static_cast<std::size_t>(gen() % n); };
  std::map<char*, std::size_t> live;  // block -> requested bytes
  std::map<char*, unsigned char> stamp;
  std::size_t rounded_total = 0;
  auto check_placement = [&](char* p, std::size_t bytes) {
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(p) % Arena::kAlignment, 0u);
    char* segment = memory.base();  // segments lie one after another from base(), in reserve order
    std::size_t s = 0;
    while (s < memory.sizes.size() && segment + memory.sizes[s] <= p) segment += memory.sizes[s++];
    ASSERT_LT(s, memory.sizes.size()) << "outside every segment";
    EXPECT_LE(p + bytes, segment + memory.sizes[s]) << "runs past the end of segment " << s;
  };
  auto check_block = [&](char* p, std::size_t bytes) {
    check_placement(p, bytes);
    EXPECT_EQ(static_cast<unsigned char>(p[0]), stamp[p]);
    EXPECT_EQ(static_cast<unsigned char>(p[bytes - 1]), stamp[p]);
  };
  for (int i = 0; i < 3000; ++i) {
    const bool allocate = live.empty() || below(100) < 55;
    if (allocate) {
      const std::size_t bytes = 1 + (below(100) < 80 ? below(64 * 1024) : below(3 * kMiB));
      char* p = static_cast<char*>(arena.allocate(bytes));
      auto after = live.lower_bound(p);
      if (after != live.end()) {
        ASSERT_LE(p + bytes, after->first) << "overlaps the next block";
      }
      if (after != live.begin()) {
        ASSERT_LE(std::prev(after)->first + std::prev(after)->second, p) << "overlaps the block before";
      }
      check_placement(p, bytes);
      live[p] = bytes;
      stamp[p] = static_cast<unsigned char>(i);
      p[0] = p[bytes - 1] = static_cast<char>(i);
      rounded_total += (bytes + 255) / 256 * 256;
    } else {
      auto victim = std::next(live.begin(), static_cast<long>(below(live.size())));
      check_block(victim->first, victim->second);
      arena.free(victim->first);
      rounded_total -= (victim->second + 255) / 256 * 256;
      live.erase(victim);
    }
    ASSERT_EQ(arena.allocated_bytes(), rounded_total);
  }
  EXPECT_EQ(arena.allocated_blocks().size(), live.size());
  for (auto& [p, bytes] : live) check_block(p, bytes), arena.free(p);
  EXPECT_TRUE(arena.allocated_blocks().empty());
  const std::size_t segments = arena.segments();
  EXPECT_GT(segments, 3u) << "the sequence should need several segments";
  for (std::size_t size : memory.sizes) arena.allocate(size);  // best fit: each request takes a segment its size
  EXPECT_EQ(arena.segments(), segments) << "each segment became one free block again";
}

}  // namespace
}  // namespace graft
