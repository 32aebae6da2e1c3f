// The grouped convolutions' row kernels (kernels/conv2d_cpu_grouped_rows.h) built with -mavx2 -mfma
// (kernels/sources.cmake): 8-float registers and fused multiply-adds. conv2d_cpu_grouped.cpp calls them only on
// CPUs that have both. Nothing else may live in this file: whatever it compiles is AVX2 code.
#include "kernels/conv2d_cpu_grouped_rows.h"

namespace graft {

GroupedRowKernels grouped_row_kernels_avx2() {
  return {grouped_forward_rows, grouped_backward_data_rows, grouped_backward_filter};
}

}  // namespace graft
