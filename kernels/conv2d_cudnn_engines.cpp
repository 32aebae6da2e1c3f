// cuDNN graph-API engine search for convolutions (see kernels/conv2d_cudnn_engines.h).
#include "kernels/conv2d_cudnn_engines.h"

#if GRAFT_HAS_CUDA
#include <cuda_runtime.h>

#include <algorithm>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <sstream>

#include "core/error.h"
#include "kernels/cuda_device.h"
#include "kernels/cuda_graph.h"
#include "kernels/cudnn_check.h"

namespace graft::cudnn_engines {

Workspace::Workspace(std::size_t bytes) : bytes_(bytes), ptr_(bytes ? cuda::malloc_async(bytes) : nullptr) {}

Workspace::~Workspace() {
  // A free can only fail once the CUDA context is already broken; the error that brought us here (if any) is the
  // one worth reporting, so a destructor does not throw over it.
  try {
    if (ptr_) cuda::free_async(ptr_);
  } catch (...) {
  }
}

namespace {

constexpr std::size_t kWorkspaceLimit = std::size_t(512) << 20;  // as the legacy search's
constexpr int kTimedRuns = 3;
// Suitable configurations timed per key, in heuristics order (mode A's ranking, then the fallback list): bounds the
// first-use cost of a shape (ResNet-50 training has ~70 keys).
constexpr int kMaxTimed = 16;
constexpr std::int64_t kUidX = 'x', kUidW = 'w', kUidY = 'y';

void check(cudnnStatus_t status, const char* what, int attribute = -1) {
  if (status == CUDNN_STATUS_SUCCESS) return;
  if (attribute >= 0)
    GRAFT_FAIL("cuDNN graph API: ", what, " (attribute ", attribute, "): ", cudnnGetErrorString(status),
               detail::cudnn_last_error());
  GRAFT_FAIL("cuDNN graph API: ", what, ": ", cudnnGetErrorString(status), detail::cudnn_last_error());
}

// One backend descriptor, destroyed with this object.
class Backend {
 public:
  explicit Backend(cudnnBackendDescriptorType_t type) { check(cudnnBackendCreateDescriptor(type, &d_), "create"); }
  ~Backend() {
    if (d_) cudnnBackendDestroyDescriptor(d_);
  }
  Backend(const Backend&) = delete;
  Backend& operator=(const Backend&) = delete;
  cudnnBackendDescriptor_t get() const { return d_; }
  template <typename T>
  Backend& set(cudnnBackendAttributeName_t name, cudnnBackendAttributeType_t type, const T* values,
               std::int64_t count = 1) {
    check(cudnnBackendSetAttribute(d_, name, type, count, values), "set", static_cast<int>(name));
    return *this;
  }
  Backend& set_descriptor(cudnnBackendAttributeName_t name, const Backend& value) {
    cudnnBackendDescriptor_t v = value.get();
    return set(name, CUDNN_TYPE_BACKEND_DESCRIPTOR, &v);
  }
  void finalize(const char* what) { check(cudnnBackendFinalize(d_), what); }

