#include "core/allocator.h"

#include <malloc.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>

#include "core/error.h"
#if GRAFT_HAS_CUDA
#include "kernels/cuda_device.h"
#endif

namespace graft {
namespace {

struct Counters {
  std::atomic<std::int64_t> current{0};
  std::atomic<std::int64_t> peak{0};
};

Counters& counters(Device device) {
  static Counters cpu, cuda;
  return device.is_cpu() ? cpu : cuda;
}

void count_alloc(Device device, std::size_t bytes) {
  Counters& c = counters(device);
  std::int64_t now = c.current.fetch_add(static_cast<std::int64_t>(bytes)) + static_cast<std::int64_t>(bytes);
  std::int64_t peak = c.peak.load();
  while (now > peak && !c.peak.compare_exchange_weak(peak, now)) {
  }
}

constexpr std::size_t kAlignment = 64;

// glibc serves blocks above its mmap threshold with a fresh mmap and returns them on free, so every large
// activation or im2col buffer would be page-faulted in anew on each use. Keeping freed memory in the heap (as the
// CUDA pool does on the device) makes steady-state training reuse it.
void keep_freed_host_memory() {
  static const bool done = [] {
    mallopt(M_MMAP_THRESHOLD, 1 << 30);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
    return true;
  }();
  (void)done;
}

}  // namespace

void* device_alloc(std::size_t bytes, Device device) {
  if (bytes == 0) return nullptr;
  void* ptr = nullptr;
  if (device.is_cpu()) {
    keep_freed_host_memory();
    // Over-committing Linux (and ASan's allocator) would accept or abort on such a request instead of failing
    // cleanly; no tensor larger than the machine can be useful.
    GRAFT_CHECK(bytes <= physical_memory_bytes(), "allocator: refusing to allocate ", bytes, " bytes (",
                bytes / double(1 << 30), " GiB) of host memory: the machine has ", physical_memory_bytes(),
                " bytes of physical memory");
    std::size_t rounded = (bytes + kAlignment - 1) / kAlignment * kAlignment;
    ptr = std::aligned_alloc(kAlignment, rounded);
    GRAFT_CHECK(ptr != nullptr, "allocator: out of host memory allocating ", bytes, " bytes");
  } else {
#if GRAFT_HAS_CUDA
    ptr = cuda::malloc_async(bytes);
#else
    GRAFT_FAIL("allocator: CUDA memory requested but graft was built without CUDA");
#endif
  }
  count_alloc(device, bytes);
  return ptr;
}

void device_free(void* ptr, std::size_t bytes, Device device) {
  if (ptr == nullptr) return;
  if (device.is_cpu()) {
    std::free(ptr);
  } else {
#if GRAFT_HAS_CUDA
    cuda::free_async(ptr);
#endif
  }
  counters(device).current.fetch_sub(static_cast<std::int64_t>(bytes));
}

void* pinned_host_alloc(std::size_t bytes) {
  if (bytes == 0) return nullptr;
  void* ptr = nullptr;
#if GRAFT_HAS_CUDA
  GRAFT_CUDA_CHECK(cudaMallocHost(&ptr, bytes));
#else
  ptr = std::aligned_alloc(kAlignment, (bytes + kAlignment - 1) / kAlignment * kAlignment);
  GRAFT_CHECK(ptr != nullptr, "allocator: out of host memory allocating ", bytes, " pinned bytes");
#endif
  return ptr;
}

void pinned_host_free(void* ptr) {
  if (ptr == nullptr) return;
#if GRAFT_HAS_CUDA
  GRAFT_CUDA_CHECK(cudaFreeHost(ptr));
#else
  std::free(ptr);
#endif
}

std::uint64_t physical_memory_bytes() {
  static const std::uint64_t bytes = [] {
    long pages = sysconf(_SC_PHYS_PAGES), page_size = sysconf(_SC_PAGE_SIZE);
    // Unknown (never on Linux): no limit beyond the tensor element cap.
    if (pages <= 0 || page_size <= 0) return ~std::uint64_t{0};
    return static_cast<std::uint64_t>(pages) * static_cast<std::uint64_t>(page_size);
  }();
  return bytes;
}

MemoryStats memory_stats(Device device) {
  Counters& c = counters(device);
  return MemoryStats{c.current.load(), c.peak.load()};
}

void reset_peak_memory(Device device) {
  Counters& c = counters(device);
  c.peak.store(c.current.load());
}

}  // namespace graft
