#include "io/temporary_file.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <string>

#include "core/error.h"

namespace graft {
namespace {

constexpr const char* kSuffix = ".tmp-graft";
constexpr std::time_t kFreshSeconds = 60;  // younger temporaries are left alone whatever else is known

bool all_digits(const std::string& text, std::size_t max_length) {
  return !text.empty() && text.size() <= max_length && text.find_first_not_of("0123456789") == std::string::npos;
}

// `tag` is what follows "OUT.tmp-graft-": "<pid>" or "<pid>-<n>"; -1 for names this code does not make.
long writer_pid(const std::string& tag) {
  const std::size_t dash = tag.find('-');
  const std::string pid_text = tag.substr(0, dash);
  if (!all_digits(pid_text, 9) || (dash != std::string::npos && !all_digits(tag.substr(dash + 1), 20))) return -1;
  return std::stol(pid_text);
}

bool process_is_gone(long pid) { return pid > 0 && ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH; }

// Removes the temporary at `path` (written by process `pid`, or -1 for the older fixed name) unless a writer may
// still be at work on it: one holds its flock (hold_temporary), or it is younger than a minute and its process is
// alive here (the instants before a writer locks it, or between closing and renaming it).
void remove_if_abandoned(const std::string& path, long pid) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return;
  if (S_ISLNK(st.st_mode)) {  // writers create plain files: a link there is no writer's, and must not be followed
    ::unlink(path.c_str());
    return;
  }
  const bool fresh = std::time(nullptr) - st.st_mtime < kFreshSeconds;
  const bool gone = pid < 0 || process_is_gone(pid);
  const int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return;
  if (::flock(fd, LOCK_EX | LOCK_NB) == 0) {
    if (gone || !fresh) ::unlink(path.c_str());  // nobody holds it: abandoned (unless just created or just closed)
  } else if (errno != EWOULDBLOCK && gone) {
    ::unlink(path.c_str());  // a file system without flock: the process id is all there is to go by
  }
  ::close(fd);
}

}  // namespace

std::string temporary_path_for(const std::string& path) {
  static std::atomic<unsigned long long> count{0};
  return path + kSuffix + "-" + std::to_string(::getpid()) + "-" + std::to_string(count++);
}

void hold_temporary(int fd) {
  ::flock(fd, LOCK_EX | LOCK_NB);  // best effort: a file system without flock leaves only the process id
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
    if (rest.empty()) {
      remove_if_abandoned(it->path().string(), -1);
    } else if (rest[0] == '-') {
      const long pid = writer_pid(rest.substr(1));
      if (pid > 0) remove_if_abandoned(it->path().string(), pid);
    }
  }
}

TemporaryFile::TemporaryFile(std::string path, std::string who)
    : path_(std::move(path)), who_(std::move(who)), name_(temporary_path_for(path_)) {
  remove_dead_temporaries(path_);
  ::unlink(name_.c_str());  // the name is new to this process: whatever is there was left over, or planted
}

TemporaryFile::~TemporaryFile() {
  if (!finished_) discard();
}

std::FILE* TemporaryFile::create() {
  GRAFT_CHECK(file_ == nullptr && !finished_, who_, ": the temporary for '", path_, "' was already created");
  const int fd = ::open(name_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
  GRAFT_CHECK(fd >= 0, who_, ": cannot create '", name_, "' (for '", path_, "'): ", std::strerror(errno),
              " (directory missing or not writable?)");
  hold_temporary(fd);
  file_ = ::fdopen(fd, "w");
  if (file_ == nullptr) {
    ::close(fd);
    ::unlink(name_.c_str());
    GRAFT_FAIL(who_, ": cannot write '", name_, "' (for '", path_, "'): ", std::strerror(errno));
  }
  return file_;
}

void TemporaryFile::commit() {
  GRAFT_CHECK(!finished_, who_, ": '", path_, "' was already committed or discarded");
  if (file_ != nullptr) {
    const bool written = std::ferror(file_) == 0 && std::fflush(file_) == 0 && ::fsync(::fileno(file_)) == 0;
    const bool closed = std::fclose(file_) == 0;
    file_ = nullptr;
    if (!written || !closed) {
      discard();
      GRAFT_FAIL(who_, ": writing '", name_, "' failed (disk full?); '", path_, "' is as it was");
    }
  }
  std::error_code ec;
  std::filesystem::rename(name_, path_, ec);
  if (ec) {
    discard();
    GRAFT_FAIL(who_, ": cannot rename '", name_, "' to '", path_, "': ", ec.message(), "; '", path_, "' is as it was");
  }
  finished_ = true;
}

void TemporaryFile::discard() {
  if (file_ != nullptr) std::fclose(file_);
  file_ = nullptr;
  ::unlink(name_.c_str());
  finished_ = true;
}

}  // namespace graft
