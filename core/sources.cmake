# Explicit source list of core/ (the Tensor, autograd, allocator, RNG and the op implementations).
set(GRAFT_CORE_SOURCES
  core/device.cpp
  core/allocator.cpp
  core/rng.cpp
  core/tensor.cpp
  core/autograd.cpp
  core/ops_elementwise.cpp
  core/ops_reduce.cpp
  core/ops_matmul.cpp
  core/ops_softmax.cpp
  core/ops_conv.cpp
  core/ops_norm.cpp
  core/ops_pool.cpp
  core/ops_layout.cpp
  core/ops_dropout.cpp
)
