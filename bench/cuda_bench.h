// Shared helpers of the CUDA benchmarks (bench_cuda*.cpp, bench_conv_cuda.cpp, bench_layers_cuda.cpp): device buffers from
// graft's pool, CUDA-event timing on graft's compute stream, buffer rotation against L2, the skip-when-no-GPU
// guard and the counters. Conventions: bench/README.md.
#pragma once
#include <benchmark/benchmark.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <exception>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"
#include "kernels/cuda_device.h"
#include "kernels/random.h"

namespace graft::bench {

inline constexpr std::int64_t kN = std::int64_t{1} << 26;  // 64M floats = 256 MiB per operand
inline constexpr std::int64_t kF = sizeof(float);

// Set once by main (bench_cuda_main.cpp) before any benchmark runs.
inline std::string g_skip_reason;             // why no benchmark can run (no GPU, failed baseline); "" if they can
inline double g_copy_bytes_per_second = 0.0;  // the baseline: device-to-device copy, read + written
inline std::string g_device_name;
inline int g_l2_bytes = 50 << 20;

// ---- device memory, timing, rotation ------------------------------------------------------------------------

// A buffer from graft's stream-ordered pool (the allocator the engine uses); of 0 bytes, a null pointer.
class DeviceBuffer {
 public:
  explicit DeviceBuffer(std::size_t bytes) : ptr_(cuda::malloc_async(bytes)) {}
  DeviceBuffer(DeviceBuffer&& other) noexcept : ptr_(std::exchange(other.ptr_, nullptr)) {}
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(DeviceBuffer&&) = delete;
  ~DeviceBuffer() {
    try {
      cuda::free_async(ptr_);  // graft's own free: the buffer may be a captured graph's memory
    } catch (const Error&) {  // no throw from a destructor
    }
  }
  float* f() const { return static_cast<float*>(ptr_); }
  template <typename T>
  T* as() const { return static_cast<T*>(ptr_); }

 private:
  void* ptr_;
};

// `sets` buffers of n floats, each filled with fresh uniform values in [low, high) (never zeros).
inline std::vector<DeviceBuffer> random_buffers(int sets, std::int64_t n, std::uint64_t seed, float low = -1.f,
                                                float high = 1.f) {
  std::vector<DeviceBuffer> buffers;
  for (int s = 0; s < sets; ++s) {
    buffers.emplace_back(static_cast<std::size_t>(n * kF));
    uniform_cuda(buffers.back().f(), n, seed + static_cast<std::uint64_t>(s), 0, low, high);
  }
  return buffers;
}

// How many copies of a launch's operands to rotate over so that the last use of each is more than twice the L2
// size ago: at 256 MiB per operand that is 2 (the minimum, so consecutive launches never share buffers).
inline int rotation_sets(std::int64_t bytes_per_set) {
  const std::int64_t needed = (2 * static_cast<std::int64_t>(g_l2_bytes) + bytes_per_set - 1) / bytes_per_set;
  return static_cast<int>(std::clamp<std::int64_t>(needed, 2, 64));
}

class Event {
 public:
  Event() { GRAFT_CUDA_CHECK(cudaEventCreate(&event_)); }
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  ~Event() { cudaEventDestroy(event_); }
  cudaEvent_t get() const { return event_; }

 private:
  cudaEvent_t event_ = nullptr;
};

inline double median(std::vector<double> values) {
  if (values.empty()) return 0.0;
  std::sort(values.begin(), values.end());
  const std::size_t mid = values.size() / 2;
  return values.size() % 2 == 1 ? values[mid] : 0.5 * (values[mid - 1] + values[mid]);
}

// Seconds of one pass: launch(0..sets-1) back to back between two events on graft's stream.
template <typename Launch>
double time_pass(int sets, Launch& launch, const Event& start, const Event& stop) {
  cudaStream_t stream = cuda::stream();
  GRAFT_CUDA_CHECK(cudaEventRecord(start.get(), stream));
  for (int s = 0; s < sets; ++s) launch(s);
  GRAFT_CUDA_CHECK(cudaEventRecord(stop.get(), stream));
  GRAFT_CUDA_CHECK(cudaEventSynchronize(stop.get()));
  float ms = 0.f;
  GRAFT_CUDA_CHECK(cudaEventElapsedTime(&ms, start.get(), stop.get()));
  return static_cast<double>(ms) * 1e-3;
}

template <typename Launch>
void warm_up(int sets, Launch& launch) {
  for (int s = 0; s < std::max(sets, 3); ++s) launch(s % sets);  // module load, first touch, cuBLAS heuristics
  cuda::synchronize();
}

// The benchmark loop: one iteration = one pass over the rotation sets. Returns the median seconds per launch.
template <typename Launch>
double run_timed(benchmark::State& state, int sets, Launch&& launch) {
  warm_up(sets, launch);
  Event start, stop;
  std::vector<double> per_launch;
  for (auto _ : state) {
    const double seconds = time_pass(sets, launch, start, stop);
    state.SetIterationTime(seconds);
    per_launch.push_back(seconds / sets);
  }
  return median(per_launch);
}

// The same measurement outside a benchmark (for the baselines): median seconds per launch over `passes` passes.
template <typename Launch>
double measure(int sets, int passes, Launch&& launch) {
  warm_up(sets, launch);
  Event start, stop;
  std::vector<double> per_launch;
  for (int p = 0; p < passes; ++p) per_launch.push_back(time_pass(sets, launch, start, stop) / sets);
  return median(per_launch);
}

// Runs a benchmark body, or skips it with the reason: no GPU, or a graft::Error / CUDA error thrown inside.
template <typename Body>
void guarded(benchmark::State& state, Body&& body) {
  if (!g_skip_reason.empty()) {
    state.SkipWithError(g_skip_reason.c_str());
    return;
  }
  try {
    body();
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
  }
}

// Counters of a memory-bound kernel that moves `bytes` per launch.
inline void report_bandwidth(benchmark::State& state, int sets, std::int64_t bytes, double median_seconds,
                             const std::string& label) {
  state.SetBytesProcessed(state.iterations() * sets * bytes);
  const double bytes_per_second = static_cast<double>(bytes) / median_seconds;
  state.counters["GB/s"] = bytes_per_second * 1e-9;
  state.counters["pct_of_copy"] = 100.0 * bytes_per_second / g_copy_bytes_per_second;
  state.SetLabel(label);
}

using cuda::Tf32Scope;  // the engine's scoped TF32 switch (kernels/cuda_device.h)

inline std::string tuple_label(std::initializer_list<std::int64_t> dims) { return shape_str(Shape(dims)); }

}  // namespace graft::bench
