// Shared pieces of the graft CLI's subcommands.
#pragma once
#include <CLI/CLI.hpp>

#include <memory>
#include <string>

#include "core/device.h"
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

// "auto" picks CUDA when available.
Device resolve_device(const std::string& name);

// The whole CLI (tools/cli_app.cpp): an App with every subcommand registered, and parse-and-run with every error
// turned into one line on stderr (exit 2 for usage errors, 1 for failures, 0 on success).
std::unique_ptr<CLI::App> make_app();
int run_app(CLI::App& app, int argc, const char* const* argv);

void register_summary(CLI::App& app);
void register_bench(CLI::App& app);
void register_weights(CLI::App& app);  // weights inspect, run

}  // namespace graft::cli
