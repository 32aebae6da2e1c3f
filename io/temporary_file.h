// The temporary name a finished output is written under before it is renamed over the output (hdf5::Writer,
// graft predict's CSV): OUT.tmp-graft-<pid>-<n>, beside OUT. The writer's process id (and a count within the
// process) keeps two writers of the same output at once from sharing (and removing, or renaming) one another's
// temporary: each finishes its own file and the last rename wins, as with cp. Temporaries whose process died without
// cleaning up (kill -9, a power cut) are removed by the next writer of the same output; so is the name older
// versions used, OUT.tmp-graft.
// (A process counts as dead when kill(pid, 0) says there is no such process here: writers on other machines
// sharing a network folder are not told apart.)
#pragma once
#include <string>

namespace graft {

// OUT.tmp-graft-<this process's id>-<a number new at each call>
std::string temporary_path_for(const std::string& path);

// Removes OUT.tmp-graft and every OUT.tmp-graft-<pid>[-<n>] beside `path` whose process no longer exists. Errors
// are ignored: at worst a stale temporary stays. (A writer still removes its own name before creating it
// exclusively: a link planted there must never be followed.)
void remove_dead_temporaries(const std::string& path);

}  // namespace graft
