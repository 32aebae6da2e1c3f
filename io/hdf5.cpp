#include "io/hdf5.h"

#include <hdf5.h>

#include <cstring>
#include <filesystem>
#include <type_traits>
#include <utility>

#include "core/allocator.h"
#include "core/error.h"
#include "io/hdf5_handle.h"
#include "io/hdf5_isolation.h"

namespace graft::hdf5 {

static_assert(std::is_same_v<hid_t, std::int64_t>, "graft needs HDF5 >= 1.10 (64-bit hid_t)");
static_assert(std::is_same_v<herr_t, int>, "io/hdf5_handle.h spells herr_t as int");

namespace {

// HDF5 reports its own errors on a stack; the innermost entry names the actual cause
// ("truncated file: eof = ...", "file signature not found").
herr_t innermost_cb(unsigned, const H5E_error2_t* entry, void* data) {
  if (entry->desc && entry->desc[0]) *static_cast<std::string*>(data) = entry->desc;
  return 0;
}

std::string hdf5_reason() {
  std::string reason;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, innermost_cb, &reason);
  H5Eclear2(H5E_DEFAULT);
  return reason.empty() ? std::string("HDF5 gave no reason") : reason;
}

[[noreturn]] void fail(const std::string& file, const std::string& what) {
  GRAFT_FAIL("hdf5: ", what, " in '", file, "': ", hdf5_reason());
}

std::string class_dtype(hid_t type) {
  std::size_t bytes = H5Tget_size(type);
  switch (H5Tget_class(type)) {
    case H5T_FLOAT:
      return "float" + std::to_string(8 * bytes);
    case H5T_INTEGER:
      return std::string(H5Tget_sign(type) == H5T_SGN_NONE ? "uint" : "int") + std::to_string(8 * bytes);
    case H5T_STRING:
      return "string";
    default:
      return "other";
  }
}

ValueClass value_class_of(hid_t type) {
  switch (H5Tget_class(type)) {
    case H5T_FLOAT:
      return ValueClass::Float;
    case H5T_INTEGER:
      return ValueClass::Integer;
    case H5T_STRING:
      return ValueClass::String;
    default:
      return ValueClass::Other;
  }
}

// A file may claim any dimensions (HDF5 stores them as 64-bit unsigned): refuse, before anything multiplies or
// allocates, a shape with more elements than graft's tensor limit (2^36, as Tensor::empty).
constexpr std::uint64_t kMaxElements = std::uint64_t{1} << 36;

Shape shape_of(hid_t space, const std::string& file, const std::string& dataset) {
  int rank = H5Sget_simple_extent_ndims(space);
  if (rank < 0) return {};
  std::vector<hsize_t> dims(static_cast<std::size_t>(rank));
  H5Sget_simple_extent_dims(space, dims.data(), nullptr);
  std::uint64_t n = 1;
  for (hsize_t d : dims) {
    if (d != 0 && n > kMaxElements / d) {
      std::string text;
      for (hsize_t e : dims) {  // two appends: GCC 12 -O3 warns falsely (-Wrestrict) on "(" + to_string(e)
        text += text.empty() ? '(' : ',';
        text += std::to_string(e);
      }
      GRAFT_FAIL("hdf5: dataset '", dataset, "' in '", file, "' claims shape ", text,
                 "), more than 2^36 elements: refused");
    }
    n *= d;
  }
  return Shape(dims.begin(), dims.end());
}

// Before allocating for a read: the values must fit in memory, and a dataset cannot hold more bytes than its file
// - uncompressed - or than 1100 times the file when filtered (deflate, HDF5's usual filter, cannot exceed 1032:1).
// A dataset claiming more is damaged or hand-made, and reading it would allocate whatever it claims only to return
// fill values.
void check_claimed_size(hid_t ds, const std::string& file, const std::string& dataset, std::int64_t count) {
  const std::uint64_t memory_bytes = static_cast<std::uint64_t>(count) * sizeof(float);
  GRAFT_CHECK(memory_bytes <= physical_memory_bytes(), "hdf5: dataset '", dataset, "' in '", file, "' needs ",
              memory_bytes, " bytes as float32, more than the machine's ", physical_memory_bytes(), " bytes");
  Handle type(H5Dget_type(ds), H5Tclose);
  Handle plist(H5Dget_create_plist(ds), H5Pclose);
  if (!type.valid() || !plist.valid()) fail(file, "cannot inspect dataset '" + dataset + "'");
  const int filters = H5Pget_nfilters(plist.get());
  std::error_code ec;
  const std::uintmax_t file_bytes = std::filesystem::file_size(file, ec);
  const std::uint64_t stored_bytes = static_cast<std::uint64_t>(count) * H5Tget_size(type.get());
  const std::uint64_t ratio = filters == 0 ? 1 : 1100;
  GRAFT_CHECK(ec || stored_bytes / ratio <= file_bytes, "hdf5: dataset '", dataset, "' in '", file, "' claims ",
              stored_bytes, " bytes of ", filters == 0 ? "uncompressed" : "compressed", " data, but the file has only ",
              file_bytes, " bytes (damaged file?)");
}

// Link existence along every prefix: H5Lexists on "/a/b" fails (not false) when "/a" is missing.
bool link_exists(hid_t file, const std::string& path) {
  if (path == "/" || path.empty()) return true;
  std::size_t pos = 0;
  while (pos != std::string::npos) {
    pos = path.find('/', pos + 1);
    std::string prefix = path.substr(0, pos);
    if (prefix.empty() || prefix == "/") continue;
    if (H5Lexists(file, prefix.c_str(), H5P_DEFAULT) <= 0) {
      H5Eclear2(H5E_DEFAULT);
      return false;
    }
  }
  return true;
}

// The kind of object at `path` in the file `file_path`: H5I_BADID when no link of that name exists. A link whose
// object cannot be opened (a damaged object header, a dangling soft or external link) is an error naming it: a damaged
// tensor must never look like a missing one, nor drop out of a listing (datasets_below) and so out of a load.
H5I_type_t object_type(hid_t file, const std::string& file_path, const std::string& path) {
  if (!link_exists(file, path)) return H5I_BADID;
  Handle object(H5Oopen(file, path.c_str(), H5P_DEFAULT), H5Oclose);
  if (!object.valid()) fail(file_path, "cannot open object '" + path + "' (damaged file?)");
  return H5Iget_type(object.get());
}

std::vector<std::string> read_strings(hid_t attr, const std::string& file, const std::string& what) {
  Handle type(H5Aget_type(attr), H5Tclose);
  Handle space(H5Aget_space(attr), H5Sclose);
  if (!type.valid() || !space.valid()) fail(file, "cannot inspect " + what);
  hssize_t n = H5Sget_simple_extent_npoints(space.get());
  if (n < 0) fail(file, "cannot size " + what);
  const auto count = static_cast<std::size_t>(n);
  if (H5Tget_class(type.get()) != H5T_STRING) {
    // Keras writes an empty list as a float64 array of shape (0,).
    if (count == 0) return {};
    GRAFT_FAIL("hdf5: ", what, " in '", file, "' holds ", count, " ", class_dtype(type.get()),
               " values, expected strings");
  }
  std::vector<std::string> out;
  out.reserve(count);
  if (H5Tis_variable_str(type.get()) > 0) {
    Handle memtype(H5Tcopy(H5T_C_S1), H5Tclose);
    H5Tset_size(memtype.get(), H5T_VARIABLE);
    H5Tset_cset(memtype.get(), H5Tget_cset(type.get()));
    std::vector<char*> buffer(count, nullptr);
    if (H5Aread(attr, memtype.get(), buffer.data()) < 0) fail(file, "cannot read " + what);
    for (char* s : buffer) {
      out.emplace_back(s ? s : "");
      if (s) H5free_memory(s);
    }
  } else {
    // Fixed length, null padded; the longest entry may fill its slot without a terminator.
    std::size_t size = H5Tget_size(type.get());
    bool space_padded = H5Tget_strpad(type.get()) == H5T_STR_SPACEPAD;
    Handle memtype(H5Tcopy(type.get()), H5Tclose);
    std::vector<char> buffer(count * size + 1, '\0');
    if (count > 0 && H5Aread(attr, memtype.get(), buffer.data()) < 0) fail(file, "cannot read " + what);
    for (std::size_t i = 0; i < count; ++i) {
      const char* s = buffer.data() + i * size;
      std::string value(s, strnlen(s, size));
      if (space_padded) value.erase(value.find_last_not_of(' ') + 1);
      out.push_back(std::move(value));
    }
  }
  return out;
}

}  // namespace

