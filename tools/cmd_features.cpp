// graft features: what a model sees in each image - the input of its classifier head (ResNet-50: the 2048 pooled
// values; VGG16: the 4096 of fc7 after its ReLU) - for image files or every image in folders, into an HDF5 file for
// other tools (nearest neighbours, clustering, a classifier of your own):
//   /features  float32 (N, D)  one row per readable image, in the order of the paths
//   /paths     strings (N)     each row's image (fixed-length UTF-8: h5py gives bytes, .asstr() gives str)
//   attributes arch, source (the checkpoint or weight file), layer (the head whose input the features are),
//              preprocess, image_size, antialias
// The model runs in eval mode (BatchNorm's running statistics, no dropout). Each batch's rows are appended to
// /features as it comes (hdf5::Writer::append_rows), so memory stays one batch of features whatever N is (the paths
// are kept: a string per image). Unreadable images are skipped with a warning (--strict: an error). The file is
// written as OUT.tmp-graft-<pid>-<n> and renamed into place at the end: a run that fails or is stopped with Ctrl-C leaves
// no file; the temporary of one killed outright is removed by the next writer of OUT (io/temporary_file.h).
#include <cstdio>

#include "core/autograd.h"
#include "core/error.h"
#include "io/hdf5_write.h"
#include "layers/basic.h"
#include "models/zoo.h"
#include "tools/cli_common.h"
#include "tools/image_batches.h"

namespace graft::cli {
namespace {

struct FeaturesArgs {
  std::string checkpoint, weights, arch, device = "auto", out;
  std::vector<std::string> images;
  int size = 0, batch = 32;
  bool strict = false;
};

void features(const FeaturesArgs& a) {
  check_output_file(a.out, a.images, {a.checkpoint, a.weights}, "features", "--out");
  const std::vector<std::string> paths = image_paths(a.images, a.strict, "features");
  hdf5::Writer writer(a.out);  // now: an unwritable place fails before the work, not after
  InferenceModel m = load_inference_model(a.checkpoint, a.weights, a.arch);
  const std::string head = head_path(*m.model);
  m.model->replace_module(head, std::make_shared<Identity>());
  Device device = resolve_device(a.device);
  m.model->to(device);
  m.model->eval();
  TransformOptions t;
  t.size = a.size > 0 ? a.size : m.image_size;
  t.exact_resize = m.exact_resize;
  t.normalize = m.preprocess;
  t.antialias = m.antialias;

  NoGradGuard no_grad;
  std::vector<std::string> kept;
  std::int64_t dims = 0;
  const std::int64_t skipped = for_each_image_batch(
      paths, t, a.batch, a.strict, device, "features", [&](const std::vector<std::size_t>& rows, const Tensor& x) {
        Tensor f = (*m.model)(x);
        GRAFT_CHECK(f.ndim() == 2, "features: the input of '", head, "' has shape ", shape_str(f.shape()),
                    ", expected (batch, features)");
        dims = f.dim(1);
        writer.append_rows("features", f);
        for (std::size_t row : rows) kept.push_back(paths[row]);
      });
  GRAFT_CHECK(!kept.empty(), "features: none of the ", paths.size(), " image(s) could be read");
  writer.string_dataset("paths", kept);
  writer.attribute("arch", m.meta.arch);
  writer.attribute("source", a.checkpoint.empty() ? a.weights : a.checkpoint);
  writer.attribute("layer", head);
  writer.attribute("preprocess", preprocess_name(t.normalize));
  writer.attribute("image_size", std::to_string(t.size));
  writer.attribute("antialias", t.antialias ? "on" : "off");
  writer.commit();
  std::printf("features: %zu image(s) x %lld values (the input of %s's '%s') -> %s", kept.size(),
              static_cast<long long>(dims), m.meta.arch.c_str(), head.c_str(), a.out.c_str());
  if (skipped > 0) std::printf(" (%lld unreadable skipped)", static_cast<long long>(skipped));
  std::printf("\n");
}

}  // namespace

void register_features(CLI::App& app) {
  auto* cmd = app.add_subcommand("features", "the input of the model's classifier head for each image, into HDF5");
  auto a = std::make_shared<FeaturesArgs>();
  add_inference_model_options(*cmd, a->checkpoint, a->weights, a->arch);
  cmd->add_option("images", a->images, "JPEG or PNG files, or folders (every .jpg/.jpeg/.png below them)")->required();
  cmd->add_option("--out", a->out, "the HDF5 file to write (/features, /paths)")->required();
  cmd->add_option("--device", a->device, "auto | cpu | cuda")->capture_default_str()->check(CLI::IsMember({"auto", "cpu", "cuda"}));
  cmd->add_option("--size", a->size, "input size (default: the checkpoint's, else 224)")->check(CLI::Range(8, 4096));
  cmd->add_option("--batch", a->batch, "images per forward pass")->capture_default_str()->check(CLI::Range(1, 4096));
  cmd->add_flag("--strict", a->strict, "an unreadable image is an error (default: skipped with a warning)");
  cmd->callback([a] { features(*a); });
}

}  // namespace graft::cli
