// The graft CLI application: every subcommand registered on one CLI11 App, and the one place where errors become a
// single line on stderr and an exit code. tools/graft.cpp's main and the CLI fuzz target both go through here.
#include <cstdio>
#include <exception>
#include <iostream>
#include <new>

#include "core/error.h"
#include "kernels/cpu_parallel.h"
#include "tools/cli_common.h"

namespace graft::cli {

std::unique_ptr<CLI::App> make_app() {
  auto app = std::make_unique<CLI::App>("graft: transfer learning with ResNet and VGG in C++/CUDA");
  app->require_subcommand(1);
  app->set_help_all_flag("--help-all", "all subcommands' options");
  // Before or after the subcommand (fallthrough); applied as soon as it is parsed, before any command runs.
  app->fallthrough();
  app->add_option_function<int>("--threads", [](int threads) { set_cpu_threads(threads); },
                                "CPU threads for compute (default: GRAFT_NUM_THREADS, else OPENBLAS_NUM_THREADS or "
                                "OMP_NUM_THREADS, else all cores); results are bitwise the same for any count")
      ->check(CLI::Range(1, kMaxCpuThreads))
      ->trigger_on_parse();
  register_summary(*app);
  register_bench(*app);
  register_weights(*app);
  register_finetune(*app);
  register_eval(*app);
  register_predict(*app);
  register_features(*app);
  return app;
}

namespace {

// Standard output could not take what was written to it (a full disk, a closed pipe's reader): true after saying so.
bool stdout_failed(const char* what) {
  if (std::fflush(stdout) == 0 && !std::ferror(stdout)) return false;
  std::fprintf(stderr, "graft: writing %s to standard output failed\n", what);
  return true;
}

// --help: CLI11 prints it to std::cout (synchronised with stdout), and a help that did not arrive is a failure too.
int print_help(CLI::App& app, const CLI::Error& e) {
  const int code = app.exit(e);
  std::cout.flush();
  return stdout_failed("the help") ? 1 : code;
}

}  // namespace

int run_app(CLI::App& app, int argc, const char* const* argv) {
  std::clearerr(stdout);  // a failed write of an earlier run in this process is not this one's
  try {
    app.parse(argc, argv);
    // Results go to standard output: a write that failed there (a full disk, a closed pipe's reader) is an error,
    // not a success with the output lost.
    return stdout_failed("the results") ? 1 : 0;
  } catch (const CLI::CallForHelp& e) {
    return print_help(app, e);
  } catch (const CLI::CallForAllHelp& e) {
    return print_help(app, e);
  } catch (const CLI::RuntimeError& e) {  // a command that reported its own outcome (e.g. 130: interrupted)
    std::fflush(stdout);
    return e.get_exit_code();
  } catch (const CLI::RequiredError& e) {
    // "A subcommand is required" also for `graft bogus`: name the word that is not a command.
    const std::vector<std::string> extras = app.remaining();
    if (app.get_subcommands().empty() && !extras.empty()) {
      std::string commands;
      for (const CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; }))
        commands += (commands.empty() ? "" : ", ") + sub->get_name();
      std::fprintf(stderr, "graft: '%s' is not a command (commands: %s; graft --help)\n", extras.front().c_str(),
                   commands.c_str());
      return 2;
    }
    std::fprintf(stderr, "graft: %s\n", e.what());
    return 2;
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "graft: %s\n", e.what());
    return 2;
  } catch (const graft::Error& e) {
    std::fflush(stdout);  // what the command printed first (e.g. why it left classes out) comes before its error
    std::fprintf(stderr, "graft: %s\n", e.message().c_str());
    return 1;
  } catch (const std::bad_alloc&) {
    std::fflush(stdout);
    std::fprintf(stderr, "graft: out of memory (for a model, a smaller --batch or --size needs less)\n");
    return 1;
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "graft: %s\n", e.what());
    return 1;
  }
}

}  // namespace graft::cli
