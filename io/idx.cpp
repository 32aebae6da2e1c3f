// IDX files (MNIST, Fashion-MNIST): a big-endian header, then the payload.
//   bytes 0-1  zero;  byte 2  element type (0x08 = uint8);  byte 3  number of dimensions d
//   d x uint32 big-endian dimension sizes;  then prod(dims) uint8 elements, row-major
// Images are 0x00000803 (N x rows x cols), labels 0x00000801 (N). A file starting with the gzip magic (1f 8b) is
// inflated in memory. The header is validated before the payload is allocated: for a raw file the claimed size
// must match the file length exactly; for a gzip file (whose inflated length is unknown up front) the buffer only
// grows as inflated bytes actually arrive, so a header claiming terabytes fails as "truncated", not bad_alloc.
#include <zlib.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <filesystem>
#include <memory>
#include <sstream>

#include "core/error.h"
#include "io/dataset.h"
#include "io/dataset_internal.h"

namespace graft {
namespace {

constexpr std::uint64_t kMaxPayload = std::uint64_t(1) << 34;  // 16 GiB: far above any IDX dataset
constexpr std::uint32_t kMaxDim = std::uint32_t(1) << 30;

bool is_gzip(const std::vector<std::uint8_t>& bytes) {
  return bytes.size() >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b;
}

// Inflates a gzip buffer (one or more concatenated members) on demand.
class GzipStream {
 public:
  GzipStream(const std::vector<std::uint8_t>& in, const std::string& path) : path_(path) {
    std::memset(&zs_, 0, sizeof(zs_));
    zs_.next_in = const_cast<Bytef*>(in.data());
    zs_.avail_in = static_cast<uInt>(in.size());
    GRAFT_CHECK(in.size() <= 0xffffffffu, "open_idx: '", path, "' is too large for a gzip file (", in.size(),
                " bytes)");
    GRAFT_CHECK(inflateInit2(&zs_, 16 + MAX_WBITS) == Z_OK, "open_idx: zlib inflateInit2 failed for '", path, "'");
  }
  ~GzipStream() { inflateEnd(&zs_); }
  GzipStream(const GzipStream&) = delete;
  GzipStream& operator=(const GzipStream&) = delete;

  // Up to n bytes into dst; fewer only at the end of the data.
  std::size_t read(std::uint8_t* dst, std::size_t n) {
    std::size_t got = 0;
    while (got < n && !finished_) {
      std::size_t chunk = std::min<std::size_t>(n - got, 1u << 30);
      zs_.next_out = dst + got;
      zs_.avail_out = static_cast<uInt>(chunk);
      int rc = inflate(&zs_, Z_NO_FLUSH);
      got += chunk - zs_.avail_out;
      if (rc == Z_STREAM_END) {
        // Another gzip member may follow (what `cat a.gz b.gz` produces); anything else is garbage.
        if (zs_.avail_in == 0) {
          finished_ = true;
        } else {
          GRAFT_CHECK(zs_.avail_in >= 2 && zs_.next_in[0] == 0x1f && zs_.next_in[1] == 0x8b, "open_idx: '", path_,
                      "' has ", zs_.avail_in, " bytes of trailing garbage after its gzip data");
          GRAFT_CHECK(inflateReset(&zs_) == Z_OK, "open_idx: zlib inflateReset failed for '", path_, "'");
        }
      } else if (rc == Z_BUF_ERROR && zs_.avail_in == 0) {
        GRAFT_FAIL("open_idx: '", path_, "' is a truncated gzip file");
      } else if (rc != Z_OK && rc != Z_BUF_ERROR) {
        GRAFT_FAIL("open_idx: '", path_, "' is not valid gzip data (zlib: ", zs_.msg ? zs_.msg : "error ", rc, ")");
      }
    }
    return got;
  }

