// What the file-reading fuzz targets share: writing the fuzzer's bytes to a file the reader under test opens.
// (tests/dataset_files.h has the test suite's version; it needs GoogleTest, which the fuzz targets do not link.)
#pragma once
#include <cstdint>
#include <cstdio>
#include <string>

namespace graft::fuzz {

// Writes size bytes (0 allowed) to path; false if the file cannot be written completely.
inline bool write_file(const std::string& path, const std::uint8_t* data, std::size_t size) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) return false;
  const bool ok = size == 0 || std::fwrite(data, 1, size, f) == size;
  return std::fclose(f) == 0 && ok;
}

}  // namespace graft::fuzz
