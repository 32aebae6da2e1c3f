// libFuzzer target for the graft CLI's argument parsing (tools/cli_app.cpp's make_app). An input is one command
// line: arguments separated by NUL bytes when it holds any, else by newlines (argv[0] = "graft" is implied).
// Every subcommand's callbacks are replaced by no-ops, so nothing is loaded, trained or written, but CLI11's
// parsing, required options, validators (ranges, IsMember, ExistingFile) and subcommand rules all run.
// A CLI::Error (a usage error or a help request) or graft::Error is the expected refusal; any other exception,
// crash or sanitizer report is a bug. Seeds: tests/fuzz/cli_corpus (one realistic command line per file).
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"
#include "tools/cli_common.h"

namespace {

// The subcommands' option storage may be owned by their callbacks alone (a shared_ptr captured by the lambda), so
// a callback must stay alive while parsing writes through it: each one is moved aside, not destroyed. CLI11 has
// no getter for callbacks; a pointer to a protected member, formed inside a derived class, reaches them legally.
struct CallbackAccess : CLI::App {
  static constexpr auto final_cb = &CallbackAccess::final_callback_;
  static constexpr auto complete_cb = &CallbackAccess::parse_complete_callback_;
  static constexpr auto preparse_cb = &CallbackAccess::pre_parse_callback_;
};

struct Disarmed {
  std::vector<std::function<void()>> callbacks;
  std::vector<std::function<void(std::size_t)>> preparse;
};

void disarm(CLI::App& app, Disarmed& kept) {
  for (auto member : {CallbackAccess::final_cb, CallbackAccess::complete_cb}) {
    kept.callbacks.push_back(std::exchange(app.*member, [] {}));
  }
  kept.preparse.push_back(std::exchange(app.*CallbackAccess::preparse_cb, [](std::size_t) {}));
  for (CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; })) disarm(*sub, kept);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  const char separator = text.find('\0') != std::string::npos ? '\0' : '\n';
  std::vector<std::string> args{"graft"};
  std::size_t begin = 0;
  while (begin <= text.size()) {
    std::size_t end = text.find(separator, begin);
    if (end == std::string::npos) end = text.size();
    if (end > begin || end < text.size()) args.push_back(text.substr(begin, end - begin));
    begin = end + 1;
  }
  if (args.size() > 64) return 0;  // longer command lines exercise nothing new
  std::vector<const char*> argv;
  for (const std::string& a : args) argv.push_back(a.c_str());
  auto app = graft::cli::make_app();
  Disarmed kept;  // destroyed after `app`'s parse
  disarm(*app, kept);
  try {
    app->parse(static_cast<int>(argv.size()), argv.data());
  } catch (const CLI::Error&) {
    // usage errors, --help and --version: what run_app turns into a message and an exit code
  } catch (const graft::Error&) {
  }
  return 0;
}
