#include "io/hdf5_write.h"

#include <hdf5.h>

#include <cstdio>
#include <filesystem>

#include "core/error.h"

namespace graft::hdf5 {

void write_float_datasets(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& datasets) {
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  const std::string tmp = path + ".tmp-graft";
  hid_t file = H5Fcreate(tmp.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  GRAFT_CHECK(file >= 0, "hdf5: cannot create '", path, "' (directory missing or not writable?)");
  bool ok = true;
  std::string failed;
  for (const auto& [name, tensor] : datasets) {
    check_float(tensor, "hdf5 write", name.c_str());
    Tensor host = tensor.detach().to(kCPU);
    std::vector<hsize_t> dims(host.shape().begin(), host.shape().end());
    hid_t space = H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr);
    hid_t set = space >= 0 ? H5Dcreate2(file, name.c_str(), H5T_IEEE_F32LE, space, H5P_DEFAULT, H5P_DEFAULT,
                                        H5P_DEFAULT)
                           : -1;
    ok = set >= 0 && H5Dwrite(set, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, host.data<float>()) >= 0;
    if (set >= 0) H5Dclose(set);
    if (space >= 0) H5Sclose(space);
    if (!ok) {
      failed = name;
      break;
    }
  }
  ok = H5Fclose(file) >= 0 && ok;  // closing flushes: a full disk shows here
  if (!ok) {
    std::remove(tmp.c_str());
    GRAFT_FAIL("hdf5: writing '", path, "' failed", failed.empty() ? "" : " at dataset '" + failed + "'",
               " (disk full or not writable?); no file was left behind");
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::remove(tmp.c_str());
    GRAFT_FAIL("hdf5: cannot rename the finished file to '", path, "': ", ec.message());
  }
}

}  // namespace graft::hdf5
