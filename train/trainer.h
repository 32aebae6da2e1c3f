// The training loop behind `graft finetune` and `graft eval`: epochs over a Loader, per-epoch validation,
// the best checkpoint kept, a CSV log and a training-curve PNG in the run directory, NaN/Inf detection, clean
// stop on SIGINT, and exact resumption.
//
// Run directory (TrainOptions::out_dir):
//   log.csv            epoch,step,train_loss,train_top1,val_loss,val_top1,val_top5,lr,images_per_s,seconds
//   curves.png         loss and accuracy per epoch
//   last.h5            checkpoint after every epoch (model + optimizer + loop state), written atomically
//   best.h5            the checkpoint with the best validation top-1 so far
//   run.txt            the command's settings, the dataset descriptions, the algorithms cuDNN chose
// Faults: a NaN or infinite loss or gradient norm stops training with an error naming the epoch and step;
// last.h5 stays the last good one. SIGINT (Ctrl-C) finishes the current step, saves last.h5 and returns
// (stopped_by_signal = true). resume = true continues from out_dir/last.h5 to the same result, bit for bit on
// the CPU, as an uninterrupted run.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/lr_schedule.h"
#include "core/optim.h"
#include "io/loader.h"
#include "layers/module.h"

namespace graft {

struct EvalResult {
  double loss = 0, top1 = 0, top5 = 0;  // accuracies in [0, 1]
  std::int64_t images = 0;
  std::vector<std::vector<std::int64_t>> confusion;  // [true class][predicted class]
  std::vector<double> per_class_accuracy() const;
};

// Runs the model in eval mode without grad over every batch of `loader` (epoch 0, in order).
EvalResult evaluate(Module& model, Loader& loader);

struct TrainOptions {
  int epochs = 1;
  std::string out_dir;        // empty: nothing written
  bool resume = false;
  bool progress = true;       // a progress bar on stderr (images/s, loss, ETA)
  bool keep_best = true;
  std::int64_t max_steps = 0; // > 0: stop after this many steps in all (tests)
  // Feature-extraction mode: when every parameter before the head is frozen and the train loader does not
  // augment, the backbone's outputs are computed once and the head trains on the cached features.
  bool cache_features = true;
};

struct TrainResult {
  int epochs_done = 0;
  std::int64_t steps = 0;
  EvalResult last_validation, best_validation;
  int best_epoch = -1;
  double seconds = 0, images_per_second = 0;
  bool used_feature_cache = false, stopped_by_signal = false;
  std::vector<double> epoch_train_loss;
};

// Trains `model` with `optimizer`; `schedule` (may be null) steps once per optimizer step.
TrainResult fit(Module& model, Optimizer& optimizer, Loader& train, Loader* validation, const TrainOptions& options,
                LRSchedule* schedule = nullptr);

}  // namespace graft
