// Image folders (PNG exact, JPEG close, class/file order, skipped and refused files), image decoding limits,
// dataset specs (open_dataset) and the views: subset, select_classes, sample_per_class, split_train_validation.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <set>
#include <thread>

#include "core/error.h"
#include "io/dataset.h"
#include "tests/check.h"
#include "tests/dataset_files.h"

namespace graft {
namespace {

using testing::Bytes;
using testing::expect_error;
using testing::ScratchDir;

// ---- image folders ----------------------------------------------------------------------------------------------

TEST(ImageFolderReader, ClassesAndFilesInNameOrder) {
  ScratchDir dir;
  testing::write_png(dir / "b_cats/m.png", 3, 4, 5, 3);
  testing::write_png(dir / "b_cats/A.JPEG", 4, 4, 5, 3);  // PNG bytes behind a JPEG name: the header decides
  testing::write_png(dir / "a_dogs/2.png", 2, 4, 5, 3);
  testing::write_png(dir / "a_dogs/10.PNG", 1, 4, 5, 3);
  testing::write_png(dir / "a_dogs/.hidden.png", 9, 4, 5, 3);
  testing::write_text(dir / "a_dogs/notes.txt", "not an image");
  testing::write_png(dir / ".git/x.png", 9, 4, 5, 3);
  ImageFolderReport report;
  DatasetPtr data = open_image_folder(dir.str(), {}, &report);
  EXPECT_EQ(data->class_names(), (std::vector<std::string>{"a_dogs", "b_cats"}));
  ASSERT_EQ(data->size(), 4);
  EXPECT_EQ(report.images, 4);
  EXPECT_EQ(report.skipped, 0);
  // Byte order of names, like Python's sorted(): "10.PNG" < "2.png", "A.JPEG" < "m.png".
  const int expect_k[4] = {1, 2, 4, 3}, expect_label[4] = {0, 0, 1, 1};
  for (int i = 0; i < 4; ++i) {
    Example ex = data->get(i);
    EXPECT_EQ(ex.label, expect_label[i]);
    EXPECT_EQ(data->label(i), expect_label[i]);
    EXPECT_EQ(ex.pixels, testing::make_pixels(expect_k[i], 4, 5, 3)) << "example " << i;
  }
  EXPECT_EQ(data->describe(), std::string("image folder '") + dir.str() + "' (4 images, 2 classes)");
}

TEST(ImageFolderReader, ChannelsGrayStaysGrayAlphaIsDropped) {
  ScratchDir dir;
  for (int channels = 1; channels <= 4; ++channels) {
    const std::string path = dir / (std::string("c") + std::to_string(channels) + ".png");
    testing::write_png(path, channels, 3, 7, channels);
    Example ex = load_image(path);
    const int want = channels <= 2 ? 1 : 3;
    ASSERT_EQ(ex.channels, want) << path;
    ASSERT_EQ(ex.height, 3);
    ASSERT_EQ(ex.width, 7);
    EXPECT_EQ(ex.label, -1);
    // Dropping alpha keeps the colour (or gray) channels exactly.
    Bytes full = testing::make_pixels(channels, 3, 7, channels), expect;
    for (int p = 0; p < 21; ++p)
      for (int c = 0; c < want; ++c) expect.push_back(full[std::size_t(p * channels + c)]);
    EXPECT_EQ(ex.pixels, expect) << path;
  }
}

TEST(ImageFolderReader, JpegDecodesClose) {
  ScratchDir dir;
  const int h = 16, w = 24;
  Bytes smooth;
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < 3; ++c) smooth.push_back(std::uint8_t(6 * x + 4 * y + 30 * c));
  const std::string path = dir / "ramp.jpg";
  ASSERT_NE(stbi_write_jpg(path.c_str(), w, h, 3, smooth.data(), 95), 0);
  Example ex = load_image(path);
  ASSERT_EQ(ex.channels, 3);
  ASSERT_EQ(ex.height, h);
  ASSERT_EQ(ex.width, w);
  double total = 0;
  int worst = 0;
  for (std::size_t i = 0; i < smooth.size(); ++i) {
    int diff = std::abs(int(ex.pixels[i]) - int(smooth[i]));
    total += diff;
    worst = std::max(worst, diff);
  }
  // Quality 95 on a smooth ramp: lossy (4:2:0 chroma subsampling blurs colour edges), but by a few levels on
  // average; a channel mix-up would be off by 30 or more everywhere, a transposition by tens.
  EXPECT_LT(total / double(smooth.size()), 2.0);
  EXPECT_LE(worst, 24);
}

// A PNG signature + IHDR chunk claiming w x h gray pixels, and nothing else.
Bytes png_header(std::uint32_t w, std::uint32_t h) {
  Bytes out = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  testing::put_be32(out, 13);
  for (char ch : std::string("IHDR")) out.push_back(std::uint8_t(ch));
  testing::put_be32(out, w);
  testing::put_be32(out, h);
  for (std::uint8_t b : {8, 0, 0, 0, 0}) out.push_back(b);
  testing::put_be32(out, 0);  // CRC (stb_image does not check it)
  return out;
}

TEST(ImageFolderReader, RefusesAbsurdDimensionsBeforeDecoding) {
  Bytes big = png_header(20000, 20000);  // each side allowed, 4e8 bytes not
  expect_error([&] { decode_image(big.data(), big.size(), "big.png"); },
               {"big.png", "absurd dimensions 20000x20000x1"});
  Bytes wide = png_header(40000, 1);
  expect_error([&] { decode_image(wide.data(), wide.size(), "wide.png"); }, {"wide.png", "not a readable"});
  Bytes zero = png_header(0, 5);
  expect_error([&] { decode_image(zero.data(), zero.size(), "zero.png"); }, {"zero.png"});
  expect_error([&] { decode_image(nullptr, 0, "nothing"); }, {"nothing", "empty"});
  Bytes header_only = png_header(4, 4);  // plausible size, no pixel data
  expect_error([&] { decode_image(header_only.data(), header_only.size(), "cut.png"); },
               {"cannot decode", "cut.png"});
  expect_error([] { load_image("/nonexistent/graft.png"); }, {"/nonexistent/graft.png"});
}

TEST(ImageFolderReader, SkipsUnreadableFilesOrRefusesThemWhenStrict) {
  ScratchDir dir;
  testing::write_png(dir / "a/1.png", 1, 2, 2, 1);
  testing::write_png(dir / "a/2.png", 2, 2, 2, 1);
  testing::write_png(dir / "b/1.png", 3, 2, 2, 1);
  testing::write_text(dir / "a/bad.png", "this is text");
  testing::write_file(dir / "b/huge.png", png_header(20000, 20000));
  ::testing::internal::CaptureStderr();
  ImageFolderReport report;
  DatasetPtr data = open_image_folder(dir.str(), {}, &report);
  const std::string warning = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(data->size(), 3);
  EXPECT_EQ(report.images, 3);
  EXPECT_EQ(report.skipped, 2);
  EXPECT_EQ(report.skipped_files, (std::vector<std::string>{dir / "a/bad.png", dir / "b/huge.png"}));
  EXPECT_NE(warning.find("skipped 2 unreadable"), std::string::npos) << warning;
  EXPECT_NE(warning.find("bad.png"), std::string::npos) << warning;
  EXPECT_EQ(std::count(warning.begin(), warning.end(), '\n'), 1) << "one warning line: " << warning;
  expect_error([&] { open_image_folder(dir.str(), {.strict = true}); }, {"bad.png", "not a readable JPEG or PNG"});
  std::filesystem::remove(dir / "a/bad.png");
  expect_error([&] { open_image_folder(dir.str(), {.strict = true}); }, {"huge.png", "absurd dimensions"});
  std::filesystem::remove(dir / "b/1.png");  // b now holds only the unreadable file
  ::testing::internal::CaptureStderr();
  expect_error([&] { open_image_folder(dir.str()); }, {std::string("'") + dir / "b" + "'", "no readable image"});
  ::testing::internal::GetCapturedStderr();
}

TEST(ImageFolderReader, RefusesBadStructure) {
  ScratchDir dir;
  testing::write_png(dir / "only/1.png", 1, 2, 2, 1);
  expect_error([&] { open_image_folder(dir.str()); }, {"1 class folder ('only')", "at least two"});
  expect_error([&] { open_image_folder(dir / "only"); }, {"0 class folders"});
  expect_error([&] { open_image_folder(dir / "only/1.png"); }, {"only/1.png", "not a directory"});
  expect_error([&] { open_image_folder(dir / "missing"); }, {"missing", "not a directory"});
  std::filesystem::create_directories(dir / "empty");
  testing::write_text(dir / "empty/readme.txt", "no images here");
  expect_error([&] { open_image_folder(dir.str()); }, {std::string("class folder '") + dir / "empty" + "'", "holds no .jpg"});
  // A class folder whose name holds a line break (checkpoints store class names one per line) is refused at open.
  {
    ScratchDir bad;
    testing::write_png(bad / "a/x.png", 4, 4, 5, 3);
    testing::write_png(bad / "b\nc/x.png", 4, 4, 5, 3);
    expect_error([&] { open_image_folder(bad.str()); }, {"class folder name in", "contains a line break"});
  }
}

// find_images (graft predict / features on folders) says which entries it could not inspect instead of dropping
// them: a dangling link named like an image, and an image whose path is longer than PATH_MAX (made with
// mkdirat/openat, one relative step at a time). Broken links with other names (dangling, a loop) are no images:
// ignored.
TEST(ImageFolderReader, FindImagesSaysWhatItCannotInspect) {
  ScratchDir dir;
  testing::write_png(dir / "photos/a.png", 1, 3, 3, 3);
  std::filesystem::create_symlink(dir / "nowhere.png", dir / "photos/gone.png");
  std::filesystem::create_symlink(dir / "nowhere", dir / "photos/notes");
  std::filesystem::create_symlink(dir / "photos/loop", dir / "photos/loop");  // a link to itself: no image either
  std::vector<std::string> unlisted;
  EXPECT_EQ(find_images(dir / "photos", &unlisted), std::vector<std::string>{dir / "photos/a.png"});
  ASSERT_EQ(unlisted.size(), 1u);
  EXPECT_NE(unlisted[0].find("cannot inspect '" + dir / "photos/gone.png" + "'"), std::string::npos) << unlisted[0];
  expect_error([&] { find_images(dir / "photos"); }, {"cannot inspect", "gone.png"});
  std::filesystem::remove(dir / "photos/gone.png");

  // photos/ddd.../ddd.../.../iii...png, its whole path over PATH_MAX while every folder's own path is under it.
  std::ifstream png_file(dir / "photos/a.png", std::ios::binary);
  const std::string png((std::istreambuf_iterator<char>(png_file)), std::istreambuf_iterator<char>());
  int fd = ::open((dir / "photos").c_str(), O_RDONLY | O_DIRECTORY);
  ASSERT_GE(fd, 0);
  std::size_t length = (dir / "photos").size();
  const std::string folder(200, 'd'), image = std::string(250, 'i') + ".png";
  while (length + 1 + image.size() < PATH_MAX) {  // then the folder's own path is under PATH_MAX - 255 + 201
    ASSERT_EQ(::mkdirat(fd, folder.c_str(), 0755), 0);
    const int next = ::openat(fd, folder.c_str(), O_RDONLY | O_DIRECTORY);
    ::close(fd);
    ASSERT_GE(next, 0);
    fd = next;
    length += 1 + folder.size();
  }
  const int file = ::openat(fd, image.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644);
  ::close(fd);
  ASSERT_GE(file, 0);
  ASSERT_EQ(::write(file, png.data(), png.size()), static_cast<ssize_t>(png.size()));
  ::close(file);
  unlisted.clear();
  EXPECT_EQ(find_images(dir / "photos", &unlisted), std::vector<std::string>{dir / "photos/a.png"});
  ASSERT_EQ(unlisted.size(), 1u);
  EXPECT_NE(unlisted[0].find("cannot inspect"), std::string::npos) << unlisted[0];
  EXPECT_NE(unlisted[0].find(image), std::string::npos) << unlisted[0];
  EXPECT_NE(unlisted[0].find(std::strerror(ENAMETOOLONG)), std::string::npos) << unlisted[0];
  // std::filesystem::remove_all walks by full paths, which the kernel refuses past PATH_MAX; rm works by steps.
  EXPECT_EQ(std::system(("rm -rf '" + dir / "photos" + "'").c_str()), 0);
}

TEST(ImageFolderReader, ConcurrentGetMatchesSerial) {
  ScratchDir dir;
  for (int k = 0; k < 12; ++k)
    testing::write_png(dir / (std::string(k % 2 ? "odd/" : "even/") + std::to_string(k) + ".png"), k, 9, 11, 3);
  DatasetPtr data = open_image_folder(dir.str());
  std::vector<Example> serial;
  for (std::int64_t i = 0; i < data->size(); ++i) serial.push_back(data->get(i));
  std::vector<int> mismatches(4, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int round = 0; round < 5; ++round)
        for (std::int64_t i = 0; i < data->size(); ++i) {
          Example ex = data->get((i + t) % data->size());
          const Example& ref = serial[std::size_t((i + t) % data->size())];
          if (ex.pixels != ref.pixels || ex.label != ref.label) ++mismatches[std::size_t(t)];
        }
    });
  for (auto& th : threads) th.join();
  for (int t = 0; t < 4; ++t) EXPECT_EQ(mismatches[std::size_t(t)], 0) << "thread " << t;
}

