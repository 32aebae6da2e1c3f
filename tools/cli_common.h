// Shared pieces of the graft CLI's subcommands.
#pragma once
#include <CLI/CLI.hpp>

#include <memory>
#include <string>

#include "core/device.h"
#include "io/checkpoint.h"
#include "io/preprocess.h"
#include "io/weights.h"
#include "layers/module.h"
#include "models/zoo.h"

namespace graft::cli {

// Options every model-building subcommand shares.
struct ModelArgs {
  std::string arch = "resnet50";
  std::string dialect = "torchvision";
  int num_classes = 1000;
  std::uint64_t seed = 0;
};
void add_model_options(CLI::App& cmd, ModelArgs& args);
std::shared_ptr<Module> build_model(const ModelArgs& args);
// The dialect the model of `args` is built in, by name (models/zoo.h dialect_of): what run.txt, checkpoints and the
// CLI's output report.
std::string built_dialect(const ModelArgs& args);

// Refuses an output file (`option`, e.g. "--output") that is one of `inputs`, by any path (links, "./", ".."):
// writing it would replace a file the command reads. Empty names in `inputs` are passed over.
void check_not_an_input(const std::string& out, const std::vector<std::string>& inputs, const char* what,
                        const char* option);

// "auto" picks CUDA when available.
Device resolve_device(const std::string& name);

// Loads a weight file into `model` (io/weights.h load_weights) and prints each warning of its report on stderr as
// "graft: warning: '<path>': ..." (NaN or Inf values, layers matched by position): the library returns them, and a
// command line that dropped them would hide them from the user.
LoadReport load_weights_reporting(Module& model, const std::string& path, const LoadOptions& options = {});
// load_checkpoint (io/checkpoint.h), then the same warning for each tensor that holds NaN or Inf values.
CheckpointMeta load_checkpoint_reporting(const std::string& path, Module& model, Optimizer* optimizer);

// Decoding threads for --workers -1 (the default): on the GPU, where decoding JPEGs is what limits the step, all
// cores but one (at most 16); on the CPU, which computes the model, 2. Results never depend on it.
int default_workers(int requested, Device device);

// CLI::NonNegativeNumber with a short message ("'abc' is not a number >= 0"; CLI11's own prints the range up to the
// largest double in 300 digits).
extern const CLI::Validator kNonNegativeNumber;
// A seed: a whole number from 0 to 2^64 - 1 in decimal digits ("-1" or "1e3" would otherwise wrap or round).
extern const CLI::Validator kSeed;

// The whole CLI (tools/cli_app.cpp): an App with every subcommand registered, and parse-and-run with every error
// turned into one line on stderr (exit 2 for usage errors, 1 for failures, 0 on success).
std::unique_ptr<CLI::App> make_app();
int run_app(CLI::App& app, int argc, const char* const* argv);

void register_summary(CLI::App& app);
void register_bench(CLI::App& app);
void register_weights(CLI::App& app);  // weights inspect, run
void register_finetune(CLI::App& app);  // tools/cmd_finetune.cpp
void register_features(CLI::App& app);  // tools/cmd_features.cpp
void register_eval(CLI::App& app);      // tools/cmd_eval.cpp
void register_predict(CLI::App& app);   // tools/cmd_predict.cpp

// A model for inference (eval, predict) from a graft checkpoint (built from its metadata, with the preprocessing,
// image size and class names finetune stored) or from a weight file with its classifier (tools/cmd_eval.cpp).
struct InferenceModel {
  std::shared_ptr<Module> model;
  CheckpointMeta meta;
  Preprocess preprocess = Preprocess::Torch;
  int image_size = 224;
  bool exact_resize = false;  // resize whole to size x size (small fixed-size images) instead of resize + crop
  bool antialias = true;      // what it was trained with (train/run_settings.h trained_with_antialias)
};
InferenceModel load_inference_model(const std::string& checkpoint, const std::string& weights, const std::string& arch);
void add_inference_model_options(CLI::App& cmd, std::string& checkpoint, std::string& weights, std::string& arch);
// Names of the model's outputs: the checkpoint's class names, ImageNet's for 1000 outputs, else the index.
std::vector<std::string> output_class_names(const InferenceModel& model);

}  // namespace graft::cli
