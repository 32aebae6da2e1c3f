// Dataset readers: IDX (raw and gzip), Fashion-MNIST, CIFAR-10/100. Every file is written by the test into a scratch
// directory with known pixel values (tests/dataset_files.h), so positions and labels are checked exactly; the real
// Fashion-MNIST files are read when the machine has them. Image folders and views: test_dataset_views.cpp.
#include <filesystem>

#include "core/error.h"
#include "io/dataset.h"
#include "tests/check.h"
#include "tests/dataset_files.h"

namespace graft {
namespace {

using testing::Bytes;
using testing::expect_error;
using testing::ScratchDir;

// 3 images of 2x3 pixels with labels 2, 0, 1.
struct TinyIdx {
  Bytes pixels = testing::make_pixels(0, 6, 3, 1);  // image k = rows 2k..2k+1 of a 6x3 ramp
  Bytes images = testing::idx_images(3, 2, 3, pixels);
  Bytes labels = testing::idx_labels({2, 0, 1});
};

void expect_tiny_idx(const DatasetPtr& data, const TinyIdx& tiny) {
  ASSERT_EQ(data->size(), 3);
  EXPECT_EQ(data->class_names(), (std::vector<std::string>{"0", "1", "2"}));
  const int labels[3] = {2, 0, 1};
  for (int k = 0; k < 3; ++k) {
    Example ex = data->get(k);
    EXPECT_EQ(ex.height, 2);
    EXPECT_EQ(ex.width, 3);
    EXPECT_EQ(ex.channels, 1);
    EXPECT_EQ(ex.label, labels[k]);
    EXPECT_EQ(data->label(k), labels[k]);
    EXPECT_EQ(ex.pixels, Bytes(tiny.pixels.begin() + 6 * k, tiny.pixels.begin() + 6 * (k + 1))) << "image " << k;
  }
}

TEST(IdxReader, ReadsRawFiles) {
  ScratchDir dir;
  TinyIdx tiny;
  testing::write_file(dir / "img", tiny.images);
  testing::write_file(dir / "lbl", tiny.labels);
  DatasetPtr data = open_idx(dir / "img", dir / "lbl");
  expect_tiny_idx(data, tiny);
  EXPECT_EQ(data->describe(), "idx (3 images, 3 classes)");
  expect_error([&] { data->get(3); }, {"index 3", "[0, 3)"});
  expect_error([&] { data->label(-1); }, {"index -1"});
}

TEST(IdxReader, ReadsGzippedFilesByContent) {
  ScratchDir dir;
  TinyIdx tiny;
  testing::write_gz(dir / "img.gz", tiny.images);
  testing::write_gz(dir / "lbl", tiny.labels);  // detected from the gzip magic, not the name
  expect_tiny_idx(open_idx(dir / "img.gz", dir / "lbl"), tiny);
}

TEST(IdxReader, ClassNamesMustCoverTheLabels) {
  ScratchDir dir;
  TinyIdx tiny;
  testing::write_file(dir / "img", tiny.images);
  testing::write_file(dir / "lbl", tiny.labels);
  DatasetPtr named = open_idx(dir / "img", dir / "lbl", {"a", "b", "c", "d"}, "tiny");
  EXPECT_EQ(named->class_names(), (std::vector<std::string>{"a", "b", "c", "d"}));
  EXPECT_EQ(named->describe(), "tiny (3 images, 4 classes)");
  expect_error([&] { open_idx(dir / "img", dir / "lbl", {"a", "b"}); }, {"label 2", "only 2 class names"});
}

TEST(IdxReader, RefusesBadMagicAndSwappedFiles) {
  ScratchDir dir;
  TinyIdx tiny;
  testing::write_file(dir / "img", tiny.images);
  testing::write_file(dir / "lbl", tiny.labels);
  expect_error([&] { open_idx(dir / "lbl", dir / "img"); }, {"not an IDX image file", "magic 0x801"});
  Bytes float_images = tiny.images;
  float_images[2] = 0x0d;  // IDX float32 element type
  testing::write_file(dir / "float", float_images);
  expect_error([&] { open_idx(dir / "float", dir / "lbl"); }, {"magic 0xd03", "expected 0x803"});
  testing::write_file(dir / "short", {0, 0});
  expect_error([&] { open_idx(dir / "short", dir / "lbl"); }, {"too short"});
  testing::write_file(dir / "empty", {});
  expect_error([&] { open_idx(dir / "empty", dir / "lbl"); }, {"too short"});
  expect_error([&] { open_idx(dir / "missing", dir / "lbl"); }, {"missing", "No such file"});
  expect_error([&] { open_idx(dir.str(), dir / "lbl"); }, {"not a readable file"});
}

TEST(IdxReader, RefusesTruncatedAndOversizedFiles) {
  ScratchDir dir;
  TinyIdx tiny;
  testing::write_file(dir / "lbl", tiny.labels);
  Bytes cut(tiny.images.begin(), tiny.images.end() - 1);
  testing::write_file(dir / "cut", cut);
  expect_error([&] { open_idx(dir / "cut", dir / "lbl"); }, {"claims 18 bytes", "holds 17", "truncated"});
  testing::write_gz(dir / "cut.gz", cut);
  expect_error([&] { open_idx(dir / "cut.gz", dir / "lbl"); }, {"claims 18 bytes", "truncated"});
  Bytes header_only(tiny.images.begin(), tiny.images.begin() + 10);
  testing::write_file(dir / "header", header_only);
  expect_error([&] { open_idx(dir / "header", dir / "lbl"); }, {"truncated inside its IDX header"});
  Bytes longer = tiny.images;
  longer.push_back(7);
  testing::write_file(dir / "long", longer);
  expect_error([&] { open_idx(dir / "long", dir / "lbl"); }, {"trailing bytes"});
  testing::write_gz(dir / "long.gz", longer);
  expect_error([&] { open_idx(dir / "long.gz", dir / "lbl"); }, {"trailing bytes"});
}

TEST(IdxReader, RefusesHugeClaimsWithoutAllocating) {
  ScratchDir dir;
  TinyIdx tiny;
  testing::write_file(dir / "lbl", tiny.labels);
  // 2^20 images of 2^10 x 2^10: 2^40 bytes claimed by a 20-byte file, raw and gzipped.
  Bytes huge = testing::idx_images(1u << 20, 1u << 10, 1u << 10, {1, 2, 3, 4});
  testing::write_file(dir / "huge", huge);
  expect_error([&] { open_idx(dir / "huge", dir / "lbl"); }, {"claims more than", "refusing"});
  testing::write_gz(dir / "huge.gz", huge);
  expect_error([&] { open_idx(dir / "huge.gz", dir / "lbl"); }, {"claims more than", "refusing"});
  // 8 GiB claimed: under the cap, so the reader must notice the missing data as it inflates, not allocate 8 GiB.
  Bytes big = testing::idx_images(1u << 13, 1u << 10, 1u << 10, {1, 2, 3, 4});
  testing::write_gz(dir / "big.gz", big);
  expect_error([&] { open_idx(dir / "big.gz", dir / "lbl"); }, {"claims 8589934592 bytes", "truncated"});
  testing::write_file(dir / "big", big);
  expect_error([&] { open_idx(dir / "big", dir / "lbl"); }, {"claims 8589934592 bytes", "truncated"});
  Bytes zero = testing::idx_images(3, 0, 3, {});
  testing::write_file(dir / "zero", zero);
  expect_error([&] { open_idx(dir / "zero", dir / "lbl"); }, {"dimension 1 of size 0"});
  Bytes wide = testing::idx_images(1, 1, 1u << 16, Bytes(1u << 16, 0));
  testing::write_file(dir / "wide", wide);
  expect_error([&] { open_idx(dir / "wide", dir / "lbl"); }, {"1x65536", "at most 32768"});
}

TEST(IdxReader, RefusesCorruptGzipAndCountMismatch) {
  ScratchDir dir;
  TinyIdx tiny;
  testing::write_file(dir / "img", tiny.images);
  testing::write_file(dir / "garbage.gz", {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 0xff, 0xff, 0xff, 0xff});
  expect_error([&] { open_idx(dir / "img", dir / "garbage.gz"); }, {"garbage.gz"});
  testing::write_file(dir / "lbl2", testing::idx_labels({0, 1}));
  expect_error([&] { open_idx(dir / "img", dir / "lbl2"); }, {"holds 3 images", "holds 2 labels"});
  // A second gzip member is read (what `cat a.gz b.gz` makes); other trailing bytes are not.
  testing::write_gz(dir / "a.gz", Bytes(tiny.labels.begin(), tiny.labels.begin() + 9));
  testing::write_gz(dir / "b.gz", Bytes(tiny.labels.begin() + 9, tiny.labels.end()));
  Bytes joined = testing::read_bytes(dir / "a.gz"), tail = testing::read_bytes(dir / "b.gz");
  joined.insert(joined.end(), tail.begin(), tail.end());
  testing::write_file(dir / "joined.gz", joined);
  expect_tiny_idx(open_idx(dir / "img", dir / "joined.gz"), tiny);
  joined.push_back(0x42);
  joined.push_back(0x42);
  testing::write_file(dir / "junk.gz", joined);
  expect_error([&] { open_idx(dir / "img", dir / "junk.gz"); }, {"trailing garbage"});
}

TEST(IdxFashionMnist, FindsRawAndGzNames) {
  ScratchDir dir;
  Bytes pixels = testing::make_pixels(0, 2 * 28, 28, 1);
  testing::write_file(dir / "raw/t10k-images-idx3-ubyte", testing::idx_images(2, 28, 28, pixels));
  testing::write_file(dir / "raw/t10k-labels-idx1-ubyte", testing::idx_labels({9, 0}));
  testing::write_gz(dir / "gz/t10k-images-idx3-ubyte.gz", testing::idx_images(2, 28, 28, pixels));
  testing::write_gz(dir / "gz/t10k-labels-idx1-ubyte.gz", testing::idx_labels({9, 0}));
  for (const char* sub : {"raw", "gz"}) {
    DatasetPtr test = open_fashion_mnist(false, dir / sub);
    ASSERT_EQ(test->size(), 2);
    EXPECT_EQ(test->describe(), "fashion-mnist test (2 images, 10 classes)");
    EXPECT_EQ(test->class_names()[std::size_t(test->label(0))], "Ankle boot");
    EXPECT_EQ(test->get(1).pixels, Bytes(pixels.begin() + 28 * 28, pixels.end()));
  }
  expect_error([&] { open_fashion_mnist(true, dir / "raw"); }, {"train-images-idx3-ubyte", ".gz"});
  expect_error([&] { open_fashion_mnist(true, dir / "none"); }, {"not a directory"});
  EXPECT_EQ(fashion_mnist_class_names().size(), 10u);
  EXPECT_EQ(fashion_mnist_class_names()[0], "T-shirt/top");
}

TEST(IdxFashionMnist, RealFiles) {
  if (!std::filesystem::is_directory(kFashionMnistDir))
    GTEST_SKIP() << "no Fashion-MNIST at " << kFashionMnistDir << " (Debian/CI machines provide it there)";
  DatasetPtr train = open_fashion_mnist(true);
  DatasetPtr test = open_fashion_mnist(false);
  EXPECT_EQ(train->size(), 60000);
  EXPECT_EQ(test->size(), 10000);
  EXPECT_EQ(train->describe(), "fashion-mnist train (60000 images, 10 classes)");
  Example first = train->get(0);
  EXPECT_EQ(first.height, 28);
  EXPECT_EQ(first.width, 28);
  EXPECT_EQ(first.channels, 1);
  EXPECT_EQ(first.label, 9);
  EXPECT_EQ(train->class_names()[9], "Ankle boot");
  std::vector<int> counts(10, 0);
  for (std::int64_t i = 0; i < train->size(); ++i) ++counts[std::size_t(train->label(i))];
  for (int c = 0; c < 10; ++c) EXPECT_EQ(counts[std::size_t(c)], 6000) << "class " << c;
}

// ---- CIFAR ----------------------------------------------------------------------------------------------------

void expect_cifar_example(const Example& ex, int k, int label) {
  ASSERT_EQ(ex.height, 32);
  ASSERT_EQ(ex.width, 32);
  ASSERT_EQ(ex.channels, 3);
  EXPECT_EQ(ex.label, label);
  // HWC: byte (y*32 + x)*3 + c comes from plane c at row y, column x.
  EXPECT_EQ(ex.pixels, testing::make_pixels(k, 32, 32, 3)) << "example " << k;
  EXPECT_EQ(ex.pixels[(5 * 32 + 7) * 3 + 2], testing::pixel_value(k, 5, 7, 2));
}

TEST(CifarReader, Cifar10ConvertsPlanesToHwc) {
  ScratchDir dir;
  // Batch b holds records k = 2b, 2b+1 with labels (k % 10).
  for (int b = 1; b <= 5; ++b)
    testing::write_file(dir / ("data_batch_" + std::to_string(b) + ".bin"),
                        testing::cifar_records({(2 * b - 2) % 10, (2 * b - 1) % 10}, 2 * b - 2, false));
  testing::write_file(dir / "test_batch.bin", testing::cifar_records({7}, 42, false));
  DatasetPtr train = open_cifar(dir.str(), true, 10);
  ASSERT_EQ(train->size(), 10);
  for (int k = 0; k < 10; ++k) {
    EXPECT_EQ(train->label(k), k % 10);
    expect_cifar_example(train->get(k), k, k % 10);
  }
  EXPECT_EQ(train->class_names()[3], "3");  // no batches.meta.txt
  EXPECT_EQ(train->describe(), "cifar10 train (10 images, 10 classes)");
  testing::write_text(dir / "batches.meta.txt",
                      "airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n\n");
  DatasetPtr test = open_cifar(dir.str(), false, 10);
  ASSERT_EQ(test->size(), 1);
  expect_cifar_example(test->get(0), 42, 7);
  EXPECT_EQ(test->class_names()[7], "horse");
}

TEST(CifarReader, Cifar100UsesFineLabels) {
  ScratchDir dir;
  testing::write_file(dir / "train.bin", testing::cifar_records({99, 0, 42}, 0, true));
  std::string names;
  for (int i = 0; i < 100; ++i) names += "fine" + std::to_string(i) + "\r\n";  // CRLF is tolerated
  testing::write_text(dir / "fine_label_names.txt", names);
  DatasetPtr train = open_cifar(dir.str(), true, 100);
  ASSERT_EQ(train->size(), 3);
  EXPECT_EQ(train->num_classes(), 100);
  EXPECT_EQ(train->class_names()[42], "fine42");
  expect_cifar_example(train->get(0), 0, 99);
  expect_cifar_example(train->get(2), 2, 42);
  EXPECT_EQ(train->describe(), "cifar100 train (3 images, 100 classes)");
  expect_error([&] { open_cifar(dir.str(), false, 100); }, {"test.bin", "not found"});
}

TEST(CifarReader, RefusesBadFiles) {
  ScratchDir dir;
  testing::write_file(dir / "test_batch.bin", testing::cifar_records({1, 10}, 0, false));
  expect_error([&] { open_cifar(dir.str(), false, 10); }, {"test_batch.bin", "record 1", "label 10"});
  Bytes cut = testing::cifar_records({1, 2}, 0, false);
  cut.pop_back();
  testing::write_file(dir / "test_batch.bin", cut);
  expect_error([&] { open_cifar(dir.str(), false, 10); }, {"6145 bytes", "3073-byte"});
  testing::write_file(dir / "test_batch.bin", {});
  expect_error([&] { open_cifar(dir.str(), false, 10); }, {"0 bytes"});
  testing::write_file(dir / "test_batch.bin", testing::cifar_records({1}, 0, false));
  testing::write_text(dir / "batches.meta.txt", "a\nb\n");
  expect_error([&] { open_cifar(dir.str(), false, 10); }, {"batches.meta.txt", "lists 2 class names, expected 10"});
  for (int b = 1; b <= 4; ++b)
    testing::write_file(dir / ("data_batch_" + std::to_string(b) + ".bin"), testing::cifar_records({1}, 0, false));
  expect_error([&] { open_cifar(dir.str(), true, 10); }, {"data_batch_5.bin", "not found"});
  testing::write_file(dir / "test.bin", testing::cifar_records({100}, 0, true));
  expect_error([&] { open_cifar(dir.str(), false, 100); }, {"label 100"});
  testing::write_file(dir / "test.bin", testing::cifar_records({5}, 0, true, 20));
  expect_error([&] { open_cifar(dir.str(), false, 100); }, {"coarse label 20"});
  expect_error([&] { open_cifar(dir.str(), false, 50); }, {"10 or 100", "50"});
  expect_error([&] { open_cifar(dir / "nope", false, 10); }, {"not a directory"});
}

}  // namespace
}  // namespace graft
