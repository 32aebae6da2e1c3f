// See tools/kernel_profile.h. The CUPTI activity API hands the tool empty buffers (buffer_requested), the driver
// fills them with records, and completed buffers come back (buffer_completed) where the kernel records are
// summed by name. Record layout: CUpti_ActivityKernel10 from the CUDA 13 headers; only its start, end and name
// fields are read. Records CUPTI had to drop (no buffer room) are counted and reported under the headline.
#include "tools/kernel_profile.h"

#if GRAFT_HAS_CUDA
#include <cupti_activity.h>
#include <cxxabi.h>
#include <dlfcn.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <vector>
#endif

namespace graft::cli {

#if GRAFT_HAS_CUDA
namespace {

struct KernelTotals {
  double ns = 0;
  long long launches = 0;
};

// The CUPTI entry points graft uses, looked up once in libcupti.
struct Cupti {
  decltype(&cuptiActivityRegisterCallbacks) register_callbacks = nullptr;
  decltype(&cuptiActivityEnable) enable = nullptr;
  decltype(&cuptiActivityDisable) disable = nullptr;
  decltype(&cuptiActivityFlushAll) flush_all = nullptr;
  decltype(&cuptiActivityGetNextRecord) next_record = nullptr;
  decltype(&cuptiActivityGetNumDroppedRecords) dropped_records = nullptr;  // optional
};

std::mutex g_mutex;
std::map<std::string, KernelTotals> g_kernels;  // demangled name -> totals
std::size_t g_dropped = 0;                        // records CUPTI had no buffer room for
Cupti g_cupti;
constexpr std::size_t kBufferBytes = 8u << 20;

std::string demangle(const char* name) {
  if (name == nullptr) return "?";
  int status = 0;
  std::unique_ptr<char, decltype(&std::free)> plain(abi::__cxa_demangle(name, nullptr, nullptr, &status), &std::free);
  return status == 0 && plain ? std::string(plain.get()) : std::string(name);
}

void CUPTIAPI buffer_requested(uint8_t** buffer, size_t* size, size_t* max_records) {
  *buffer = static_cast<uint8_t*>(std::aligned_alloc(8, kBufferBytes));
  *size = *buffer != nullptr ? kBufferBytes : 0;
  *max_records = 0;  // as many as fit
}

void CUPTIAPI buffer_completed(CUcontext context, uint32_t stream, uint8_t* buffer, size_t, size_t valid_size) {
  CUpti_Activity* record = nullptr;
  std::lock_guard<std::mutex> lock(g_mutex);
  while (g_cupti.next_record(buffer, valid_size, &record) == CUPTI_SUCCESS) {
    if (record->kind != CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL && record->kind != CUPTI_ACTIVITY_KIND_KERNEL) continue;
    const auto* kernel = reinterpret_cast<const CUpti_ActivityKernel10*>(record);
    KernelTotals& totals = g_kernels[demangle(kernel->name)];
    totals.ns += static_cast<double>(kernel->end - kernel->start);
    totals.launches += 1;
  }
  std::size_t dropped = 0;
  if (g_cupti.dropped_records != nullptr &&
      g_cupti.dropped_records(context, stream, &dropped) == CUPTI_SUCCESS)
    g_dropped += dropped;
  std::free(buffer);
}

std::string load_cupti() {
  if (g_cupti.register_callbacks != nullptr) return "";
  void* lib = nullptr;
  for (const char* name : {"libcupti.so.13", "libcupti.so"})
    if ((lib = dlopen(name, RTLD_NOW | RTLD_LOCAL)) != nullptr) break;
  if (lib == nullptr)
    return "libcupti.so.13 not found (it ships with the CUDA toolkit, e.g. /usr/local/cuda/lib or "
           "extras/CUPTI/lib64: add its folder to LD_LIBRARY_PATH)";
  Cupti c;
  c.register_callbacks = reinterpret_cast<decltype(c.register_callbacks)>(dlsym(lib, "cuptiActivityRegisterCallbacks"));
  c.enable = reinterpret_cast<decltype(c.enable)>(dlsym(lib, "cuptiActivityEnable"));
  c.disable = reinterpret_cast<decltype(c.disable)>(dlsym(lib, "cuptiActivityDisable"));
  c.flush_all = reinterpret_cast<decltype(c.flush_all)>(dlsym(lib, "cuptiActivityFlushAll"));
  c.next_record = reinterpret_cast<decltype(c.next_record)>(dlsym(lib, "cuptiActivityGetNextRecord"));
  c.dropped_records =
      reinterpret_cast<decltype(c.dropped_records)>(dlsym(lib, "cuptiActivityGetNumDroppedRecords"));
  if (!c.register_callbacks || !c.enable || !c.disable || !c.flush_all || !c.next_record)
    return "libcupti lacks the activity API entry points";
  g_cupti = c;
  return "";
}

}  // namespace

std::string kernel_profile_start() {
  if (std::string why = load_cupti(); !why.empty()) return why;
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    g_kernels.clear();
    g_dropped = 0;
  }
  if (g_cupti.register_callbacks(buffer_requested, buffer_completed) != CUPTI_SUCCESS ||
      g_cupti.enable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL) != CUPTI_SUCCESS)
    return "CUPTI refused to record kernel activity (another profiler attached?)";
  return "";
}

std::string kernel_profile_report(int steps, int top) {
  g_cupti.flush_all(1);  // CUPTI_ACTIVITY_FLAG_FLUSH_FORCED: hand back partly filled buffers too
  g_cupti.disable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL);
  std::vector<std::pair<std::string, KernelTotals>> rows;
  std::size_t dropped = 0;
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    rows.assign(g_kernels.begin(), g_kernels.end());
    dropped = g_dropped;
  }
  std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.second.ns > b.second.ns; });
  double total_ns = 0;
  long long launches = 0;
  for (const auto& [name, t] : rows) total_ns += t.ns, launches += t.launches;
  const double per_step = steps > 0 ? 1.0 / steps : 1.0;
  std::string out;
  char line[320];
  std::snprintf(line, sizeof line,
                "kernel profile: %.3f ms of kernel time per step, %.1f launches per step, %zu kernels\n",
                total_ns * per_step / 1e6, static_cast<double>(launches) * per_step, rows.size());
  out += line;
  if (dropped > 0) {
    std::snprintf(line, sizeof line, "kernel profile: CUPTI dropped %zu records: the table undercounts\n", dropped);
    out += line;
  }
  for (std::size_t i = 0; i < rows.size() && static_cast<int>(i) < top; ++i) {
    const auto& [name, t] = rows[i];
    std::snprintf(line, sizeof line, "%9.3f ms %5.1f%% %7.1fx  %.150s\n", t.ns * per_step / 1e6,
                  total_ns > 0 ? 100.0 * t.ns / total_ns : 0.0, static_cast<double>(t.launches) * per_step,
                  name.c_str());
    out += line;
  }
  return out;
}

#else  // CPU-only build

std::string kernel_profile_start() { return "this graft was built without CUDA"; }
std::string kernel_profile_report(int, int) { return ""; }

#endif

}  // namespace graft::cli
