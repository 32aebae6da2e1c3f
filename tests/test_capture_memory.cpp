// core/capture_memory.h, the memory bookkeeping of CUDA graph capture, driven on the CPU with host segments: what
// a capture's allocations and frees do, what a kept block holds alive and for how long, what a free is held back,
// and what happens to an arena that dies while another capture records. (The GPU side: tests/test_cuda_graph.cpp.)
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <map>
#include <memory>
#include <vector>

#include "core/capture_memory.h"
#include "tests/check.h"

namespace graft {
namespace {

constexpr std::size_t kMiB = std::size_t{1} << 20;

// Host memory standing in for device segments; counts what is reserved and freed (a double free fails the test).
struct FakeDevice {
  struct Segments : std::map<void*, std::size_t> {  // segment -> bytes; what is left is freed last
    ~Segments() {
      for (auto& [segment, bytes] : *this) std::free(segment);
    }
  } live;
  std::vector<void*> freed;
  bool misalign_next = false, fail_next = false;
  // Declared last, destroyed first: the arenas it still holds free their segments through free_segment.
  CaptureMemory memory{[this](std::size_t bytes) { return reserve(bytes); }, [this](void* s) { free_segment(s); }};
  void* reserve(std::size_t bytes) {
    if (fail_next) {
      fail_next = false;
      GRAFT_FAIL("fake device: out of memory for ", bytes, " bytes");
    }
    void* segment = std::aligned_alloc(4096, bytes);
    live[segment] = bytes;
    if (misalign_next) {
      misalign_next = false;
      return static_cast<char*>(segment) + 16;
    }
    return segment;
  }
  void free_segment(void* segment) {
    auto it = live.find(segment);
    if (it == live.end()) it = live.find(static_cast<char*>(segment) - 16);  // a misaligned one
    ASSERT_NE(it, live.end()) << "freed a segment twice, or one never reserved: " << segment;
    std::free(it->first);
    live.erase(it);
    freed.push_back(segment);
  }
};

TEST(CaptureMemory, AnIntermediatesBlockServesWhatTheStepAllocatesNext) {
  FakeDevice device;
  std::shared_ptr<Arena> graph = device.memory.begin();
  EXPECT_TRUE(device.memory.capturing());
  void* intermediate = device.memory.allocate(kMiB);
  EXPECT_TRUE(device.memory.free(intermediate));
  void* output = device.memory.allocate(4);
  EXPECT_EQ(output, intermediate) << "best fit in the freed, merged segment";
  const CaptureMemory::Ended ended = device.memory.end();
  EXPECT_FALSE(device.memory.capturing());
  EXPECT_TRUE(ended.held_frees.empty());
  EXPECT_TRUE(ended.segments_to_free.empty());
  EXPECT_EQ(device.memory.kept_blocks(), 1u);
  EXPECT_EQ(graph->reserved_bytes(), 2 * kMiB);
}

TEST(CaptureMemory, AKeptBlockAndTheGraphEachHoldTheSegmentsUntilBothAreGone) {
  for (const bool graph_goes_first : {true, false}) {
    SCOPED_TRACE(graph_goes_first ? "graph dropped first" : "kept block freed first");
    FakeDevice device;
    std::shared_ptr<Arena> graph = device.memory.begin();
    void* output = device.memory.allocate(3 * kMiB);
    device.memory.free(device.memory.allocate(2 * kMiB));  // an intermediate, too big for the output's segment
    device.memory.end();
    ASSERT_EQ(device.live.size(), 2u);
    if (graph_goes_first) {
      graph.reset();
      EXPECT_TRUE(device.freed.empty()) << "the kept output holds them";
      EXPECT_TRUE(device.memory.free(output));
    } else {
      EXPECT_TRUE(device.memory.free(output));
      EXPECT_TRUE(device.freed.empty()) << "the graph holds them, and replays into the freed output's block";
      EXPECT_FALSE(graph->allocated(output));
      graph.reset();
    }
    EXPECT_EQ(device.freed.size(), 2u);
    EXPECT_TRUE(device.live.empty());
    EXPECT_EQ(device.memory.kept_blocks(), 0u);
    EXPECT_FALSE(device.memory.free(output)) << "gone: no longer graph memory";
  }
}

TEST(CaptureMemory, LeavesMemoryItDoesNotKnowToTheCaller) {
  FakeDevice device;
  int pool_memory = 0;
  EXPECT_FALSE(device.memory.free(&pool_memory));
  std::shared_ptr<Arena> graph = device.memory.begin();
  device.memory.end();
  EXPECT_FALSE(device.memory.free(&pool_memory));
}

// Memory allocated before a capture and freed by its step - pool memory, or a block an earlier graph kept - is held
// back, handed to the caller by end(); a kept block freed afterwards is then taken as usual.
TEST(CaptureMemory, FreesOfOlderMemoryDuringACaptureAreHeldBack) {
  FakeDevice device;
  std::shared_ptr<Arena> first = device.memory.begin();
  void* first_output = device.memory.allocate(100);
  device.memory.end();
  int pool_memory = 0;
  std::shared_ptr<Arena> second = device.memory.begin();
  EXPECT_TRUE(device.memory.free(&pool_memory));
  EXPECT_TRUE(device.memory.free(first_output));
  EXPECT_TRUE(first->allocated(first_output)) << "held, not freed";
  const CaptureMemory::Ended ended = device.memory.end();
  EXPECT_EQ(ended.held_frees, (std::vector<void*>{&pool_memory, first_output}));
  first.reset();
  EXPECT_TRUE(device.freed.empty()) << "the first graph's kept output still holds its memory";
  EXPECT_FALSE(device.memory.free(&pool_memory)) << "the caller frees pool memory itself";
  EXPECT_TRUE(device.memory.free(first_output));
  EXPECT_EQ(device.freed.size(), 1u) << "the first graph's segment, now";
  std::shared_ptr<Arena> third = device.memory.begin();
  EXPECT_TRUE(device.memory.end().held_frees.empty()) << "end() handed them over once";
}

TEST(CaptureMemory, AnArenaThatDiesDuringAnotherCaptureHandsItsSegmentsToThatCapturesEnd) {
  FakeDevice device;
  std::shared_ptr<Arena> first = device.memory.begin();
  device.memory.free(device.memory.allocate(kMiB));
  device.memory.end();
  void* first_segment = device.live.begin()->first;
  std::shared_ptr<Arena> second = device.memory.begin();
  first.reset();  // e.g. a Graph destroyed inside the step being captured
  EXPECT_TRUE(device.freed.empty()) << "device memory is not freed while a capture records";
  CaptureMemory::Ended ended = device.memory.end();
  EXPECT_EQ(ended.segments_to_free, std::vector<void*>{first_segment});
  for (void* segment : ended.segments_to_free) device.free_segment(segment);
  second.reset();  // no capture recording: freed at once (it has no segment: nothing to free)
  EXPECT_EQ(device.freed, std::vector<void*>{first_segment});
  std::shared_ptr<Arena> third = device.memory.begin();
  EXPECT_TRUE(device.memory.end().segments_to_free.empty()) << "end() handed it over once";
}

// A segment the arena must refuse (misaligned) is handed back while the capture's lock is held: deferred to end(),
// with no deadlock. A failed reserve throws and leaves the capture usable.
TEST(CaptureMemory, ABadOrFailedSegmentDuringACaptureThrowsAndTheCaptureGoesOn) {
  FakeDevice device;
  std::shared_ptr<Arena> graph = device.memory.begin();
  device.misalign_next = true;
  std::string why = testing::error_message([&] { device.memory.allocate(64); });
  EXPECT_NE(why.find("not 256-byte aligned"), std::string::npos) << why;
  device.fail_next = true;
  why = testing::error_message([&] { device.memory.allocate(64); });
  EXPECT_NE(why.find("fake device: out of memory"), std::string::npos) << why;
  void* block = device.memory.allocate(64);
  EXPECT_TRUE(graph->allocated(block));
  CaptureMemory::Ended ended = device.memory.end();
  ASSERT_EQ(ended.segments_to_free.size(), 1u) << "the misaligned segment";
  device.free_segment(ended.segments_to_free[0]);
  EXPECT_TRUE(device.memory.free(block));
  graph.reset();
  EXPECT_TRUE(device.live.empty());
}

TEST(CaptureMemory, RefusesCallsOutOfOrder) {
  FakeDevice device;
  EXPECT_NE(testing::error_message([&] { device.memory.allocate(8); }).find("while no capture is recording"),
            std::string::npos);
  EXPECT_NE(testing::error_message([&] { device.memory.end(); }).find("while none is recording"), std::string::npos);
  std::shared_ptr<Arena> graph = device.memory.begin();
  EXPECT_NE(testing::error_message([&] { device.memory.begin(); }).find("another capture is recording"),
            std::string::npos);
  EXPECT_TRUE(device.memory.capturing()) << "the first capture goes on";
  device.memory.end();
}

}  // namespace
}  // namespace graft
