#include "kernels/cpu_parallel.h"

#include <algorithm>
#include <atomic>
#include <charconv>
#include <cstring>
#include <cstdlib>
#include <functional>
#include <thread>
#include <vector>

#include "core/error.h"

namespace graft {
namespace {

// GRAFT_NUM_THREADS is graft's own: a value that is not a whole number from 1 to kMaxCpuThreads is an error, not
// ignored. OPENBLAS_NUM_THREADS and OMP_NUM_THREADS belong to other libraries, which ignore values they cannot use:
// so does graft.
int default_threads() {
  if (const char* v = std::getenv("GRAFT_NUM_THREADS"); v && *v) {
    int threads = 0;
    const char* end = v + std::strlen(v);
    const auto [ptr, ec] = std::from_chars(v, end, threads);
    GRAFT_CHECK(ec == std::errc() && ptr == end && threads >= 1 && threads <= kMaxCpuThreads, "GRAFT_NUM_THREADS='", v,
                "' is not a whole number from 1 to ", kMaxCpuThreads, " (the CPU threads graft computes with)");
    return threads;
  }
  for (const char* name : {"OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"})
    if (const char* v = std::getenv(name); v && std::atoi(v) > 0) return std::min(std::atoi(v), kMaxCpuThreads);
  return static_cast<int>(std::clamp(std::thread::hardware_concurrency(), 1u, unsigned{kMaxCpuThreads}));
}

std::atomic<int> g_threads{0};  // 0: not chosen yet (the environment is read at the first use, unless set first)

}  // namespace

void set_cpu_threads(int threads) {
  GRAFT_CHECK(threads >= 1 && threads <= kMaxCpuThreads, "set_cpu_threads: ", threads,
              " threads; a whole number from 1 to ", kMaxCpuThreads, " is needed");
  g_threads = threads;
}

int cpu_threads() {
  int threads = g_threads.load(std::memory_order_relaxed);
  if (threads == 0) {
    int expected = 0;
    threads = default_threads();
    if (!g_threads.compare_exchange_strong(expected, threads)) threads = expected;  // set meanwhile: that wins
  }
  return threads;
}

void parallel_for(std::int64_t n, std::int64_t work_per_item,
                  const std::function<void(std::int64_t, std::int64_t)>& body) {
  if (n <= 0) return;
  const std::int64_t work = n * std::max<std::int64_t>(work_per_item, 1);
  const std::int64_t parts =
      std::min<std::int64_t>({cpu_threads(), n, std::max<std::int64_t>(1, work / kMinWorkPerThread)});
  if (parts <= 1) {
    body(0, n);
    return;
  }
  const std::int64_t chunk = (n + parts - 1) / parts;
  std::vector<std::thread> helpers;
  std::int64_t lo = chunk;
  try {
    helpers.reserve(static_cast<std::size_t>(parts - 1));
    for (; lo < n; lo += chunk) helpers.emplace_back(std::cref(body), lo, std::min(n, lo + chunk));
  } catch (...) {
    // no thread to be had (std::system_error at a process's limit, std::bad_alloc): the caller's thread runs the
    // parts not handed out, and the helpers started are joined below as usual
  }
  body(0, std::min(n, chunk));
  for (; lo < n; lo += chunk) body(lo, std::min(n, lo + chunk));
  for (std::thread& t : helpers) t.join();
}

RowChunks row_chunks(std::int64_t m, std::int64_t width) {
  // at most kMaxChunks chunks (enough for 32 threads; adding the chunk sums costs chunks * width adds), each at
  // least 4 * kMinWorkPerThread elements (a shorter chunk does not pay for its partial sums)
  constexpr std::int64_t kMaxChunks = 32;
  const std::int64_t min_rows = std::max<std::int64_t>(1, 4 * kMinWorkPerThread / std::max<std::int64_t>(width, 1));
  const std::int64_t rows = std::max(min_rows, (m + kMaxChunks - 1) / kMaxChunks);
  return {rows, m == 0 ? 0 : (m + rows - 1) / rows};
}

void row_chunk_sums(std::int64_t m, std::int64_t width, int sums_per_column, double* sums,
                    const std::function<void(std::int64_t, std::int64_t, double*)>& accumulate) {
  const std::size_t size = static_cast<std::size_t>(sums_per_column * width);
  std::fill(sums, sums + size, 0.0);
  const RowChunks plan = row_chunks(m, width);
  if (plan.chunks <= 1) {
    if (m > 0) accumulate(0, m, sums);
    return;
  }
  std::vector<double> partial(static_cast<std::size_t>(plan.chunks) * size, 0.0);
  parallel_for(plan.chunks, plan.rows_per_chunk * width, [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t k = lo; k < hi; ++k)
      accumulate(k * plan.rows_per_chunk, std::min(m, (k + 1) * plan.rows_per_chunk),
                 partial.data() + static_cast<std::size_t>(k) * size);
  });
  for (std::int64_t k = 0; k < plan.chunks; ++k)
    for (std::size_t i = 0; i < size; ++i) sums[i] += partial[static_cast<std::size_t>(k) * size + i];
}

}  // namespace graft
