// Dataset specs (open_dataset), the views (subset, select_classes, sample_per_class, split_train_validation) and
// the helpers the readers share. A view holds its base and a list of base indices (plus, for select_classes, a
// relabelling table); it copies no pixels and has no mutable state, so get() is as thread-safe as the base's.
// Random choices use std::mt19937_64 (whose output the standard fixes) through our own Fisher-Yates with
// `rng() % n` draws: std::shuffle and uniform_int_distribution differ between standard libraries, and a split
// must be the same on every platform for a seed.
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>

#include "core/error.h"
#include "io/dataset.h"
#include "io/dataset_internal.h"

namespace graft {

namespace detail {

std::vector<std::uint8_t> read_file_bytes(const std::string& path, const std::string& op, std::uint64_t max_bytes) {
  namespace fs = std::filesystem;
  std::error_code ec;
  GRAFT_CHECK(fs::is_regular_file(path, ec), op, ": '", path, "' is not a readable file",
              ec ? " (" + ec.message() + ")" : std::string(fs::exists(path, ec) ? "" : " (no such file)"));
  const std::uintmax_t size = fs::file_size(path, ec);
  GRAFT_CHECK(!ec, op, ": cannot get the size of '", path, "': ", ec.message());
  GRAFT_CHECK(size <= max_bytes, op, ": '", path, "' has ", size, " bytes, more than the ", max_bytes,
              " this reader accepts");
  std::FILE* f = std::fopen(path.c_str(), "rb");
  GRAFT_CHECK(f, op, ": cannot open '", path, "' (", std::strerror(errno), ")");
  std::vector<std::uint8_t> bytes(static_cast<std::size_t>(size));
  const std::size_t got = bytes.empty() ? 0 : std::fread(bytes.data(), 1, bytes.size(), f);
  std::fclose(f);
  GRAFT_CHECK(got == bytes.size(), op, ": read ", got, " of ", bytes.size(), " bytes from '", path, "'");
  return bytes;
}

std::string count_phrase(std::int64_t images, int classes) {
  return concat("(", images, images == 1 ? " image, " : " images, ", classes, classes == 1 ? " class)" : " classes)");
}

std::vector<std::string> numbered_class_names(int n) {
  std::vector<std::string> names;
  for (int i = 0; i < n; ++i) names.push_back(std::to_string(i));
  return names;
}

}  // namespace detail

namespace {

// The examples `indices` of base; `relabel` (indexed by base label, empty = identity) renumbers classes.
class IndexView final : public Dataset {
 public:
  IndexView(DatasetPtr base, std::vector<std::int64_t> indices, std::vector<int> relabel,
            std::vector<std::string> names, std::string what)
      : base_(std::move(base)),
        indices_(std::move(indices)),
        relabel_(std::move(relabel)),
        names_(std::move(names)),
        what_(std::move(what)) {}
  std::int64_t size() const override { return std::int64_t(indices_.size()); }
  Example get(std::int64_t index) const override {
    Example ex = base_->get(base_index(index));
    ex.label = map(ex.label);
    return ex;
  }
  int label(std::int64_t index) const override { return map(base_->label(base_index(index))); }
  const std::vector<std::string>& class_names() const override { return names_; }
  std::string describe() const override {
    return what_ + " " + detail::count_phrase(size(), num_classes()) + " of " + base_->describe();
  }

