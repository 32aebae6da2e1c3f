// The training loop behind `graft finetune`: epochs over a Loader, per-epoch validation (the scoring, which
// `graft eval` uses too, is train/evaluate.h), the best checkpoint kept, a CSV log and a training-curve PNG in the
// run directory, NaN/Inf detection, clean stop on SIGINT, and exact resumption.
//
// Run directory (TrainOptions::out_dir):
//   log.csv            epoch,step,train_loss,train_top1,val_loss,val_top1,val_top5,lr,images_per_s,seconds
//   curves.png         loss and accuracy per epoch
//   last.h5            checkpoint after every epoch (model + optimizer + loop state), written atomically
//   best.h5            the checkpoint with the best validation top-1 so far
//   run.txt            the command's settings, the dataset descriptions, the algorithms cuDNN chose
//   .graft-lock        held (flock) for the whole run: a second run into the same directory is refused, naming the
//                      process that holds it (train/run_lock.h)
// Faults: a NaN or infinite loss (checked every step: one host read of the scalar) or global gradient norm
// (checked every grad_check_every steps, and every step when clipping) stops training with a graft::Error naming
// the epoch and step, before the optimizer applies that step; no checkpoint is written after it, so last.h5 stays
// the last good one (written at the end of an epoch, on SIGINT or at max_steps). SIGINT (Ctrl-C) during fit():
// the current step finishes, last.h5 is saved with the position inside the epoch, and fit returns
// (stopped_by_signal = true); a second Ctrl-C kills the process as usual. The previous SIGINT handler is restored
// when fit returns. resume = true continues from out_dir/last.h5 (model, optimizer, schedule position, epoch,
// batch within the epoch, running totals) with train.start_epoch(epoch, batch) to the same result, bit for bit on
// the CPU, as an uninterrupted run; a resume with other settings (train/run_settings.h) is refused before anything
// changes. With accumulate > 1, SIGINT stops after the group's step: a stop never splits a group.
// Dropout: before every training batch each Dropout module's generator is set to (its seed, (step * accumulate + k)
// << 32) for the step's k-th batch (step << 32 without accumulation), so the masks depend only on the seeds and the
// batch's place; checkpoints store every dropout seed (train_state dropout_seeds;
// rng_seed/rng_offset hold the first one's seed and the offset of the next step) and resume restores them.
// Too few outputs: a model ending in a Linear layer whose out_features is below the data's classes is refused
// before anything changes; other models at the first batch.
// Feature cache: see TrainOptions::cache_features.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/lr_schedule.h"
#include "core/optim.h"
#include "io/checkpoint.h"
#include "io/loader.h"
#include "layers/module.h"
#include "train/evaluate.h"
#include "train/run_settings.h"

namespace graft {

// What fit() reports after every optimizer step (tests use it to inject faults: poison a weight, raise SIGINT).
struct StepInfo {
  int epoch = 0;                     // 0-based
  std::int64_t step = 0;             // optimizer steps done in all (this one included)
  std::int64_t batch_in_epoch = 0;   // the epoch's batches up to this step's last (any the loader skipped included)
  double loss = 0;
};

struct TrainOptions {
  int epochs = 1;
  std::string out_dir;        // empty: nothing written
  bool resume = false;
  bool progress = true;       // a progress bar on stderr (images/s, loss, ETA)
  bool keep_best = true;
  std::int64_t max_steps = 0; // > 0: stop after this many steps in all (a resume already there trains nothing)
  // Feature-extraction mode: when every parameter outside the head is frozen, no BatchNorm outside the head
  // would use batch statistics in train mode (e.g. after freeze_batch_norm) and the train loader does not
  // augment, the backbone runs once over the train (and validation) data in eval mode - running BN statistics,
  // NO dropout (VGG's classifier dropouts are skipped) - with the head replaced by Identity; the features stay
  // in memory on the model's device and the head alone trains on them, shuffled per epoch with (seed, epoch)
  // like the loader. The head is put back before anything is saved: checkpoints hold the whole model.
  bool cache_features = true;
  // Dotted path of the head for the feature cache; empty = models/zoo.h head_path() when the model has one.
  std::string head;
  // Label smoothing of the training loss (softmax_cross_entropy's s, core/ops.h; torch's label_smoothing): the
  // targets are (1-s) onehot + s/C. Validation and the logged validation loss stay unsmoothed. In [0, 1).
  float label_smoothing = 0;
  // Class weights of the training loss (train/class_weights.h: torch's cross_entropy weight=), one per model output,
  // each >= 0; e.g. balanced_class_weights of the training labels. Empty: unweighted. The logged training loss is the
  // weighted one (log.csv's epoch loss: the batches' weighted means averaged per image; on_step's: the step's weighted
  // mean); validation stays unweighted. A step whose labels all weigh 0 updates nothing (not even weight decay; torch
  // would give NaN); it still counts as a step.
  std::vector<float> class_weights;
  // Early stopping: > 0 stops when the validation top-1 has not improved for this many epochs (needs validation).
  // It depends only on the best epoch, which checkpoints keep: a resumed run stops where the straight one would.
  int patience = 0;
  // Gradient accumulation: one optimizer step per `accumulate` batches (the epoch's last group may be shorter), taken
  // with the gradient of the group's mean loss - each batch backpropagates its loss sum, and the step divides by the
  // group's examples (or, with class_weights, their labels' total weight): an effective batch of accumulate x batch
  // size in the memory of one batch, the same step as one large batch when nothing uses batch statistics (BatchNorm
  // frozen or absent). `step`, max_steps, the schedule, clipping, on_step (its loss: the group's mean), SIGINT and
  // checkpoints count optimizer steps; a stop never splits a group.
  int accumulate = 1;
  float clip_grad_norm = 0;      // > 0: clip the global gradient 2-norm to this every step
  int grad_check_every = 50;     // check the global gradient norm for NaN/Inf every N steps (0 = only when clipping)
  // Written into every checkpoint (arch, dialect, num_classes, class_names); fit fills the loop fields.
  CheckpointMeta checkpoint;
  std::function<void(const StepInfo&)> on_step;  // called after every optimizer step
};

struct TrainResult {
  int epochs_done = 0;
  std::int64_t steps = 0;
  EvalResult last_validation, best_validation;
  int best_epoch = -1;
  double seconds = 0, images_per_second = 0;
  bool used_feature_cache = false, stopped_by_signal = false;
  bool stopped_early = false;  // TrainOptions::patience ran out before options.epochs
  std::vector<double> epoch_train_loss;
  double cache_seconds = 0;         // feature cache: time to compute the features (train + validation)
  double first_epoch_seconds = 0;   // the first epoch this call ran (on the cache when used), for comparisons
  std::int64_t skipped_images = 0;  // unreadable examples dropped by the train loader (non-strict)
  // Training batches left with one example (the rest of their batch unreadable) that were passed over because the
  // model normalises with batch statistics, which one example cannot give (see fit).
  std::int64_t lone_examples_skipped = 0;
};

// Trains `model` with `optimizer`; `schedule` (may be null) steps once per optimizer step. The optimizer must hold
// the model's own parameter tensors (a graft::Error otherwise); gradients they hold when fit is called are cleared
// first. A model with fewer outputs than the train data has classes is an error (see above). Errors from the loader
// (strict mode, unreadable files) propagate.
TrainResult fit(Module& model, Optimizer& optimizer, Loader& train, Loader* validation, const TrainOptions& options,
                LRSchedule* schedule = nullptr);

}  // namespace graft
