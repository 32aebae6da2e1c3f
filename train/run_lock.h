// One run per run directory. fit() holds an advisory lock (flock) on OUT/.graft-lock from start to end, so a second
// run into the same directory - another `graft finetune --out OUT`, or a --resume while the first run still goes -
// is refused, naming the process that holds it, instead of interleaving the two runs' log.csv, last.h5 and best.h5.
// The kernel drops the lock when the holder ends, however it ends (a crash or kill -9 included), so a dead run never
// blocks the next one; the file stays behind, holding the last holder's process id. On file systems without flock
// (some network mounts refuse it) the run goes on unlocked.
// Within one process the lock is re-entrant: graft finetune takes it before writing run.txt, and the fit() it calls
// takes it again (the same directory, however spelt, by device and inode). Two threads of one process running into
// the same directory are not told apart.
#pragma once
#include <string>

namespace graft {

class RunDirectoryLock {
 public:
  // Creates `dir` if needed and takes its lock, or throws graft::Error ("<who>: the run directory ... is in use by
  // process N ..."). The lock file must be a plain file: a link there is refused.
  RunDirectoryLock(const std::string& dir, const std::string& who);
  ~RunDirectoryLock();  // releases the lock (the file stays)
  RunDirectoryLock(const RunDirectoryLock&) = delete;
  RunDirectoryLock& operator=(const RunDirectoryLock&) = delete;

  static constexpr const char* kFileName = ".graft-lock";

 private:
  std::string key_;  // the directory's "device:inode"
};

}  // namespace graft