 private:
  std::int64_t base_index(std::int64_t index) const {
    GRAFT_CHECK(index >= 0 && index < size(), what_, ": example index ", index, " out of range [0, ", size(), ")");
    return indices_[std::size_t(index)];
  }
  int map(int label) const {
    if (relabel_.empty()) return label;
    GRAFT_CHECK(label >= 0 && label < int(relabel_.size()) && relabel_[std::size_t(label)] >= 0, what_,
                ": base label ", label, " is not one of the selected classes");
    return relabel_[std::size_t(label)];
  }
  DatasetPtr base_;
  std::vector<std::int64_t> indices_;
  std::vector<int> relabel_;
  std::vector<std::string> names_;
  std::string what_;
};

void check_base(const DatasetPtr& base, const char* op) { GRAFT_CHECK(base, op, ": the dataset is null"); }

void fisher_yates(std::vector<std::int64_t>& v, std::mt19937_64& rng) {
  for (std::size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[std::size_t(rng() % i)]);
}

// The indices of each class, ascending.
std::vector<std::vector<std::int64_t>> indices_by_class(const Dataset& base, const char* op) {
  std::vector<std::vector<std::int64_t>> by_class(std::size_t(base.num_classes()));
  for (std::int64_t i = 0; i < base.size(); ++i) {
    const int label = base.label(i);
    GRAFT_CHECK(label >= 0 && label < base.num_classes(), op, ": example ", i, " of ", base.describe(),
                " has label ", label, " outside [0, ", base.num_classes(), ")");
    by_class[std::size_t(label)].push_back(i);
  }
  return by_class;
}

std::string fraction_text(double f) {
  char text[32];
  std::snprintf(text, sizeof(text), "%g%%", f * 100.0);
  return text;
}

}  // namespace

DatasetPtr subset(DatasetPtr base, std::vector<std::int64_t> indices) {
  check_base(base, "subset");
  const std::int64_t n = base->size();
  for (std::size_t i = 0; i < indices.size(); ++i)
    GRAFT_CHECK(indices[i] >= 0 && indices[i] < n, "subset: index ", indices[i], " (position ", i,
                ") out of range for ", base->describe());
  std::vector<std::string> names = base->class_names();
  return std::make_shared<IndexView>(std::move(base), std::move(indices), std::vector<int>{}, std::move(names),
                                     "subset");
}

DatasetPtr select_classes(DatasetPtr base, const std::vector<int>& classes) {
  check_base(base, "select_classes");
  GRAFT_CHECK(!classes.empty(), "select_classes: no classes given for ", base->describe());
  std::vector<int> relabel(std::size_t(base->num_classes()), -1);
  std::vector<std::string> names;
  std::string list;
  for (std::size_t k = 0; k < classes.size(); ++k) {
    const int c = classes[k];
    GRAFT_CHECK(c >= 0 && c < base->num_classes(), "select_classes: class ", c, " out of range [0, ",
                base->num_classes(), ") for ", base->describe());
    GRAFT_CHECK(relabel[std::size_t(c)] < 0, "select_classes: class ", c, " is listed twice");
    relabel[std::size_t(c)] = int(k);
    names.push_back(base->class_names()[std::size_t(c)]);
    if (!list.empty()) list += ',';
    list += std::to_string(c);
  }
  std::vector<std::int64_t> indices;
  for (std::int64_t i = 0; i < base->size(); ++i) {
    const int label = base->label(i);
    if (label >= 0 && label < int(relabel.size()) && relabel[std::size_t(label)] >= 0) indices.push_back(i);
  }
  return std::make_shared<IndexView>(std::move(base), std::move(indices), std::move(relabel), std::move(names),
                                     "classes " + list);
}

DatasetPtr match_classes(DatasetPtr base, const std::vector<std::string>& names, bool drop_unknown,
                         std::vector<std::string>* dropped) {
  check_base(base, "match_classes");
  if (base->class_names() == names) return base;
  std::vector<int> relabel(std::size_t(base->num_classes()), -1);
  std::vector<std::string> unknown;
  for (std::size_t c = 0; c < relabel.size(); ++c) {
    const std::string& name = base->class_names()[c];
    const auto found = std::find(names.begin(), names.end(), name);
    if (found != names.end()) relabel[c] = int(found - names.begin());
    else unknown.push_back(name);
  }
  if (!unknown.empty() && !drop_unknown) {
    std::string list;
    for (const std::string& name : unknown) list += (list.empty() ? "'" : ", '") + name + "'";
    std::string known;
    for (std::size_t i = 0; i < names.size() && i < 10; ++i) known += (i ? ", '" : "'") + names[i] + "'";
    if (names.size() > 10) known += ", ...";
    GRAFT_FAIL("match_classes: class ", list, " of ", base->describe(), " is not among the ", names.size(),
               " classes it must match (", known, "); classes are matched by name");
  }
  if (dropped) *dropped = unknown;
  std::vector<std::int64_t> indices;
  for (std::int64_t i = 0; i < base->size(); ++i) {
    const int label = base->label(i);
    if (label >= 0 && label < int(relabel.size()) && relabel[std::size_t(label)] >= 0) indices.push_back(i);
  }
  return std::make_shared<IndexView>(std::move(base), std::move(indices), std::move(relabel), names,
                                     "classes matched by name");
}

DatasetPtr sample_per_class(DatasetPtr base, int per_class, std::uint64_t seed) {
  check_base(base, "sample_per_class");
  GRAFT_CHECK(per_class >= 1, "sample_per_class: per_class must be at least 1, got ", per_class);
  std::mt19937_64 rng(seed);
  std::vector<std::int64_t> chosen;
  for (std::vector<std::int64_t>& members : indices_by_class(*base, "sample_per_class")) {
    fisher_yates(members, rng);
    const std::size_t take = std::min(members.size(), std::size_t(per_class));
    chosen.insert(chosen.end(), members.begin(), members.begin() + std::ptrdiff_t(take));
  }
  std::sort(chosen.begin(), chosen.end());
  std::vector<std::string> names = base->class_names();
  return std::make_shared<IndexView>(std::move(base), std::move(chosen), std::vector<int>{}, std::move(names),
                                     detail::concat(per_class, " per class (seed ", seed, ")"));
}

TrainValidation split_train_validation(DatasetPtr base, double validation_fraction, std::uint64_t seed) {
  check_base(base, "split_train_validation");
  GRAFT_CHECK(validation_fraction > 0.0 && validation_fraction < 1.0,
              "split_train_validation: validation_fraction must be in (0, 1), got ", validation_fraction);
  std::mt19937_64 rng(seed);
  std::vector<std::int64_t> train, validation;
  for (std::vector<std::int64_t>& members : indices_by_class(*base, "split_train_validation")) {
    fisher_yates(members, rng);
    // Round per class; a class with a single example stays in training.
    std::size_t n_val = std::size_t(std::llround(double(members.size()) * validation_fraction));
    if (n_val >= members.size()) n_val = members.empty() ? 0 : members.size() - 1;
    validation.insert(validation.end(), members.begin(), members.begin() + std::ptrdiff_t(n_val));
    train.insert(train.end(), members.begin() + std::ptrdiff_t(n_val), members.end());
  }
  GRAFT_CHECK(!validation.empty(), "split_train_validation: a validation fraction of ", validation_fraction,
              " leaves no validation example in ", base->describe());
  std::sort(train.begin(), train.end());
  std::sort(validation.begin(), validation.end());
  const std::string pct = fraction_text(validation_fraction);
  std::vector<std::string> names = base->class_names();
  TrainValidation out;
  out.train = std::make_shared<IndexView>(base, std::move(train), std::vector<int>{}, names,
                                          detail::concat("train split (seed ", seed, ", ", pct, " held out)"));
  out.validation = std::make_shared<IndexView>(base, std::move(validation), std::vector<int>{}, std::move(names),
                                               detail::concat("validation split (seed ", seed, ", ", pct, ")"));
  return out;
}

DatasetPtr open_dataset(const std::string& spec, bool train, const ImageFolderOptions& options) {
  namespace fs = std::filesystem;
  auto after = [&](const std::string& prefix) -> std::string {
    std::string rest = spec.substr(prefix.size());
    GRAFT_CHECK(!rest.empty(), "open_dataset: '", spec, "' names no directory after '", prefix, "'");
    return rest;
  };
  if (spec == "fashion-mnist") return open_fashion_mnist(train);
  if (spec.starts_with("fashion-mnist:")) return open_fashion_mnist(train, after("fashion-mnist:"));
  if (spec.starts_with("cifar10:")) return open_cifar(after("cifar10:"), train, 10);
  if (spec.starts_with("cifar100:")) return open_cifar(after("cifar100:"), train, 100);
  std::error_code ec;
  GRAFT_CHECK(fs::is_directory(spec, ec), "open_dataset: '", spec,
              "' is neither fashion-mnist[:DIR], cifar10:DIR, cifar100:DIR nor an image folder (",
              fs::exists(spec, ec) ? "it is a file, not a folder" : "no such folder", ")");
  const fs::path train_dir = fs::path(spec) / "train", val_dir = fs::path(spec) / "val";
  if (fs::is_directory(train_dir, ec) && fs::is_directory(val_dir, ec))
    return open_image_folder((train ? train_dir : val_dir).string(), options);
  return open_image_folder(spec, options);
}

}  // namespace graft
