#include "io/hdf5_write.h"

#include <hdf5.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>

#include "core/error.h"
#include "io/hdf5.h"
#include "io/temporary_file.h"

namespace graft::hdf5 {
namespace {

// Strings as one fixed-length HDF5 string array: each padded with NULs to `width`, the longest's length + 1.
std::vector<char> pack_fixed_strings(const std::vector<std::string>& values, std::size_t& width) {
  width = 1;
  for (const auto& v : values) width = std::max(width, v.size() + 1);
  std::vector<char> packed(width * values.size(), '\0');
  for (std::size_t i = 0; i < values.size(); ++i) std::copy(values[i].begin(), values[i].end(), &packed[i * width]);
  return packed;
}

// HDF5 string types say UTF-8 only when every byte sequence is UTF-8: file names need not be (a Latin-1 name on
// Linux), and h5py's asstr() would fail on a dataset that claimed it. Others are typed ASCII, which h5py reads as
// bytes.
bool valid_utf8(const std::string& text) {
  for (std::size_t i = 0; i < text.size();) {
    const auto byte = static_cast<unsigned char>(text[i]);
    const int length = byte < 0x80 ? 1 : (byte >> 5) == 0x6 ? 2 : (byte >> 4) == 0xE ? 3 : (byte >> 3) == 0x1E ? 4 : 0;
    if (length == 0 || i + length > text.size()) return false;
    std::uint32_t code = length == 1 ? byte : byte & (0x7F >> length);
    for (int k = 1; k < length; ++k) {
      const auto next = static_cast<unsigned char>(text[i + k]);
      if ((next & 0xC0) != 0x80) return false;
      code = (code << 6) | (next & 0x3F);
    }
    const std::uint32_t smallest[] = {0, 0, 0x80, 0x800, 0x10000};  // overlong encodings are not UTF-8
    if (code < smallest[length] || code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF)) return false;
    i += static_cast<std::size_t>(length);
  }
  return true;
}

H5T_cset_t string_cset(const std::vector<std::string>& values) {
  for (const std::string& v : values)
    if (!valid_utf8(v)) return H5T_CSET_ASCII;
  return H5T_CSET_UTF8;
}

// A fixed-length, NUL-terminated string type of `width` bytes.
Handle string_type(std::size_t width, H5T_cset_t cset) {
  Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(type.get(), width);
  H5Tset_cset(type.get(), cset);
  return type;
}

// Link-creation properties that create missing groups on the way to a new object.
Handle intermediate_groups() {
  Handle links(H5Pcreate(H5P_LINK_CREATE), H5Pclose);
  H5Pset_create_intermediate_group(links.get(), 1);
  return links;
}

}  // namespace

Writer::Writer(const std::string& path) : path_(path), tmp_(path, "hdf5") {
  check_replaceable_file(path, "hdf5:");  // commit() renames the finished file over `path`
  prepare_library();
  // H5F_ACC_EXCL: fails if anything is at the temporary name (a link planted there would be followed)
  file_ = Handle(H5Fcreate(tmp_.name().c_str(), H5F_ACC_EXCL, H5P_DEFAULT, H5P_DEFAULT), H5Fclose);
  GRAFT_CHECK(file_.valid(), "hdf5: cannot create '", path, "' (directory missing or not writable?)");
  tmp_.mark_created();  // ours from now on, and held (locked) until commit() renames it: other writers leave it alone
}

void Writer::fail(const std::string& what) {
  file_.close();
  tmp_.discard();
  GRAFT_FAIL("hdf5: writing '", path_, "' failed at ", what, "; no file was left behind");
}

