set(GRAFT_IO_SOURCES
  io/hdf5.cpp
  io/hdf5_write.cpp
  io/checkpoint.cpp
  io/weights.cpp
  io/weights_keras.cpp
  io/weights_torch.cpp
)
