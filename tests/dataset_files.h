// Test helpers that write tiny dataset files (IDX raw and gzipped, CIFAR records, PNG/JPEG) into a scratch dir.
#pragma once
#include <stb/stb_image_write.h>
#include <unistd.h>
#include <zlib.h>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace graft::testing {

using Bytes = std::vector<std::uint8_t>;

// A fresh directory under the system temp dir, removed with everything in it at the end of the test.
class ScratchDir {
 public:
  ScratchDir() {
    static std::atomic<int> counter{0};
    const ::testing::TestInfo* info = ::testing::UnitTest::GetInstance()->current_test_info();
    std::string name = "graft_datasets_" + std::to_string(::getpid()) + "_" + std::to_string(counter++);
    if (info) name += std::string("_") + info->name();
    path_ = std::filesystem::temp_directory_path() / name;
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  std::string operator/(const std::string& rel) const { return (path_ / rel).string(); }
  std::string str() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

inline void write_file(const std::string& path, const Bytes& bytes) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
  ASSERT_TRUE(out.good()) << "cannot write " << path;
}

inline Bytes read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

inline void write_text(const std::string& path, const std::string& text) {
  write_file(path, Bytes(text.begin(), text.end()));
}

// gzip through zlib's gz* API, as `gzip` would produce it.
inline void write_gz(const std::string& path, const Bytes& bytes) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  gzFile f = gzopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr) << "gzopen " << path;
  if (!bytes.empty()) {
    ASSERT_EQ(gzwrite(f, bytes.data(), unsigned(bytes.size())), int(bytes.size()));
  }
  ASSERT_EQ(gzclose(f), Z_OK);
}

inline void put_be32(Bytes& out, std::uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(std::uint8_t(v >> shift));
}

// IDX image file: magic 0x00000803, n x rows x cols, then the pixels.
inline Bytes idx_images(std::uint32_t n, std::uint32_t rows, std::uint32_t cols, const Bytes& pixels) {
  Bytes out;
  put_be32(out, 0x00000803);
  put_be32(out, n);
  put_be32(out, rows);
  put_be32(out, cols);
  out.insert(out.end(), pixels.begin(), pixels.end());
  return out;
}

inline Bytes idx_labels(const Bytes& labels) {
  Bytes out;
  put_be32(out, 0x00000801);
  put_be32(out, std::uint32_t(labels.size()));
  out.insert(out.end(), labels.begin(), labels.end());
  return out;
}

// A distinct value for channel c of pixel (y, x) of image k: tests check exact positions with it.
inline std::uint8_t pixel_value(int k, int y, int x, int c) { return std::uint8_t(k * 37 + y * 11 + x * 5 + c * 83); }

// CIFAR records: [coarse,] label, then the R, G and B planes (each 32x32 row-major) of pixel_value(k, ...).
inline Bytes cifar_records(const std::vector<int>& labels, int first_k, bool cifar100, int coarse = 3) {
  Bytes out;
  for (std::size_t r = 0; r < labels.size(); ++r) {
    if (cifar100) out.push_back(std::uint8_t(coarse));
    out.push_back(std::uint8_t(labels[r]));
    for (int c = 0; c < 3; ++c)
      for (int y = 0; y < 32; ++y)
        for (int x = 0; x < 32; ++x) out.push_back(pixel_value(first_k + int(r), y, x, c));
  }
  return out;
}

// An h x w image with `channels` channels of pixel_value(k, ...), HWC.
inline Bytes make_pixels(int k, int h, int w, int channels) {
  Bytes out;
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < channels; ++c) out.push_back(pixel_value(k, y, x, c));
  return out;
}

inline void write_png(const std::string& path, int k, int h, int w, int channels) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  Bytes pixels = make_pixels(k, h, w, channels);
  ASSERT_NE(stbi_write_png(path.c_str(), w, h, channels, pixels.data(), w * channels), 0) << path;
}

}  // namespace graft::testing
