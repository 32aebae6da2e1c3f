#include "io/hdf5_isolation.h"

#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <set>
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

// A file as it is now: which file (device, inode: any path or hard link to it) and which contents (size,
// modification and change times). Replacing or rewriting the file changes the key.
using FileKey = std::tuple<dev_t, ino_t, off_t, std::int64_t, std::int64_t>;

bool file_key(const std::string& path, FileKey& key) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return false;
  auto ns = [](const timespec& t) { return static_cast<std::int64_t>(t.tv_sec) * 1000000000 + t.tv_nsec; };
  key = {st.st_dev, st.st_ino, st.st_size, ns(st.st_mtim), ns(st.st_ctim)};
  return true;
}

// The verdicts on files checked so far: an empty refusal when the check passed. A refusal is thrown again without a
// second check (is_checkpoint and then inspect_weights open the same file); one for running out of time only while
// the time limit is no longer than the one it ran out of.
struct Verdict {
  std::string refusal;
  double timed_out_after = 0;  // seconds; 0: not a timeout
};
std::map<FileKey, Verdict> verdicts;

template <typename Step>
void skipping_errors(Step&& step) {
  try {
    step();
  } catch (const Error&) {
    // a refusal is not what the check looks for: the real read will report it
  }
}

// The attributes of `object` by name and as strings, and its values when it is a float dataset.
void read_own_contents(const File& file, const std::string& object) {
  skipping_errors([&] {
    for (const auto& name : file.attribute_names(object))
      skipping_errors([&] { file.string_list_attribute(object, name); });
  });
  skipping_errors([&] {
    if (file.has_dataset(object) && file.dataset_info(object).value_class == ValueClass::Float)
      file.read_floats(object);
  });
}

// The child's exit codes. Any other ending - a signal, or a sanitizer's report (ASan exits with 1 by default) - means
// the file broke libhdf5.
constexpr int kCheckDone = 0;            // read everything, or met a graft::Error on the way
constexpr int kCheckOtherException = 3;  // another C++ exception

// The child's whole life: no return into the caller's stack, no atexit handlers, no destructors of the parent's
// objects (they would run twice): _exit.
[[noreturn]] void run_check(const std::string& path, pid_t parent, double timeout_seconds) {
  inside_check = true;
  // Dies with the parent (a CLI killed by a scheduler must not leave a child looping in libhdf5 forever); the parent
  // may already be gone before the request took effect.
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent) _exit(kCheckDone);
  rlimit no_core{0, 0};
  setrlimit(RLIMIT_CORE, &no_core);  // a crash here is an expected outcome, not a core file to keep
  // CPU time as a second limit: load or a stopped terminal cannot make a loop look like a slow read, or the reverse.
  const rlim_t cpu_seconds = static_cast<rlim_t>(std::ceil(timeout_seconds)) + 1;
  rlimit cpu{cpu_seconds, cpu_seconds + 1};
  setrlimit(RLIMIT_CPU, &cpu);
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

std::string timeout_refusal(const std::string& path, double timeout_seconds) {
  return detail::concat("hdf5: reading '", path, "' did not finish within ", timeout_seconds,
                        " s in a check process (libhdf5 loops forever on some damaged files), so graft refuses the "
                        "file; on a slow disk, raise GRAFT_HDF5_CHECK_SECONDS");
}

// Sets SIGCHLD to its default for one scope: a SIGCHLD ignored by the program (or inherited as ignored from the one
// that started it) makes the kernel reap the child itself, and waitpid could then never see how the check ended.
class DefaultSigchld {
 public:
  DefaultSigchld() {
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    restore_ = sigaction(SIGCHLD, &dfl, &saved_) == 0;
  }
  ~DefaultSigchld() {
    if (restore_) sigaction(SIGCHLD, &saved_, nullptr);
  }
  DefaultSigchld(const DefaultSigchld&) = delete;
  DefaultSigchld& operator=(const DefaultSigchld&) = delete;

 private:
  struct sigaction saved_ {};
  bool restore_ = false;
};

