# Explicit source lists of kernels/: plain CPU references (always built) and CUDA code (GRAFT_CUDA=ON).
set(GRAFT_KERNEL_CPU_SOURCES
  kernels/elementwise_cpu.cpp
  kernels/reduce_cpu.cpp
  kernels/gemm_cpu.cpp
  kernels/cpu_parallel.cpp
  kernels/softmax_cpu.cpp
  kernels/random_cpu.cpp
)
set(GRAFT_KERNEL_CUDA_SOURCES
  kernels/cuda_device.cpp
  kernels/cuda_graph.cpp
  kernels/elementwise_cuda.cu
  kernels/reduce_cuda.cu
  kernels/gemm_cublas.cpp
  kernels/gemm_cuda_tiled.cu
  kernels/softmax_cuda.cu
  kernels/random_cuda.cu
)

# Layer ops (conv2d, batch_norm, pooling, dropout, padding, concat) and optimizers
list(APPEND GRAFT_KERNEL_CPU_SOURCES
  kernels/conv2d_cpu.cpp
  kernels/conv2d_cpu_grouped.cpp
  kernels/batch_norm_cpu.cpp
  kernels/pool_cpu.cpp
  kernels/layout_cpu.cpp
  kernels/dropout_cpu.cpp
  kernels/optimizer_cpu.cpp
)
list(APPEND GRAFT_KERNEL_CUDA_SOURCES
  kernels/conv2d_cudnn.cpp
  kernels/conv2d_cudnn_engines.cpp
  kernels/conv2d_cuda_lab.cu
  kernels/batch_norm_cuda.cu
  kernels/pool_cuda.cu
  kernels/layout_cuda.cu
  kernels/dropout_cuda.cu
  kernels/optimizer_cuda.cu
)
# The optimizer's, scale_shift's and the random draws' CPU references must not fuse multiply-adds: the CUDA kernels
# match them bit for bit (x86-64 without -march has no FMA anyway; aarch64 and -march=native builds would fuse by
# default: a host emulation with -mfma broke the uniform draws' low + span * u). Batch norm's too: its results must
# not depend on how the compiler fuses the expressions it hoists.
set_source_files_properties(kernels/optimizer_cpu.cpp kernels/elementwise_cpu.cpp kernels/batch_norm_cpu.cpp
                            kernels/random_cpu.cpp PROPERTIES COMPILE_OPTIONS -ffp-contract=off)
# The grouped convolutions' row kernels again for CPUs with AVX2 and FMA (kernels/conv2d_cpu_grouped_rows.h; chosen
# at run time by kernels/conv2d_cpu_grouped.cpp). x86-64 only.
if(CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64)$")
  list(APPEND GRAFT_KERNEL_CPU_SOURCES kernels/conv2d_cpu_grouped_avx2.cpp)
  set_source_files_properties(kernels/conv2d_cpu_grouped_avx2.cpp PROPERTIES COMPILE_OPTIONS "-mavx2;-mfma")
endif()
