// graft predict: the top-5 classes and probabilities for each image file. Class names: the checkpoint's (its
// training data's), ImageNet's for a 1000-output model without names, else the output index.
#include <algorithm>
#include <cstdio>
#include <random>

#include "core/autograd.h"
#include "core/error.h"
#include "core/ops.h"
#include "io/dataset.h"
#include "io/transforms.h"
#include "tools/cli_common.h"

namespace graft::cli {
namespace {

struct PredictArgs {
  std::string checkpoint, weights, arch, device = "auto";
  std::vector<std::string> images;
  int size = 0, top = 5;
};

void predict(const PredictArgs& a) {
  InferenceModel m = load_inference_model(a.checkpoint, a.weights, a.arch);
  Device device = resolve_device(a.device);
  m.model->to(device);
  m.model->eval();
  const std::vector<std::string> names = output_class_names(m);
  TransformOptions t;
  t.size = a.size > 0 ? a.size : m.image_size;
  t.exact_resize = m.exact_resize;
  t.normalize = m.preprocess;
  std::mt19937_64 unused_rng(0);  // eval transforms draw nothing
  NoGradGuard no_grad;
  const std::size_t pixels = static_cast<std::size_t>(t.size) * t.size * 3;
  for (const std::string& path : a.images) {
    Example e = load_image(path);
    std::vector<float> input(pixels);
    transform_example(e, t, unused_rng, input.data());
    Tensor x = Tensor::from_vector(input, {1, t.size, t.size, 3}, device);
    std::vector<float> p = softmax((*m.model)(x)).to_vector();
    std::vector<std::size_t> idx(p.size());
    for (std::size_t i = 0; i < idx.size(); ++i) idx[i] = i;
    const std::size_t k = std::min<std::size_t>(static_cast<std::size_t>(a.top), idx.size());
    std::partial_sort(idx.begin(), idx.begin() + static_cast<std::ptrdiff_t>(k), idx.end(),
                      [&](std::size_t i, std::size_t j) { return p[i] > p[j] || (p[i] == p[j] && i < j); });
    std::printf("%s\n", path.c_str());
    for (std::size_t i = 0; i < k; ++i)
      std::printf("  %.4f  %s\n", p[idx[i]], idx[i] < names.size() ? names[idx[i]].c_str() : "?");
  }
}

}  // namespace

void register_predict(CLI::App& app) {
  auto* cmd = app.add_subcommand("predict", "top-5 class names and probabilities for image files");
  auto a = std::make_shared<PredictArgs>();
  add_inference_model_options(*cmd, a->checkpoint, a->weights, a->arch);
  cmd->add_option("images", a->images, "JPEG or PNG files")->required();
  cmd->add_option("--device", a->device, "auto | cpu | cuda")->capture_default_str()->check(CLI::IsMember({"auto", "cpu", "cuda"}));
  cmd->add_option("--size", a->size, "input size (default: the checkpoint's, else 224)")->check(CLI::Range(8, 4096));
  cmd->add_option("--top", a->top, "classes shown per image")->capture_default_str()->check(CLI::Range(1, 1000));
  cmd->callback([a] { predict(*a); });
}

}  // namespace graft::cli
