// See core/arena.h.
#include "core/arena.h"

#include <cstdint>
#include <iterator>

#include "core/error.h"

namespace graft {
namespace {
std::size_t round_up(std::size_t bytes, std::size_t multiple) { return (bytes + multiple - 1) / multiple * multiple; }
}  // namespace

Arena::Arena(Reserve reserve, Release release) : reserve_(std::move(reserve)), release_(std::move(release)) {}

Arena::~Arena() {
  for (void* segment : segments_) release_(segment);
}

void* Arena::allocate(std::size_t bytes) {
  GRAFT_CHECK(bytes > 0, "arena: allocate of 0 bytes");
  GRAFT_CHECK(bytes <= SIZE_MAX - kMinSegment, "arena: allocate of ", bytes, " bytes is too large");
  const std::size_t size = round_up(bytes, kAlignment);
  auto fit = free_.lower_bound({size, 0});
  Blocks::iterator block = fit != free_.end() ? blocks_.find(fit->second) : add_segment(size);
  unmark_free(block);
  if (block->second.size > size) {  // split: the rest stays free, right after the block
    const std::uintptr_t rest = block->first + size;
    auto [rest_block, inserted] = blocks_.emplace(rest, Block{block->second.size - size, true, false});
    (void)inserted;
    mark_free(rest_block);
    block->second.size = size;
  }
  allocated_bytes_ += size;
  return reinterpret_cast<void*>(block->first);
}

void Arena::free(void* ptr) {
  auto block = blocks_.find(reinterpret_cast<std::uintptr_t>(ptr));
  GRAFT_CHECK(block != blocks_.end() && !block->second.free, "arena: free of ", ptr,
              ", which is not a block this arena allocated (or was freed already)");
  allocated_bytes_ -= block->second.size;
  auto next = std::next(block);
  if (next != blocks_.end() && next->second.free && !next->second.segment_start) {
    unmark_free(next);
    block->second.size += next->second.size;
    blocks_.erase(next);
  }
  if (!block->second.segment_start) {
    auto previous = std::prev(block);
    if (previous->second.free) {
      unmark_free(previous);
      previous->second.size += block->second.size;
      blocks_.erase(block);
      block = previous;
    }
  }
  mark_free(block);
}

bool Arena::allocated(const void* ptr) const {
  auto block = blocks_.find(reinterpret_cast<std::uintptr_t>(ptr));
  return block != blocks_.end() && !block->second.free;
}

std::vector<void*> Arena::allocated_blocks() const {
  std::vector<void*> out;
  for (const auto& [address, block] : blocks_)
    if (!block.free) out.push_back(reinterpret_cast<void*>(address));
  return out;
}

Arena::Blocks::iterator Arena::add_segment(std::size_t bytes) {
  const std::size_t size = round_up(bytes < kMinSegment ? kMinSegment : bytes, kMinSegment);
  void* segment = reserve_(size);  // may throw: nothing has changed yet
  const auto address = reinterpret_cast<std::uintptr_t>(segment);
  if (segment == nullptr || address % kAlignment != 0) {
    if (segment != nullptr) release_(segment);
    GRAFT_FAIL("arena: a new segment of ", size, " bytes is not ", kAlignment, "-byte aligned (", segment, ")");
  }
  segments_.push_back(segment);
  reserved_bytes_ += size;
  auto block = blocks_.emplace(address, Block{size, true, true}).first;
  mark_free(block);
  return block;
}

void Arena::mark_free(Blocks::iterator block) {
  block->second.free = true;
  free_.emplace(block->second.size, block->first);
}

void Arena::unmark_free(Blocks::iterator block) {
  block->second.free = false;
  free_.erase({block->second.size, block->first});
}

}  // namespace graft
