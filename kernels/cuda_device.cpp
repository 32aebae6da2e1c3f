// graft's CUDA context (see kernels/cuda_device.h).
// The context is created lazily on first use, so a CPU-only run of a CUDA build never touches the driver, and
// it is never destroyed: destroying streams and handles from static destructors races the driver's own
// shutdown at process exit, and the OS reclaims everything anyway.
#include "kernels/cuda_device.h"
#include "kernels/cuda_graph.h"

#include <atomic>
#include <cstdint>
#include <mutex>

namespace graft::cuda {
namespace {

struct Context {
  cudaStream_t stream = nullptr;
  cublasHandle_t cublas = nullptr;
  cudaMemPool_t pool = nullptr;
};

std::once_flag g_init_once;
Context g_context;
std::atomic<bool> g_tf32_allowed{true};
std::atomic<bool> g_deterministic{false};

// The kernels are built for compute capability 8.0+ (sm_80, sm_90); older cards would fail at the first launch
// with "no kernel image", so they count as unusable up front.
constexpr int kMinComputeMajor = 8;

struct Probe {
  cudaError_t error = cudaSuccess;  // of cudaGetDeviceCount
  int count = 0;
  int major = 0, minor = 0;  // of device 0
};

Probe probe() {
  Probe p;
  p.error = cudaGetDeviceCount(&p.count);
  if (p.error != cudaSuccess) {
    cudaGetLastError();  // a failed probe must not poison later, unrelated CUDA calls
    p.count = 0;
    return p;
  }
  if (p.count > 0) {
    if (cudaDeviceGetAttribute(&p.major, cudaDevAttrComputeCapabilityMajor, 0) != cudaSuccess ||
        cudaDeviceGetAttribute(&p.minor, cudaDevAttrComputeCapabilityMinor, 0) != cudaSuccess) {
      cudaGetLastError();
      p.major = p.minor = 0;
    }
  }
  return p;
}

void initialize() {
  if (device_count() == 0) GRAFT_FAIL("cuda: ", unavailable_reason());
  GRAFT_CUDA_CHECK(cudaSetDevice(0));
  Context context;
  // Non-blocking: the legacy default stream must never serialize against graft's work behind its back.
  GRAFT_CUDA_CHECK(cudaStreamCreateWithFlags(&context.stream, cudaStreamNonBlocking));

  int pools_supported = 0;
  GRAFT_CUDA_CHECK(cudaDeviceGetAttribute(&pools_supported, cudaDevAttrMemoryPoolsSupported, 0));
  GRAFT_CHECK(pools_supported != 0, "cuda: device 0 does not support stream-ordered memory pools (cudaMallocAsync)");
  GRAFT_CUDA_CHECK(cudaDeviceGetDefaultMemPool(&context.pool, 0));
  // Keep freed memory in the pool: steady-state training then never returns to the driver (which would
  // synchronize and cost far more than the allocation itself).
  std::uint64_t threshold = UINT64_MAX;
  GRAFT_CUDA_CHECK(cudaMemPoolSetAttribute(context.pool, cudaMemPoolAttrReleaseThreshold, &threshold));

  GRAFT_CUBLAS_CHECK(cublasCreate(&context.cublas));
  GRAFT_CUBLAS_CHECK(cublasSetStream(context.cublas, context.stream));
  g_context = context;
}

// If initialization throws, call_once leaves the flag unset, so a later call retries and reports again.
const Context& context() {
  std::call_once(g_init_once, initialize);
  return g_context;
}

std::uint64_t pool_attribute(cudaMemPool_t pool, cudaMemPoolAttr attribute) {
  std::uint64_t value = 0;
  if (cudaMemPoolGetAttribute(pool, attribute, &value) != cudaSuccess) cudaGetLastError();
  return value;
}

}  // namespace

int device_count() {
  Probe p = probe();
  if (p.error != cudaSuccess || p.count <= 0) return 0;
  return p.major >= kMinComputeMajor ? p.count : 0;
}

std::string unavailable_reason() {
  Probe p = probe();
  if (p.error != cudaSuccess)
    return detail::concat("no CUDA device: cudaGetDeviceCount returned ", cudaGetErrorName(p.error), " (",
                          cudaGetErrorString(p.error), ")");
  if (p.count <= 0) return "no CUDA device: cudaGetDeviceCount found 0 devices";
  if (p.major < kMinComputeMajor)
    return detail::concat("no usable CUDA device: device 0 has compute capability ", p.major, ".", p.minor,
                          ", graft needs ", kMinComputeMajor, ".0 or newer");
  return "";
}

cudaStream_t stream() { return context().stream; }
cublasHandle_t cublas_handle() { return context().cublas; }

namespace {
// Throws the out-of-memory error of a failed allocation call: what was asked, what the device and the pool hold.
[[noreturn]] void fail_out_of_memory(const char* call, std::size_t bytes, cudaError_t err) {
  const Context& ctx = context();
  cudaGetLastError();  // out of memory is not sticky: clear it so the engine stays usable after the throw
  std::size_t free_bytes = 0, total_bytes = 0;
  if (cudaMemGetInfo(&free_bytes, &total_bytes) != cudaSuccess) cudaGetLastError();
  GRAFT_FAIL("cuda: out of memory: ", call, " of ", bytes, " bytes (", bytes / (1024.0 * 1024.0), " MiB) failed with ",
             cudaGetErrorName(err), " (", cudaGetErrorString(err), "); device 0 has ", free_bytes, " bytes free of ",
             total_bytes, " total; graft's pool holds ", pool_attribute(ctx.pool, cudaMemPoolAttrReservedMemCurrent),
             " bytes, ", pool_attribute(ctx.pool, cudaMemPoolAttrUsedMemCurrent), " of them in use");
}

// Waits for the stream, then hands the memory the stream-ordered pool keeps cached back to the driver.
void release_cached_memory() {
  const Context& ctx = context();
  GRAFT_CUDA_CHECK(cudaStreamSynchronize(ctx.stream));
  GRAFT_CUDA_CHECK(cudaMemPoolTrimTo(ctx.pool, 0));
}
}  // namespace

void* malloc_async(std::size_t bytes) {
  if (bytes == 0) return nullptr;
  if (capturing()) return capture_allocate(bytes);  // the graph's own memory
  const Context& ctx = context();
  void* ptr = nullptr;
  cudaError_t err = cudaMallocAsync(&ptr, bytes, ctx.stream);
  if (err == cudaErrorMemoryAllocation) {
    // The pool may hold enough freed memory in blocks of the wrong sizes: hand it back to the driver and try once
    // more before giving up (what PyTorch's caching allocator does on OOM).
    cudaGetLastError();
    release_cached_memory();
    err = cudaMallocAsync(&ptr, bytes, ctx.stream);
  }
  if (err != cudaSuccess) fail_out_of_memory("cudaMallocAsync", bytes, err);
  return ptr;
}

void* malloc_segment(std::size_t bytes) {
  void* ptr = nullptr;
  cudaError_t err = cudaMalloc(&ptr, bytes);
  if (err == cudaErrorMemoryAllocation) {
    // Segments are reserved while a graph is being captured, which began with the stream idle: every free made
    // before it has completed, so the pool's cached memory goes back without waiting (waiting would end the
    // capture). Best effort: if the driver refuses the trim there, the out-of-memory error below is the one to report.
    cudaGetLastError();
    if (cudaMemPoolTrimTo(context().pool, 0) != cudaSuccess) cudaGetLastError();
    err = cudaMalloc(&ptr, bytes);
  }
  if (err != cudaSuccess) fail_out_of_memory("cudaMalloc (a CUDA graph's memory)", bytes, err);
  return ptr;
}

void free_segment(void* ptr) {
  // cudaFree does not wait for work queued on a non-blocking stream: a replay may still be writing here. Errors (a
  // context already broken, a driver shutting down at exit) are cleared, not thrown.
  const cudaError_t synced = cudaStreamSynchronize(stream());
  const cudaError_t freed = cudaFree(ptr);
  if (synced != cudaSuccess || freed != cudaSuccess) cudaGetLastError();
}

void free_async(void* ptr) {
  if (ptr == nullptr || graph_memory_free(ptr)) return;
  GRAFT_CUDA_CHECK(cudaFreeAsync(ptr, stream()));
}

// A pageable source is staged by the driver before cudaMemcpyAsync returns, so the caller may reuse it at once;
// a pinned source must outlive the copy (stream order).
void copy_to_device(void* dst, const void* src, std::size_t bytes) {
  if (bytes == 0) return;
  GRAFT_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream()));
}

