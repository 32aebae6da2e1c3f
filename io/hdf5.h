// A small read-only view of an HDF5 file over the HDF5 C API (RAII: every hid_t is closed by its owner).
// Objects are named by absolute paths ("/conv1_conv/conv1_conv/kernel:0"); HDF5 walks the '/' itself.
// Every failure is a graft::Error naming the file and the object, with HDF5's own innermost reason appended;
// HDF5's automatic error printing is switched off.
//
// Strings: attributes may be fixed-length (null-padded, possibly without terminator; h5py < 3, numpy 'S' arrays)
// or variable-length (h5py >= 3 from str); both read the same. Keras's empty `weight_names` is a float64 (0,)
// attribute: it reads as an empty list. Keras splits attributes over 64512 bytes into name0, name1, ...
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "io/hdf5_handle.h"

namespace graft::hdf5 {

enum class ValueClass { Float, Integer, String, Other };

struct DatasetInfo {
  std::string path;  // absolute, e.g. "/layer1.0.conv1.weight"
  Shape shape;       // () for a scalar
  ValueClass value_class = ValueClass::Other;
  std::string dtype;  // "float32", "float64", "float16", "int64", "uint8", ..., "string", "other"
};

// Called before graft's first HDF5 call in a process (File and Writer do): silences HDF5's error printing (graft
// reports errors itself) and keeps libhdf5 from registering its exit-time cleanup. libhdf5 1.10 crashes in that
// cleanup (H5F__close_cb) after a failed write, e.g. on a full disk, turning a clean "disk full" error into a
// segfault at exit; graft closes every file it opens itself, so the cleanup has nothing left to do. A program that
// links graft and uses HDF5 directly should close its own files before it exits (and if it calls HDF5 before graft
// does, the library keeps its cleanup, and the crash after a failed write with it).
void prepare_library();

class File {
 public:
  // Opens read-only. Throws graft::Error: missing file, a directory, not HDF5, truncated or unreadable, and with
  // crash isolation on (io/hdf5_isolation.h), a file that crashes or hangs libhdf5 in a check process.
  explicit File(const std::string& path);
  File(File&& other) noexcept = default;  // the moved-from File holds no file
  File& operator=(File&&) = delete;
  File(const File&) = delete;
  File& operator=(const File&) = delete;

  const std::string& path() const { return path_; }

  // False when no link of that name exists (also when the path runs through a dataset). A link whose object cannot
  // be opened - a damaged object header, a dangling soft or external link - is a graft::Error naming it, here and in
  // every call below that meets it (datasets_below: anywhere in the group), never an absent object: a damaged tensor
  // must not look like a missing one.
  bool has_group(const std::string& path) const;
  bool has_dataset(const std::string& path) const;
  bool has_attribute(const std::string& object, const std::string& name) const;
  // Names of the attributes of `object` (a group or a dataset), in name order.
  std::vector<std::string> attribute_names(const std::string& object) const;
  // The same string for every path that leads to one object (hard links): its address in the file.
  std::string object_identity(const std::string& path) const;
  // Direct children of a group (links in name order), groups and datasets alike.
  std::vector<std::string> children(const std::string& group) const;
  // Every dataset below `group`, depth first, in name order.
  std::vector<DatasetInfo> datasets_below(const std::string& group) const;
  DatasetInfo dataset_info(const std::string& path) const;

  // A list of strings from attribute `name` of `object`, or from name0, name1, ... when it was split.
  // A scalar string attribute gives one element; an empty numeric attribute gives none.
  std::vector<std::string> string_list_attribute(const std::string& object, const std::string& name) const;
  bool has_string_list_attribute(const std::string& object, const std::string& name) const;

  // The dataset's values converted to float32 by HDF5 (float16/32/64 sources). Integer and other classes are
  // refused: weights are floats, and an integer tensor where a weight is expected means a wrong file.
  std::vector<float> read_floats(const std::string& path) const;
  // The same into caller memory of exactly `count` elements (the dataset's element count).
  void read_floats_into(const std::string& path, float* out, std::int64_t count) const;

 private:
  Handle id_;  // the open file (H5Fclose when the File goes)
  std::string path_;
};

// Joins a group path and a relative name: join("/", "a") = "/a", join("/g", "x/y") = "/g/x/y".
std::string join(const std::string& group, const std::string& name);

}  // namespace graft::hdf5
