// graft: the command-line tool. Each subcommand lives in its own cmd_*.cpp, registered in tools/cli_app.cpp, which
// also turns every error into one line on stderr with a non-zero exit.
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "io/hdf5_isolation.h"
#include "tools/cli_common.h"

int main(int argc, char** argv) {
  // Every HDF5 file is read once in a check process first (io/hdf5_isolation.h), so that a damaged file that crashes
  // libhdf5 or sends it into an endless loop becomes a one-line error, not a crashed or hung CLI.
  double check_seconds = 120;
  if (const char* text = std::getenv("GRAFT_HDF5_CHECK_SECONDS"); text && *text) {  // set and not empty
    char* end = nullptr;
    check_seconds = std::strtod(text, &end);
    if (end == text || *end != '\0' || !std::isfinite(check_seconds) || check_seconds < 0) {
      std::fprintf(stderr, "graft: GRAFT_HDF5_CHECK_SECONDS='%s' is not a number of seconds (0 turns the check off)\n",
                   text);
      return 2;
    }
  }
  if (check_seconds > 0) graft::hdf5::set_isolation({.enabled = true, .timeout_seconds = check_seconds});
  auto app = graft::cli::make_app();
  return graft::cli::run_app(*app, argc, argv);
}