void Writer::write_dataset(const std::string& name, std::int64_t file_type, std::int64_t memory_type, const Shape& dims,
                           const void* data) {
  std::vector<hsize_t> extent(dims.begin(), dims.end());
  const Handle space(extent.empty() ? H5Screate(H5S_SCALAR)
                                    : H5Screate_simple(static_cast<int>(extent.size()), extent.data(), nullptr),
                     H5Sclose);
  const Handle links = intermediate_groups();
  Handle set(space.valid()
                 ? H5Dcreate2(file_.get(), name.c_str(), file_type, space.get(), links.get(), H5P_DEFAULT, H5P_DEFAULT)
                 : -1,
             H5Dclose);
  const bool created = set.valid();
  bool ok = created && H5Dwrite(set.get(), memory_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0;
  if (!set.close()) ok = false;
  if (!ok)
    fail("dataset '" + name + (created ? "' (disk full or not writable?)" : "' (a name written twice, or not valid?)"));
}

void Writer::dataset(const std::string& name, const Tensor& tensor) {
  check_float(tensor, "hdf5 write", name.c_str());
  Tensor host = tensor.detach().to(kCPU);
  write_dataset(name, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, host.shape(), host.data<float>());
}

void Writer::append_rows(const std::string& name, const Tensor& rows) {
  check_float(rows, "hdf5 append_rows", name.c_str());
  GRAFT_CHECK(rows.ndim() >= 1, "hdf5: append_rows '", name, "' in '", path_, "': rows of shape ",
              shape_str(rows.shape()), " have no first axis to grow");
  Tensor host = rows.detach().to(kCPU);
  const std::vector<hsize_t> shape(host.shape().begin(), host.shape().end());
  const int rank = static_cast<int>(shape.size());
  Handle set;
  if (H5Lexists(file_.get(), name.c_str(), H5P_DEFAULT) > 0) {
    set = Handle(H5Dopen2(file_.get(), name.c_str(), H5P_DEFAULT), H5Dclose);
  } else {
    std::vector<hsize_t> empty(shape), unlimited(shape), chunk(shape);
    empty[0] = 0;
    unlimited[0] = H5S_UNLIMITED;
    // Chunks of at most kChunkBytes: whole rows when a row fits (chunk[0] rows of them), else one row cut along
    // its trailing axes (HDF5 caps a chunk at 4 GiB; a chunk dimension must be >= 1).
    constexpr hsize_t kChunkBytes = hsize_t{1} << 18;
    hsize_t room = kChunkBytes / 4;  // floats left for the axes not yet sized, from the last axis backwards
    for (int i = rank - 1; i >= 1; --i) {
      chunk[i] = std::clamp<hsize_t>(shape[i], 1, std::max<hsize_t>(room, 1));
      room /= chunk[i];
    }
    chunk[0] = std::max<hsize_t>(room, 1);
    const Handle space(H5Screate_simple(rank, empty.data(), unlimited.data()), H5Sclose);
    const Handle links = intermediate_groups();
    const Handle create(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
    const bool chunked = H5Pset_chunk(create.get(), rank, chunk.data()) >= 0;
    if (space.valid() && chunked)
      set = Handle(
          H5Dcreate2(file_.get(), name.c_str(), H5T_IEEE_F32LE, space.get(), links.get(), create.get(), H5P_DEFAULT),
          H5Dclose);
    if (!set.valid()) fail("dataset '" + name + "' (a name written twice, or not valid?)");
  }
  if (!set.valid()) fail("dataset '" + name + "' (cannot open it to append)");
  // The dataset's current extent: the trailing axes must match the rows'.
  std::vector<hsize_t> extent, max_extent;
  {
    const Handle space(H5Dget_space(set.get()), H5Sclose);
    extent.resize(std::max(H5Sget_simple_extent_ndims(space.get()), 0));
    max_extent.resize(extent.size());
    H5Sget_simple_extent_dims(space.get(), extent.data(), max_extent.data());
  }
  const Shape have(extent.begin(), extent.end());
  if (extent.size() != shape.size() || !std::equal(extent.begin() + 1, extent.end(), shape.begin() + 1)) {
    GRAFT_FAIL("hdf5: append_rows '", name, "' in '", path_, "': rows of shape ", shape_str(host.shape()),
               " do not continue a dataset of shape ", shape_str(have), " (the axes after the first must match)");
  }
  if (max_extent[0] != H5S_UNLIMITED) {
    GRAFT_FAIL("hdf5: append_rows '", name, "' in '", path_, "': the dataset of shape ", shape_str(have),
               " was written whole, not by append_rows, and cannot grow");
  }
  bool ok = true;
  if (shape[0] > 0) {
    std::vector<hsize_t> grown(extent), start(rank, 0);
    grown[0] += shape[0];
    start[0] = extent[0];
    ok = H5Dset_extent(set.get(), grown.data()) >= 0;
    const Handle file_space(ok ? H5Dget_space(set.get()) : -1, H5Sclose);
    const Handle memory_space(H5Screate_simple(rank, shape.data(), nullptr), H5Sclose);
    ok = ok && file_space.valid() && memory_space.valid() &&
         H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, start.data(), nullptr, shape.data(), nullptr) >= 0 &&
         H5Dwrite(set.get(), H5T_NATIVE_FLOAT, memory_space.get(), file_space.get(), H5P_DEFAULT, host.data<float>()) >=
             0;
  }
  // Closing writes the chunk cache out (about one chunk per call): a full disk shows here as often as in H5Dwrite.
  if (!set.close()) ok = false;
  if (!ok) fail("appending to dataset '" + name + "' (disk full or not writable?)");
}

void Writer::string_dataset(const std::string& name, const std::vector<std::string>& values) {
  GRAFT_CHECK(!values.empty(), "hdf5: dataset '", name, "' in '", path_, "': no strings to write");
  std::size_t width = 0;
  const std::vector<char> packed = pack_fixed_strings(values, width);
  const Handle type = string_type(width, string_cset(values));
  write_dataset(name, type.get(), type.get(), {static_cast<std::int64_t>(values.size())}, packed.data());
}

void Writer::int64_scalar(const std::string& name, std::int64_t value) {
  write_dataset(name, H5T_STD_I64LE, H5T_NATIVE_INT64, {}, &value);
}

// Attributes live in their object's header, which HDF5 caps at 64 KiB: a checkpoint's class_names (one line per
// class) reaches that at several thousand classes. A failed write says so when the value was that large.
void Writer::write_attribute(const std::string& object, const std::string& name, const Handle& type,
                             const Handle& space, const void* data, std::size_t bytes) {
  Handle attr(space.valid() ? H5Acreate_by_name(file_.get(), object.c_str(), name.c_str(), type.get(), space.get(),
                                                H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)
                            : -1,
              H5Aclose);
  bool ok = attr.valid() && H5Awrite(attr.get(), type.get(), data) >= 0;
  if (!attr.close()) ok = false;
  if (!ok)
    fail("attribute '" + name + "' of '" + object + "' " +
         (bytes > 60000 ? "(" + std::to_string(bytes) + " bytes: HDF5 keeps attributes in a 64 KiB object header)"
                        : "(no such object, or the attribute written twice?)"));
}

// Fixed-length (null-terminated) strings, stored inline in the attribute message. Variable-length strings live in
// HDF5's global heap, and libhdf5 1.10's H5HG_read trusts the heap's object sizes: a damaged checkpoint crashed it
// inside H5Aread (memcpy of ~2^62 bytes; found by tests/fuzz/fuzz_checkpoint). Readers accept both kinds.
void Writer::attribute(const std::string& name, const std::string& value) {
  write_attribute("/", name, string_type(value.size() + 1, string_cset({value})),
                  Handle(H5Screate(H5S_SCALAR), H5Sclose), value.c_str(), value.size() + 1);
}

void Writer::string_list_attribute(const std::string& object, const std::string& name,
                                   const std::vector<std::string>& values) {
  GRAFT_CHECK(!values.empty(), "hdf5: attribute '", name, "' of '", object, "' in '", path_,
              "': an empty string list has no fixed-length string type; write at least one string");
  std::size_t width = 0;
  const std::vector<char> packed = pack_fixed_strings(values, width);
  const hsize_t count = values.size();
  write_attribute(object, name, string_type(width, H5T_CSET_ASCII),
                  Handle(H5Screate_simple(1, &count, nullptr), H5Sclose), packed.data(), packed.size());
}

void Writer::commit() {
  GRAFT_CHECK(file_.valid(), "hdf5: '", path_, "' was already committed");
  const bool ok = file_.close();  // closing flushes: a full disk shows here
  if (!ok) {
    tmp_.discard();
    GRAFT_FAIL("hdf5: writing '", path_, "' failed while flushing (disk full?); no file was left behind");
  }
  tmp_.commit();
}

void check_replaceable_file(const std::string& path, const std::string& who) {
  std::error_code ec;
  const std::filesystem::file_status status = std::filesystem::symlink_status(path, ec);
  GRAFT_CHECK(!std::filesystem::exists(status) || std::filesystem::is_regular_file(status), who, " '", path, "' is ",
              std::filesystem::is_symlink(status) ? "a symbolic link" : "not a regular file (a device or a pipe?)",
              "; graft writes its output files only to regular files (give another path)");
}

void write_float_datasets(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& datasets) {
  Writer writer(path);
  for (const auto& [name, tensor] : datasets) writer.dataset(name, tensor);
  writer.commit();
}

}  // namespace graft::hdf5
