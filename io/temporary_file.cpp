#include "io/temporary_file.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <filesystem>
#include <string>

namespace graft {
namespace {

constexpr const char* kSuffix = ".tmp-graft";

bool all_digits(const std::string& text, std::size_t max_length) {
  return !text.empty() && text.size() <= max_length && text.find_first_not_of("0123456789") == std::string::npos;
}

// `tag` is what follows "OUT.tmp-graft-": "<pid>" or "<pid>-<n>". True when that process is gone; false for names
// this code does not make (left alone).
bool writer_is_gone(const std::string& tag) {
  const std::size_t dash = tag.find('-');
  const std::string pid_text = tag.substr(0, dash);
  if (!all_digits(pid_text, 9) || (dash != std::string::npos && !all_digits(tag.substr(dash + 1), 20))) return false;
  const long pid = std::stol(pid_text);
  return pid > 0 && ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH;
}

}  // namespace

std::string temporary_path_for(const std::string& path) {
  static std::atomic<unsigned long long> count{0};
  return path + kSuffix + "-" + std::to_string(::getpid()) + "-" + std::to_string(count++);
}

void remove_dead_temporaries(const std::string& path) {
  namespace fs = std::filesystem;
  const fs::path target(path);
  const std::string prefix = target.filename().string() + kSuffix;
  const fs::path folder = target.has_parent_path() ? target.parent_path() : fs::path(".");
  std::error_code ec;
  fs::directory_iterator it(folder, ec), end;
  for (; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.rfind(prefix, 0) != 0) continue;
    const std::string rest = name.substr(prefix.size());
    if (rest.empty() || (rest[0] == '-' && writer_is_gone(rest.substr(1)))) {
      std::error_code ignored;
      fs::remove(it->path(), ignored);
    }
  }
}

}  // namespace graft
