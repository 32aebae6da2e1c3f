#include "tools/cli_common.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <thread>
#include <cstdlib>
#include <filesystem>

#include "core/error.h"

namespace graft::cli {

const CLI::Validator kNonNegativeNumber(
    [](std::string& text) {
      char* end = nullptr;
      const double v = std::strtod(text.c_str(), &end);
      if (text.empty() || end != text.c_str() + text.size() || !(v >= 0) || !std::isfinite(v))
        return "'" + text + "' is not a number >= 0";
      return std::string();
    },
    "NONNEGATIVE");

const CLI::Validator kSeed(
    [](std::string& text) {
      std::uint64_t v = 0;
      const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
      if (text.empty() || ec != std::errc() || end != text.data() + text.size())
        return "'" + text + "' is not a seed (a whole number from 0 to 18446744073709551615)";
      return std::string();
    },
    "SEED");

void add_model_options(CLI::App& cmd, ModelArgs& args) {
  cmd.add_option("--arch", args.arch, std::string("architecture: ") + kArchitectures)->capture_default_str();
  cmd.add_option("--dialect", args.dialect, "ResNet dialect: torchvision, keras or keras-legacy")->capture_default_str();
  cmd.add_option("--num-classes", args.num_classes, "classifier outputs")->capture_default_str()->check(CLI::PositiveNumber);
  cmd.add_option("--seed", args.seed, "seed of the initial weights")->capture_default_str()->check(kSeed);
}

std::shared_ptr<Module> build_model(const ModelArgs& args) {
  ModelOptions o;
  o.num_classes = args.num_classes;
  const Dialect requested = parse_dialect(args.dialect);
  o.dialect = dialect_of(args.arch, requested);
  o.seed = args.seed;
  // torchvision is the default: only another, explicit choice can be wrong for an architecture of one form.
  GRAFT_CHECK(requested == Dialect::Torchvision || requested == o.dialect, "--dialect ", args.dialect,
              " applies to resnet18/34/50/101/152 only; ", args.arch, " has one form (",
              dialect_name(dialect_of(args.arch, requested)), ")");
  return make_model(args.arch, o);
}

std::string built_dialect(const ModelArgs& args) {
  return dialect_name(dialect_of(args.arch, parse_dialect(args.dialect)));
}

int default_workers(int requested, Device device) {
  if (requested >= 0) return requested;
  if (!device.is_cuda()) return 2;
  const int cores = static_cast<int>(std::thread::hardware_concurrency());
  return std::clamp(cores - 1, 2, 16);
}

namespace {

void print_load_warnings(const std::string& path, const std::vector<std::string>& warnings) {
  for (const std::string& warning : warnings)
    std::fprintf(stderr, "graft: warning: '%s': %s\n", path.c_str(), warning.c_str());
}

}  // namespace

LoadReport load_weights_reporting(Module& model, const std::string& path, const LoadOptions& options) {
  LoadReport report = load_weights(model, path, options);
  print_load_warnings(path, report.warnings);
  return report;
}

CheckpointMeta load_checkpoint_reporting(const std::string& path, Module& model, Optimizer* optimizer) {
  CheckpointMeta meta = load_checkpoint(path, model, optimizer);
  print_load_warnings(path, nonfinite_tensors(model));
  return meta;
}

void check_not_an_input(const std::string& out, const std::vector<std::string>& inputs, const char* what,
                        const char* option) {
  std::error_code ec;  // an input that does not exist (yet) is not the output
  for (const std::string& file : inputs)
    GRAFT_CHECK(file.empty() || !std::filesystem::equivalent(out, file, ec), what, ": ", option, " '", out, "' is ",
                file, ", an input; give the output file's name after ", option);
}

Device resolve_device(const std::string& name) {
  if (name == "auto") return cuda_available() ? kCUDA : kCPU;
  Device d = parse_device(name);
  GRAFT_CHECK(d.is_cpu() || cuda_available(), "--device cuda: ", cuda_unavailable_reason());
  return d;
}

}  // namespace graft::cli
