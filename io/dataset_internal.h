// Helpers shared by the dataset readers (io/idx.cpp, io/cifar.cpp, io/image_folder.cpp, io/dataset.cpp).
// Not part of the public API.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace graft::detail {

// The whole file in memory; `op` names the caller in errors ("open_idx: cannot open 'x' ..."). Files larger
// than `max_bytes` are refused before anything is allocated.
std::vector<std::uint8_t> read_file_bytes(const std::string& path, const std::string& op,
                                          std::uint64_t max_bytes = std::uint64_t(1) << 34);

// "(60000 images, 10 classes)"
std::string count_phrase(std::int64_t images, int classes);

// "0", "1", ..., "n-1": the class names of a dataset that ships none.
std::vector<std::string> numbered_class_names(int n);

}  // namespace graft::detail
