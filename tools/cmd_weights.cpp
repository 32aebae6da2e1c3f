// graft weights inspect FILE
// graft weights convert [--arch A] [--to graft|torchvision|keras] IN OUT
//   any supported weight file or checkpoint -> native graft checkpoint, a torchvision state_dict file or a Keras
//   legacy .h5 weights file
// graft run --weights W --input X.h5 --output Y.h5 [--arch A] [--device cpu|cuda] [--batch B]
//   `run` is the black-box interface for comparisons with other frameworks - keep it stable: it reads the float32
//   dataset `input` (N,H,W,3), runs the model in inference mode with no preprocessing, and writes dataset `output`
//   (N,classes) of logits. The architecture defaults to the file's guess, the ResNet dialect (and BatchNorm eps)
//   and the number of classes always come from the file.
#include <array>
#include <cstdio>

#include "core/autograd.h"
#include "core/error.h"
#include "io/checkpoint.h"
#include "io/hdf5.h"
#include "io/hdf5_write.h"
#include "io/weights.h"
#include "tools/cli_common.h"
#include "train/run_settings.h"

namespace graft::cli {
namespace {

// Classes of the file's classifier (its last layer's output size), from the stored shape.
int classes_in_file(const WeightFileInfo& info) {
  for (const auto& t : info.tensors) {
    if (t.graft_name != "fc.weight" && t.graft_name != "classifier.6.weight") continue;
    GRAFT_CHECK(t.shape.size() == 2, "weights: classifier weight '", t.name, "' has shape ", shape_str(t.shape));
    // torch stores (out, in); Keras stores (in, out)
    return static_cast<int>(info.format == WeightFormat::Torchvision ? t.shape[0] : t.shape[1]);
  }
  GRAFT_FAIL("weights: '", info.tensors.empty() ? "" : info.tensors.front().name,
             "...' has no classifier layer: graft run needs a file with its top (fc / predictions)");
}

// Reads every tensor of a checkpoint: a damaged one is an error naming it (io/hdf5.h), NaN and Inf values are
// counted and named, as for weight files.
void print_checkpoint_tensors(const std::string& path) {
  hdf5::File file(path);
  std::size_t counts[2] = {0, 0};
  std::int64_t values = 0;
  std::string nonfinite;
  const char* const groups[2] = {"/model", "/optimizer"};
  for (int g = 0; g < 2; ++g) {
    if (!file.has_group(groups[g])) continue;
    for (const hdf5::DatasetInfo& info : file.datasets_below(groups[g])) {
      const std::vector<float> tensor = file.read_floats(info.path);
      const auto [nan, inf] = count_nonfinite(tensor.data(), static_cast<std::int64_t>(tensor.size()));
      values += static_cast<std::int64_t>(tensor.size());
      ++counts[g];
      if (nan || inf) nonfinite += detail::concat("\n  ", info.path, " has ", nan, " NaN and ", inf, " Inf values");
    }
  }
  std::printf("tensors: %zu of the model, %zu of the optimizer, %lld values%s\n", counts[0], counts[1],
              static_cast<long long>(values), nonfinite.empty() ? ", all finite" : nonfinite.c_str());
}

void inspect(const std::string& path) {
  if (is_checkpoint(path)) {
    CheckpointMeta m = read_checkpoint_meta(path);
    std::printf("format graft-checkpoint (graft %s), architecture %s, dialect %s, %d classes, epoch %lld, step %lld\n",
                m.graft_version.c_str(), m.arch.c_str(), m.dialect.c_str(), m.num_classes,
                static_cast<long long>(m.epoch), static_cast<long long>(m.step));
    if (!m.class_names.empty()) {
      std::string names;
      for (std::size_t i = 0; i < m.class_names.size() && i < 10; ++i) names += (i ? ", " : "") + m.class_names[i];
      if (m.class_names.size() > 10) names += ", ... (" + std::to_string(m.class_names.size()) + " in all)";
      std::printf("class names: %s\n", names.c_str());
    }
    auto state = [&](const char* key) {
      auto it = m.train_state.find(key);
      return it == m.train_state.end() ? std::string("-") : it->second;
    };
    std::printf("input: preprocess %s, image size %s, resize %s\n", state("preprocess").c_str(),
                state("image_size").c_str(), state("resize").c_str());
    // The settings of the run that wrote it (train/run_settings.h): what a --resume must repeat.
    std::string settings;
    for (const auto& [name, value] : recorded_settings(m.train_state))
      settings += "\n  " + name + ": " +
                  (value.empty() ? "(none)" : value.size() <= 100 ? value : value.substr(0, 80) + "...");
    if (!settings.empty()) std::printf("training settings:%s\n", settings.c_str());
    print_checkpoint_tensors(path);
    return;
  }
  WeightFileInfo info = inspect_weights(path);
  std::printf("%s", info.str().c_str());
}

// A model built as the weight file (or checkpoint) says, with the file's weights loaded.
std::shared_ptr<Module> model_from_file(const std::string& path, std::string arch, CheckpointMeta* meta_out) {
  if (is_checkpoint(path)) {
    CheckpointMeta meta = read_checkpoint_meta(path);
    GRAFT_CHECK(arch.empty() || arch == meta.arch, "'", path, "' holds a ", meta.arch, ", not a ", arch);
    ModelOptions options;
    options.num_classes = meta.num_classes;
    options.dialect = parse_dialect(meta.dialect);
    auto model = make_model(meta.arch, options);
    load_checkpoint_reporting(path, *model, nullptr);
    *meta_out = meta;
    return model;
  }
  WeightFileInfo info = inspect_weights(path);
  if (arch.empty()) arch = info.arch_guess;
  GRAFT_CHECK(!arch.empty(), "cannot tell the architecture of '", path, "': pass --arch");
  ModelOptions options;
  options.num_classes = classes_in_file(info);
  options.dialect = dialect_of(arch, info.dialect);
  auto model = make_model(arch, options);
  load_weights_reporting(*model, path);
  meta_out->arch = arch;
  meta_out->dialect = dialect_name(options.dialect);
  meta_out->num_classes = options.num_classes;
  // What the weights were trained with, for graft eval/predict/finetune on a checkpoint converted from this file.
  meta_out->train_state["preprocess"] = preprocess_name(preprocess_for(info));
  return model;
}

// `to` "graft": a native checkpoint; "torchvision": a state_dict file PyTorch loads; "keras": a legacy .h5 weights
// file Keras loads (io/weights.h: export_torchvision, export_keras).
void convert(const std::string& arch, const std::string& to, const std::string& in, const std::string& out) {
  check_not_an_input(out, {in}, "weights convert", "OUT");
  CheckpointMeta meta;
  auto model = model_from_file(in, arch, &meta);
  if (to == "torchvision")
    export_torchvision(*model, out);
  else if (to == "keras")
    export_keras(*model, out);
  else
    save_checkpoint(out, *model, nullptr, meta);
  const std::string dialect = has_dialects(meta.arch) ? meta.dialect + ", " : "";  // the others have one
  std::printf("convert: %s (%s%d classes, %lld parameters) -> %s (%s)\n", meta.arch.c_str(), dialect.c_str(),
              meta.num_classes, static_cast<long long>(model->parameter_count()), out.c_str(),
              to == "graft" ? "graft checkpoint" : to == "keras" ? "Keras weights" : "torchvision state_dict");
}

struct RunArgs {
  std::string arch, weights, input, output, device = "cpu";
  int batch = 16;
};

void run(const RunArgs& a) {
  check_not_an_input(a.output, {a.weights, a.input}, "run", "--output");
  CheckpointMeta meta;
  auto model = model_from_file(a.weights, a.arch, &meta);

  hdf5::File input(a.input);
  GRAFT_CHECK(input.has_dataset("/input"), "run: '", a.input, "' has no dataset 'input'");
  Shape shape = input.dataset_info("/input").shape;
  GRAFT_CHECK(shape.size() == 4 && shape[3] == 3 && shape[0] > 0, "run: dataset 'input' of '", a.input,
              "' has shape ", shape_str(shape), ", expected (N,H,W,3) images with N >= 1");
  Tensor images = Tensor::from_vector(input.read_floats("/input"), shape);

  Device device = resolve_device(a.device);
  model->to(device);
  model->eval();
  NoGradGuard no_grad;
  std::vector<float> logits;
  for (std::int64_t begin = 0; begin < shape[0]; begin += a.batch) {
    std::int64_t end = std::min<std::int64_t>(begin + a.batch, shape[0]);
    std::vector<float> part = (*model)(images.slice(begin, end).to(device)).to_vector();
    logits.insert(logits.end(), part.begin(), part.end());
  }
  Tensor output = Tensor::from_vector(logits, {shape[0], static_cast<std::int64_t>(logits.size()) / shape[0]});
  hdf5::write_float_datasets(a.output, {{"output", output}});
  std::printf("run: %s (%s) on %s: %lld images -> %s dataset 'output' %s\n", meta.arch.c_str(),
              meta.dialect.c_str(), device.str().c_str(), static_cast<long long>(shape[0]),
              a.output.c_str(), shape_str(output.shape()).c_str());
}

}  // namespace

void register_weights(CLI::App& app) {
  auto* weights = app.add_subcommand("weights", "inspect weight files");
  weights->require_subcommand(1);
  auto* inspect_cmd = weights->add_subcommand("inspect", "format, dialect, layers, shapes, dtypes, NaN/Inf counts");
  auto path = std::make_shared<std::string>();
  inspect_cmd->add_option("file", *path, "HDF5 weight file")->required();
  inspect_cmd->callback([path] { inspect(*path); });
  auto* convert_cmd = weights->add_subcommand(
      "convert", "any supported weight file or checkpoint -> native graft checkpoint, or (--to) a file PyTorch "
                 "or Keras loads");
  auto convert_args = std::make_shared<std::array<std::string, 4>>();  // arch, to, in, out
  (*convert_args)[1] = "graft";
  convert_cmd->add_option("--arch", (*convert_args)[0], "architecture (default: the file's)");
  convert_cmd->add_option("--to", (*convert_args)[1],
                          "graft (checkpoint), torchvision (state_dict) or keras (legacy .h5 weights)")
      ->capture_default_str()
      ->check(CLI::IsMember({"graft", "torchvision", "keras"}));
  convert_cmd->add_option("in", (*convert_args)[2], "weight file or graft checkpoint")->required();
  convert_cmd->add_option("out", (*convert_args)[3], "file to write")->required();
  convert_cmd->callback([convert_args] {
    const auto& a = *convert_args;
    convert(a[0], a[1], a[2], a[3]);
  });

  auto* run_cmd = app.add_subcommand("run", "logits of a model with imported weights on images from an HDF5 file");
  auto args = std::make_shared<RunArgs>();
  run_cmd->add_option("--weights", args->weights, "weight file (torchvision export, Keras .h5 or .weights.h5)")->required();
  run_cmd->add_option("--input", args->input, "HDF5 file with float32 dataset 'input' (N,H,W,3)")->required();
  run_cmd->add_option("--output", args->output, "HDF5 file to write dataset 'output' (N,classes)")->required();
  run_cmd->add_option("--arch", args->arch, "architecture (default: the file's)");
  run_cmd->add_option("--device", args->device, "cpu, cuda or auto")->capture_default_str()->check(CLI::IsMember({"cpu", "cuda", "auto"}));
  run_cmd->add_option("--batch", args->batch, "images per forward pass")->capture_default_str()->check(CLI::Range(1, 4096));
  run_cmd->callback([args] { run(*args); });
}

}  // namespace graft::cli
