// Threads for graft's CPU loops. One setting for the whole CPU backend: gemm_cpu's blocks and the loops below.
//
// parallel_for(n, work_per_item, body) calls body(lo, hi) on contiguous parts [lo, hi) that cover [0, n) once,
// each part on its own thread (the caller's thread takes the first). body must not throw. Callers split only what
// every part computes on its own - e.g. rows of an elementwise pass - so each output element is computed by the same
// loop, in the same order, whatever the number of parts: results are bitwise the same for any thread count. A loop
// with under kMinWorkPerThread units of work per extra thread runs on the caller's thread alone (starting a thread
// costs ~10-20 us).
//
// Column sums over the rows of an (M, width) array (per-channel statistics) cannot be split by thread without
// changing their order, so row_chunk_sums splits the rows into chunks chosen from (M, width) alone, sums each chunk
// in row order (chunks run in parallel), and adds the chunk sums in chunk order: bitwise the same for any thread
// count. (Splitting by columns instead keeps one sequential order but makes every thread stream the whole array
// from memory: measured 20% slower than one thread for (8*56*56, 256).)
#pragma once
#include <cstdint>
#include <functional>

namespace graft {

// Threads the CPU backend uses, 1 to kMaxCpuThreads (default, read at the first use unless set before:
// GRAFT_NUM_THREADS - a graft::Error when it is not such a number -, else OPENBLAS_NUM_THREADS, else OMP_NUM_THREADS,
// else the hardware's). Changing it changes speed, never results.
constexpr int kMaxCpuThreads = 1024;
void set_cpu_threads(int threads);
int cpu_threads();

// Work units (roughly: elements read or written) below which a second thread does not pay for itself.
constexpr std::int64_t kMinWorkPerThread = std::int64_t{1} << 16;

void parallel_for(std::int64_t n, std::int64_t work_per_item,
                  const std::function<void(std::int64_t lo, std::int64_t hi)>& body);

// Chunks of rows of (M, width) that the sums are split into: a function of the shape only.
struct RowChunks {
  std::int64_t rows_per_chunk, chunks;
};
RowChunks row_chunks(std::int64_t m, std::int64_t width);

// sums (sums_per_column * width doubles, zeroed here) = the sum over chunks, in chunk order, of what
// accumulate(r0, r1, partial) adds into a zeroed `partial` (same size) for the rows [r0, r1) of one chunk.
void row_chunk_sums(std::int64_t m, std::int64_t width, int sums_per_column, double* sums,
                    const std::function<void(std::int64_t r0, std::int64_t r1, double* partial)>& accumulate);

}  // namespace graft
