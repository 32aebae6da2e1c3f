// See kernels/cuda_graph.h.
#include "kernels/cuda_graph.h"

#include <memory>
#include <utility>

#include "core/capture_memory.h"
#include "kernels/cuda_device.h"

namespace graft::cuda {
namespace {
// Never destroyed: tensors freed by static destructors at exit still find it.
CaptureMemory& capture_memory() {
  static CaptureMemory* const memory = new CaptureMemory(malloc_segment, free_segment);
  return *memory;
}

// After the recorded work has run (or nothing was recorded).
void release(const CaptureMemory::Ended& ended) {
  for (void* ptr : ended.held_frees) free_async(ptr);
  for (void* segment : ended.segments_to_free) free_segment(segment);
}
}  // namespace

bool capturing() { return capture_memory().capturing(); }
void* capture_allocate(std::size_t bytes) { return capture_memory().allocate(bytes); }
bool graph_memory_free(void* ptr) { return capture_memory().free(ptr); }

Graph Graph::capture(const std::function<void()>& step) {
  GRAFT_CHECK(!capturing(), "cuda graph: capture called while another capture is recording");
  synchronize();  // work queued before the capture runs now, not inside the graph
  // Relaxed: graft's own calls inside a step are all stream-ordered; this mode does not refuse the benign
  // driver queries libraries make (device attributes, memory info) while the stream records, nor the cudaMalloc
  // of a new segment of the graph's memory.
  const std::shared_ptr<Arena> memory = capture_memory().begin();
  const cudaError_t began = cudaStreamBeginCapture(stream(), cudaStreamCaptureModeRelaxed);
  if (began != cudaSuccess) release(capture_memory().end());
  GRAFT_CUDA_CHECK(began);
  cudaGraph_t graph = nullptr;
  try {
    step();
  } catch (...) {
    if (cudaStreamEndCapture(stream(), &graph) == cudaSuccess && graph != nullptr) cudaGraphDestroy(graph);
    cudaGetLastError();  // an invalidated capture leaves an error behind: clear it so the engine stays usable
    release(capture_memory().end());
    throw;
  }
  const cudaError_t ended = cudaStreamEndCapture(stream(), &graph);
  const CaptureMemory::Ended bookkeeping = capture_memory().end();
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