std::string join(const std::string& group, const std::string& name) {
  if (group.empty() || group == "/") return "/" + name;
  return group + "/" + name;
}

void prepare_library() {
  static const bool prepared = [] {
    H5dont_atexit();  // only has an effect before the library initialises, hence first
    return true;
  }();
  (void)prepared;
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
}

File::File(const std::string& path) : path_(path) {
  prepare_library();
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::file_status status = fs::status(path, ec);
  GRAFT_CHECK(fs::exists(status), "hdf5: cannot open '", path, "': no such file");
  GRAFT_CHECK(!fs::is_directory(status), "hdf5: cannot open '", path, "': it is a directory, not an HDF5 file");
#if H5_VERSION_GE(1, 12, 0)
  htri_t is_hdf5 = H5Fis_accessible(path.c_str(), H5P_DEFAULT);
#else
  htri_t is_hdf5 = H5Fis_hdf5(path.c_str());
#endif
  if (is_hdf5 == 0) GRAFT_FAIL("hdf5: '", path, "' is not an HDF5 file (no HDF5 signature)");
  if (is_hdf5 < 0) fail(path, "cannot read the file header");
  if (const Isolation iso = isolation(); iso.enabled) check_in_child(path, iso.timeout_seconds);
  id_ = Handle(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
  if (!id_.valid()) fail(path, "cannot open the HDF5 file (damaged or truncated?)");
}



bool File::has_group(const std::string& path) const { return object_type(id_.get(), path_, path) == H5I_GROUP; }
bool File::has_dataset(const std::string& path) const { return object_type(id_.get(), path_, path) == H5I_DATASET; }

bool File::has_attribute(const std::string& object, const std::string& name) const {
  if (object_type(id_.get(), path_, object) == H5I_BADID) return false;
  htri_t exists = H5Aexists_by_name(id_.get(), object.c_str(), name.c_str(), H5P_DEFAULT);
  if (exists < 0) fail(path_, "cannot look up attribute '" + name + "' of '" + object + "'");
  return exists > 0;
}

namespace {
herr_t collect_attribute_name(hid_t, const char* name, const H5A_info_t*, void* names) {
  static_cast<std::vector<std::string>*>(names)->emplace_back(name);
  return 0;
}
}  // namespace

std::vector<std::string> File::attribute_names(const std::string& object) const {
  GRAFT_CHECK(object_type(id_.get(), path_, object) != H5I_BADID, "hdf5: '", path_, "' has no object '", object, "'");
  std::vector<std::string> names;
  if (H5Aiterate_by_name(id_.get(), object.c_str(), H5_INDEX_NAME, H5_ITER_INC, nullptr, collect_attribute_name, &names,
                         H5P_DEFAULT) < 0)
    fail(path_, "cannot list the attributes of '" + object + "'");
  return names;
}

std::string File::object_identity(const std::string& path) const {
  GRAFT_CHECK(object_type(id_.get(), path_, path) != H5I_BADID, "hdf5: '", path_, "' has no object '", path, "'");
#if H5_VERSION_GE(1, 12, 0)
  H5O_info2_t info;
  if (H5Oget_info_by_name3(id_.get(), path.c_str(), &info, H5O_INFO_BASIC, H5P_DEFAULT) < 0)
    fail(path_, "cannot identify object '" + path + "'");
  return std::string(reinterpret_cast<const char*>(&info.token), sizeof info.token);
#else
  H5O_info_t info;
  if (H5Oget_info_by_name2(id_.get(), path.c_str(), &info, H5O_INFO_BASIC, H5P_DEFAULT) < 0)
    fail(path_, "cannot identify object '" + path + "'");
  return std::to_string(info.addr);
#endif
}

std::vector<std::string> File::children(const std::string& group) const {
  Handle g(H5Gopen2(id_.get(), group.c_str(), H5P_DEFAULT), H5Gclose);
  if (!g.valid()) fail(path_, "cannot open group '" + group + "'");
  H5G_info_t info;
  if (H5Gget_info(g.get(), &info) < 0) fail(path_, "cannot list group '" + group + "'");
  std::vector<std::string> names;
  for (hsize_t i = 0; i < info.nlinks; ++i) {
    ssize_t length = H5Lget_name_by_idx(g.get(), ".", H5_INDEX_NAME, H5_ITER_INC, i, nullptr, 0, H5P_DEFAULT);
    if (length < 0) fail(path_, "cannot list group '" + group + "'");
    std::string name(static_cast<std::size_t>(length) + 1, '\0');
    H5Lget_name_by_idx(g.get(), ".", H5_INDEX_NAME, H5_ITER_INC, i, name.data(), name.size(), H5P_DEFAULT);
    name.resize(static_cast<std::size_t>(length));
    names.push_back(std::move(name));
  }
  return names;
}

std::vector<DatasetInfo> File::datasets_below(const std::string& group) const {
  std::vector<DatasetInfo> out;
  // Depth-limited: hard links can form cycles in a hand-made file.
  auto walk = [&](auto& self, const std::string& g, int depth) -> void {
    GRAFT_CHECK(depth < 64, "hdf5: groups nested deeper than 64 levels below '", g, "' in '", path_, "'");
    for (const auto& name : children(g)) {
      std::string child = join(g, name);
      H5I_type_t type = object_type(id_.get(), path_, child);
      if (type == H5I_DATASET)
        out.push_back(dataset_info(child));
      else if (type == H5I_GROUP)
        self(self, child, depth + 1);
    }
  };
  walk(walk, group, 0);
  return out;
}

DatasetInfo File::dataset_info(const std::string& path) const {
  GRAFT_CHECK(has_dataset(path), "hdf5: '", path_, "' has no dataset '", path, "'");
  Handle ds(H5Dopen2(id_.get(), path.c_str(), H5P_DEFAULT), H5Dclose);
  if (!ds.valid()) fail(path_, "cannot open dataset '" + path + "'");
  Handle type(H5Dget_type(ds.get()), H5Tclose);
  Handle space(H5Dget_space(ds.get()), H5Sclose);
  if (!type.valid() || !space.valid()) fail(path_, "cannot inspect dataset '" + path + "'");
  DatasetInfo info;
  info.path = path;
  info.shape = shape_of(space.get(), path_, path);
  info.value_class = value_class_of(type.get());
  info.dtype = class_dtype(type.get());
  return info;
}

bool File::has_string_list_attribute(const std::string& object, const std::string& name) const {
  return has_attribute(object, name) || has_attribute(object, name + "0");
}

std::vector<std::string> File::string_list_attribute(const std::string& object, const std::string& name) const {
  auto read_one = [&](const std::string& attr_name) {
    Handle attr(H5Aopen_by_name(id_.get(), object.c_str(), attr_name.c_str(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
    std::string what = "attribute '" + attr_name + "' of '" + object + "'";
    if (!attr.valid()) fail(path_, "cannot open " + what);
    return read_strings(attr.get(), path_, what);
  };
  if (has_attribute(object, name)) return read_one(name);
  GRAFT_CHECK(has_attribute(object, name + "0"), "hdf5: '", object, "' in '", path_, "' has no attribute '", name, "'");
  std::vector<std::string> all;
  for (int chunk = 0; has_attribute(object, name + std::to_string(chunk)); ++chunk) {
    auto part = read_one(name + std::to_string(chunk));
    all.insert(all.end(), part.begin(), part.end());
  }
  return all;
}

void File::read_floats_into(const std::string& path, float* out, std::int64_t count) const {
  DatasetInfo info = dataset_info(path);
  GRAFT_CHECK(info.value_class == ValueClass::Float, "hdf5: dataset '", path, "' in '", path_, "' holds ", info.dtype,
              " values ", shape_str(info.shape), " where floating-point values (float16/32/64) are expected");
  GRAFT_CHECK(shape_numel(info.shape) == count, "hdf5: dataset '", path, "' in '", path_, "' has ",
              shape_numel(info.shape), " elements ", shape_str(info.shape), ", the caller expects ", count);
  if (count == 0) return;
  Handle ds(H5Dopen2(id_.get(), path.c_str(), H5P_DEFAULT), H5Dclose);
  if (!ds.valid()) fail(path_, "cannot open dataset '" + path + "'");
  check_claimed_size(ds.get(), path_, path, count);
  // HDF5 converts float64 and float16 storage to the native float on the way.
  if (H5Dread(ds.get(), H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) < 0)
    fail(path_, "cannot read dataset '" + path + "'");
}

std::vector<float> File::read_floats(const std::string& path) const {
  DatasetInfo info = dataset_info(path);
  const std::int64_t count = shape_numel(info.shape);
  if (count > 0) {  // refuse before allocating
    Handle ds(H5Dopen2(id_.get(), path.c_str(), H5P_DEFAULT), H5Dclose);
    if (!ds.valid()) fail(path_, "cannot open dataset '" + path + "'");
    check_claimed_size(ds.get(), path_, path, count);
  }
  std::vector<float> values(static_cast<std::size_t>(count));
  read_floats_into(path, values.data(), static_cast<std::int64_t>(values.size()));
  return values;
}

}  // namespace graft::hdf5
