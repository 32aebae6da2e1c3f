// The memory bookkeeping of CUDA graph capture (kernels/cuda_graph.h says what it is for): which allocator serves
// an allocation, and what a free does, during and after a capture.
//   - begin() starts a capture with a new Arena (core/arena.h) over device segments; while capturing, allocate()
//     serves every allocation from it and free() returns its blocks to it (an intermediate's block serves what the
//     step allocates next).
//   - A free of anything else while capturing (memory allocated before the capture) is held back: end() hands the
//     held pointers to the caller, who frees them once nothing recorded can still read them, and refuses the graph.
//   - end() registers the blocks still allocated (outputs, gradients the caller keeps) as "kept", each holding its
//     arena. A later free() of a kept block marks it free in that arena - never handed out again, since the graph
//     replays into it - and drops the block's hold: the arena's segments go back to the device when the last kept
//     block is freed and the caller's own hold (the Graph's) is gone.
//   - An arena that dies while a capture is recording cannot free device memory then (freeing cannot be recorded,
//     and waiting for the stream would end the capture): its segments are handed out by the next end().
// Host-side only: the device calls come in as two functions, so the CPU tests drive it with host memory. Thread-safe;
// no Arena is destroyed while the lock is held (an arena's segments may be freed from inside another call).
#pragma once

#include <atomic>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "core/arena.h"

namespace graft {

class CaptureMemory {
 public:
  using ReserveSegment = std::function<void*(std::size_t bytes)>;  // a new device segment, or a graft::Error
  using FreeSegment = std::function<void(void* segment)>;          // never throws

  CaptureMemory(ReserveSegment reserve, FreeSegment free_segment);

  bool capturing() const { return capturing_.load(std::memory_order_relaxed); }

  // Starts a capture (graft::Error if one is recording); the caller holds the returned arena for as long as its
  // graph may replay.
  std::shared_ptr<Arena> begin();
  void* allocate(std::size_t bytes);  // while capturing only (graft::Error otherwise)
  // True when it has taken `ptr` (a block of the capture's arena, memory held back during a capture, or a kept
  // block); false for memory it knows nothing of, which the caller frees itself.
  bool free(void* ptr);

  struct Ended {
    std::vector<void*> held_frees;        // memory allocated before the capture that the step freed
    std::vector<void*> segments_to_free;  // of arenas that died while the capture was recording
  };
  Ended end();  // ends the capture (graft::Error if none is recording)

  std::size_t kept_blocks() const;

 private:
  void release_segment(void* segment);

  ReserveSegment reserve_;
  FreeSegment free_segment_;
  std::atomic<bool> capturing_{false};
  mutable std::mutex mutex_;  // guards the three members below
  std::shared_ptr<Arena> recording_;
  std::vector<void*> held_frees_;
  std::unordered_map<void*, std::shared_ptr<Arena>> kept_;
  // Guards segments_to_free_ and every change of capturing_ (begin() and end() take it after mutex_). A lock of its
  // own: an arena hands back a bad segment from inside allocate(), under mutex_.
  std::mutex segments_mutex_;
  std::vector<void*> segments_to_free_;
};

}  // namespace graft
