// graft: the command-line tool. Each subcommand lives in its own cmd_*.cpp; this file only dispatches and turns
// every error into one line on stderr with a non-zero exit.
#include <cstdio>
#include <exception>

#include "core/error.h"
#include "tools/cli_common.h"

int main(int argc, char** argv) {
  CLI::App app{"graft: transfer learning with ResNet and VGG in C++/CUDA"};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "all subcommands' options");
  graft::cli::register_summary(app);
  graft::cli::register_bench(app);
  graft::cli::register_weights(app);
  try {
    app.parse(argc, argv);
    return 0;
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "graft: %s\n", e.what());
    return 2;
  } catch (const graft::Error& e) {
    std::fprintf(stderr, "graft: %s\n", e.message().c_str());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "graft: %s\n", e.what());
    return 1;
  }
}
