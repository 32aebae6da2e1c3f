// Native graft checkpoints (HDF5): everything needed to resume training exactly.
//   /model/<dotted name>       parameters and buffers (graft layouts), float32
//   /optimizer/<state key>     the optimizer's named state (core/optim.h), float32
//   root attributes (strings)  format = "graft-checkpoint", graft_version, arch, dialect, num_classes, epoch,
//                              step, schedule_step, rng_seed, rng_offset; optional (files without them load
//                              with empty values): class_names (one name per line; past ~60 KB split into
//                              class_names0, class_names1, ...), train_state (key=value lines; past ~60 KB cut
//                              into train_state0, train_state1, ... byte chunks)
// Written through hdf5::Writer: a temporary file renamed into place, so a crash mid-write leaves the previous
// checkpoint intact. Loading is strict and all-or-nothing for the model (every tensor present, shapes equal).
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/optim.h"
#include "io/hdf5.h"
#include "layers/module.h"

namespace graft {

struct CheckpointMeta {
  std::string arch = "";
  std::string dialect = "torchvision";
  int num_classes = 0;
  std::int64_t epoch = 0, step = 0;
  std::int64_t schedule_step = 0;  // LRSchedule::last_step()
  std::uint64_t rng_seed = 0, rng_offset = 0;  // a Generator's state (e.g. the data loader's)
  std::string graft_version = "";  // filled in by save_checkpoint
  // The training dataset's class names (index = label), for eval/predict; empty when unknown. No name may
  // contain a newline (they are stored one per line).
  std::vector<std::string> class_names = {};
  // The training loop's own position and running totals (train/trainer.cpp), e.g. batch_in_epoch; keys and
  // values without '=' / newlines in keys, no newlines in values.
  std::map<std::string, std::string> train_state = {};
};

// `optimizer` may be null (weights only).
void save_checkpoint(const std::string& path, const Module& model, const Optimizer* optimizer,
                     const CheckpointMeta& meta);
// Loads into an existing model (any device; tensors keep their identity) and optimizer (may be null).
CheckpointMeta load_checkpoint(const std::string& path, Module& model, Optimizer* optimizer);
// Only the metadata (to build the right model first).
CheckpointMeta read_checkpoint_meta(const std::string& path);
// True when the file is an HDF5 file written by save_checkpoint.
bool is_checkpoint(const std::string& path);
// The same for a file already open (no error: false when it is not one).
bool is_checkpoint(const hdf5::File& file);

}  // namespace graft
