// The temporary name a finished output is written under before it is renamed over the output (TemporaryFile,
// below): OUT.tmp-graft-<pid>-<n>, beside OUT, n a random 64-bit number drawn at each call. The writer's process id
// and n keep two writers of the same output at once from sharing (and removing, or renaming) one another's
// temporary - also writers in other pid namespaces (containers, where graft may be pid 1) or on other machines
// sharing the folder: each finishes its own file and the last rename wins, as with cp. A writer holds an flock on its
// temporary from creating it until it is renamed (hold_temporary); the next writer of the same output removes the
// temporaries nobody holds - those of writers that died without cleaning up (kill -9, a power cut) - and the name
// older versions used, OUT.tmp-graft. A temporary younger than a minute is left alone even unlocked (the instants
// before its writer locks it; its process id may look dead here and belong to a writer in another pid namespace).
// On file systems without flock a temporary counts as abandoned when it is older than a minute and kill(pid, 0)
// finds no such process.
#pragma once
#include <cstdio>
#include <string>

namespace graft {

// OUT.tmp-graft-<this process's id>-<a random number drawn at each call>
std::string temporary_path_for(const std::string& path);

// Marks the temporary open at `fd` as being written (an flock held until the descriptor is closed).
void hold_temporary(int fd);

// Removes OUT.tmp-graft and every OUT.tmp-graft-<pid>[-<n>] beside `path` that no writer holds (see above), and
// links at those names. Errors are ignored: at worst a stale temporary stays. (A writer creates its own name
// exclusively, so a link planted there is never followed.)
void remove_dead_temporaries(const std::string& path);

// An output written under a temporary name beside it and renamed over it by commit(): a writer that fails, throws or
// is killed leaves the output as it was (or absent). Used by every file graft writes (hdf5::Writer: weights,
// checkpoints, features; predict's CSV; fit's log.csv, curves.png and finetune's run.txt). The data is synced to
// disk before the rename, so a power cut leaves the old output or the new one. Destroying it uncommitted closes and
// removes the temporary.
class TemporaryFile {
 public:
  // Removes the abandoned temporaries of `path` and picks a fresh temporary name. Nothing is created yet. `who` opens
  // every error message.
  TemporaryFile(std::string path, std::string who);
  ~TemporaryFile();
  TemporaryFile(const TemporaryFile&) = delete;
  TemporaryFile& operator=(const TemporaryFile&) = delete;

  const std::string& path() const { return path_; }
  // The temporary's name, for a writer that creates the file itself (exclusively: HDF5's H5F_ACC_EXCL), then calls
  // mark_created() and marks its descriptor with hold_temporary.
  const std::string& name() const { return name_; }
  // The writer created the file at name() itself: from now on it is this object's to rename or remove (before, a
  // file at that name is someone else's and is never removed).
  void mark_created();
  // Creates the temporary exclusively (O_EXCL: nothing planted at the name is followed; a name already taken is
  // drawn again), holds its flock, and returns a stream writing to it, owned by this object.
  std::FILE* create();
  // Flushes and closes the stream create() made (if any), syncs the temporary to disk, then renames it over the
  // output. On any failure the temporary is removed, the output is as it was, and it throws an Error naming both
  // files and the system's reason.
  void commit();
  // Closes and removes the temporary (a write failed); the output is as it was.
  void discard();

 private:
  std::string path_, who_, name_;
  void release_hold();
  std::FILE* file_ = nullptr;
  int held_ = -1;          // our descriptor on the temporary, holding its flock until the rename (or removal)
  bool created_ = false;   // the file at name_ is ours (create() or mark_created())
  bool finished_ = false;  // renamed or removed: nothing left to do
};

}  // namespace graft
