// A best-fit sub-allocator over large segments of memory: the memory of one CUDA graph (kernels/cuda_graph.h).
//
// Why a graph has its own: a captured step allocates and frees tensors as it runs; when those allocations are
// recorded as the graph's own memory nodes (cudaMallocAsync inside the capture), the graph may place a kept output
// at addresses an intermediate used earlier in the step, and compute-sanitizer memcheck then reports the
// intermediate's in-bounds writes as out of bounds (bench/RESULTS.md, the H100 runs of 2026-11-27). Serving the
// capture from plain segments (cudaMalloc) that the graph keeps for its life - PyTorch's "private pool" - gives the
// graph fixed addresses without memory nodes, and memcheck sees ordinary allocations.
//
// How it works: memory comes in segments from `reserve` (a new segment is at least 2 MiB, and exactly the request
// rounded up to 2 MiB when larger). Every segment is cut into blocks (each a multiple of 256 bytes, so every block
// starts 256-byte aligned when the segment does). allocate() takes the smallest free block that fits and splits
// off the rest; free() returns a block and merges it with free neighbours in the same segment. The segments go back
// through `release` when the arena is destroyed, never earlier: a graph replays into every address it recorded.
//
// Host-side bookkeeping only (no device calls of its own), so it is tested on the CPU with host memory; not
// thread-safe (the graph code calls it under its lock).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <utility>
#include <vector>

namespace graft {

class Arena {
 public:
  using Reserve = std::function<void*(std::size_t bytes)>;  // a new segment, or a graft::Error
  using Release = std::function<void(void* segment)>;       // never throws

  static constexpr std::size_t kAlignment = 256;
  static constexpr std::size_t kMinSegment = std::size_t{2} << 20;

  Arena(Reserve reserve, Release release);
  ~Arena();  // releases every segment (blocks still allocated included)
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;

  // A block of at least `bytes` (> 0); from a new segment when no free block fits (whatever `reserve` throws
  // propagates, and the arena is unchanged).
  void* allocate(std::size_t bytes);
  // Returns a block allocate() gave; graft::Error for any other pointer, or one already freed.
  void free(void* ptr);

  bool allocated(const void* ptr) const;  // ptr is the start of a block allocate() gave and free() has not taken
  std::vector<void*> allocated_blocks() const;
  std::size_t reserved_bytes() const { return reserved_bytes_; }    // all segments
  std::size_t allocated_bytes() const { return allocated_bytes_; }  // the allocated blocks (rounded sizes)
  std::size_t segments() const { return segments_.size(); }

 private:
  struct Block {
    std::size_t size;
    bool free;
    bool segment_start;  // the first block of a segment: never merged into the block before it
  };
  using Blocks = std::map<std::uintptr_t, Block>;  // every block of every segment, by address

  Blocks::iterator add_segment(std::size_t bytes);
  void mark_free(Blocks::iterator block);
  void unmark_free(Blocks::iterator block);

  Reserve reserve_;
  Release release_;
  Blocks blocks_;
  std::set<std::pair<std::size_t, std::uintptr_t>> free_;  // (size, address) of the free blocks: best fit first
  std::vector<void*> segments_;
  std::size_t reserved_bytes_ = 0, allocated_bytes_ = 0;
};

}  // namespace graft
