#include "io/hdf5_isolation.h"

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <thread>
#include <tuple>
#include <vector>

#include "core/error.h"
#include "io/hdf5.h"

namespace graft::hdf5 {

namespace {

std::mutex state_mutex;
Isolation current;
// True only in a checking child: its own File must not fork again.
bool inside_check = false;

// The verdicts on files checked so far, by (canonical path, size, modification time): "" when the check passed,
// else the refusal, which is thrown again without a second check (is_checkpoint and inspect_weights open one file
// in turn).
using FileKey = std::tuple<std::string, std::uintmax_t, std::int64_t>;
std::map<FileKey, std::string> verdicts;

bool file_key(const std::string& path, FileKey& key) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path canonical = fs::canonical(path, ec);
  if (ec) return false;
  std::uintmax_t size = fs::file_size(canonical, ec);
  if (ec) return false;
  auto modified = fs::last_write_time(canonical, ec);
  if (ec) return false;
  key = {canonical.string(), size, static_cast<std::int64_t>(modified.time_since_epoch().count())};
  return true;
}

template <typename Step>
void skipping_errors(Step&& step) {
  try {
    step();
  } catch (const Error&) {
    // a refusal is not what the check looks for: the real read will report it
  }
}

void read_object(const File& file, const std::string& object, int depth) {
  skipping_errors([&] {
    for (const auto& name : file.attribute_names(object))
      skipping_errors([&] {
        if (file.has_attribute(object, name)) file.string_list_attribute(object, name);
      });
  });
  if (file.has_dataset(object)) {
    skipping_errors([&] {
      if (file.dataset_info(object).value_class == ValueClass::Float) file.read_floats(object);
    });
    return;
  }
  if (depth >= 64 || !file.has_group(object)) return;  // hard links can form cycles in a hand-made file
  std::vector<std::string> names;
  skipping_errors([&] { names = file.children(object); });
  for (const auto& name : names) read_object(file, join(object, name), depth + 1);
}

// The child's exit codes. Any other ending - a signal, or a sanitizer's report (ASan exits with 1 by default) - means
// the file broke libhdf5.
constexpr int kCheckDone = 0;            // read everything, or met a graft::Error on the way
constexpr int kCheckOtherException = 3;  // another C++ exception

// The child's whole life: no return into the caller's stack, no atexit handlers, no destructors of the parent's
// objects (they would run twice): _exit.
[[noreturn]] void run_check(const std::string& path) {
  inside_check = true;
  rlimit no_core{0, 0};
  setrlimit(RLIMIT_CORE, &no_core);  // a crash here is an expected outcome, not a core file to keep
  int code = kCheckDone;
  try {
    File file(path);
    read_everything(file);
  } catch (const Error&) {
  } catch (...) {
    code = kCheckOtherException;  // std::bad_alloc and the like: the real read will meet them too
  }
  _exit(code);
}

// Forks, waits, and returns "" when the check passed, else the refusal's message.
std::string check_verdict(const std::string& path, double timeout_seconds) {
  std::fflush(nullptr);  // output buffered now would be written by both processes
  const pid_t child = fork();
  if (child < 0)
    GRAFT_FAIL("hdf5: cannot check '", path, "' in a child process (fork: ", std::strerror(errno),
               "); GRAFT_HDF5_CHECK_SECONDS=0 skips the check");
  if (child == 0) run_check(path);

  using Clock = std::chrono::steady_clock;
  const auto deadline = Clock::now() + std::chrono::duration<double>(timeout_seconds);
  auto pause = std::chrono::microseconds(500);
  int status = 0;
  for (;;) {
    const pid_t done = waitpid(child, &status, WNOHANG);
    if (done == child) break;
    if (done < 0 && errno != EINTR) {
      // ECHILD: the program reaps children itself (SIGCHLD ignored); the check cannot say anything.
      return "";
    }
    if (Clock::now() > deadline) {
      kill(child, SIGKILL);
      while (waitpid(child, &status, 0) < 0 && errno == EINTR) {
      }
      return detail::concat("hdf5: reading '", path, "' did not finish within ", timeout_seconds,
                            " s in a check process (libhdf5 loops forever on some damaged files), so graft refuses the "
                            "file; on a slow disk, raise GRAFT_HDF5_CHECK_SECONDS");
    }
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::microseconds(50000));
  }
  if (WIFSIGNALED(status))
    return detail::concat("hdf5: '", path, "' is damaged: libhdf5 crashed reading it in a check process (",
                          strsignal(WTERMSIG(status)), "), so graft refuses the file");
  const int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  if (code != kCheckDone && code != kCheckOtherException)
    return detail::concat("hdf5: '", path, "' is damaged: libhdf5 crashed reading it in a check process (exit code ",
                          code, "), so graft refuses the file");
  return "";
}

}  // namespace

void set_isolation(const Isolation& isolation) {
  GRAFT_CHECK(isolation.timeout_seconds > 0, "hdf5: the isolation time limit must be positive, got ",
              isolation.timeout_seconds, " s");
  std::lock_guard<std::mutex> lock(state_mutex);
  current = isolation;
}

Isolation isolation() {
  if (inside_check) return Isolation{};
  std::lock_guard<std::mutex> lock(state_mutex);
  return current;
}

void read_everything(const File& file) {
  skipping_errors([&] { file.datasets_below("/"); });
  read_object(file, "/", 0);
}

void check_in_child(const std::string& path, double timeout_seconds) {
  FileKey key;
  const bool keyed = file_key(path, key);
  if (keyed) {
    std::lock_guard<std::mutex> lock(state_mutex);
    if (auto found = verdicts.find(key); found != verdicts.end()) {
      if (found->second.empty()) return;
      GRAFT_FAIL(found->second);
    }
  }
  const std::string refusal = check_verdict(path, timeout_seconds);
  if (keyed) {
    std::lock_guard<std::mutex> lock(state_mutex);
    verdicts[key] = refusal;
  }
  if (!refusal.empty()) GRAFT_FAIL(refusal);
}

}  // namespace graft::hdf5
