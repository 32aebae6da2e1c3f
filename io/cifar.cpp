// CIFAR-10 / CIFAR-100 binary versions (cifar-10-batches-bin, cifar-100-binary), 32x32 RGB:
//   CIFAR-10   data_batch_1..5.bin (train), test_batch.bin; 3073-byte records: label, 1024 R, 1024 G, 1024 B
//   CIFAR-100  train.bin, test.bin;                        3074-byte records: coarse label, fine label, pixels
// Each colour plane is row-major 32x32 (CHW); the records are converted to HWC on load, so the whole split sits in
// memory decoded (150 MB for CIFAR-10 train). Class names come from batches.meta.txt (CIFAR-10) or
// fine_label_names.txt (CIFAR-100), one per line, when the file is present.
#include <filesystem>

#include "core/error.h"
#include "io/dataset.h"
#include "io/dataset_internal.h"

namespace graft {
namespace {

constexpr int kSide = 32;
constexpr std::size_t kPixels = kSide * kSide * 3;

class CifarDataset final : public Dataset {
 public:
  CifarDataset(std::vector<std::uint8_t> pixels, std::vector<std::uint8_t> labels, std::vector<std::string> names,
               std::string name)
      : pixels_(std::move(pixels)), labels_(std::move(labels)), names_(std::move(names)), name_(std::move(name)) {}
  std::int64_t size() const override { return std::int64_t(labels_.size()); }
  Example get(std::int64_t index) const override {
    check_index(index);
    Example ex;
    ex.height = ex.width = kSide;
    ex.channels = 3;
    const std::uint8_t* p = pixels_.data() + std::size_t(index) * kPixels;
    ex.pixels.assign(p, p + kPixels);
    ex.label = labels_[std::size_t(index)];
    return ex;
  }
  int label(std::int64_t index) const override {
    check_index(index);
    return labels_[std::size_t(index)];
  }
  const std::vector<std::string>& class_names() const override { return names_; }
  std::string describe() const override { return name_ + " " + detail::count_phrase(size(), num_classes()); }

 private:
  void check_index(std::int64_t index) const {
    GRAFT_CHECK(index >= 0 && index < size(), name_, ": example index ", index, " out of range [0, ", size(), ")");
  }
  std::vector<std::uint8_t> pixels_, labels_;
  std::vector<std::string> names_;
  std::string name_;
};

// One name per non-empty line (trailing spaces and CR stripped); exactly `count` of them.
std::vector<std::string> read_names(const std::string& path, int count) {
  std::vector<std::uint8_t> bytes = detail::read_file_bytes(path, "open_cifar", 1 << 20);
  std::vector<std::string> names;
  std::string line;
  auto flush = [&] {
    while (!line.empty() && (line.back() == ' ' || line.back() == '\r' || line.back() == '\t')) line.pop_back();
    if (!line.empty()) names.push_back(line);
    line.clear();
  };
  for (std::uint8_t b : bytes) {
    if (b == '\n') {
      flush();
    } else {
      line.push_back(char(b));
    }
  }
  flush();
  GRAFT_CHECK(int(names.size()) == count, "open_cifar: '", path, "' lists ", names.size(), " class names, expected ",
              count);
  return names;
}

}  // namespace

DatasetPtr open_cifar(const std::string& dir, bool train, int num_classes) {
  namespace fs = std::filesystem;
  GRAFT_CHECK(num_classes == 10 || num_classes == 100, "open_cifar: num_classes must be 10 or 100, got ",
              num_classes);
  std::error_code ec;
  GRAFT_CHECK(fs::is_directory(dir, ec), "open_cifar: '", dir, "' is not a directory");
  const bool c10 = num_classes == 10;
  const std::size_t record = c10 ? 3073 : 3074;
  std::vector<std::string> files;
  if (c10 && train) {
    for (int i = 1; i <= 5; ++i) files.push_back("data_batch_" + std::to_string(i) + ".bin");
  } else {
    files.push_back(c10 ? "test_batch.bin" : (train ? "train.bin" : "test.bin"));
  }
  // Sizes first, so that a bad last batch is refused before the others are decoded.
  std::size_t total = 0;
  for (std::string& file : files) {
    file = (fs::path(dir) / file).string();
    GRAFT_CHECK(fs::is_regular_file(file, ec), "open_cifar: '", file, "' not found (CIFAR-", num_classes, " ",
                train ? "train" : "test", " split)");
    std::uintmax_t bytes = fs::file_size(file, ec);
    GRAFT_CHECK(!ec, "open_cifar: cannot get the size of '", file, "': ", ec.message());
    GRAFT_CHECK(bytes > 0 && bytes % record == 0, "open_cifar: '", file, "' has ", bytes,
                " bytes, not a positive multiple of the ", record, "-byte CIFAR-", num_classes, " record");
    total += std::size_t(bytes / record);
  }
  std::vector<std::uint8_t> pixels(total * kPixels), labels(total);
  std::size_t n = 0;
  for (const std::string& file : files) {
    std::vector<std::uint8_t> bytes = detail::read_file_bytes(file, "open_cifar");
    GRAFT_CHECK(bytes.size() % record == 0 && n + bytes.size() / record <= total, "open_cifar: '", file,
                "' changed size while being read");
    for (std::size_t r = 0; r < bytes.size() / record; ++r, ++n) {
      const std::uint8_t* rec = bytes.data() + r * record;
      if (!c10)
        GRAFT_CHECK(rec[0] < 20, "open_cifar: '", file, "' record ", r, " has coarse label ", int(rec[0]),
                    " (CIFAR-100 has 20 superclasses)");
      const int label = c10 ? rec[0] : rec[1];
      GRAFT_CHECK(label < num_classes, "open_cifar: '", file, "' record ", r, " has label ", label,
                  " (CIFAR-", num_classes, " has ", num_classes, " classes)");
      labels[n] = std::uint8_t(label);
      const std::uint8_t* planes = rec + (c10 ? 1 : 2);
      std::uint8_t* out = pixels.data() + n * kPixels;
      for (int i = 0; i < kSide * kSide; ++i)
        for (int c = 0; c < 3; ++c) out[i * 3 + c] = planes[c * kSide * kSide + i];
    }
  }
  GRAFT_CHECK(n == total, "open_cifar: the files in '", dir, "' changed size while being read");
  const fs::path names_file = fs::path(dir) / (c10 ? "batches.meta.txt" : "fine_label_names.txt");
  std::vector<std::string> names = fs::is_regular_file(names_file, ec) ? read_names(names_file.string(), num_classes)
                                                                   : detail::numbered_class_names(num_classes);
  return std::make_shared<CifarDataset>(std::move(pixels), std::move(labels), std::move(names),
                                        std::string(c10 ? "cifar10 " : "cifar100 ") + (train ? "train" : "test"));
}

}  // namespace graft
