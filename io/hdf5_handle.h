// One HDF5 identifier (hid_t) and the H5*close that ends it, closed when the owner goes: the reader (io/hdf5.cpp)
// and the writer (io/hdf5_write.cpp) hold every identifier they open in one, so an error thrown halfway leaks
// nothing. Spelled with std::int64_t / int (hid_t and herr_t since HDF5 1.10: io/hdf5.cpp checks, and passing an
// H5*close as a Closer would not compile otherwise) so that headers can hold one without including <hdf5.h>.
#pragma once
#include <cstdint>
#include <utility>

namespace graft::hdf5 {

class Handle {
 public:
  using Closer = int (*)(std::int64_t);  // H5Fclose, H5Dclose, H5Sclose, ...
  Handle() = default;
  Handle(std::int64_t id, Closer closer) : id_(id), closer_(closer) {}
  ~Handle() { close(); }
  Handle(Handle&& other) noexcept : id_(std::exchange(other.id_, -1)), closer_(std::exchange(other.closer_, nullptr)) {}
  Handle& operator=(Handle&& other) noexcept {
    if (this != &other) {
      close();
      id_ = std::exchange(other.id_, -1);
      closer_ = std::exchange(other.closer_, nullptr);
    }
    return *this;
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;

  std::int64_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }
  // Closes now (a no-op when not valid); false when the close itself failed - for a file, the flush of what was
  // written (a full disk shows here). The id is forgotten before the close is tried, so a failed close is never
  // tried again: libhdf5 1.10 keeps a file whose H5Fclose failed registered, and a second H5Fclose on it crashes.
  bool close() { return id_ < 0 || closer_(std::exchange(id_, -1)) >= 0; }

 private:
  std::int64_t id_ = -1;
  Closer closer_ = nullptr;
};

}  // namespace graft::hdf5
