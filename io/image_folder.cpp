// Image decoding (stb_image, JPEG and PNG) and image-folder datasets: DIR/<class>/<image>, classes in name order.
// At open only the headers are read (stbi_info: a few hundred bytes per file), so a folder of thousands of images
// opens quickly; files whose header cannot be read, or whose dimensions are absurd, are skipped and reported once
// (or refused with `strict`). get() reads the file and decodes it; it holds no mutable state, so loader threads
// may call it concurrently (stb_image 2.27 keeps its failure reason thread-local).
#include <stb/stb_image.h>

#include <algorithm>
#include <cctype>
#include <climits>
#include <cstdio>
#include <filesystem>

#include "core/error.h"
#include "io/dataset.h"
#include "io/dataset_internal.h"

namespace graft {
namespace {

namespace fs = std::filesystem;

constexpr int kMaxSide = 1 << 15;
constexpr std::uint64_t kMaxBytes = std::uint64_t(1) << 28;  // decoded width * height * channels
constexpr std::uint64_t kMaxFileBytes = std::uint64_t(1) << 30;

// Empty when the dimensions are acceptable, else why not.
std::string dimension_problem(int w, int h, int c) {
  if (w <= 0 || h <= 0 || w > kMaxSide || h > kMaxSide || c <= 0 || c > 4 ||
      std::uint64_t(w) * std::uint64_t(h) * std::uint64_t(c) > kMaxBytes)
    return detail::concat("absurd dimensions ", w, "x", h, "x", c, " (sides must be in [1, ", kMaxSide,
                          "] and width*height*channels at most ", kMaxBytes, ")");
  return {};
}

const char* stb_reason() {
  const char* reason = stbi_failure_reason();
  return reason ? reason : "unknown error";
}

bool is_image_name(const fs::path& path) {
  std::string ext = path.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char ch) { return char(std::tolower(ch)); });
  return ext == ".jpg" || ext == ".jpeg" || ext == ".png";
}

bool is_hidden(const fs::path& path) {
  std::string name = path.filename().string();
  return !name.empty() && name[0] == '.';
}

struct Item {
  std::string path;
  int label;
};

class ImageFolderDataset final : public Dataset {
 public:
  ImageFolderDataset(std::vector<Item> items, std::vector<std::string> names, std::string name)
      : items_(std::move(items)), names_(std::move(names)), name_(std::move(name)) {}
  std::int64_t size() const override { return std::int64_t(items_.size()); }
  Example get(std::int64_t index) const override {
    check_index(index);
    Example ex = load_image(items_[std::size_t(index)].path);
    ex.label = items_[std::size_t(index)].label;
    return ex;
  }
  int label(std::int64_t index) const override {
    check_index(index);
    return items_[std::size_t(index)].label;
  }
  const std::vector<std::string>& class_names() const override { return names_; }
  std::string describe() const override { return name_ + " " + detail::count_phrase(size(), num_classes()); }

 private:
  void check_index(std::int64_t index) const {
    GRAFT_CHECK(index >= 0 && index < size(), name_, ": example index ", index, " out of range [0, ", size(), ")");
  }
  std::vector<Item> items_;
  std::vector<std::string> names_;
  std::string name_;
};

