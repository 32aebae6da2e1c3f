// The temporary name a finished output is written under before it is renamed over the output (hdf5::Writer,
// graft predict's CSV): OUT.tmp-graft-<pid>-<n>, beside OUT. The writer's process id (and a count within the
// process) keeps two writers of the same output at once from sharing (and removing, or renaming) one another's
// temporary: each finishes its own file and the last rename wins, as with cp. A writer holds an flock on its
// temporary while it writes (hold_temporary); the next writer of the same output removes the temporaries nobody
// holds - those of writers that died without cleaning up (kill -9, a power cut) - and the name older versions used,
// OUT.tmp-graft. A temporary younger than a minute whose process is alive here is left alone even unlocked (the
// instants before its writer locks it, or between closing and renaming it). On file systems without flock a
// temporary counts as abandoned when kill(pid, 0) finds no such process.
#pragma once
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

}  // namespace graft
