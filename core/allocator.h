// Device memory with byte counters.
// CPU: 64-byte aligned host memory. CUDA: the stream-ordered allocator (cudaMallocAsync on graft's compute
// stream) with a pool that keeps freed memory, so steady-state training does not call the driver - except while a
// CUDA graph is being captured, when the graph's own memory serves it (kernels/cuda_graph.h).
// Every allocation is counted: current and peak bytes per device are public, so tests and benchmarks can
// measure what a step costs (e.g. that a frozen backbone saves no activations).
#pragma once
#include <cstddef>
#include <cstdint>

#include "core/device.h"

namespace graft {

// Refuses (graft::Error naming the bytes) a CPU request larger than the machine's physical memory, and a CUDA
// request the device cannot serve (the message names the bytes requested and free); the engine stays usable.
void* device_alloc(std::size_t bytes, Device device);
void device_free(void* ptr, std::size_t bytes, Device device);

struct MemoryStats {
  std::int64_t current_bytes = 0;
  std::int64_t peak_bytes = 0;
};
MemoryStats memory_stats(Device device);
// The machine's physical memory in bytes (sysconf), the ceiling for any single host allocation or file read.
std::uint64_t physical_memory_bytes();

// Sets the peak to the current value, so the next peak measures one region of code.
void reset_peak_memory(Device device);

// Page-locked host memory (cudaMallocHost), from which cudaMemcpyAsync is a true asynchronous DMA: the data
// loader's staging buffers. Without CUDA it is plain 64-byte aligned host memory. Not counted in memory_stats
// (it is neither the tensors' host heap nor device memory). The memory must stay untouched until every copy
// from it has completed. In a CUDA build it needs a usable device (graft::Error naming the CUDA call otherwise).
void* pinned_host_alloc(std::size_t bytes);
void pinned_host_free(void* ptr);

}  // namespace graft
