// Device memory with byte counters.
// CPU: 64-byte aligned host memory. CUDA: the stream-ordered allocator (cudaMallocAsync on graft's compute
// stream) with a pool that keeps freed memory, so steady-state training does not call the driver.
// Every allocation is counted: current and peak bytes per device are public, so tests and benchmarks can
// measure what a step costs (e.g. that a frozen backbone saves no activations).
#pragma once
#include <cstddef>
#include <cstdint>

#include "core/device.h"

namespace graft {

void* device_alloc(std::size_t bytes, Device device);
void device_free(void* ptr, std::size_t bytes, Device device);

struct MemoryStats {
  std::int64_t current_bytes = 0;
  std::int64_t peak_bytes = 0;
};
MemoryStats memory_stats(Device device);
// Sets the peak to the current value, so the next peak measures one region of code.
void reset_peak_memory(Device device);

}  // namespace graft
