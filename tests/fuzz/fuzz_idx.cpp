// libFuzzer target for the IDX reader (io/idx.cpp): the input is cut in two at an offset taken from its first two
// bytes, the parts are written as an image file and a label file (raw or gzip: the reader decides from the bytes),
// then open_idx reads them and every label and the first and last images are fetched. graft::Error is the expected
// refusal; any other exception, crash, leak or sanitizer report is a bug. Run e.g.
//   build-fuzz/fuzz_idx -max_total_time=60 tests/fuzz/idx_corpus
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>

#include "core/error.h"
#include "io/dataset.h"
#include "tests/fuzz/fuzz_files.h"

using graft::fuzz::write_file;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const std::string base = "/tmp/graft_fuzz_idx_" + std::to_string(::getpid());
  if (size < 2) return 0;
  const std::size_t rest = size - 2;
  const std::size_t cut = rest == 0 ? 0 : (std::size_t(data[0]) | (std::size_t(data[1]) << 8)) % (rest + 1);
  if (!write_file(base + ".images", data + 2, cut) || !write_file(base + ".labels", data + 2 + cut, rest - cut))
    return 0;
  try {
    graft::DatasetPtr set = graft::open_idx(base + ".images", base + ".labels");
    long checksum = 0;
    for (std::int64_t i = 0; i < set->size(); ++i) checksum += set->label(i);
    for (std::int64_t i : {std::int64_t(0), set->size() - 1}) {
      graft::Example ex = set->get(i);
      if (ex.pixels.size() != std::size_t(ex.height) * std::size_t(ex.width) * std::size_t(ex.channels))
        __builtin_trap();  // an inconsistent example is a bug even without a sanitizer report
      checksum += ex.pixels.empty() ? 0 : ex.pixels.back();
    }
    if (checksum < 0 || set->describe().empty()) __builtin_trap();
  } catch (const graft::Error&) {
    // a clear refusal is the expected outcome for most mutated files
  }
  return 0;
}
