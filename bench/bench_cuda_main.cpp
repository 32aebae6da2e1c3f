// graft_bench_cuda's main: checks for a usable GPU, measures the device-to-device copy baseline once, runs the
// benchmarks of bench_cuda*.cpp, and prints a summary table (what tools/device_check.sh shows).
// Exit code: 0 when every benchmark ran, or when there is no GPU (all skipped with the reason); 1 when a GPU is
// present and a benchmark failed.
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <string>
#include <utility>
#include <vector>

#include "bench/cuda_bench.h"
#include "core/device.h"

namespace graft::bench {
namespace {

// ---- the baseline: device-to-device copy of the same bytes ---------------------------------------------------

void copy_launch(std::vector<DeviceBuffer>& dst, std::vector<DeviceBuffer>& src, int s) {
  cuda::copy_device_to_device(dst[s].f(), src[s].f(), static_cast<std::size_t>(kN * kF));
}

void measure_copy_baseline() {
  const int sets = rotation_sets(2 * kN * kF);
  std::vector<DeviceBuffer> src = random_buffers(sets, kN, 100), dst = random_buffers(sets, kN, 200);
  const double seconds = measure(sets, 20, [&](int s) { copy_launch(dst, src, s); });
  g_copy_bytes_per_second = static_cast<double>(2 * kN * kF) / seconds;
}

void BM_copy_device_to_device(benchmark::State& state) {
  guarded(state, [&] {
    const int sets = rotation_sets(2 * kN * kF);
    std::vector<DeviceBuffer> src = random_buffers(sets, kN, 100), dst = random_buffers(sets, kN, 200);
    const double t = run_timed(state, sets, [&](int s) { copy_launch(dst, src, s); });
    report_bandwidth(state, sets, 2 * kN * kF, t, tuple_label({kN}) + " read+written");
  });
}
BENCHMARK(BM_copy_device_to_device)->UseManualTime()->Unit(benchmark::kMicrosecond);

// ---- summary ------------------------------------------------------------------------------------------------

// The console output, plus a short table at the end (kernel, size, median GB/s or TFLOP/s, % of the reference)
// that tools/device_check.sh prints.
class SummaryReporter : public benchmark::ConsoleReporter {
 public:
  SummaryReporter() : benchmark::ConsoleReporter(OO_Tabular) {}

  void ReportRuns(const std::vector<Run>& runs) override {
    benchmark::ConsoleReporter::ReportRuns(runs);
    for (const Run& run : runs) {
      if (run.run_type != Run::RT_Iteration) continue;
      if (run.error_occurred) {
        errors_.emplace_back(short_name(run), run.error_message);
        continue;
      }
      rows_.push_back(run);
    }
  }

  int errors() const { return static_cast<int>(errors_.size()); }

  // "BM_gemm_cuda/tiled_fp32/1024/manual_time" -> "gemm_cuda/tiled_fp32/1024"
  static std::string short_name(const Run& run) {
    std::string name = run.benchmark_name();
    if (name.rfind("BM_", 0) == 0) name.erase(0, 3);
    const std::string suffix = "/manual_time";
    if (name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0)
      name.erase(name.size() - suffix.size());
    return name;
  }

  void print_summary(std::ostream& out) const {
    if (rows_.empty() && errors_.empty()) return;  // nothing ran (e.g. --benchmark_list_tests)
    out << "\n== graft_bench_cuda summary: medians per launch";
    if (!g_device_name.empty()) {
      char copy[64];
      std::snprintf(copy, sizeof copy, "%.0f", g_copy_bytes_per_second * 1e-9);
      out << " on " << g_device_name << "; copy baseline " << copy << " GB/s (read+written)";
    }
    out << " ==\n";
    char line[256];
    std::snprintf(line, sizeof line, "%-36s %-28s %12s %9s  %s\n", "kernel", "size", "GB/s|TFLOP/s", "% of ref",
                  "ref");
    out << line;
    for (const Run& run : rows_) {
      const auto& c = run.counters;
      const bool flops = c.count("TFLOP/s") != 0;
      const double value = flops ? c.at("TFLOP/s").value : c.count("GB/s") ? c.at("GB/s").value : 0.0;
      // The reference: cuDNN's strict-FP32 conv (the kernel lab's convolutions), cuBLAS strict FP32 (GEMM), else
      // the device copy (memory-bound kernels).
      const bool vs_cudnn = c.count("pct_of_cudnn") != 0;
      const char* pct_name = vs_cudnn ? "pct_of_cudnn" : flops ? "pct_of_cublas" : "pct_of_copy";
      const char* ref_name = vs_cudnn ? "cudnn_fp32 TFLOP/s" : flops ? "cublas_fp32 TFLOP/s" : "d2d copy GB/s";
      // Rows without a reference (e.g. cuDNN convolutions) print "-" rather than a misleading 0%.
      char pct[16] = "-";
      if (c.count(pct_name)) std::snprintf(pct, sizeof pct, "%.1f%%", c.at(pct_name).value);
      std::snprintf(line, sizeof line, "%-36s %-28s %12.2f %9s  %s\n", short_name(run).c_str(),
                    run.report_label.substr(0, run.report_label.find(" vs ")).c_str(), value, pct,
                    c.count(pct_name) ? ref_name : "");
      out << line;
    }
    if (errors_.empty()) return;
    // With no GPU every benchmark has the same reason: say it once.
    const bool same = std::all_of(errors_.begin(), errors_.end(),
                                  [&](const auto& e) { return e.second == errors_.front().second; });
    if (same && errors_.size() > 1) {
      out << errors_.size() << " benchmarks skipped: " << errors_.front().second << "\n";
      return;
    }
    for (const auto& [name, message] : errors_) out << "FAILED " << name << ": " << message << "\n";
  }

 private:
  std::vector<Run> rows_;
  std::vector<std::pair<std::string, std::string>> errors_;  // benchmark, message
};

void prepare() {
  if (!cuda_available()) {
    g_skip_reason = "no usable GPU: " + cuda_unavailable_reason();
    return;
  }
  try {
    cudaDeviceProp props{};
    GRAFT_CUDA_CHECK(cudaGetDeviceProperties(&props, 0));
    g_device_name = props.name;
    g_l2_bytes = props.l2CacheSize > 0 ? props.l2CacheSize : g_l2_bytes;
    measure_copy_baseline();
  } catch (const std::exception& e) {
    g_skip_reason = std::string("the copy baseline failed: ") + e.what();
  }
}

}  // namespace
}  // namespace graft::bench

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  graft::bench::prepare();
  const bool have_gpu = graft::cuda_available();
  if (!graft::bench::g_skip_reason.empty())
    std::cerr << "graft_bench_cuda: skipping: " << graft::bench::g_skip_reason << "\n";
  graft::bench::SummaryReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  reporter.print_summary(std::cout);
  benchmark::Shutdown();
  return have_gpu && reporter.errors() > 0 ? 1 : 0;
}