// Every seed of fuzz_image (tests/fuzz/image_corpus), including inputs that crashed stb_image 2.27 before
// io/stb_patch.cmake (regress_jpeg_*, regress_png_zero_length_chunk: UB under UBSan before fix 3; regress_jpeg_dc_overflow:
// a signed overflow before fix 4; regress_jpeg_shift_32:
// a 32-bit shift, see CMakeLists.txt GRAFT_SANITIZE): each decodes
// to a consistent image or is refused with graft::Error.
TEST(ImageFolderReader, FuzzCorpusDecodesOrRefuses) {
  int decoded = 0, refused = 0;
  for (const auto& entry : std::filesystem::directory_iterator(std::string(GRAFT_FUZZ_CORPORA) + "/image_corpus")) {
    Bytes bytes = testing::read_bytes(entry.path().string());
    try {
      Example ex = decode_image(bytes.data(), bytes.size(), entry.path().filename().string());
      EXPECT_EQ(ex.pixels.size(), std::size_t(ex.height) * std::size_t(ex.width) * std::size_t(ex.channels));
      EXPECT_TRUE(ex.channels == 1 || ex.channels == 3) << entry.path();
      ++decoded;
    } catch (const Error&) {
      ++refused;
    }
  }
  EXPECT_GE(decoded, 12);  // the valid seeds: PNG of every colour type, baseline/progressive/gray/CMYK JPEG
  EXPECT_GE(refused, 4);   // truncated PNG and JPEG, oversized header, text
}

