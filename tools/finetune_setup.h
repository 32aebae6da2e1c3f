// What graft finetune (tools/cmd_finetune.cpp) derives from its arguments before it trains: the class list of
// --classes, the loss weights of --class-weights, the warm-up steps of --warmup, the preprocessing a weight file
// implies, whether a dataset holds small fixed-size images, and a head taken over from a checkpoint class by class.
// Each refuses bad input with a graft::Error naming the option and the value.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "io/dataset.h"
#include "io/preprocess.h"
#include "layers/module.h"

namespace graft::cli {

// --class-weights W0,W1,...: finite values >= 0, not all 0.
std::vector<float> parse_class_weights(const std::string& text);

// The weights of --class-weights for a model with `outputs` classes: "balanced" from the training labels' counts;
// none for "".
std::vector<float> class_weights_for(const std::string& spec, const Dataset& train, int outputs);

// --classes 5,6,7: class indices >= 0, at least one.
std::vector<int> parse_classes(const std::string& text);

// Fixed-size small images (28x28 Fashion-MNIST, 32x32 CIFAR) are resized whole; photos get torchvision's
// resize-and-center-crop.
bool small_fixed_images(const std::string& spec);

// The weight file's preprocessing: torchvision's files use torch, Keras's caffe (tf for the V2 ResNets); a graft
// checkpoint the one it recorded; no file, the architecture's own.
Preprocess preprocess_of_weights(const std::string& path, const std::string& arch, Dialect dialect);

// --warmup: epochs (1, 0.5) at `steps_per_epoch` steps each, or steps ("200steps").
std::int64_t warmup_steps(const std::string& text, std::int64_t steps_per_epoch);

// Another class list than the --weights checkpoint's: `model` takes everything but the head from `from`, and of the
// head (a Linear: weight (K, D), bias (K)) the rows of the classes `from` knows by name; the other rows stay fresh.
// A checkpoint's head rows are its classes by name, never by position: the same count of other or reordered classes
// must not inherit them. Returns how many of `names` were found.
int take_all_but_the_head(Module& model, Module& from, const std::string& head, const std::vector<std::string>& names,
                          const std::vector<std::string>& from_names, int from_outputs);

}  // namespace graft::cli
