// What a resumed run must repeat: the settings that shape a run's course, recorded in every checkpoint fit() writes
// (train/trainer.h) and compared before a resume changes anything.
#pragma once
#include <map>
#include <string>

#include "io/checkpoint.h"

namespace graft {

class Loader;
struct TrainOptions;

// A checkpoint's train_state holds each setting NAME as "setting.NAME".
inline constexpr const char* kSettingPrefix = "setting.";

// The "setting.NAME" entries of a checkpoint's train_state, as NAME -> value.
std::map<std::string, std::string> recorded_settings(const std::map<std::string, std::string>& train_state);

// A setting's number as the shortest text that reads back as the same value: exact and readable (0.1, not
// 0.100000001).
std::string shortest_text(float v);
std::string shortest_text(double v);

// The settings that shape a run's course, which resume must not change: the train data (its size, classes and labels
// in order - not its path), the train loader's batch size, shuffle, drop_last, seed and transform (size, random crop,
// flip, antialiasing, preprocessing), and epochs,
// accumulate, class_weights, label_smoothing, clip_grad_norm and patience - plus every "setting.NAME" entry the
// caller put in TrainOptions::checkpoint.train_state (graft finetune adds its data, freezing, optimizer and schedule
// options). fit records them in every checkpoint's train_state as "setting.NAME" = value. Not settings: max_steps,
// progress, keep_best, cache_features, grad_check_every, out_dir, the device - a run stopped by max_steps or Ctrl-C
// may resume with other values of these.
std::map<std::string, std::string> run_settings(const Loader& train, const TrainOptions& options);

// Whether the model in a checkpoint was trained on antialiased resizes (io/transforms.h): its setting.antialias;
// without one, a checkpoint fit() wrote (graft before antialiasing) was not, and any other (weights converted from
// torchvision or Keras: ImageNet-trained through PIL's antialiased resize) was.
bool trained_with_antialias(const CheckpointMeta& meta);

// Throws graft::Error ("<what>: cannot resume from '<checkpoint>' ...", each differing setting with both values)
// unless every setting both the checkpoint and `settings` name has the same value (a setting only one side names -
// a checkpoint of an older graft, a setting added since - is not compared). fit calls it before a resume changes
// anything; graft finetune calls it before it writes anything.
void check_resume_settings(const std::string& what, const std::string& checkpoint,
                           const std::map<std::string, std::string>& settings);

}  // namespace graft
