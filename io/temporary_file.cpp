#include "io/temporary_file.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/random.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
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
// still be at work on it: one holds its flock (TemporaryFile holds it from creating the file until it is renamed),
// or it is younger than a minute and its process is alive here (the instants between a writer's creating and
// locking it). A writer in another pid namespace whose number is dead here is exposed in those instants only.
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
    if (gone || !fresh) ::unlink(path.c_str());  // nobody holds it: abandoned (unless just created)
  } else if (errno != EWOULDBLOCK && gone) {
    ::unlink(path.c_str());  // a file system without flock: the process id is all there is to go by
  }
  ::close(fd);
}

// 64 random bits from the kernel; should getrandom fail, the time and a count still make the name new in this
// process.
unsigned long long random_tag() {
  static std::atomic<unsigned long long> count{0};
  unsigned long long tag = 0;
  if (::getrandom(&tag, sizeof tag, 0) != static_cast<ssize_t>(sizeof tag))
    tag = static_cast<unsigned long long>(std::chrono::steady_clock::now().time_since_epoch().count()) * 1000003ULL;
  return tag ^ count++;
}

// The folder holding `path` ("." for a bare name).
std::filesystem::path folder_of(const std::string& path) {
  const std::filesystem::path target(path);
  return target.has_parent_path() ? target.parent_path() : std::filesystem::path(".");
}

// fsync, where a file system that cannot sync (some FUSE and network mounts answer EINVAL or ENOTSUP) counts as
// synced: durability there is the file system's, and refusing to write would help nobody.
bool sync_descriptor(int fd) {
  if (::fsync(fd) == 0) return true;
  return errno == EINVAL || errno == ENOTSUP || errno == ENOSYS;  // (EOPNOTSUPP is ENOTSUP on Linux)
}

// Best effort: makes a rename in `path`'s folder durable (some file systems refuse fsync on a directory: then
// nothing).
void sync_folder_of(const std::string& path) {
  const int fd = ::open(folder_of(path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

}  // namespace

std::string temporary_path_for(const std::string& path) {
  return path + kSuffix + "-" + std::to_string(::getpid()) + "-" + std::to_string(random_tag());
}

void hold_temporary(int fd) {
  ::flock(fd, LOCK_EX | LOCK_NB);  // best effort: a file system without flock leaves only the process id
}

void remove_dead_temporaries(const std::string& path) {
  namespace fs = std::filesystem;
  const std::string prefix = fs::path(path).filename().string() + kSuffix;
  std::error_code ec;
  fs::directory_iterator it(folder_of(path), ec), end;
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
}

TemporaryFile::~TemporaryFile() {
  if (!finished_) discard();
}

std::FILE* TemporaryFile::create() {
  GRAFT_CHECK(file_ == nullptr && !finished_ && !created_, who_, ": the temporary for '", path_,
              "' was already created");
  int fd = -1, err = 0;
  for (int attempt = 0; attempt < 8; ++attempt) {
    if (attempt > 0) name_ = temporary_path_for(path_);  // taken (or planted) and never opened: drawn again
    fd = ::open(name_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    err = errno;
    if (fd >= 0 || err != EEXIST) break;
  }
  if (fd < 0) {
    finished_ = true;  // nothing of ours to remove
    GRAFT_FAIL(who_, ": cannot create '", name_, "' (for '", path_, "'): ", std::strerror(err),
               err == EEXIST ? "" : " (directory missing or not writable?)");
  }
  created_ = true;
  hold_temporary(fd);
  held_ = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);  // shares the open file, and with it the flock, past fclose
  file_ = ::fdopen(fd, "w");
  if (file_ == nullptr) {
    err = errno;
    ::close(fd);
    discard();
    GRAFT_FAIL(who_, ": cannot write '", name_, "' (for '", path_, "'): ", std::strerror(err));
  }
  return file_;
}

void TemporaryFile::mark_created() {
  GRAFT_CHECK(file_ == nullptr && !finished_ && !created_, who_, ": the temporary for '", path_,
              "' was already created");
  created_ = true;
  // A descriptor of our own on the file the other library writes, locked until the rename: that library closes
  // its descriptor (and with it any lock on it) before commit() renames. While the library has the file open the
  // lock may be its own (libhdf5 1.10+ flocks the files it writes): ours then waits for commit() (hold_temporary
  // fails without blocking), which takes it the moment the library's is gone.
  held_ = ::open(name_.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (held_ >= 0) hold_temporary(held_);
}

void TemporaryFile::commit() {
  GRAFT_CHECK(!finished_, who_, ": '", path_, "' was already committed or discarded");
  GRAFT_CHECK(created_, who_, ": nothing was written to '", path_, "'");
  if (held_ >= 0) hold_temporary(held_);  // (a no-op if held already; see mark_created)
  std::string failure;  // the first step that failed, with the system's reason
  auto failed = [&failure](const char* step) {
    if (failure.empty()) failure = std::string(step) + ": " + std::strerror(errno);
  };
  if (file_ != nullptr) {
    // a buffered write that failed leaves only the error flag (glibc drops the buffer: fflush then succeeds)
    if (std::ferror(file_)) failure = "a write was refused (disk full?)";
    else if (std::fflush(file_) != 0) failed("flush");
    const bool closed = std::fclose(file_) == 0;
    file_ = nullptr;
    if (!closed) failed("close");
  }
  // written and closed (by us or another library): synced through our own descriptor, which holds the flock until
  // the rename, so that no other writer of the output takes the temporary for abandoned in between
  if (failure.empty() && held_ < 0) {  // (its dup or open failed earlier: once more)
    held_ = ::open(name_.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (held_ < 0) failed("open");
    else hold_temporary(held_);
  }
  if (failure.empty() && !sync_descriptor(held_)) failed("fsync");
  std::error_code renamed;
  if (failure.empty()) std::filesystem::rename(name_, path_, renamed);
  if (!failure.empty()) {
    discard();
    GRAFT_FAIL(who_, ": writing '", name_, "' failed: ", failure, "; '", path_, "' is as it was");
  }
  if (renamed) {
    discard();
    GRAFT_FAIL(who_, ": cannot rename '", name_, "' to '", path_, "': ", renamed.message(), "; '", path_,
               "' is as it was");
  }
  finished_ = true;
  release_hold();
  sync_folder_of(path_);
}

void TemporaryFile::discard() {
  if (file_ != nullptr) std::fclose(file_);
  file_ = nullptr;
  if (created_ && !finished_) ::unlink(name_.c_str());  // only a file this writer created, and not yet renamed
  finished_ = true;
  release_hold();
}

void TemporaryFile::release_hold() {
  if (held_ >= 0) ::close(held_);
  held_ = -1;
}

}  // namespace graft
