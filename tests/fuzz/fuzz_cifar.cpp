// libFuzzer target for the CIFAR reader (io/cifar.cpp). Input byte 0 picks CIFAR-10 or CIFAR-100 (bit 0) and
// whether a class-names file is written (bit 1); with names, bytes 1-2 give where the names text ends. The rest is
// written as test_batch.bin / test.bin in a per-process directory, then open_cifar reads it and every label and the
// first and last images are fetched. graft::Error is the expected refusal; anything else is a bug. Run e.g.
//   build-fuzz/fuzz_cifar -max_total_time=60 tests/fuzz/cifar_corpus
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>

#include "core/error.h"
#include "io/dataset.h"
#include "tests/fuzz/fuzz_files.h"

using graft::fuzz::write_file;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace fs = std::filesystem;
  static const fs::path dir = fs::temp_directory_path() / ("graft_fuzz_cifar_" + std::to_string(::getpid()));
  static const bool made = fs::create_directories(dir) || fs::is_directory(dir);
  if (!made || size < 3) return 0;
  const bool c10 = (data[0] & 1) == 0, with_names = (data[0] & 2) != 0;
  std::size_t names_size = 0;
  if (with_names) names_size = (std::size_t(data[1]) | (std::size_t(data[2]) << 8)) % (size - 3 + 1);
  const std::uint8_t* names = data + 3;
  const std::uint8_t* records = names + names_size;
  const std::size_t records_size = size - 3 - names_size;
  std::error_code ec;
  for (const char* stale : {"test_batch.bin", "test.bin", "batches.meta.txt", "fine_label_names.txt"})
    fs::remove(dir / stale, ec);
  if (!write_file((dir / (c10 ? "test_batch.bin" : "test.bin")).string(), records, records_size)) return 0;
  const char* names_file = c10 ? "batches.meta.txt" : "fine_label_names.txt";
  if (with_names && !write_file((dir / names_file).string(), names, names_size)) return 0;
  try {
    graft::DatasetPtr set = graft::open_cifar(dir.string(), false, c10 ? 10 : 100);
    long checksum = 0;
    for (std::int64_t i = 0; i < set->size(); ++i) checksum += set->label(i);
    for (std::int64_t i : {std::int64_t(0), set->size() - 1}) {
      graft::Example ex = set->get(i);
      if (ex.pixels.size() != 32u * 32u * 3u || ex.label < 0 || ex.label >= set->num_classes()) __builtin_trap();
      checksum += ex.pixels.back();
    }
    for (const std::string& name : set->class_names()) checksum += long(name.size());
    if (checksum < 0) __builtin_trap();
  } catch (const graft::Error&) {
    // a clear refusal is the expected outcome for most mutated files
  }
  return 0;
}
