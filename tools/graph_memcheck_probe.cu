// A probe for one question about compute-sanitizer memcheck and CUDA graphs, with no graft code in it: inside the
// replays of a graph that keeps an allocation (an output the caller holds, freed and allocated again by each
// launch under cudaGraphInstantiateFlagAutoFreeOnLaunch), does memcheck report writes to the graph's own
// intermediate allocations as out of bounds? graft's graph tests that keep an output were flagged that way on an
// H100 (bench/RESULTS.md) while their replays were bitwise correct, and those writing into memory allocated before
// the capture were clean. This program is the same pattern at its smallest, and correct by the CUDA programming
// guide's rules for graph memory nodes:
//
//   capture:  out = cudaMallocAsync(kOut)        (kept:    allocated inside the capture, never freed in it)
//                   or cudaMalloc before capture  (outside: the pattern memcheck found clean)
//             tmp = cudaMallocAsync(kTmp); fill(tmp); sum tmp into out; cudaFreeAsync(tmp)
//   launch the graph `launches` times; check out's value on the host after each.
//
// Usage: graph_memcheck_probe kept|outside [launches]. Exit 0 when every launch gave the right sum.
// tools/device_check.sh runs both under memcheck (GRAFT_MEMCHECK=1): a report for `kept` and none for `outside`,
// with both right, shows the reports come from memcheck's view of a kept graph allocation, not from graft.
#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace {

constexpr int kTmp = 1 << 16;  // floats in the intermediate
constexpr int kOut = 40;       // floats in the kept output (160 bytes, as graft's 4x10 logits)

#define PROBE_CHECK(call)                                                                          \
  do {                                                                                             \
    const cudaError_t e = (call);                                                                  \
    if (e != cudaSuccess) {                                                                        \
      std::fprintf(stderr, "graph_memcheck_probe: %s failed: %s\n", #call, cudaGetErrorString(e)); \
      std::exit(2);                                                                                \
    }                                                                                              \
  } while (0)

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

}  // namespace

int main(int argc, char** argv) {
  const bool kept = argc > 1 && std::strcmp(argv[1], "kept") == 0;
  const bool outside = argc > 1 && std::strcmp(argv[1], "outside") == 0;
  const int launches = argc > 2 ? std::atoi(argv[2]) : 3;
  if (!kept && !outside) {
    std::fprintf(stderr, "usage: graph_memcheck_probe kept|outside [launches]\n");
    return 2;
  }
  cudaStream_t stream;
  PROBE_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  float* out = nullptr;
  if (outside) PROBE_CHECK(cudaMalloc(&out, kOut * sizeof(float)));

  PROBE_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeRelaxed));
  if (kept) PROBE_CHECK(cudaMallocAsync(reinterpret_cast<void**>(&out), kOut * sizeof(float), stream));
  float* tmp = nullptr;
  PROBE_CHECK(cudaMallocAsync(reinterpret_cast<void**>(&tmp), kTmp * sizeof(float), stream));
  fill<<<64, 256, 0, stream>>>(tmp, kTmp);
  sum_into<<<1, 64, 0, stream>>>(out, tmp, kTmp);
  PROBE_CHECK(cudaFreeAsync(tmp, stream));
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
  std::printf("graph_memcheck_probe %s: %d launch(es), output %s (%s)\n", kept ? "kept" : "outside", launches,
              wrong == 0 ? "right every time" : "WRONG",
              kept ? "allocated inside the capture and kept" : "allocated before the capture");
  PROBE_CHECK(cudaGraphExecDestroy(exec));
  PROBE_CHECK(cudaGraphDestroy(graph));
  PROBE_CHECK(cudaFree(out));  // a kept graph allocation is freed like any other device memory
  PROBE_CHECK(cudaStreamDestroy(stream));
  return wrong == 0 ? 0 : 1;
}
