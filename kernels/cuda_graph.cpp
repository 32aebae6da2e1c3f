// See kernels/cuda_graph.h.
#include "kernels/cuda_graph.h"

#include <atomic>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/arena.h"
#include "kernels/cuda_device.h"

namespace graft::cuda {
namespace {
std::atomic<bool> g_capturing{false};

// The bookkeeping, guarded by `mutex`; no Arena is ever destroyed while it is held. Never destroyed itself: tensors
// freed by static destructors at exit still find it, and no graph memory is released into a driver shutting down.
struct State {
  std::mutex mutex;
  std::shared_ptr<Arena> recording;  // the memory of the graph being captured
  std::vector<void*> held_frees;     // frees of older memory, held back until capture ends
  // Blocks a finished capture left allocated (outputs, gradients, optimizer state the caller holds), each with the
  // memory it lives in: freeing the last one lets that memory go once its Graph is gone too.
  std::unordered_map<void*, std::shared_ptr<Arena>> kept;
  std::vector<void*> segments_to_free;  // of graph memory that died while a capture was recording
};
State& state() {
  static State* const s = new State;
  return *s;
}

// A graph memory's segments go back to the device when it dies - after the capture, if one is recording (freeing
// device memory cannot be recorded, and waiting for the stream would end the capture).
void release_segment(void* segment) {
  if (capturing()) {
    std::lock_guard<std::mutex> lock(state().mutex);
    state().segments_to_free.push_back(segment);
    return;
  }
  free_segment(segment);
}

struct EndedCapture {
  std::vector<void*> held_frees;  // for the caller to free once nothing recorded can still read them
  std::vector<void*> segments_to_free;
};
// Ends the capture's bookkeeping: what the step kept moves to State::kept, with its memory.
EndedCapture end_capture_bookkeeping() {
  EndedCapture ended;
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  g_capturing = false;
  for (void* block : s.recording->allocated_blocks()) s.kept.emplace(block, s.recording);
  s.recording.reset();  // Graph::capture still holds it: it does not die under the lock
  ended.held_frees.swap(s.held_frees);
  ended.segments_to_free.swap(s.segments_to_free);
  return ended;
}
// After the recorded work has run (or nothing was recorded).
void release(const EndedCapture& ended) {
  for (void* ptr : ended.held_frees) free_async(ptr);
  for (void* segment : ended.segments_to_free) free_segment(segment);
}
}  // namespace

bool capturing() { return g_capturing.load(std::memory_order_relaxed); }

void* capture_allocate(std::size_t bytes) {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  GRAFT_CHECK(s.recording != nullptr, "cuda graph: capture_allocate called while no capture is recording");
  return s.recording->allocate(bytes);
}

bool graph_memory_free(void* ptr) {
  State& s = state();
  std::shared_ptr<Arena> memory;  // declared before the lock: if this was the last user, it dies after the unlock
  std::lock_guard<std::mutex> lock(s.mutex);
  if (capturing()) {
    if (s.recording->allocated(ptr)) {
      s.recording->free(ptr);  // an intermediate: its block serves what the step allocates next
    } else {
      s.held_frees.push_back(ptr);
    }
    return true;
  }
  auto kept = s.kept.find(ptr);
  if (kept == s.kept.end()) return false;
  memory = std::move(kept->second);
  s.kept.erase(kept);
  memory->free(ptr);  // the graph replays into it still: the block is never handed out again
  return true;
}

Graph Graph::capture(const std::function<void()>& step) {
  GRAFT_CHECK(!capturing(), "cuda graph: capture called while another capture is recording");
  synchronize();  // work queued before the capture runs now, not inside the graph
  auto memory = std::make_shared<Arena>(malloc_segment, release_segment);
  // Relaxed: graft's own calls inside a step are all stream-ordered; this mode does not refuse the benign
  // driver queries libraries make (device attributes, memory info) while the stream records, nor the cudaMalloc
  // of a new segment of the graph's memory.
  GRAFT_CUDA_CHECK(cudaStreamBeginCapture(stream(), cudaStreamCaptureModeRelaxed));
  {
    std::lock_guard<std::mutex> lock(state().mutex);
    state().recording = memory;
    g_capturing = true;
  }
  cudaGraph_t graph = nullptr;
  try {
    step();
  } catch (...) {
    if (cudaStreamEndCapture(stream(), &graph) == cudaSuccess && graph != nullptr) cudaGraphDestroy(graph);
    cudaGetLastError();  // an invalidated capture leaves an error behind: clear it so the engine stays usable
    release(end_capture_bookkeeping());
    throw;
  }
  const cudaError_t ended = cudaStreamEndCapture(stream(), &graph);
  const EndedCapture bookkeeping = end_capture_bookkeeping();
  Graph out;
  out.graph_ = graph;  // from here on `out` destroys the graph (if one was made), whatever throws
  out.memory_ = memory;
  try {
    GRAFT_CUDA_CHECK(ended);
    std::size_t nodes = 0;
    GRAFT_CUDA_CHECK(cudaGraphGetNodes(graph, nullptr, &nodes));
    out.nodes_ = static_cast<int>(nodes);
    cudaGraphExec_t exec = nullptr;
    // The flag matters only if a library records an allocation of its own (graft's own allocations make none):
    // each launch then frees what the last one left allocated.
    GRAFT_CUDA_CHECK(cudaGraphInstantiateWithFlags(&exec, graph, cudaGraphInstantiateFlagAutoFreeOnLaunch));
    out.exec_ = exec;
    // The step runs once now, so what it stored outside itself (outputs, gradients, optimizer state) is real memory
    // holding real results, as after an eager run - also when the graph is refused just below.
    out.replay();
  } catch (...) {
    // a failed end, instantiate or first launch: release the memory the step freed, as when the step itself
    // threw (after any work that may still read it), and leave no error behind
    cudaDeviceSynchronize();
    cudaGetLastError();
    release(bookkeeping);
    throw;
  }
  if (!bookkeeping.held_frees.empty()) {
    synchronize();  // the run may read the older memory it freed: release that only after it
    release(bookkeeping);
    GRAFT_FAIL("cuda graph: the captured step freed ", bookkeeping.held_frees.size(),
               " tensor(s) allocated before the capture (for example gradients left by an earlier step: call "
               "zero_grad before capturing); a replay would read freed memory, so the graph is not kept (the step ran "
               "once, as if eagerly)");
  }
  release(bookkeeping);
  return out;
}

void Graph::replay() { GRAFT_CUDA_CHECK(cudaGraphLaunch(static_cast<cudaGraphExec_t>(exec_), stream())); }

std::size_t Graph::memory_bytes() const { return memory_ ? memory_->reserved_bytes() : 0; }

Graph::Graph(Graph&& other) noexcept
    : graph_(std::exchange(other.graph_, nullptr)),
      exec_(std::exchange(other.exec_, nullptr)),
      nodes_(other.nodes_),
      memory_(std::move(other.memory_)) {}

Graph& Graph::operator=(Graph&& other) noexcept {
  Graph taken(std::move(other));
  std::swap(graph_, taken.graph_);
  std::swap(exec_, taken.exec_);
  std::swap(nodes_, taken.nodes_);
  std::swap(memory_, taken.memory_);
  return *this;  // `taken` destroys what this graph held
}

Graph::~Graph() {
  // Destroying an executable graph waits for nothing; a replay still queued keeps its resources until it ends. Its
  // memory (when no kept tensor holds it) waits for the stream before going back (free_segment).
  if (exec_ != nullptr) cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(exec_));
  if (graph_ != nullptr) cudaGraphDestroy(static_cast<cudaGraph_t>(graph_));
  memory_.reset();
}

}  // namespace graft::cuda