// ---- open_dataset ---------------------------------------------------------------------------------------------

TEST(DatasetSpec, OpensEachKind) {
  ScratchDir dir;
  testing::write_file(dir / "c10/test_batch.bin", testing::cifar_records({4, 5}, 0, false));
  testing::write_file(dir / "c100/test.bin", testing::cifar_records({77}, 0, true));
  testing::write_file(dir / "fm/t10k-images-idx3-ubyte", testing::idx_images(1, 28, 28, Bytes(784, 1)));
  testing::write_file(dir / "fm/t10k-labels-idx1-ubyte", testing::idx_labels({3}));
  EXPECT_EQ(open_dataset(std::string("cifar10:") + dir / "c10", false)->describe(), "cifar10 test (2 images, 10 classes)");
  EXPECT_EQ(open_dataset(std::string("cifar100:") + dir / "c100", false)->label(0), 77);
  EXPECT_EQ(open_dataset(std::string("fashion-mnist:") + dir / "fm", false)->class_names()[3], "Dress");
  for (const char* split : {"train", "val"}) {
    testing::write_png(dir / (std::string("split/") + std::string(split) + "/x/1.png"), 1, 2, 2, 1);
    testing::write_png(dir / (std::string("split/") + std::string(split) + "/y/1.png"), 2, 2, 2, 1);
  }
  testing::write_png(dir / "split/train/y/2.png", 3, 2, 2, 1);
  EXPECT_EQ(open_dataset(dir / "split", true)->size(), 3);
  EXPECT_EQ(open_dataset(dir / "split", false)->size(), 2);
  // Without both train/ and val/, the folder itself is the dataset (here: classes "other" and "train").
  testing::write_png(dir / "flat/train/1.png", 1, 2, 2, 1);
  testing::write_png(dir / "flat/other/1.png", 2, 2, 2, 1);
  DatasetPtr whole = open_dataset(dir / "flat", false);
  EXPECT_EQ(whole->class_names(), (std::vector<std::string>{"other", "train"}));
  expect_error([&] { open_dataset("cifar10:", true); }, {"names no directory"});
  expect_error([&] { open_dataset(dir / "nope", true); }, {"nope", "neither fashion-mnist"});
  expect_error([&] { open_dataset(std::string("cifar100:") + dir / "c10", true); }, {"train.bin", "not found"});
}

