// Writing HDF5 files all or nothing: a Writer writes under a temporary name in the target's directory
// (OUT.tmp-graft-<pid>-<n>, io/temporary_file.h: concurrent writers of one target never share it) and renames over the
// target only in commit(), so a crash or a full disk never leaves a broken file (the previous
// file, if any, stays intact). Every failure is a graft::Error naming the file and the object.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"
#include "io/hdf5_handle.h"
#include "io/temporary_file.h"

namespace graft::hdf5 {

class Writer {
 public:
  explicit Writer(const std::string& path);
  ~Writer() = default;  // without commit(): the file is closed, then the temporary removed
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

  // A float32 dataset of the tensor's shape (any device); '/' in the name creates the groups on the way.
  void dataset(const std::string& name, const Tensor& tensor);
  // Appends `rows` (float32, any device, shape (n, d1, d2, ...)) to a float32 dataset whose first axis grows: the
  // first call creates it (chunked, at most 256 KiB per chunk), later calls must give the same trailing shape. Lets a
  // caller write more rows than fit in memory, a batch at a time. n == 0 appends nothing (the dataset is still
  // created on a first call).
  void append_rows(const std::string& name, const Tensor& rows);
  // A 1-D dataset of fixed-length strings (the longest's length), at least one string; typed UTF-8 when every
  // string is valid UTF-8, else ASCII (bytes: a file name in another encoding). attribute() likewise.
  void string_dataset(const std::string& name, const std::vector<std::string>& values);
  // A 0-dim int64 dataset (what torch's BatchNorm num_batches_tracked is in a state_dict); groups as dataset().
  void int64_scalar(const std::string& name, std::int64_t value);
  // A fixed-length UTF-8 string attribute on the root group (see hdf5_write.cpp for why not variable-length).
  void attribute(const std::string& name, const std::string& value);
  // A 1-D attribute of fixed-length strings on `object` (a group written before, or "/"): how Keras files store
  // layer_names and weight_names. At least one string; attributes must stay under HDF5's 64 KiB header limit.
  void string_list_attribute(const std::string& object, const std::string& name,
                             const std::vector<std::string>& values);
  // Flushes, closes and renames into place.
  void commit();

 private:
  void fail(const std::string& what);
  // Creates dataset `name` (intermediate groups too) of `file_type`, shape `dims` (empty: a scalar), and writes
  // `data` of `memory_type` into it (hid_t values).
  void write_dataset(const std::string& name, std::int64_t file_type, std::int64_t memory_type, const Shape& dims,
                     const void* data);
  void write_attribute(const std::string& object, const std::string& name, const Handle& type, const Handle& space,
                       const void* data, std::size_t bytes);
  std::string path_;
  TemporaryFile tmp_;  // destroyed after file_ (members go in reverse order): removes the temporary unless committed
  Handle file_;
};

// Refuses (graft::Error "<who> '<path>' is ...") a path that a finished file cannot be renamed over safely: a
// symbolic link (its target would stay as it was), a device or a pipe would all be replaced by a plain file. An
// absent path or a regular file passes. Writer checks its path; other all-or-nothing writers (graft predict's CSV)
// and callers that want to refuse before hours of work (graft finetune's checkpoints) call it too.
void check_replaceable_file(const std::string& path, const std::string& who);

// Writes each (name, tensor) as a float32 dataset into a new file at `path` (one Writer, committed).
void write_float_datasets(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& datasets);

}  // namespace graft::hdf5