 private:
  cudnnBackendDescriptor_t d_ = nullptr;
};

std::unique_ptr<Backend> tensor(std::int64_t uid, std::array<std::int64_t, 4> dims,
                                std::array<std::int64_t, 4> strides, std::int64_t alignment) {
  auto t = std::make_unique<Backend>(CUDNN_BACKEND_TENSOR_DESCRIPTOR);
  const cudnnDataType_t type = CUDNN_DATA_FLOAT;
  t->set(CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, &type)
      .set(CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, dims.data(), 4)
      .set(CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, strides.data(), 4)
      .set(CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, &uid)
      .set(CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, &alignment);
  t->finalize("tensor");
  return t;
}

// The operation graph of one convolution direction (X, W, Y as in the header) and what it must outlive.
struct OpGraph {
  std::unique_ptr<Backend> x, w, y, conv, op, graph;
};

OpGraph op_graph(cudnnHandle_t handle, ConvOp which, const Conv2dGeometry& g, std::int64_t alignment,
                 float beta) {
  OpGraph o;
  const std::int64_t cg = g.c / g.groups;
  o.x = tensor(kUidX, {g.n, g.c, g.h, g.w}, {g.h * g.w * g.c, 1, g.w * g.c, g.c}, alignment);
  o.w = tensor(kUidW, {g.k, cg, g.r, g.s}, {g.r * g.s * cg, 1, g.s * cg, cg}, alignment);
  o.y = tensor(kUidY, {g.n, g.k, g.p, g.q}, {g.p * g.q * g.k, 1, g.q * g.k, g.k}, alignment);

  o.conv = std::make_unique<Backend>(CUDNN_BACKEND_CONVOLUTION_DESCRIPTOR);
  const cudnnDataType_t compute = CUDNN_DATA_FLOAT;
  const cudnnConvolutionMode_t mode = CUDNN_CROSS_CORRELATION;
  const std::int64_t spatial = 2;
  const std::int64_t dilation[2] = {g.dilation_h, g.dilation_w}, stride[2] = {g.stride_h, g.stride_w};
  const std::int64_t pad[2] = {g.pad_h, g.pad_w};
  o.conv->set(CUDNN_ATTR_CONVOLUTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, &compute)
      .set(CUDNN_ATTR_CONVOLUTION_CONV_MODE, CUDNN_TYPE_CONVOLUTION_MODE, &mode)
      .set(CUDNN_ATTR_CONVOLUTION_SPATIAL_DIMS, CUDNN_TYPE_INT64, &spatial)
      .set(CUDNN_ATTR_CONVOLUTION_DILATIONS, CUDNN_TYPE_INT64, dilation, 2)
      .set(CUDNN_ATTR_CONVOLUTION_FILTER_STRIDES, CUDNN_TYPE_INT64, stride, 2)
      .set(CUDNN_ATTR_CONVOLUTION_PRE_PADDINGS, CUDNN_TYPE_INT64, pad, 2)
      .set(CUDNN_ATTR_CONVOLUTION_POST_PADDINGS, CUDNN_TYPE_INT64, pad, 2);
  o.conv->finalize("convolution");

  // The three operations differ only in their descriptor type and attribute names (X, W, Y roles as above).
  struct Attributes {
    cudnnBackendDescriptorType_t type;
    cudnnBackendAttributeName_t x, w, y, conv, alpha, beta;
  };
  static constexpr Attributes kAttributes[3] = {
      {CUDNN_BACKEND_OPERATION_CONVOLUTION_FORWARD_DESCRIPTOR, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_X,
       CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_W, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_Y,
       CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_CONV_DESC, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_ALPHA,
       CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_BETA},
      {CUDNN_BACKEND_OPERATION_CONVOLUTION_BACKWARD_DATA_DESCRIPTOR, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_DX,
       CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_W, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_DY,
       CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_CONV_DESC, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_ALPHA,
       CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_BETA},
      {CUDNN_BACKEND_OPERATION_CONVOLUTION_BACKWARD_FILTER_DESCRIPTOR, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_X,
       CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_DW, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_DY,
       CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_CONV_DESC, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_ALPHA,
       CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_BETA},
  };
  const Attributes& a = kAttributes[static_cast<int>(which)];
  const float alpha = 1.f;
  o.op = std::make_unique<Backend>(a.type);
  o.op->set_descriptor(a.x, *o.x)
      .set_descriptor(a.w, *o.w)
      .set_descriptor(a.y, *o.y)
      .set_descriptor(a.conv, *o.conv)
      .set(a.alpha, CUDNN_TYPE_FLOAT, &alpha)
      .set(a.beta, CUDNN_TYPE_FLOAT, &beta);
  o.op->finalize("convolution operation");

  o.graph = std::make_unique<Backend>(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR);
  cudnnBackendDescriptor_t ops = o.op->get();
  o.graph->set(CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR, &ops)
      .set(CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, &handle);
  o.graph->finalize("operation graph");
  return o;
}

// The engine configurations heuristics `mode` ranks for the graph, best first.
std::vector<std::shared_ptr<Backend>> engine_configs(const Backend& graph, cudnnBackendHeurMode_t mode) {
  Backend heur(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR);
  heur.set_descriptor(CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, graph).set(CUDNN_ATTR_ENGINEHEUR_MODE,
                                                                         CUDNN_TYPE_HEUR_MODE, &mode);
  heur.finalize("engine heuristics");
  std::int64_t count = 0;
  check(cudnnBackendGetAttribute(heur.get(), CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, 0, &count,
                                 nullptr),
        "heuristics result count");
  std::vector<std::shared_ptr<Backend>> configs;
  std::vector<cudnnBackendDescriptor_t> raw;
  for (std::int64_t i = 0; i < count; ++i) {
    configs.push_back(std::make_shared<Backend>(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR));
    raw.push_back(configs.back()->get());
  }
  std::int64_t returned = 0;
  if (count > 0)
    check(cudnnBackendGetAttribute(heur.get(), CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, count,
                                   &returned, raw.data()),
          "heuristics results");
  configs.resize(static_cast<std::size_t>(std::min(returned, count)));
  return configs;
}

// A CUDA event, destroyed with this object.
class Event {
 public:
  Event() { GRAFT_CUDA_CHECK(cudaEventCreate(&e_)); }
  ~Event() { cudaEventDestroy(e_); }
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  cudaEvent_t get() const { return e_; }