// Forks, waits, and returns the verdict. Throws (nothing to keep) when the check itself cannot run.
Verdict check_verdict(const std::string& path, double timeout_seconds) {
  DefaultSigchld sigchld;
  std::fflush(nullptr);  // output buffered now would be written by both processes
  const pid_t parent = getpid();
  const pid_t child = fork();
  if (child < 0)
    GRAFT_FAIL("hdf5: cannot check '", path, "' in a child process (fork: ", std::strerror(errno),
               "); GRAFT_HDF5_CHECK_SECONDS=0 skips the check");
  if (child == 0) run_check(path, parent, timeout_seconds);

  using Clock = std::chrono::steady_clock;
  const auto deadline = Clock::now() + std::chrono::duration<double>(timeout_seconds);
  auto pause = std::chrono::microseconds(500);
  int status = 0;
  bool killed = false;
  for (;;) {
    const pid_t done = waitpid(child, &status, WNOHANG);
    if (done == child) break;
    if (done < 0 && errno != EINTR)
      GRAFT_FAIL("hdf5: cannot check '", path, "' in a child process (waitpid: ", std::strerror(errno), ")");
    if (Clock::now() > deadline) {
      kill(child, SIGKILL);
      while (waitpid(child, &status, 0) < 0 && errno == EINTR) {
      }
      killed = true;
      break;
    }
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::microseconds(50000));
  }
  // A child that ended on its own just before the kill is judged by how it ended.
  if (WIFSIGNALED(status) && (WTERMSIG(status) == SIGXCPU || (killed && WTERMSIG(status) == SIGKILL)))
    return {timeout_refusal(path, timeout_seconds), timeout_seconds};
  if (WIFSIGNALED(status))
    return {detail::concat("hdf5: '", path, "' is damaged: libhdf5 crashed reading it in a check process (",
                           strsignal(WTERMSIG(status)), "), so graft refuses the file")};
  const int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  if (code != kCheckDone && code != kCheckOtherException)
    return {detail::concat("hdf5: '", path, "' is damaged: libhdf5 crashed reading it in a check process (exit code ",
                           code, "), so graft refuses the file")};
  return {};
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

std::size_t read_everything(const File& file) {
  skipping_errors([&] { file.datasets_below("/"); });  // the readers' own walk, as they call it
  // Every object once, however many links lead to it (a hand-made file can link groups into cycles or share them
  // many times over) and however deep (the readers follow paths of any depth): an explicit stack, no recursion.
  std::set<std::string> seen;
  std::vector<std::string> pending{"/"};
  while (!pending.empty()) {
    const std::string object = std::move(pending.back());
    pending.pop_back();
    std::string identity;
    skipping_errors([&] { identity = file.object_identity(object); });
    // an unreadable header (its object cannot be opened: io/hdf5.h): nothing in it or below it can be reached, and
    // the walk goes on with the others
    if (identity.empty()) continue;
    if (!seen.insert(identity).second) continue;
    read_own_contents(file, object);
    bool group = false;
    skipping_errors([&] { group = file.has_group(object); });
    if (!group) continue;
    std::vector<std::string> names;
    skipping_errors([&] { names = file.children(object); });
    for (auto name = names.rbegin(); name != names.rend(); ++name) pending.push_back(join(object, *name));
  }
  return seen.size();
}

void check_in_child(const std::string& path, double timeout_seconds) {
  FileKey key;
  const bool keyed = file_key(path, key);
  if (keyed) {
    std::lock_guard<std::mutex> lock(state_mutex);
    auto found = verdicts.find(key);
    if (found != verdicts.end()) {
      const Verdict& v = found->second;
      if (v.refusal.empty()) return;
      if (v.timed_out_after == 0 || timeout_seconds <= v.timed_out_after) GRAFT_FAIL(v.refusal);
    }
  }
  Verdict verdict = check_verdict(path, timeout_seconds);
  if (keyed) {
    std::lock_guard<std::mutex> lock(state_mutex);
    verdicts[key] = verdict;
  }
  if (!verdict.refusal.empty()) GRAFT_FAIL(verdict.refusal);
}

}  // namespace graft::hdf5
