// libFuzzer target for weight import: each input is written to a file and goes through format detection
// (inspect_weights) and a non-strict load into a ResNet-18. Any exception other than graft::Error, any crash or
// any sanitizer report is a bug. Build with -DGRAFT_FUZZ=ON (clang, CPU only), run e.g.
//   build-fuzz/fuzz_weights -max_total_time=60 tests/fuzz/weights_corpus
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>

#include "core/error.h"
#include "io/weights.h"
#include "models/zoo.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const std::string path = "/tmp/graft_fuzz_weights_" + std::to_string(::getpid()) + ".h5";
  static auto model = graft::make_model("resnet18", {.num_classes = 10});
  if (std::FILE* f = std::fopen(path.c_str(), "wb")) {
    std::fwrite(data, 1, size, f);
    std::fclose(f);
  } else {
    return 0;
  }
  try {
    graft::inspect_weights(path);
    graft::LoadOptions options;
    options.strict = false;
    graft::load_weights(*model, path, options);
  } catch (const graft::Error&) {
    // a clear refusal is the expected outcome for most mutated files
  }
  return 0;
}
