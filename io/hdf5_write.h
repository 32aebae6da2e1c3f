// Writing float32 datasets to a new HDF5 file, all or nothing: the file is written under a temporary name in
// the same directory and renamed over the target only when complete, so a crash or a full disk never leaves a
// broken file behind. Every failure is a graft::Error naming the file and the dataset.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace graft::hdf5 {

// Writes each (name, tensor) as a float32 dataset of the tensor's shape (tensors may live on any device).
void write_float_datasets(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& datasets);

}  // namespace graft::hdf5
