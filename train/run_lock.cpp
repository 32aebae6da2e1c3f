#include "train/run_lock.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <string>

#include "core/error.h"

namespace graft {

namespace {

// The process id the holder wrote into the lock file, or "" when there is none or it names no living process (the
// lock is held by something that is not graft, e.g. flock(1), and the file still names an earlier run).
std::string holder_of(int fd) {
  char text[32] = {};
  const ssize_t got = ::pread(fd, text, sizeof text - 1, 0);
  std::string pid = got > 0 ? std::string(text, static_cast<std::size_t>(got)) : std::string();
  while (!pid.empty() && (pid.back() == '\n' || pid.back() == ' ')) pid.pop_back();
  if (pid.empty() || pid.size() > 9 || pid.find_first_not_of("0123456789") != std::string::npos) return {};
  const pid_t id = static_cast<pid_t>(std::stol(pid));
  const bool alive = id > 0 && id != ::getpid() && (::kill(id, 0) == 0 || errno == EPERM);
  return alive ? pid : std::string();
}

// The locks this process holds: directory "device:inode" -> the lock file's descriptor and how many holders.
struct Held {
  int fd = -1;
  int holders = 0;
};
std::mutex& held_mutex() {
  static std::mutex m;
  return m;
}
std::map<std::string, Held>& held() {
  static std::map<std::string, Held> h;
  return h;
}

}  // namespace

RunDirectoryLock::RunDirectoryLock(const std::string& dir, const std::string& who) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  GRAFT_CHECK(!ec, who, ": cannot create the run directory '", dir, "': ", ec.message());
  struct stat st {};
  GRAFT_CHECK(::stat(dir.c_str(), &st) == 0, who, ": cannot inspect the run directory '", dir, "': ",
              std::strerror(errno));
  const std::string key = std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);
  std::lock_guard<std::mutex> guard(held_mutex());
  if (auto it = held().find(key); it != held().end()) {  // this process holds it already
    ++it->second.holders;
    key_ = key;
    return;
  }
  const std::string path = (std::filesystem::path(dir) / kFileName).string();
  // O_NOFOLLOW: a link planted there must not make the pid write below truncate the file it points to.
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
  // Another user's lock file in a shared directory: flock works on a read-only descriptor too (no pid written).
  const bool read_only = fd < 0 && errno == EACCES;
  if (read_only) fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  GRAFT_CHECK(fd >= 0, who, ": cannot open the run directory's lock file '", path, "': ", std::strerror(errno),
              errno == ELOOP ? " (it is a symbolic link; remove it)" : "");
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int error = errno;
    const std::string pid = error == EWOULDBLOCK ? holder_of(fd) : std::string();
    ::close(fd);
    GRAFT_CHECK(error != EWOULDBLOCK, who, ": the run directory '", dir, "' is in use by ",
                pid.empty() ? std::string("another process") : "process " + pid + " (as its " + kFileName + " says)",
                ": another training run writes there; wait for it to end, or choose another run directory");
    return;  // ENOLCK, EOPNOTSUPP, EINVAL: a file system without flock; the run goes on unlocked
  }
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (!read_only && ::ftruncate(fd, 0) == 0) {
    [[maybe_unused]] const ssize_t written = ::pwrite(fd, pid.data(), pid.size(), 0);  // informative only
  }
  held()[key] = Held{fd, 1};
  key_ = key;
}

RunDirectoryLock::~RunDirectoryLock() {
  if (key_.empty()) return;  // not locked (a file system without flock)
  std::lock_guard<std::mutex> guard(held_mutex());
  auto it = held().find(key_);
  if (it == held().end() || --it->second.holders > 0) return;
  ::close(it->second.fd);  // closing the last descriptor of the open file releases the flock
  held().erase(it);
}

}  // namespace graft
