// See tools/image_batches.h.
#include "tools/image_batches.h"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <random>

#include "core/error.h"
#include "io/dataset.h"
#include "io/hdf5_write.h"
#include "kernels/cpu_parallel.h"
#include "tools/cli_common.h"
#include "train/interrupt.h"

namespace graft::cli {

namespace fs = std::filesystem;

std::vector<std::string> image_paths(const std::vector<std::string>& args, bool strict, const char* what) {
  std::vector<std::string> paths;
  for (const std::string& arg : args) {
    std::error_code ec;
    const bool exists = fs::exists(arg, ec);
    GRAFT_CHECK(!ec, what, ": '", arg, "': ", ec.message());
    GRAFT_CHECK(exists, what, ": '", arg, "' does not exist");
    if (!fs::is_directory(arg, ec)) {
      paths.push_back(arg);
      continue;
    }
    std::vector<std::string> unlisted;
    std::vector<std::string> found = find_images(arg, &unlisted);
    for (const std::string& problem : unlisted) {
      GRAFT_CHECK(!strict, what, ": ", problem);
      std::fprintf(stderr, "graft: warning: skipped: %s\n", problem.c_str());
    }
    GRAFT_CHECK(!found.empty(), what, ": folder '", arg, "' holds no .jpg, .jpeg or .png file");
    paths.insert(paths.end(), found.begin(), found.end());
  }
  return paths;
}

void check_output_file(const std::string& out, const std::vector<std::string>& inputs,
                       const std::vector<std::string>& model_files, const char* what, const char* option) {
  GRAFT_CHECK(!out.empty(), what, ": ", option, " needs a file name");
  check_not_an_input(out, inputs, what, option);
  check_not_an_input(out, model_files, what, option);
  std::string ext = fs::path(out).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char ch) { return char(std::tolower(ch)); });
  GRAFT_CHECK(ext != ".jpg" && ext != ".jpeg" && ext != ".png", what, ": ", option, " '", out,
              "' names an image file; give the output file's name after ", option);
  std::error_code ec;
  GRAFT_CHECK(!fs::is_directory(out, ec), what, ": ", option, " '", out, "' is a folder");
  hdf5::check_replaceable_file(out, std::string(what) + ": " + option);  // written aside, renamed over `out`
  const fs::path parent = fs::path(out).parent_path();
  GRAFT_CHECK(parent.empty() || fs::is_directory(parent, ec), what, ": ", option, " '", out, "': folder '",
              parent.string(), "' does not exist");
}

std::int64_t for_each_image_batch(const std::vector<std::string>& paths, const TransformOptions& transform, int batch,
                                  bool strict, Device device, const char* what,
                                  const std::function<void(const std::vector<std::size_t>& rows, const Tensor& x)>& on_batch) {
  GRAFT_CHECK(batch >= 1, what, ": batch ", batch, " must be >= 1");
  check_transform_options(transform);
  const std::int64_t pixels = std::int64_t{transform.size} * transform.size * 3;
  std::int64_t skipped = 0;
  InterruptScope sigint;  // Ctrl-C stops between batches, so the caller's unfinished output file is removed
  for (std::size_t first = 0; first < paths.size(); first += static_cast<std::size_t>(batch)) {
    if (interrupted()) {
      std::fflush(stdout);
      std::fprintf(stderr, "graft: %s interrupted after %zu of %zu image(s); no output file was written\n", what,
                   first, paths.size());
      throw CLI::RuntimeError(130);
    }
    const std::size_t count = std::min(paths.size() - first, static_cast<std::size_t>(batch));
    // Decode and transform the batch's images in parallel; an image that fails leaves its reason instead.
    std::vector<float> input(count * static_cast<std::size_t>(pixels));
    std::vector<std::string> problems(count);
    // (decoding costs more than the pixels it yields: each image counts as at least a thread's worth of work)
    parallel_for(static_cast<std::int64_t>(count), std::max(pixels, kMinWorkPerThread),
                 [&](std::int64_t lo, std::int64_t hi) {
                   std::mt19937_64 unused_rng(0);  // eval transforms draw nothing
                   for (std::int64_t i = lo; i < hi; ++i) {
                     const std::string& path = paths[first + static_cast<std::size_t>(i)];
                     try {
                       transform_example(load_image(path), transform, unused_rng, input.data() + i * pixels);
                     } catch (const Error& e) {
                       problems[static_cast<std::size_t>(i)] = e.message();
                     } catch (const std::exception& e) {
                       problems[static_cast<std::size_t>(i)] = path + ": " + e.what();
                     }
                   }
                 });
    std::vector<std::size_t> rows;  // the batch's readable images, moved to the front
    for (std::size_t i = 0; i < count; ++i) {
      if (problems[i].empty()) {
        if (rows.size() != i)
          std::copy_n(input.begin() + static_cast<std::ptrdiff_t>(i * pixels), pixels,
                      input.begin() + static_cast<std::ptrdiff_t>(rows.size() * pixels));
        rows.push_back(first + i);
        continue;
      }
      GRAFT_CHECK(!strict, what, ": ", problems[i]);
      std::fprintf(stderr, "graft: warning: skipped an unreadable image: %s\n", problems[i].c_str());
      ++skipped;
    }
    if (rows.empty()) continue;
    input.resize(rows.size() * static_cast<std::size_t>(pixels));
    on_batch(rows, Tensor::from_vector(input, {static_cast<std::int64_t>(rows.size()), transform.size, transform.size, 3},
                                       device));
  }
  return skipped;
}

}  // namespace graft::cli
