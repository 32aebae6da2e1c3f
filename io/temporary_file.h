// The temporary name a finished output is written under before it is renamed over the output (TemporaryFile,
// below): OUT.tmp-graft-<pid>-<n>, beside OUT. The writer's process id (and a count within the
// process) keeps two writers of the same output at once from sharing (and removing, or renaming) one another's
// temporary: each finishes its own file and the last rename wins, as with cp. A writer holds an flock on its
// temporary while it writes (hold_temporary); the next writer of the same output removes the temporaries nobody
// holds - those of writers that died without cleaning up (kill -9, a power cut) - and the name older versions used,
// OUT.tmp-graft. A temporary younger than a minute whose process is alive here is left alone even unlocked (the
// instants before its writer locks it, or between closing and renaming it). On file systems without flock a
// temporary counts as abandoned when kill(pid, 0) finds no such process.
#pragma once
#include <cstdio>
#include <string>

namespace graft {

// OUT.tmp-graft-<this process's id>-<a number new at each call>
std::string temporary_path_for(const std::string& path);

// Marks the temporary open at `fd` as being written (an flock held until the descriptor is closed).
void hold_temporary(int fd);

// Removes OUT.tmp-graft and every OUT.tmp-graft-<pid>[-<n>] beside `path` that no writer holds (see above), and
// links at those names. Errors are ignored: at worst a stale temporary stays. (A writer still removes its own name
// before creating it exclusively: a link planted there must never be followed.)
void remove_dead_temporaries(const std::string& path);

// An output written under a temporary name beside it and renamed over it by commit(): a writer that fails, throws or
// is killed leaves the output as it was (or absent). Used by every file graft writes (hdf5::Writer, the predict CSV,
// fit's log.csv and curves.png). Destroying it uncommitted closes and removes the temporary.
class TemporaryFile {
 public:
  // Removes the abandoned temporaries of `path` and picks a fresh temporary name (anything already at that name is
  // removed: it is a leftover of this process or planted). Nothing is created yet. `who` opens every error message.
  TemporaryFile(std::string path, std::string who);
  ~TemporaryFile();
  TemporaryFile(const TemporaryFile&) = delete;
  TemporaryFile& operator=(const TemporaryFile&) = delete;

  const std::string& path() const { return path_; }
  // The temporary's name, for a writer that creates the file itself (exclusively: HDF5's H5F_ACC_EXCL) and then
  // marks its descriptor with hold_temporary.
  const std::string& name() const { return name_; }
  // Creates the temporary exclusively (O_EXCL: nothing planted at the name is followed), holds its flock, and
  // returns a stream writing to it, owned by this object.
  std::FILE* create();
  // Flushes, syncs and closes the stream create() made (if any), then renames the temporary over the output. On any
  // failure the temporary is removed, the output is as it was, and it throws an Error naming both files.
  void commit();
  // Closes and removes the temporary (a write failed); the output is as it was.
  void discard();

 private:
  std::string path_, who_, name_;
  std::FILE* file_ = nullptr;
  bool finished_ = false;
};

}  // namespace graft
