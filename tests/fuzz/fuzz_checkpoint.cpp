// libFuzzer target for native checkpoints (io/checkpoint.h): each input is written to a file and goes through
// is_checkpoint, read_checkpoint_meta and load_checkpoint into a tiny conv net (conv, batch norm, linear) with an
// Adam optimizer, so metadata parsing, the all-or-nothing shape checks, HDF5 reads and Adam::load_state all see
// mutated data. Any exception other than graft::Error, any crash or sanitizer report is a bug. Seeds in
// tests/fuzz/checkpoint_corpus (tests/fuzz/make_checkpoint_corpus.py: valid files of this model + broken ones).
//   build-fuzz/fuzz_checkpoint -max_total_time=60 <copy of tests/fuzz/checkpoint_corpus>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>

#include "core/error.h"
#include "core/optim.h"
#include "io/checkpoint.h"
#include "layers/batch_norm.h"
#include "layers/conv2d.h"
#include "layers/linear.h"
#include "layers/sequential.h"

namespace {

// Must match tests/fuzz/make_checkpoint_corpus.py: state "0.weight" (4,3,3,3), "1.{weight,bias,running_mean,
// running_var}" (4), "2.weight" (2,4), "2.bias" (2).
struct Target {
  std::shared_ptr<graft::Sequential> model;
  std::unique_ptr<graft::Adam> adam;
  Target() {
    graft::Conv2dConfig conv;
    conv.in_channels = 3, conv.out_channels = 4, conv.kernel_h = conv.kernel_w = 3, conv.padding = 1;
    conv.bias = false;
    model = std::make_shared<graft::Sequential>(std::vector<std::shared_ptr<graft::Module>>{
        std::make_shared<graft::Conv2d>(conv), std::make_shared<graft::BatchNorm2d>(4),
        std::make_shared<graft::Linear>(4, 2)});
    adam = std::make_unique<graft::Adam>(model->trainable_parameters(), graft::AdamOptions{});
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const std::string path = "/tmp/graft_fuzz_checkpoint_" + std::to_string(::getpid()) + ".h5";
  static Target target;
  if (std::FILE* f = std::fopen(path.c_str(), "wb")) {
    std::fwrite(data, 1, size, f);
    std::fclose(f);
  } else {
    return 0;
  }
  graft::is_checkpoint(path);  // never throws
  try {
    graft::read_checkpoint_meta(path);
  } catch (const graft::Error&) {
  }
  try {
    graft::load_checkpoint(path, *target.model, target.adam.get());
  } catch (const graft::Error&) {
    // a clear refusal is the expected outcome for most mutated files
  }
  return 0;
}
