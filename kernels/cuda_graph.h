// CUDA graphs: a whole step (inference, or forward + backward + optimizer step) recorded once and replayed with
// one launch. Replaying removes the host's per-kernel launch cost (~5 us each, hundreds per ResNet-50 step),
// which is what bounds small batches; the GPU work itself is unchanged, so a replay gives bitwise the same
// results as running the step eagerly.
//
// How it works: capture() puts graft's stream in capture mode and runs the step; every kernel, copy and
// stream-ordered allocation (cudaMallocAsync / cudaFreeAsync) is recorded instead of executed. The graph is then
// instantiated, and launched once so the step has run exactly once when capture() returns. Memory the step
// allocates and frees becomes part of the graph, at addresses fixed for the graph's life; memory it allocates
// and keeps (an output tensor the caller holds) is freed and allocated again, at the same address, by each
// replay (cudaGraphInstantiateFlagAutoFreeOnLaunch), so the caller's tensor shows the latest replay's result.
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
// Memory: a kept output is re-allocated at the same address by every replay, and the graph may give that
// address range to the step's intermediate tensors while it runs (their lifetimes do not overlap). That is legal,
// and it is the likeliest reason compute-sanitizer memcheck flags such writes as out of bounds on an H100 while
// the replays are bitwise correct: in the smallest such step the allocation memcheck names starts at the first
// byte of the workspace the step freed before allocating its kept output (bench/RESULTS.md, fifth run;
// tools/graph_memcheck_probe.cu's kept-last mode is that pattern without graft, not yet run). A step that writes
// its result into a tensor allocated before the capture (`out.copy_from(...)`) keeps no graph memory, and memcheck
// finds it clean.
// If the step throws, capture ends and nothing is run; what the step stored outside itself is then not valid.
#pragma once

#include <functional>

namespace graft::cuda {

#if GRAFT_HAS_CUDA
// True while Graph::capture is recording on this process's stream: ops whose result would be wrong when
// replayed check it.
bool capturing();

// The allocator's hooks (kernels/cuda_device.cpp): capture_note_alloc records a cudaMallocAsync made while
// capturing; capture_take_free returns false when the caller must NOT free `ptr` now (allocated before the
// capture: it is held back, freed after the capture, and counted against it).
void capture_note_alloc(void* ptr);
bool capture_take_free(void* ptr);

class Graph {
 public:
  // Records `step` (see the rules above), instantiates it and runs it once. On failure (a refused op, a CUDA
  // error) capture is ended, nothing is kept, and the graft::Error says why; the engine stays usable. Tensors the
  // step allocated before it failed (a new .grad, optimizer state created on first use) never received data: drop
  // them (zero_grad, a fresh optimizer) rather than read them after a failed capture.
  static Graph capture(const std::function<void()>& step);

  void replay();  // one launch of the whole step on graft's stream (asynchronous, like any kernel)
  int nodes() const { return nodes_; }

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
};
#else
inline bool capturing() { return false; }
#endif

}  // namespace graft::cuda
