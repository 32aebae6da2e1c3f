// Crash isolation for HDF5 reads.
//
// Debian 12's libhdf5 1.10.8 is not memory-safe on damaged files (upstream CVEs, fixed in 1.14): a corrupted or
// crafted file can crash it (use-after-free, a wild memcpy) or make it loop forever, inside the library, before any
// check of graft's can look at what it returns. The CI fuzzers find such files within seconds.
//
// With isolation on, hdf5::File's constructor first reads the whole file in a forked child process - every group,
// every attribute as strings, every floating-point dataset, through File's own calls, so the child takes every path
// graft's readers can take - and refuses the file with a graft::Error when that child dies from a signal or runs
// past the time limit. Only then is the file opened in this process. A child that merely met a graft::Error changes
// nothing: the same error follows here, from the real read. A file is not checked again while it is the same file
// (device and inode) with the same size, modification and change times: a refusal is repeated (one for running out of
// time only under a limit no longer than the one it ran out of), a pass lets the read go ahead.
//
// Cost: one more read of the file, from the page cache (ResNet-50's 100 MB of weights: ~0.1 s).
// The graft CLI turns isolation on (time limit: GRAFT_HDF5_CHECK_SECONDS, default 120; 0 turns it off). The library's
// default is off, because it forks: a program that turns it on must not have another thread inside libhdf5 then.
#pragma once
#include <cstddef>
#include <string>

namespace graft::hdf5 {

class File;

struct Isolation {
  bool enabled = false;
  double timeout_seconds = 120;  // per file
};

void set_isolation(const Isolation& isolation);
Isolation isolation();

// Reads everything in `file` that graft's readers can read - every object reachable from "/" once, at any depth -
// skipping (not throwing) the graft::Errors on the way.
// Returns how many objects it read.
std::size_t read_everything(const File& file);

// Reads `path` with read_everything in a child process; throws graft::Error when the child dies from a signal, or
// is still running after `timeout_seconds` of wall-clock time or has used that much CPU time (it is then killed).
// The child dies with this process. SIGCHLD is set to its default while the child runs. hdf5::File's constructor
// calls this when isolation is on; inside the child, isolation is off.
void check_in_child(const std::string& path, double timeout_seconds);

}  // namespace graft::hdf5
