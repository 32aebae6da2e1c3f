// Labelled image datasets: what `graft finetune`, `eval` and the examples train on.
//   Fashion-MNIST / MNIST  IDX files (raw or .gz): 28x28 grayscale, 10 classes
//   CIFAR-10 / CIFAR-100   binary batches: 32x32 RGB (CIFAR-100: fine labels)
//   image folders          DIR/<class>/<image>.jpg|.jpeg|.png (one subfolder per class, sorted by name)
// A Dataset hands out decoded examples (HWC uint8, 1 or 3 channels) by index; it is immutable after opening, and
// get() may be called from several loader threads at once. Subsets (train/validation split, class subsets,
// N-per-class sampling) are views: they share the decoded data or the file list of their base.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace graft {

// One decoded image: height*width*channels bytes, row-major HWC; label in [0, num_classes).
struct Example {
  int height = 0, width = 0, channels = 0;
  std::vector<std::uint8_t> pixels;
  int label = -1;
};

class Dataset {
 public:
  virtual ~Dataset() = default;
  virtual std::int64_t size() const = 0;
  // Decodes example `index`; throws graft::Error naming the file or record when it cannot be read.
  virtual Example get(std::int64_t index) const = 0;
  // The label of `index` without decoding (cheap: used for splits and sampling).
  virtual int label(std::int64_t index) const = 0;
  virtual const std::vector<std::string>& class_names() const = 0;
  int num_classes() const { return static_cast<int>(class_names().size()); }
  // What the dataset is, for logs: "fashion-mnist train (60000 images, 10 classes)".
  virtual std::string describe() const = 0;
};
using DatasetPtr = std::shared_ptr<const Dataset>;

// ---- formats ---------------------------------------------------------------------------------------------
// IDX image file (magic 0x00000803, N x rows x cols uint8) + IDX label file (0x00000801); .gz is inflated on load.
// class_names empty -> "0".."9" style names from the largest label.
DatasetPtr open_idx(const std::string& images_path, const std::string& labels_path,
                    std::vector<std::string> class_names = {}, std::string name = "idx");
// Fashion-MNIST from DIR (train-images-idx3-ubyte[.gz] ... t10k-...), with its ten class names.
inline constexpr const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";
DatasetPtr open_fashion_mnist(bool train, const std::string& dir = kFashionMnistDir);
const std::vector<std::string>& fashion_mnist_class_names();
// CIFAR-10 (data_batch_1..5.bin / test_batch.bin, 1 label byte + 3072 pixel bytes per record) or CIFAR-100
// (train.bin / test.bin, coarse + fine label bytes; the fine label is used). Class names from
// batches.meta.txt / fine_label_names.txt when present, else "0".."N-1".
DatasetPtr open_cifar(const std::string& dir, bool train, int num_classes /* 10 or 100 */);

struct ImageFolderOptions {
  // false: files whose header stb_image cannot read are skipped, counted and reported once (warning on stderr);
  // true: the first such file is an error.
  bool strict = false;
};
struct ImageFolderReport {
  std::int64_t images = 0, skipped = 0;
  std::vector<std::string> skipped_files;  // the first few, for the warning
};
// Opens DIR/<class>/*: classes are the subfolders in name order, images the .jpg/.jpeg/.png files (any case) directly
// inside them, in name order (hidden entries, starting with '.', and other files are ignored). Each image's header
// is checked at open. Errors: not a directory, fewer than two classes, a class folder with no (readable) image
// (names it).
DatasetPtr open_image_folder(const std::string& dir, const ImageFolderOptions& options = {},
                             ImageFolderReport* report = nullptr);

// Every .jpg/.jpeg/.png file (any case) in DIR and its subfolders, depth first: a folder's images in name order, then
// each subfolder's (recursively) in name order; hidden entries (starting with '.') and linked folders skipped.
// Errors: DIR is not a directory or cannot be listed; a subfolder that cannot be listed, or an entry whose type
// cannot be read (a path longer than PATH_MAX, a dangling link named like an image), too, unless `unlisted` is given:
// then the error message is added there and the entry skipped.
std::vector<std::string> find_images(const std::string& dir, std::vector<std::string>* unlisted = nullptr);

// One JPEG or PNG file (or its bytes in memory; `what` names it in errors), decoded to HWC uint8: gray stays one
// channel, gray+alpha drops the alpha (1 channel), RGB and RGBA give 3 channels; 16-bit PNGs are scaled to 8 bits.
// Absurd sizes (a side of 0 or above 32768, or width*height*channels above 2^28) are refused from the header,
// before decoding. The label is -1.
Example load_image(const std::string& path);
Example decode_image(const std::uint8_t* data, std::size_t size, const std::string& what);

// "fashion-mnist" | "fashion-mnist:DIR" | "cifar10:DIR" | "cifar100:DIR" | DIR (an image folder, whose train/ and
// val/ subfolders are used when both exist; otherwise the whole folder for both and the caller splits).
DatasetPtr open_dataset(const std::string& spec, bool train, const ImageFolderOptions& options = {});

// ---- views -----------------------------------------------------------------------------------------------
// The examples `indices` of base, in that order (indices may repeat).
DatasetPtr subset(DatasetPtr base, std::vector<std::int64_t> indices);
// Only the listed classes, relabelled 0..k-1 in the order given; class names follow.
DatasetPtr select_classes(DatasetPtr base, const std::vector<int>& classes);
// The examples relabelled by class NAME onto `names` (a model's classes, or the training data's): an example of
// base class "cat" gets the index of "cat" in `names`, and class_names() is `names`. A base class missing from
// `names` is an error naming it, or, with drop_unknown, its examples are left out (dropped, if given, lists them).
// Returns base itself when its names are `names` already. Classes are matched by name, never by position: a
// validation or evaluation folder with fewer or other class folders than the training data would otherwise be
// scored against the wrong classes.
DatasetPtr match_classes(DatasetPtr base, const std::vector<std::string>& names, bool drop_unknown = false,
                         std::vector<std::string>* dropped = nullptr);
// At most `per_class` examples of each class, chosen with `seed` (few-shot runs).
DatasetPtr sample_per_class(DatasetPtr base, int per_class, std::uint64_t seed);
// Seeded, stratified split: about `validation_fraction` of each class goes to validation.
struct TrainValidation {
  DatasetPtr train, validation;
};
TrainValidation split_train_validation(DatasetPtr base, double validation_fraction, std::uint64_t seed);

}  // namespace graft
