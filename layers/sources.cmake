# Explicit source list of layers/ (stateful Modules).
set(GRAFT_LAYER_SOURCES
  layers/module.cpp
  layers/init.cpp
  layers/conv2d.cpp
  layers/batch_norm.cpp
  layers/linear.cpp
  layers/basic.cpp
  layers/sequential.cpp
  layers/summary.cpp
)
