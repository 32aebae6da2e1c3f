// See core/capture_memory.h.
#include "core/capture_memory.h"

#include <utility>

#include "core/error.h"

namespace graft {

CaptureMemory::CaptureMemory(ReserveSegment reserve, FreeSegment free_segment)
    : reserve_(std::move(reserve)), free_segment_(std::move(free_segment)) {}

std::shared_ptr<Arena> CaptureMemory::begin() {
  auto arena = std::make_shared<Arena>(reserve_, [this](void* segment) { release_segment(segment); });
  std::lock_guard<std::mutex> lock(mutex_);
  GRAFT_CHECK(!capturing(), "cuda graph: capture begun while another capture is recording");
  recording_ = arena;
  std::lock_guard<std::mutex> segments_lock(segments_mutex_);  // not while release_segment frees one
  capturing_ = true;
  return arena;
}

void* CaptureMemory::allocate(std::size_t bytes) {
  std::lock_guard<std::mutex> lock(mutex_);
  GRAFT_CHECK(capturing(), "cuda graph: a graph allocation while no capture is recording");
  return recording_->allocate(bytes);
}

bool CaptureMemory::free(void* ptr) {
  std::shared_ptr<Arena> arena;  // declared before the lock: if this was the last hold, it dies after the unlock
  std::lock_guard<std::mutex> lock(mutex_);
  if (capturing()) {
    if (recording_->allocated(ptr)) {
      recording_->free(ptr);
    } else {
      held_frees_.push_back(ptr);
    }
    return true;
  }
  auto kept = kept_.find(ptr);
  if (kept == kept_.end()) return false;
  arena = std::move(kept->second);
  kept_.erase(kept);
  arena->free(ptr);
  return true;
}

CaptureMemory::Ended CaptureMemory::end() {
  Ended ended;
  std::shared_ptr<Arena> arena;  // the capture's, released after the unlock (the caller normally still holds it)
  std::lock_guard<std::mutex> lock(mutex_);
  GRAFT_CHECK(capturing(), "cuda graph: capture ended while none is recording");
  {
    std::lock_guard<std::mutex> segments_lock(segments_mutex_);
    capturing_ = false;
    ended.segments_to_free.swap(segments_to_free_);
  }
  arena = std::move(recording_);
  for (void* block : arena->allocated_blocks()) kept_.emplace(block, arena);
  ended.held_frees.swap(held_frees_);
  return ended;
}

std::size_t CaptureMemory::kept_blocks() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return kept_.size();
}

// Decided and done under segments_mutex_, which begin() and end() hold to change capturing_: no capture can begin
// while a segment is being freed (freeing waits for the stream, which would end it).
void CaptureMemory::release_segment(void* segment) {
  std::lock_guard<std::mutex> lock(segments_mutex_);
  if (capturing()) {
    segments_to_free_.push_back(segment);
  } else {
    free_segment_(segment);
  }
}

}  // namespace graft