 private:
  cudaEvent_t e_ = nullptr;
};

// After a failed engine: clears the non-sticky error it may have left (a refused launch), and returns true when
// the CUDA context is broken (a sticky error such as an illegal address, which every later call returns). A
// failure then is not "this engine does not take the shape": the search stops and reports it.
bool cuda_context_broken() {
  cudaGetLastError();
  const cudaError_t stream = cudaStreamQuery(cuda::stream());
  return stream != cudaSuccess && stream != cudaErrorNotReady;
}

struct EngineInfo {
  std::int64_t index = -1;
  std::vector<cudnnBackendNumericalNote_t> numerical;
  std::vector<cudnnBackendBehaviorNote_t> behavior;
  bool has(cudnnBackendNumericalNote_t n) const { return std::count(numerical.begin(), numerical.end(), n) > 0; }
  bool has(cudnnBackendBehaviorNote_t n) const { return std::count(behavior.begin(), behavior.end(), n) > 0; }
};

EngineInfo engine_info(const Backend& config) {
  Backend engine(CUDNN_BACKEND_ENGINE_DESCRIPTOR);
  cudnnBackendDescriptor_t raw = engine.get();
  std::int64_t n = 0;
  check(cudnnBackendGetAttribute(config.get(), CUDNN_ATTR_ENGINECFG_ENGINE, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &n,
                                 &raw),
        "engine of a configuration");
  EngineInfo info;
  check(cudnnBackendGetAttribute(raw, CUDNN_ATTR_ENGINE_GLOBAL_INDEX, CUDNN_TYPE_INT64, 1, &n, &info.index),
        "engine index");
  info.numerical.resize(CUDNN_NUMERICAL_NOTE_TYPE_COUNT);
  check(cudnnBackendGetAttribute(raw, CUDNN_ATTR_ENGINE_NUMERICAL_NOTE, CUDNN_TYPE_NUMERICAL_NOTE,
                                 CUDNN_NUMERICAL_NOTE_TYPE_COUNT, &n, info.numerical.data()),
        "engine numerical notes");
  info.numerical.resize(static_cast<std::size_t>(std::min<std::int64_t>(n, CUDNN_NUMERICAL_NOTE_TYPE_COUNT)));
  info.behavior.resize(CUDNN_BEHAVIOR_NOTE_TYPE_COUNT);
  check(cudnnBackendGetAttribute(raw, CUDNN_ATTR_ENGINE_BEHAVIOR_NOTE, CUDNN_TYPE_BEHAVIOR_NOTE,
                                 CUDNN_BEHAVIOR_NOTE_TYPE_COUNT, &n, info.behavior.data()),
        "engine behavior notes");
  info.behavior.resize(static_cast<std::size_t>(std::min<std::int64_t>(n, CUDNN_BEHAVIOR_NOTE_TYPE_COUNT)));
  return info;
}

// Why an engine does not give the math asked for ("" when it does).
const char* unsuitable(const EngineInfo& e, bool tf32, bool deterministic) {
  if (e.has(CUDNN_NUMERICAL_NOTE_DOWN_CONVERT_INPUTS)) return "down-converts inputs";
  if (e.has(CUDNN_NUMERICAL_NOTE_REDUCED_PRECISION_REDUCTION)) return "reduced-precision reduction";
  if (!tf32 && e.has(CUDNN_NUMERICAL_NOTE_TENSOR_CORE)) return "tensor cores (TF32) in strict FP32 mode";
  if (deterministic && e.has(CUDNN_NUMERICAL_NOTE_NONDETERMINISTIC)) return "non-deterministic";
  if (e.has(CUDNN_BEHAVIOR_NOTE_RUNTIME_COMPILATION)) return "runtime compilation";
  return "";
}

struct Plan {
  std::shared_ptr<Backend> plan;  // null: no engine works for this key
  bool deterministic = true;
  // What the plan was built from, kept alive with it (the API does not say a finalized plan stands alone).
  std::shared_ptr<OpGraph> graph;
  std::shared_ptr<Backend> config;
  std::size_t workspace = 0;
  std::string description;
};

std::mutex& plans_mutex() {
  static std::mutex m;
  return m;
}
std::map<ConvKey, Plan>& plans() {
  static std::map<ConvKey, Plan> p;
  return p;
}

// The three buffers and the workspace a plan runs on.
std::unique_ptr<Backend> variant_pack(void* x, void* w, void* y, void* workspace) {
  auto pack = std::make_unique<Backend>(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR);
  const std::int64_t uids[3] = {kUidX, kUidW, kUidY};
  void* pointers[3] = {x, w, y};
  pack->set(CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, uids, 3)
      .set(CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, pointers, 3)
      .set(CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, &workspace);
  pack->finalize("variant pack");
  return pack;
}

// Runs the plan on graft's stream (the handle's).
void execute(cudnnHandle_t handle, const Backend& plan, const Backend& pack) {
  check(cudnnBackendExecute(handle, plan.get(), pack.get()), "execute");
}

// Builds and times every suitable configuration; the fastest is the Plan (or none, with the reasons counted).
Plan search(cudnnHandle_t handle, ConvOp which, const Conv2dGeometry& g, bool tf32, bool deterministic,
            std::int64_t alignment, bool accumulate, void* x, void* w, void* y) {
  std::ostringstream head;
  head << op_name(which) << " " << conv2d_geometry_str(g) << " align " << alignment << (tf32 ? " tf32" : " fp32")
       << (deterministic ? " deterministic-mode" : "") << (accumulate ? " accumulate" : "") << ": ";
  Plan best;
  float best_ms = 0.f;
  int configs_seen = 0, unsuitable_count = 0, failed = 0, timed = 0;
  std::string first_failure;  // why the first engine that failed did (kept in the description: the device log says)
  auto graph = std::make_shared<OpGraph>(op_graph(handle, which, g, alignment, accumulate ? 1.f : 0.f));
  // Mode A's ranking, then the fallback list; a mode whose heuristics fail leaves the other's list.
  std::vector<std::shared_ptr<Backend>> configs;
  std::string heuristics_error;
  std::size_t mode_a_count = 0;
  for (cudnnBackendHeurMode_t mode : {CUDNN_HEUR_MODE_A, CUDNN_HEUR_MODE_FALLBACK}) {
    try {
      for (auto& c : engine_configs(*graph->graph, mode)) configs.push_back(std::move(c));
    } catch (const Error& e) {
      if (cuda_context_broken()) throw;
      heuristics_error = e.what();
    }
    if (mode == CUDNN_HEUR_MODE_A) mode_a_count = configs.size();
  }
  if (configs.empty() && !heuristics_error.empty()) GRAFT_FAIL(heuristics_error);
  Event start, stop;
  // Mode A may list one engine several times with different knobs; the fallback list repeats mode A's engines
  // with default knobs, and those repeats are skipped - once one of mode A's plans for the engine was built (if
  // all of them failed, the default knobs still get their try).
  std::set<std::int64_t> mode_a_engines;
  for (std::size_t i = 0; i < configs.size() && timed < kMaxTimed; ++i) {
    const auto& config = configs[i];
    try {
      const EngineInfo info = engine_info(*config);
      if (i >= mode_a_count && mode_a_engines.count(info.index) > 0) continue;
      ++configs_seen;
      if (*unsuitable(info, tf32, deterministic)) {
        ++unsuitable_count;
        continue;
      }
      auto plan = std::make_shared<Backend>(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR);
      cudnnBackendDescriptor_t raw_config = config->get();
      plan->set(CUDNN_ATTR_EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE, &handle)
          .set(CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, CUDNN_TYPE_BACKEND_DESCRIPTOR, &raw_config);
      const cudnnStatus_t finalized = cudnnBackendFinalize(plan->get());
      if (finalized != CUDNN_STATUS_SUCCESS) {  // this engine does not take the shape
        if (failed++ == 0)
          first_failure = "engine " + std::to_string(info.index) + ": " + cudnnGetErrorString(finalized) +
                          detail::cudnn_last_error();
        continue;
      }
      if (i < mode_a_count) mode_a_engines.insert(info.index);
      std::int64_t bytes = 0, n = 0;
      check(cudnnBackendGetAttribute(plan->get(), CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE, CUDNN_TYPE_INT64, 1, &n,
                                     &bytes),
            "plan workspace size");
      if (bytes < 0 || static_cast<std::size_t>(bytes) > kWorkspaceLimit) {
        ++unsuitable_count;
        continue;
      }
      Workspace scratch(static_cast<std::size_t>(bytes));
      const std::unique_ptr<Backend> pack = variant_pack(x, w, y, scratch.get());
      execute(handle, *plan, *pack);  // warm-up (and the first launch's one-time costs)
      float fastest = 0.f;
      for (int run = 0; run < kTimedRuns; ++run) {
        GRAFT_CUDA_CHECK(cudaEventRecord(start.get(), cuda::stream()));
        execute(handle, *plan, *pack);
        GRAFT_CUDA_CHECK(cudaEventRecord(stop.get(), cuda::stream()));
        GRAFT_CUDA_CHECK(cudaEventSynchronize(stop.get()));
        float ms = 0.f;
        GRAFT_CUDA_CHECK(cudaEventElapsedTime(&ms, start.get(), stop.get()));
        fastest = run == 0 ? ms : std::min(fastest, ms);
      }
      ++timed;  // only engines that ran count against kMaxTimed (one that fails is `failed`)
      if (!best.plan || fastest < best_ms) {
        std::ostringstream d;
        d << "engine " << info.index << (info.has(CUDNN_NUMERICAL_NOTE_TENSOR_CORE) ? " tensor-core" : "")
          << (info.has(CUDNN_NUMERICAL_NOTE_NONDETERMINISTIC) ? " non-deterministic" : " deterministic")
          << " workspace=" << bytes << " ms=" << fastest;
        best.plan = plan, best.graph = graph, best.config = config;
        best.deterministic = !info.has(CUDNN_NUMERICAL_NOTE_NONDETERMINISTIC);
        best.workspace = static_cast<std::size_t>(bytes), best.description = d.str();
        best_ms = fastest;
      }
    } catch (const Error& e) {
      if (cuda_context_broken()) throw;  // not this engine's failure: report it where it happened
      if (failed++ == 0) first_failure = e.message();  // skipped; the others still compete
    }
  }
  std::ostringstream tail;
  tail << " (" << configs.size() << " configurations, " << configs_seen << " looked at: " << unsuitable_count
       << " unsuitable, " << failed << " failed, " << timed << " timed"
       << (first_failure.empty() ? std::string() : "; the first failure: " + first_failure) << ")";
  best.description = head.str() + (best.plan ? best.description : "no engine, legacy algorithm used") + tail.str();
  return best;
}

}  // namespace

bool run(cudnnHandle_t handle, ConvOp op, const ConvKey& key, const Conv2dGeometry& g, bool tf32,
         bool deterministic, std::int64_t alignment, bool accumulate, float* out, const float* a, const float* b) {
  // The three tensors of the graph, by direction (header): X, W, Y.
  void *x = nullptr, *w = nullptr, *y = nullptr;
  switch (op) {
    case ConvOp::Forward: y = out, x = const_cast<float*>(a), w = const_cast<float*>(b); break;
    case ConvOp::BackwardData: x = out, y = const_cast<float*>(a), w = const_cast<float*>(b); break;
    case ConvOp::BackwardFilter: w = out, y = const_cast<float*>(a), x = const_cast<float*>(b); break;
  }
  std::shared_ptr<Backend> plan;
  std::size_t workspace = 0;
  {
    std::lock_guard<std::mutex> lock(plans_mutex());
    auto it = plans().find(key);
    if (it == plans().end()) {
      GRAFT_CHECK(!cuda::capturing(), "conv2d: a convolution geometry seen for the first time inside a CUDA graph "
                  "capture (", op_name(op), " ", conv2d_geometry_str(g), "): cuDNN's engine search cannot be "
                  "recorded; run the step once before capturing it");
      Plan found;
      try {
        // Timing runs write the output: an accumulating call's search writes a scratch copy instead.
        const std::size_t out_bytes =
            sizeof(float) * static_cast<std::size_t>(op == ConvOp::Forward          ? g.n * g.p * g.q * g.k
                                                     : op == ConvOp::BackwardData ? g.n * g.h * g.w * g.c
                                                                                  : g.k * g.r * g.s * (g.c / g.groups));
        Workspace scratch_out(accumulate ? out_bytes : 0);
        // beta = 1 reads the output: zeros, so the timing runs read no uninitialised memory (initcheck stays clean)
        if (accumulate) GRAFT_CUDA_CHECK(cudaMemsetAsync(scratch_out.get(), 0, out_bytes, cuda::stream()));
        void* sx = x;
        void* sw = w;
        void* sy = y;
        if (accumulate) (op == ConvOp::Forward ? sy : op == ConvOp::BackwardData ? sx : sw) = scratch_out.get();
        found = search(handle, op, g, tf32, deterministic, alignment, accumulate, sx, sw, sy);
      } catch (const Error& e) {  // the graph itself could not be built: the legacy API serves this key
        if (cuda_context_broken()) throw;
        found.description = std::string(op_name(op)) + " " + conv2d_geometry_str(g) + ": engine search failed (" +
                            e.what() + "), legacy algorithm used";
      }
      it = plans().emplace(key, std::move(found)).first;
    }
    plan = it->second.plan;
    workspace = it->second.workspace;
  }
  if (!plan) return false;
  Workspace scratch(workspace);
  execute(handle, *plan, *variant_pack(x, w, y, scratch.get()));
  return true;
}

std::vector<std::string> choices() {
  std::lock_guard<std::mutex> lock(plans_mutex());
  std::vector<std::string> lines;
  for (const auto& [key, plan] : plans()) lines.push_back("graph API " + plan.description);
  return lines;
}

bool all_deterministic() {
  std::lock_guard<std::mutex> lock(plans_mutex());
  return std::all_of(plans().begin(), plans().end(), [](const auto& entry) { return entry.second.deterministic; });
}

}  // namespace graft::cudnn_engines
#endif  // GRAFT_HAS_CUDA