// ---- views ----------------------------------------------------------------------------------------------------

// Example i: one 2-byte pixel row encoding i, label labels[i].
class LabelsDataset final : public Dataset {
 public:
  LabelsDataset(std::vector<int> labels, int classes) : labels_(std::move(labels)) {
    for (int c = 0; c < classes; ++c) names_.push_back(std::string("class") + std::to_string(c));
  }
  std::int64_t size() const override { return std::int64_t(labels_.size()); }
  Example get(std::int64_t i) const override {
    return {1, 1, 2, {std::uint8_t(i & 0xff), std::uint8_t(i >> 8)}, labels_.at(std::size_t(i))};
  }
  int label(std::int64_t i) const override { return labels_.at(std::size_t(i)); }
  const std::vector<std::string>& class_names() const override { return names_; }
  std::string describe() const override { return "labels"; }

 private:
  std::vector<int> labels_;
  std::vector<std::string> names_;
};

std::int64_t index_of(const Example& ex) { return ex.pixels[0] | (ex.pixels[1] << 8); }

// `counts[c]` examples of class c, interleaved (0,1,2,0,1,2,...) so class order differs from index order.
DatasetPtr make_labels(const std::vector<int>& counts) {
  std::vector<int> labels, left = counts;
  for (bool any = true; any;) {
    any = false;
    for (std::size_t c = 0; c < left.size(); ++c)
      if (left[c] > 0) labels.push_back(int(c)), --left[c], any = true;
  }
  return std::make_shared<LabelsDataset>(labels, int(counts.size()));
}

