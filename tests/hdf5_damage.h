// Damaging one object of an HDF5 file the way a bad disk sector or a stray write does: one byte of the object's
// header (where libhdf5 reads the object's version or signature first), so the file still opens and lists the link,
// but the object itself cannot be opened.
#pragma once
#include <hdf5.h>

#include <cstdint>
#include <fstream>
#include <string>

#include "core/error.h"
#include "io/hdf5.h"

namespace graft::testing {

// The file offset of `object`'s header in `path`.
inline std::uint64_t object_header_offset(const std::string& path, const std::string& object) {
  hdf5::prepare_library();
  const hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  GRAFT_CHECK(file >= 0, "object_header_offset: cannot open '", path, "'");
  haddr_t address = HADDR_UNDEF;
#if H5_VERSION_GE(1, 12, 0)
  H5O_info2_t info;
  if (H5Oget_info_by_name3(file, object.c_str(), &info, H5O_INFO_BASIC, H5P_DEFAULT) >= 0)
    H5VLnative_token_to_addr(file, info.token, &address);
#else
  H5O_info_t info;
  if (H5Oget_info_by_name2(file, object.c_str(), &info, H5O_INFO_BASIC, H5P_DEFAULT) >= 0) address = info.addr;
#endif
  H5Fclose(file);
  GRAFT_CHECK(address != HADDR_UNDEF, "object_header_offset: no object '", object, "' in '", path, "'");
  return address;
}

// Overwrites the first byte of `object`'s header with 7, a version no object header has.
inline void damage_object_header(const std::string& path, const std::string& object) {
  const std::uint64_t offset = object_header_offset(path, object);
  std::fstream file(path, std::ios::in | std::ios::out | std::ios::binary);
  file.seekp(static_cast<std::streamoff>(offset));
  file.put(7);
  GRAFT_CHECK(file.good(), "damage_object_header: cannot write '", path, "'");
}

}  // namespace graft::testing
