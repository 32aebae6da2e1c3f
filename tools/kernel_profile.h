// graft bench --profile: which GPU kernels a step runs and how long each takes, measured by the GPU itself.
// CUPTI's activity API records the start and end of every kernel between start() and report(); the report sums
// them by kernel name. libcupti is loaded with dlopen when asked for, so graft does not depend on it: a machine
// without it gets a clear reason instead of a profile. CUDA builds only (a CPU-only build reports why not).
#pragma once
#include <string>

namespace graft::cli {

// Starts recording kernels. Returns "" on success, else why no profile can be taken (e.g. libcupti not found).
std::string kernel_profile_start();

// Stops recording (after the caller synchronised the device) and returns a table: the `top` kernels by total
// time, in ms per step (totals / steps), their share, launches per step, and the sum over all kernels.
std::string kernel_profile_report(int steps, int top);

}  // namespace graft::cli
