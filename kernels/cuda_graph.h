// CUDA graphs: a whole step (inference, or forward + backward + optimizer step) recorded once and replayed with
// one launch. Replaying removes the host's per-kernel launch cost (~5 us each, hundreds per ResNet-50 step),
// which is what bounds small batches; the GPU work itself is unchanged, so a replay gives bitwise the same
// results as running the step eagerly.
//
// How it works: capture() puts graft's stream in capture mode and runs the step; every kernel and copy is recorded
// instead of executed. The graph is then instantiated, and launched once so the step has run exactly once when
// capture() returns. While capturing, every tensor the step allocates comes from the graph's own memory
// (core/capture_memory.h; core/arena.h: segments from cudaMalloc, best fit): a tensor freed inside the step hands
// its block to tensors the step allocates later, so the graph needs the step's peak plus what best fit cannot reuse,
// not its total (CPU allocation traces of ResNet-50 training steps replayed through the arena: 1.10-1.19x the
// tensors' peak; VGG16 1.4x; small inference steps up to 2x, segments being 2 MiB at least; bench/RESULTS.md). The
// addresses are fixed when the step is recorded, and every replay uses the same ones. A tensor the step allocates
// and keeps (an output or a gradient the caller holds) stays at its address, so after each replay it holds that
// replay's result. The graph's memory goes back to the device when the Graph is destroyed and the last tensor it
// kept has been freed; until then no other allocation can land on it, so a replay never overwrites a tensor it does
// not own.
//
// The rules a captured step must keep (refused with a graft::Error where marked):
//   - Run the step eagerly at least once before capturing: cuDNN's algorithm search for a new convolution shape
//     synchronises the device and cannot be recorded (refused).
//   - Host-side values are recorded, not re-read: dropout's random offsets (refused in training mode: every
//     replay would draw the same mask), Adam's bias corrections, which change each step (Adam::step refuses to
//     be captured), and every scalar handed to a kernel, such as a learning rate a schedule changes (not
//     detectable: capture SGD at a fixed learning rate, or capture only the forward and backward).
//   - Inputs live in tensors allocated before capture; refill them in place (Tensor::copy_from) between replays.
//   - Nothing in the step may read device values on the host (item(), to(cpu)).
//   - The step may free only memory it allocated itself: a graph replay would read memory freed before it ran.
//     Such frees (e.g. gradients left by a step without zero_grad) are held back; the step then runs once, the
//     held memory is freed after it, and capture is refused with the count.
// Memory and compute-sanitizer: graft's graphs used to record the step's allocations as the graph's own memory
// nodes (cudaMallocAsync inside the capture). The graph could then place a kept output at addresses an intermediate
// had used earlier in the step, and memcheck reported the intermediate's writes as out of bounds while every replay
// was bitwise right (bench/RESULTS.md, the H100 runs of 2026-11-27). memcheck now sees the graph's segments as
// ordinary allocations: it checks that a replay stays inside the graph's memory, not inside each tensor - the eager
// runs of the same kernels, which the tests compare replays with bit for bit, are checked tensor by tensor.
// (This allocator has not yet run on a GPU: bench/README.md, "The next device run".)
// If the step throws, capture ends and nothing is run; what the step stored outside itself is then not valid.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>

namespace graft {
class Arena;
}

namespace graft::cuda {

#if GRAFT_HAS_CUDA
// True while Graph::capture is recording on this process's stream: ops whose result would be wrong when
// replayed check it.
bool capturing();

// The allocator's hooks (kernels/cuda_device.cpp). capture_allocate serves an allocation made while capturing from
// the graph's memory. graph_memory_free returns true when it has taken `ptr`: a block of the graph being captured,
// memory allocated before the capture (held back, freed after it, and counted against it), or a block a finished
// capture left allocated; false for ordinary pool memory, which the caller frees.
void* capture_allocate(std::size_t bytes);
bool graph_memory_free(void* ptr);

class Graph {
 public:
  // Records `step` (see the rules above), instantiates it and runs it once. On failure (a refused op, a CUDA
  // error) capture is ended, no graph is kept, and the graft::Error says why; the engine stays usable. Tensors the
  // step allocated before it failed (a new .grad, optimizer state created on first use) never received data: drop
  // them (zero_grad, a fresh optimizer) rather than read them after a failed capture. They live in the capture's
  // memory, and so do the outputs of a step refused for freeing older memory (which ran once): until they are all
  // freed, they hold all of it (about the step's peak).
  static Graph capture(const std::function<void()>& step);

  void replay();  // one launch of the whole step on graft's stream (asynchronous, like any kernel)
  int nodes() const { return nodes_; }
  std::size_t memory_bytes() const;  // the device memory the graph holds (its segments)

  Graph(Graph&& other) noexcept;
  Graph& operator=(Graph&& other) noexcept;
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;
  ~Graph();

 private:
  Graph() = default;
  void* graph_ = nullptr;  // cudaGraph_t
  void* exec_ = nullptr;   // cudaGraphExec_t
  int nodes_ = 0;
  std::shared_ptr<Arena> memory_;  // shared with the blocks the step kept (core/capture_memory.h)
};
#else
inline bool capturing() { return false; }
#endif

}  // namespace graft::cuda
