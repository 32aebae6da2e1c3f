// The data loader: worker threads decode and transform examples into batches while the model computes.
//   - an epoch's order is a seeded shuffle (seed, epoch) -> the same batches on every run and thread count;
//   - each batch is assembled in host memory (pinned when the target device is CUDA, so the copy is a true
//     asynchronous DMA) and copied to the device on graft's stream: the host does not wait, the copy is
//     ordered before the batch's own kernels, and a staging buffer is refilled only after its copy finished;
//   - `workers` threads fill up to `prefetch` batches ahead; the random transforms of example i in epoch e use
//     an RNG seeded from (seed, e, i), so augmentation does not depend on which worker ran it.
// Unreadable examples: with strict = false they are dropped from their batch (the batch is smaller; a batch
// left empty is skipped), counted and reported once per epoch on stderr; with strict = true the first one ends
// the epoch: next() throws its graft::Error ("loader: example I of DATASET: <the dataset's message>") and then
// returns nullopt until the next start_epoch(). Batch boundaries never move, so a resumed epoch matches.
// Errors at construction (graft::Error): batch_size < 1, workers < 0, prefetch < 1, bad transform options, an
// empty dataset, drop_last leaving no batch, a CUDA device that is not available.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "core/device.h"
#include "core/tensor.h"
#include "io/dataset.h"
#include "io/transforms.h"

namespace graft {

struct LoaderOptions {
  int batch_size = 32;
  bool shuffle = true;
  bool drop_last = false;
  std::uint64_t seed = 0;
  int workers = 2;   // decode/transform threads (0 = on the calling thread)
  int prefetch = 2;  // batches ready ahead of the consumer
  bool strict = false;
  Device device = kCPU;
  TransformOptions transform;
};

struct Batch {
  Tensor images;  // (B, size, size, 3) float on options.device
  Tensor labels;  // (B) int32 on options.device
  std::int64_t index = 0;  // batch number within the epoch
};

// The order of an epoch's examples: 0..n-1 when !shuffle, else the seeded Fisher-Yates shuffle of (seed, epoch).
// The loader's own order; a consumer that replays an epoch without a loader (the trainer's feature cache) uses it
// to see the examples in the same order.
std::vector<std::int64_t> epoch_order(std::int64_t n, std::uint64_t seed, int epoch, bool shuffle);

class Loader {
 public:
  Loader(DatasetPtr dataset, LoaderOptions options);
  ~Loader();  // stops and joins the workers
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  // Starts epoch `epoch` (workers begin filling); batches then come from next() until it returns nullopt.
  // first_batch > 0 skips the epoch's first batches without decoding them (resuming mid-epoch gives exactly the
  // batches an uninterrupted run would have seen); first_batch == batches_per_epoch() gives an empty epoch.
  // A running epoch is stopped first (its workers finish the example they hold and are joined).
  void start_epoch(int epoch, std::int64_t first_batch = 0);
  std::optional<Batch> next();

  std::int64_t batches_per_epoch() const;
  std::int64_t skipped_this_epoch() const;  // unreadable examples dropped so far in the current epoch
  const DatasetPtr& dataset() const;
  const LoaderOptions& options() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace graft
