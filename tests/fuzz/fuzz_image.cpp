// libFuzzer target for image decoding (decode_image in io/image_folder.cpp: stb_image's JPEG and PNG decoders behind
// graft's header and size checks), straight from memory. graft::Error is the expected refusal; any other exception,
// crash, leak or sanitizer report (in graft or in stb_image) is a bug. Run e.g.
//   build-fuzz/fuzz_image -max_total_time=60 tests/fuzz/image_corpus
#include <cstdint>

#include "core/error.h"
#include "io/dataset.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    graft::Example ex = graft::decode_image(data, size, "fuzz input");
    if (ex.pixels.size() != std::size_t(ex.height) * std::size_t(ex.width) * std::size_t(ex.channels) ||
        (ex.channels != 1 && ex.channels != 3))
      __builtin_trap();  // an inconsistent example is a bug even without a sanitizer report
  } catch (const graft::Error&) {
    // a clear refusal is the expected outcome for most mutated files
  }
  return 0;
}