// Sorted names of the non-hidden entries of `dir` that pass `keep`.
template <typename Keep>
std::vector<std::string> sorted_entries(const fs::path& dir, Keep keep, const char* what = "open_image_folder") {
  std::vector<std::string> names;
  std::error_code ec;
  fs::directory_iterator it(dir, ec), end;
  GRAFT_CHECK(!ec, what, ": cannot list '", dir.string(), "': ", ec.message());
  for (; it != end; it.increment(ec)) {
    GRAFT_CHECK(!ec, what, ": cannot list '", dir.string(), "': ", ec.message());
    if (!is_hidden(it->path()) && keep(*it)) names.push_back(it->path().filename().string());
  }
  GRAFT_CHECK(!ec, what, ": cannot list '", dir.string(), "': ", ec.message());
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace

Example decode_image(const std::uint8_t* data, std::size_t size, const std::string& what) {
  GRAFT_CHECK(size > 0, "decode_image: '", what, "' is empty");
  GRAFT_CHECK(size <= std::size_t(INT_MAX), "decode_image: '", what, "' is too large (", size, " bytes)");
  const int len = int(size);
  int w = 0, h = 0, c = 0;
  GRAFT_CHECK(stbi_info_from_memory(data, len, &w, &h, &c), "decode_image: '", what,
              "' is not a readable JPEG or PNG (", stb_reason(), ")");
  std::string problem = dimension_problem(w, h, c);
  GRAFT_CHECK(problem.empty(), "decode_image: '", what, "' has ", problem);
  const int want = c <= 2 ? 1 : 3;
  int dw = 0, dh = 0, dc = 0;
  stbi_uc* pixels = stbi_load_from_memory(data, len, &dw, &dh, &dc, want);
  GRAFT_CHECK(pixels, "decode_image: cannot decode '", what, "' (", stb_reason(), ")");
  Example ex;
  ex.height = dh;
  ex.width = dw;
  ex.channels = want;
  ex.label = -1;
  // The header said w x h; a decoder that disagreed would make the copy below read out of bounds.
  if (dw != w || dh != h) {
    stbi_image_free(pixels);
    GRAFT_FAIL("decode_image: '", what, "' decoded to ", dw, "x", dh, " but its header says ", w, "x", h);
  }
  ex.pixels.assign(pixels, pixels + std::size_t(dw) * std::size_t(dh) * std::size_t(want));
  stbi_image_free(pixels);
  return ex;
}

Example load_image(const std::string& path) {
  std::vector<std::uint8_t> bytes = detail::read_file_bytes(path, "load_image", kMaxFileBytes);
  return decode_image(bytes.data(), bytes.size(), path);
}

std::vector<std::string> find_images(const std::string& dir, std::vector<std::string>* unlisted) {
  std::error_code ec;
  GRAFT_CHECK(fs::is_directory(dir, ec), "find_images: '", dir, "' is not a directory");
  std::vector<std::string> out;
  std::vector<fs::path> folders = {fs::path(dir)};
  while (!folders.empty()) {  // depth first, each folder's entries in name order
    const fs::path folder = folders.back();
    folders.pop_back();
    std::vector<fs::path> subfolders;
    std::vector<std::string> names;
    try {
      names = sorted_entries(folder, [](const fs::directory_entry&) { return true; }, "find_images");
    } catch (const Error& e) {
      if (!unlisted || folder == fs::path(dir)) throw;
      unlisted->push_back(e.message());
      continue;
    }
    std::int64_t problems = 0;  // entries whose type could not be read, said once per folder
    std::string first_problem;
    for (const std::string& name : names) {
      const fs::path path = folder / name;
      const fs::file_status target = fs::status(path, ec);
      if (ec) {
        // A broken link (dangling, a loop) or a vanished entry matters only when it is named like an image; an entry
        // whose path the system refuses (longer than PATH_MAX) or may not inspect (a folder without x permission)
        // may be an image or a folder of them: said, never dropped in silence.
        std::error_code ignored;
        const bool link = fs::is_symlink(fs::symlink_status(path, ignored));
        if ((link || ec == std::errc::no_such_file_or_directory) && !is_image_name(path)) continue;
        if (problems++ == 0) first_problem = "'" + path.string() + "': " + ec.message();
        continue;
      }
      if (fs::is_directory(target)) {
        if (!fs::is_symlink(fs::symlink_status(path, ec))) subfolders.push_back(path);  // a linked folder could lead back up
      } else if (is_image_name(path) && fs::is_regular_file(target)) {
        out.push_back(path.string());
      }
    }
    if (problems > 0) {
      const std::string problem =
          problems == 1 ? "find_images: cannot inspect " + first_problem
                        : detail::concat("find_images: cannot inspect ", problems, " entries of '", folder.string(),
                                         "' (the first: ", first_problem, ")");
      if (!unlisted) GRAFT_FAIL(problem);
      unlisted->push_back(problem);
    }
    folders.insert(folders.end(), subfolders.rbegin(), subfolders.rend());
  }
  return out;
}

DatasetPtr open_image_folder(const std::string& dir, const ImageFolderOptions& options, ImageFolderReport* report) {
  std::error_code ec;
  GRAFT_CHECK(fs::is_directory(dir, ec), "open_image_folder: '", dir, "' is not a directory");
  std::vector<std::string> classes =
      sorted_entries(dir, [](const fs::directory_entry& entry) {
        std::error_code ec;
        return entry.is_directory(ec);
      });
  GRAFT_CHECK(classes.size() >= 2, "open_image_folder: '", dir, "' has ", classes.size(), " class folder",
              classes.size() == 1 ? " ('" + classes[0] + "')" : std::string("s"),
              "; an image folder needs one subfolder per class and at least two classes");
  // Class names are stored one per line in checkpoints (class_names): a line break in one would be found only when
  // the first checkpoint is written, after an epoch of training.
  for (const std::string& name : classes)
    GRAFT_CHECK(name.find_first_of("\r\n") == std::string::npos, "open_image_folder: class folder name in '", dir,
                "' contains a line break (", name.size(), " characters); rename the folder");
  ImageFolderReport local;
  std::vector<Item> items;
  for (std::size_t k = 0; k < classes.size(); ++k) {
    const fs::path class_dir = fs::path(dir) / classes[k];
    std::vector<std::string> files = sorted_entries(class_dir, [](const fs::directory_entry& entry) {
      std::error_code ec;
      return is_image_name(entry.path()) && entry.is_regular_file(ec);
    });
    GRAFT_CHECK(!files.empty(), "open_image_folder: class folder '", class_dir.string(),
                "' holds no .jpg, .jpeg or .png file");
    std::int64_t readable = 0;
    for (const std::string& file : files) {
      const std::string path = (class_dir / file).string();
      int w = 0, h = 0, c = 0;
      std::string problem;
      if (!stbi_info(path.c_str(), &w, &h, &c)) {
        problem = detail::concat("not a readable JPEG or PNG (", stb_reason(), ")");
      } else {
        problem = dimension_problem(w, h, c);
      }
      if (!problem.empty()) {
        GRAFT_CHECK(!options.strict, "open_image_folder: '", path, "': ", problem);
        ++local.skipped;
        if (local.skipped_files.size() < 5) local.skipped_files.push_back(path);
        continue;
      }
      items.push_back({path, int(k)});
      ++readable;
    }
    GRAFT_CHECK(readable > 0, "open_image_folder: class folder '", class_dir.string(), "' holds no readable image (",
                files.size(), " skipped)");
  }
  local.images = std::int64_t(items.size());
  if (local.skipped > 0) {
    std::string list;
    for (const std::string& f : local.skipped_files) {
      if (!list.empty()) list += ", ";
      list += f;
    }
    if (local.skipped > std::int64_t(local.skipped_files.size())) list += ", ...";
    std::fprintf(stderr, "graft: warning: image folder '%s': skipped %lld unreadable image file%s: %s\n", dir.c_str(),
                 static_cast<long long>(local.skipped), local.skipped == 1 ? "" : "s", list.c_str());
  }
  if (report) *report = local;
  return std::make_shared<ImageFolderDataset>(std::move(items), std::move(classes), "image folder '" + dir + "'");
}

}  // namespace graft