std::vector<std::int64_t> base_indices(const DatasetPtr& view) {
  std::vector<std::int64_t> out;
  for (std::int64_t i = 0; i < view->size(); ++i) out.push_back(index_of(view->get(i)));
  return out;
}

TEST(DatasetViews, SubsetKeepsOrderAndRepeats) {
  DatasetPtr base = make_labels({3, 3});
  DatasetPtr sub = subset(base, {4, 0, 4});
  EXPECT_EQ(base_indices(sub), (std::vector<std::int64_t>{4, 0, 4}));
  EXPECT_EQ(sub->label(0), base->label(4));
  EXPECT_EQ(sub->class_names(), base->class_names());
  EXPECT_EQ(sub->describe(), "subset (3 images, 2 classes) of labels");
  expect_error([&] { subset(base, {6}); }, {"index 6", "out of range"});
  expect_error([&] { sub->get(3); }, {"index 3"});
  expect_error([&] { subset(nullptr, {}); }, {"null"});
}

TEST(DatasetViews, SelectClassesRelabelsInGivenOrder) {
  DatasetPtr base = make_labels({4, 5, 6});
  DatasetPtr sel = select_classes(base, {2, 0});
  EXPECT_EQ(sel->class_names(), (std::vector<std::string>{"class2", "class0"}));
  ASSERT_EQ(sel->size(), 10);
  for (std::int64_t i = 0; i < sel->size(); ++i) {
    Example ex = sel->get(i);
    const int original = base->label(index_of(ex));
    EXPECT_EQ(ex.label, original == 2 ? 0 : 1);
    EXPECT_EQ(sel->label(i), ex.label);
    EXPECT_NE(original, 1);
  }
  expect_error([&] { select_classes(base, {0, 0}); }, {"class 0 is listed twice"});
  expect_error([&] { select_classes(base, {3}); }, {"class 3 out of range"});
  expect_error([&] { select_classes(base, {}); }, {"no classes"});
}