void copy_to_host(void* dst, const void* src, std::size_t bytes) {
  if (bytes == 0) return;
  cudaStream_t s = stream();
  GRAFT_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, s));
  GRAFT_CUDA_CHECK(cudaStreamSynchronize(s));
}

void copy_device_to_device(void* dst, const void* src, std::size_t bytes) {
  if (bytes == 0) return;
  GRAFT_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream()));
}

void synchronize() { GRAFT_CUDA_CHECK(cudaStreamSynchronize(stream())); }

bool tf32_allowed() { return g_tf32_allowed.load(std::memory_order_relaxed); }
void set_tf32_allowed(bool allowed) { g_tf32_allowed.store(allowed, std::memory_order_relaxed); }
bool deterministic() { return g_deterministic.load(std::memory_order_relaxed); }
void set_deterministic(bool on) { g_deterministic.store(on, std::memory_order_relaxed); }

const char* cublas_status_name(cublasStatus_t status) {
  switch (status) {
    case CUBLAS_STATUS_SUCCESS:
      return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED:
      return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED:
      return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE:
      return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH:
      return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR:
      return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED:
      return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR:
      return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED:
      return "CUBLAS_STATUS_NOT_SUPPORTED";
    case CUBLAS_STATUS_LICENSE_ERROR:
      return "CUBLAS_STATUS_LICENSE_ERROR";
  }
  return "CUBLAS_STATUS_UNKNOWN";
}

}  // namespace graft::cuda
