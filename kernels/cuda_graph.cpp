// See kernels/cuda_graph.h.
#include "kernels/cuda_graph.h"

#include <atomic>
#include <mutex>
#include <unordered_set>
#include <utility>
#include <vector>

#include "kernels/cuda_device.h"

namespace graft::cuda {
namespace {
std::atomic<bool> g_capturing{false};
std::mutex g_mutex;
std::unordered_set<void*> g_captured_allocs;  // cudaMallocAsync'd while capturing: the graph's own memory
std::vector<void*> g_held_frees;               // frees of older memory, held back until capture ends

// Ends the capture's bookkeeping and returns the frees that were held back (the caller frees them once nothing
// recorded can still read them).
std::vector<void*> end_capture_bookkeeping() {
  std::vector<void*> held;
  std::lock_guard<std::mutex> lock(g_mutex);
  g_capturing = false;
  g_captured_allocs.clear();
  held.swap(g_held_frees);
  return held;
}
void free_all(const std::vector<void*>& ptrs) {
  for (void* ptr : ptrs) free_async(ptr);
}
}  // namespace

bool capturing() { return g_capturing.load(std::memory_order_relaxed); }

void capture_note_alloc(void* ptr) {
  if (!capturing() || ptr == nullptr) return;
  std::lock_guard<std::mutex> lock(g_mutex);
  g_captured_allocs.insert(ptr);
}
bool capture_take_free(void* ptr) {
  if (!capturing()) return true;
  std::lock_guard<std::mutex> lock(g_mutex);
  if (g_captured_allocs.erase(ptr) == 1) return true;
  g_held_frees.push_back(ptr);
  return false;
}

Graph Graph::capture(const std::function<void()>& step) {
  GRAFT_CHECK(!capturing(), "cuda graph: capture called while another capture is recording");
  synchronize();  // work queued before the capture runs now, not inside the graph
  // Relaxed: graft's own calls inside a step are all stream-ordered; this mode does not refuse the benign
  // driver queries libraries make (device attributes, memory info) while the stream records.
  GRAFT_CUDA_CHECK(cudaStreamBeginCapture(stream(), cudaStreamCaptureModeRelaxed));
  g_capturing = true;
  cudaGraph_t graph = nullptr;
  try {
    step();
  } catch (...) {
    if (cudaStreamEndCapture(stream(), &graph) == cudaSuccess && graph != nullptr) cudaGraphDestroy(graph);
    cudaGetLastError();  // an invalidated capture leaves an error behind: clear it so the engine stays usable
    free_all(end_capture_bookkeeping());
    throw;
  }
  const cudaError_t ended = cudaStreamEndCapture(stream(), &graph);
  const std::vector<void*> held = end_capture_bookkeeping();
  Graph out;
  out.graph_ = graph;  // from here on `out` destroys the graph (if one was made), whatever throws
  try {
    GRAFT_CUDA_CHECK(ended);
    std::size_t nodes = 0;
    GRAFT_CUDA_CHECK(cudaGraphGetNodes(graph, nullptr, &nodes));
    out.nodes_ = static_cast<int>(nodes);
    cudaGraphExec_t exec = nullptr;
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
    free_all(held);
    throw;
  }
  if (!held.empty()) {
    synchronize();  // the run may read the older memory it freed: release that only after it
    free_all(held);
    GRAFT_FAIL("cuda graph: the captured step freed ", held.size(), " tensor(s) allocated before the capture (for "
               "example gradients left by an earlier step: call zero_grad before capturing); a replay would read freed "
               "memory, so the graph is not kept (the step ran once, as if eagerly)");
  }
  return out;
}

// A graph's memory is its own (not the stream-ordered pool's): when the device is full because the pool still holds
// memory freed earlier, hand that back to the driver and launch once more (what malloc_async does on OOM).
void Graph::replay() {
  const auto exec = static_cast<cudaGraphExec_t>(exec_);
  cudaError_t err = cudaGraphLaunch(exec, stream());
  if (err == cudaErrorMemoryAllocation) {
    cudaGetLastError();
    release_cached_memory();
    err = cudaGraphLaunch(exec, stream());
  }
  GRAFT_CUDA_CHECK(err);
}

Graph::Graph(Graph&& other) noexcept
    : graph_(std::exchange(other.graph_, nullptr)), exec_(std::exchange(other.exec_, nullptr)), nodes_(other.nodes_) {}

Graph& Graph::operator=(Graph&& other) noexcept {
  if (this != &other) {
    this->~Graph();
    graph_ = std::exchange(other.graph_, nullptr);
    exec_ = std::exchange(other.exec_, nullptr);
    nodes_ = other.nodes_;
  }
  return *this;
}

Graph::~Graph() {
  // Destroying an executable graph waits for nothing; a replay still queued keeps its resources until it ends.
  if (exec_ != nullptr) cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(exec_));
  if (graph_ != nullptr) cudaGraphDestroy(static_cast<cudaGraph_t>(graph_));
}

}  // namespace graft::cuda
