// Images named on the command line (files, or folders standing for every image below them), decoded in parallel
// and run through a model in batches: what graft predict and graft features share.
#pragma once
#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "core/device.h"
#include "core/tensor.h"
#include "io/transforms.h"

namespace graft::cli {

// The image files named, folders replaced by the images below them (io/dataset.h find_images). Errors ("<what>:
// ..."): a path that does not exist or cannot be checked, a folder with no image, and, with strict, a subfolder that
// cannot be listed (otherwise skipped with a warning).
std::vector<std::string> image_paths(const std::vector<std::string>& args, bool strict, const char* what);

// Refuses, before any work, an output file (`option`, e.g. "--csv") that would overwrite one of `inputs` (images
// or folders as given) or `model_files`, that has an image's extension (a forgotten file name after the option),
// that is a folder, a symbolic link, a device or a pipe, or that lies in a folder that does not exist.
void check_output_file(const std::string& out, const std::vector<std::string>& inputs,
                       const std::vector<std::string>& model_files, const char* what, const char* option);

// Decodes and transforms `paths` in batches of `batch` (in parallel on the CPU threads) and calls
// on_batch(rows, x) for each batch that has a readable image: x (n, size, size, 3) on `device`, rows[i] the index in
// `paths` of x's i-th image. An unreadable image is an error with strict, else skipped with a warning. Returns the
// number of images skipped. Ctrl-C stops it between batches: a line on stderr, then CLI::RuntimeError(130) (exit
// status 130), so the caller's unfinished output is removed by its destructor.
std::int64_t for_each_image_batch(const std::vector<std::string>& paths, const TransformOptions& transform, int batch,
                                  bool strict, Device device, const char* what,
                                  const std::function<void(const std::vector<std::size_t>& rows, const Tensor& x)>& on_batch);

}  // namespace graft::cli