 private:
  z_stream zs_;
  std::string path_;
  bool finished_ = false;
};

std::uint32_t big_endian32(const std::uint8_t* p) {
  return (std::uint32_t(p[0]) << 24) | (std::uint32_t(p[1]) << 16) | (std::uint32_t(p[2]) << 8) | std::uint32_t(p[3]);
}

// An IDX file in memory: `bytes` holds the header and the payload, which starts at `offset`.
struct IdxFile {
  std::vector<std::uint8_t> bytes;
  std::size_t offset = 0;
  std::vector<std::uint32_t> dims;
};

const char* kind_name(int ndims) { return ndims == 3 ? "image" : "label"; }

// Reads and validates an IDX file whose magic must be 0x0000080<ndims>.
IdxFile read_idx(const std::string& path, int ndims) {
  IdxFile file;
  std::vector<std::uint8_t> raw = detail::read_file_bytes(path, "open_idx");
  const bool gz = is_gzip(raw);
  std::unique_ptr<GzipStream> stream;
  if (gz) stream = std::make_unique<GzipStream>(raw, path);

  const std::size_t header_bytes = 4 + 4 * std::size_t(ndims);
  std::array<std::uint8_t, 16> header{};
  std::size_t got;
  if (gz) {
    got = stream->read(header.data(), header_bytes);
  } else {
    got = std::min(raw.size(), header_bytes);
    std::copy_n(raw.begin(), got, header.begin());
  }
  GRAFT_CHECK(got >= 4, "open_idx: '", path, "' is too short for an IDX header (", got, " bytes)");
  const std::uint32_t magic = big_endian32(header.data());
  const std::uint32_t expected = 0x00000800u | std::uint32_t(ndims);
  if (magic != expected) {
    std::ostringstream hex;
    hex << std::hex << "0x" << magic << ", expected 0x" << expected;
    GRAFT_FAIL("open_idx: '", path, "' is not an IDX ", kind_name(ndims), " file (magic ", hex.str(), ")");
  }
  GRAFT_CHECK(got == header_bytes, "open_idx: '", path, "' is truncated inside its IDX header (", got, " of ",
              header_bytes, " bytes)");
  std::uint64_t payload = 1;
  for (int d = 0; d < ndims; ++d) {
    std::uint32_t dim = big_endian32(header.data() + 4 + 4 * d);
    GRAFT_CHECK(dim > 0 && dim <= kMaxDim, "open_idx: '", path, "' has dimension ", d, " of size ", dim,
                " (must be in [1, ", kMaxDim, "])");
    file.dims.push_back(dim);
    // Each factor is < 2^31 and the running product stays <= kMaxPayload < 2^35, so this cannot overflow.
    payload *= dim;
    GRAFT_CHECK(payload <= kMaxPayload, "open_idx: '", path, "' claims more than ", kMaxPayload,
                " bytes of data (dimensions so far ", payload, " elements); refusing to allocate it");
  }
  if (ndims == 3)
    GRAFT_CHECK(file.dims[1] <= (1u << 15) && file.dims[2] <= (1u << 15), "open_idx: '", path, "' has images of ",
                file.dims[1], "x", file.dims[2], " pixels (at most 32768 per side)");

  if (!gz) {
    GRAFT_CHECK(raw.size() == header_bytes + payload, "open_idx: '", path, "' header claims ", payload,
                " bytes of data but the file holds ", raw.size() - header_bytes,
                raw.size() < header_bytes + payload ? " (truncated)" : " (trailing bytes)");
    file.bytes = std::move(raw);
    file.offset = header_bytes;
    return file;
  }
  // Grow with the data actually inflated: at most 64 MiB beyond what has arrived.
  file.bytes.assign(header.begin(), header.begin() + header_bytes);
  file.offset = header_bytes;
  std::uint64_t have = 0;
  while (have < payload) {
    std::size_t chunk = std::size_t(std::min<std::uint64_t>(payload - have, std::uint64_t(64) << 20));
    file.bytes.resize(header_bytes + have + chunk);
    std::size_t n = stream->read(file.bytes.data() + header_bytes + have, chunk);
    have += n;
    GRAFT_CHECK(n == chunk, "open_idx: '", path, "' header claims ", payload, " bytes of data but the inflated file ",
                "holds only ", have, " (truncated)");
  }
  std::uint8_t extra;
  GRAFT_CHECK(stream->read(&extra, 1) == 0, "open_idx: '", path, "' has more inflated data than its header's ",
              payload, " bytes (trailing bytes)");
  return file;
}

class IdxDataset final : public Dataset {
 public:
  IdxDataset(IdxFile images, IdxFile labels, std::vector<std::string> names, std::string name)
      : images_(std::move(images)), labels_(std::move(labels)), names_(std::move(names)), name_(std::move(name)) {
    n_ = images_.dims[0];
    rows_ = int(images_.dims[1]);
    cols_ = int(images_.dims[2]);
  }
  std::int64_t size() const override { return n_; }
  Example get(std::int64_t index) const override {
    check_index(index);
    Example ex;
    ex.height = rows_;
    ex.width = cols_;
    ex.channels = 1;
    const std::size_t pixels = std::size_t(rows_) * std::size_t(cols_);
    const std::uint8_t* p = images_.bytes.data() + images_.offset + std::size_t(index) * pixels;
    ex.pixels.assign(p, p + pixels);
    ex.label = label(index);
    return ex;
  }
  int label(std::int64_t index) const override {
    check_index(index);
    return labels_.bytes[labels_.offset + std::size_t(index)];
  }
  const std::vector<std::string>& class_names() const override { return names_; }
  std::string describe() const override { return name_ + " " + detail::count_phrase(n_, num_classes()); }