TEST(DatasetViews, SamplePerClassTakesAtMostNOfEach) {
  DatasetPtr base = make_labels({10, 3, 7});
  DatasetPtr few = sample_per_class(base, 5, 42);
  std::vector<int> counts(3, 0);
  std::vector<std::int64_t> picked = base_indices(few);
  for (std::int64_t i = 0; i < few->size(); ++i) ++counts[std::size_t(few->label(i))];
  EXPECT_EQ(counts, (std::vector<int>{5, 3, 5}));
  EXPECT_EQ(std::set<std::int64_t>(picked.begin(), picked.end()).size(), picked.size()) << "no repeats";
  EXPECT_EQ(base_indices(sample_per_class(base, 5, 42)), picked) << "same seed, same sample";
  EXPECT_NE(base_indices(sample_per_class(base, 5, 43)), picked) << "another seed, another sample";
  EXPECT_EQ(sample_per_class(base, 100, 1)->size(), 20);
  expect_error([&] { sample_per_class(base, 0, 1); }, {"at least 1"});
}

TEST(DatasetViews, SplitIsStratifiedDisjointAndCovering) {
  DatasetPtr base = make_labels({100, 50, 20, 1});
  TrainValidation split = split_train_validation(base, 0.2, 7);
  std::vector<std::int64_t> train = base_indices(split.train), val = base_indices(split.validation);
  std::vector<int> val_counts(4, 0), train_counts(4, 0);
  for (std::int64_t i : val) ++val_counts[std::size_t(base->label(i))];
  for (std::int64_t i : train) ++train_counts[std::size_t(base->label(i))];
  EXPECT_EQ(val_counts, (std::vector<int>{20, 10, 4, 0}));  // a lone example stays in training
  EXPECT_EQ(train_counts, (std::vector<int>{80, 40, 16, 1}));
  std::set<std::int64_t> all(train.begin(), train.end());
  for (std::int64_t i : val) EXPECT_TRUE(all.insert(i).second) << "index " << i << " in both parts";
  EXPECT_EQ(all.size(), std::size_t(base->size()));
  for (std::int64_t i = 0; i < split.validation->size(); ++i)
    EXPECT_EQ(split.validation->label(i), base->label(val[std::size_t(i)]));
  EXPECT_EQ(split.validation->describe(), "validation split (seed 7, 20%) (34 images, 4 classes) of labels");

  TrainValidation again = split_train_validation(base, 0.2, 7), other = split_train_validation(base, 0.2, 8);
  EXPECT_EQ(base_indices(again.validation), val);
  EXPECT_EQ(base_indices(again.train), train);
  EXPECT_NE(base_indices(other.validation), val);
  // Views of views: a split of a class selection keeps the relabelled classes.
  TrainValidation nested = split_train_validation(select_classes(base, {1, 2}), 0.5, 3);
  EXPECT_EQ(nested.validation->size(), 35);
  EXPECT_EQ(nested.validation->class_names(), (std::vector<std::string>{"class1", "class2"}));
  for (std::int64_t i = 0; i < nested.validation->size(); ++i) EXPECT_LT(nested.validation->get(i).label, 2);
}

TEST(DatasetViews, SplitRefusesBadFractions) {
  DatasetPtr base = make_labels({2, 2});
  for (double f : {0.0, 1.0, -0.5, 1.5, std::nan("")})
    expect_error([&] { split_train_validation(base, f, 1); }, {"validation_fraction must be in (0, 1)"});
  expect_error([&] { split_train_validation(base, 0.1, 1); }, {"leaves no validation example"});
}

}  // namespace
}  // namespace graft
