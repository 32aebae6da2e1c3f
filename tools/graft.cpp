// graft: the command-line tool. Each subcommand lives in its own cmd_*.cpp, registered in tools/cli_app.cpp, which
// also turns every error into one line on stderr with a non-zero exit.
#include "tools/cli_common.h"

int main(int argc, char** argv) {
  auto app = graft::cli::make_app();
  return graft::cli::run_app(*app, argc, argv);
}