 private:
  void check_index(std::int64_t index) const {
    GRAFT_CHECK(index >= 0 && index < n_, name_, ": example index ", index, " out of range [0, ", n_, ")");
  }
  IdxFile images_, labels_;
  std::vector<std::string> names_;
  std::string name_;
  std::int64_t n_ = 0;
  int rows_ = 0, cols_ = 0;
};

}  // namespace

DatasetPtr open_idx(const std::string& images_path, const std::string& labels_path,
                    std::vector<std::string> class_names, std::string name) {
  IdxFile images = read_idx(images_path, 3);
  IdxFile labels = read_idx(labels_path, 1);
  GRAFT_CHECK(images.dims[0] == labels.dims[0], "open_idx: '", images_path, "' holds ", images.dims[0],
              " images but '", labels_path, "' holds ", labels.dims[0], " labels");
  const std::uint8_t* first = labels.bytes.data() + labels.offset;
  const std::uint8_t* last = first + labels.dims[0];
  const std::uint8_t* top = std::max_element(first, last);
  if (class_names.empty()) {
    class_names = detail::numbered_class_names(int(*top) + 1);
  } else {
    GRAFT_CHECK(*top < class_names.size(), "open_idx: '", labels_path, "' has label ", int(*top), " at index ",
                top - first, " but only ", class_names.size(), " class names were given");
  }
  return std::make_shared<IdxDataset>(std::move(images), std::move(labels), std::move(class_names), std::move(name));
}

const std::vector<std::string>& fashion_mnist_class_names() {
  static const std::vector<std::string> names = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                                 "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
  return names;
}

DatasetPtr open_fashion_mnist(bool train, const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  GRAFT_CHECK(fs::is_directory(dir, ec), "open_fashion_mnist: '", dir, "' is not a directory");
  const std::string prefix = train ? "train" : "t10k";
  // The raw file wins when both exist (it is what a user who unpacked the archives meant).
  auto find = [&](const std::string& stem) {
    for (const std::string& candidate : {stem, stem + ".gz"}) {
      fs::path path = fs::path(dir) / candidate;
      if (fs::is_regular_file(path, ec)) return path.string();
    }
    GRAFT_FAIL("open_fashion_mnist: '", dir, "' has neither ", stem, " nor ", stem, ".gz");
  };
  std::string images = find(prefix + "-images-idx3-ubyte");
  std::string labels = find(prefix + "-labels-idx1-ubyte");
  DatasetPtr data = open_idx(images, labels, fashion_mnist_class_names(),
                             std::string("fashion-mnist ") + (train ? "train" : "test"));
  Example first = data->get(0);
  GRAFT_CHECK(first.height == 28 && first.width == 28, "open_fashion_mnist: '", images, "' holds ", first.height, "x",
              first.width, " images, Fashion-MNIST's are 28x28");
  return data;
}

}  // namespace graft
