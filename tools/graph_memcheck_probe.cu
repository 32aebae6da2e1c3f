// A probe for one question about compute-sanitizer memcheck and CUDA graphs, with no graft code in it: inside the
// replays of a graph that keeps an allocation (an output the caller holds, freed and allocated again by each
// launch under cudaGraphInstantiateFlagAutoFreeOnLaunch), does memcheck report writes to the graph's own
// intermediate allocations as out of bounds? graft's graph tests that keep an output were flagged that way on an
// H100 (bench/RESULTS.md) while their replays were bitwise correct, and those writing into memory allocated before
// the capture were clean. Three captures, each correct by the CUDA programming guide's rules for graph memory nodes:
//
//   kept-last (graft's pattern): tmp = cudaMallocAsync(kTmp); fill(tmp); sums = cudaMallocAsync(kOut);
//       sum tmp into sums; cudaFreeAsync(tmp); out = cudaMallocAsync(kOut); copy sums to out; cudaFreeAsync(sums)
//       - out is kept and allocated after tmp's free, so the graph may give it tmp's addresses (printed);
//   kept-first: out = cudaMallocAsync(kOut) first, then tmp as above, summed straight into out (run clean on the
//       H100 of 2026-11-27 22:43: a kept allocation alone does not draw reports);
//   outside: out = cudaMalloc before the capture, then tmp as in kept-first.
// Then the graph is launched `launches` times and out checked on the host after each.
//
// Usage: graph_memcheck_probe kept-last|kept-first|outside [launches]. Exit 0 when every launch gave the right sums.
// tools/device_check.sh runs all three under memcheck (GRAFT_MEMCHECK=1): reports for kept-last alone, with its
// results right, would show they come from memcheck's view of graph addresses shared over time, not from graft.
#include <cuda_runtime.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

// Every CUDA call: on failure, name it and exit 2 (no graft code here, so not graft::Error).
#define PROBE_CHECK(call)                                                                          \
  do {                                                                                             \
    const cudaError_t e = (call);                                                                  \
    if (e != cudaSuccess) {                                                                        \
      std::fprintf(stderr, "graph_memcheck_probe: %s failed: %s\n", #call, cudaGetErrorString(e)); \
      std::exit(2);                                                                                \
    }                                                                                              \
  } while (0)

namespace {

constexpr int kTmp = 1 << 16;  // floats in the intermediate
constexpr int kOut = 40;       // floats in the kept output (160 bytes, as graft's 4x10 logits)

__global__ void fill(float* tmp, int n) {
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) tmp[i] = 1.f;
}

// out[j] = the sum of tmp's elements j, j + kOut, j + 2 kOut, ... (one thread per output element)
__global__ void sum_into(float* out, const float* tmp, int n) {
  const int j = threadIdx.x;
  if (j >= kOut) return;
  float s = 0;
  for (int i = j; i < n; i += kOut) s += tmp[i];
  out[j] = s;
}

__global__ void copy(float* out, const float* in) {
  if (threadIdx.x < kOut) out[threadIdx.x] = in[threadIdx.x];
}

}  // namespace

int main(int argc, char** argv) {
  const char* mode = argc > 1 ? argv[1] : "";
  const bool last = std::strcmp(mode, "kept-last") == 0, first = std::strcmp(mode, "kept-first") == 0;
  const bool outside = std::strcmp(mode, "outside") == 0;
  const int launches = argc > 2 ? std::atoi(argv[2]) : 3;
  if ((!last && !first && !outside) || launches < 1) {
    std::fprintf(stderr, "usage: graph_memcheck_probe kept-last|kept-first|outside [launches]\n");
    return 2;
  }
  cudaStream_t stream;
  PROBE_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  const std::size_t out_bytes = kOut * sizeof(float);
  float* out = nullptr;
  if (outside) PROBE_CHECK(cudaMalloc(&out, out_bytes));

  PROBE_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeRelaxed));
  if (first) PROBE_CHECK(cudaMallocAsync(reinterpret_cast<void**>(&out), out_bytes, stream));
  float* tmp = nullptr;
  PROBE_CHECK(cudaMallocAsync(reinterpret_cast<void**>(&tmp), kTmp * sizeof(float), stream));
  fill<<<64, 256, 0, stream>>>(tmp, kTmp);
  if (last) {
    float* sums = nullptr;
    PROBE_CHECK(cudaMallocAsync(reinterpret_cast<void**>(&sums), out_bytes, stream));
    sum_into<<<1, 64, 0, stream>>>(sums, tmp, kTmp);
    PROBE_CHECK(cudaFreeAsync(tmp, stream));
    PROBE_CHECK(cudaMallocAsync(reinterpret_cast<void**>(&out), out_bytes, stream));
    copy<<<1, 64, 0, stream>>>(out, sums);
    PROBE_CHECK(cudaFreeAsync(sums, stream));
  } else {
    sum_into<<<1, 64, 0, stream>>>(out, tmp, kTmp);
    PROBE_CHECK(cudaFreeAsync(tmp, stream));
  }
  cudaGraph_t graph;
  PROBE_CHECK(cudaStreamEndCapture(stream, &graph));
  cudaGraphExec_t exec;
  PROBE_CHECK(cudaGraphInstantiateWithFlags(&exec, graph, cudaGraphInstantiateFlagAutoFreeOnLaunch));

  int wrong = 0;
  for (int launch = 0; launch < launches; ++launch) {
    PROBE_CHECK(cudaGraphLaunch(exec, stream));
    float host[kOut];
    PROBE_CHECK(cudaMemcpyAsync(host, out, sizeof host, cudaMemcpyDeviceToHost, stream));
    PROBE_CHECK(cudaStreamSynchronize(stream));
    for (int j = 0; j < kOut; ++j) {
      const int count = (kTmp - j + kOut - 1) / kOut;  // elements j, j + kOut, ... below kTmp
      if (host[j] != static_cast<float>(count)) ++wrong;
    }
  }
  const auto at = [](const void* p) { return reinterpret_cast<std::uintptr_t>(p); };
  const bool shared = at(out) >= at(tmp) && at(out) < at(tmp) + kTmp * sizeof(float);
  std::printf("graph_memcheck_probe %s: %d launch(es), output %s; out %s tmp's addresses\n", mode, launches,
              wrong == 0 ? "right every time" : "WRONG", shared ? "inside" : "outside");
  PROBE_CHECK(cudaGraphExecDestroy(exec));
  PROBE_CHECK(cudaGraphDestroy(graph));
  PROBE_CHECK(cudaFree(out));  // a kept graph allocation is freed like any other device memory
  PROBE_CHECK(cudaStreamDestroy(stream));
  return wrong == 0 ? 0 : 1;
}
