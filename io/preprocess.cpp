#include "io/preprocess.h"

#include <fstream>

#include "core/autograd.h"
#include "core/error.h"
#include "core/ops.h"
#include "models/zoo.h"

namespace graft {

const char* preprocess_name(Preprocess p) {
  switch (p) {
    case Preprocess::Caffe:
      return "caffe";
    case Preprocess::Torch:
      return "torch";
    case Preprocess::Tf:
      return "tf";
  }
  return "?";
}

Preprocess parse_preprocess(const std::string& name) {
  if (name == "caffe") return Preprocess::Caffe;
  if (name == "torch") return Preprocess::Torch;
  if (name == "tf") return Preprocess::Tf;
  GRAFT_FAIL("preprocess: unknown preset '", name, "' (expected caffe, torch or tf)");
}

Preprocess preprocess_for(Dialect dialect) {
  return dialect == Dialect::Torchvision ? Preprocess::Torch : Preprocess::Caffe;
}

Preprocess preprocess_for(const std::string& arch, Dialect dialect) {
  return is_resnet_v2_arch(arch) ? Preprocess::Tf : preprocess_for(dialect);
}

PreprocessAffine preprocess_affine(Preprocess preset) {
  if (preset == Preprocess::Torch) {
    // (x/255 - mean) / std = x * (1/(255 std)) - mean/std, per channel
    const float mean[3] = {0.485f, 0.456f, 0.406f}, stddev[3] = {0.229f, 0.224f, 0.225f};
    PreprocessAffine a{{0, 1, 2}, {}, {}};
    for (int c = 0; c < 3; ++c) a.scale[c] = 1.f / (255.f * stddev[c]), a.shift[c] = -mean[c] / stddev[c];
    return a;
  }
  if (preset == Preprocess::Tf)  // x / 127.5 - 1
    return PreprocessAffine{{0, 1, 2}, {1 / 127.5f, 1 / 127.5f, 1 / 127.5f}, {-1.f, -1.f, -1.f}};
  // caffe: channel c of the output is input channel 2-c, minus the BGR mean
  return PreprocessAffine{{2, 1, 0}, {1.f, 1.f, 1.f}, {-103.939f, -116.779f, -123.68f}};
}

Tensor preprocess(const Tensor& images, Preprocess preset) {
  check_float(images, "preprocess", "images");
  GRAFT_CHECK(images.ndim() == 4 && images.dim(3) == 3, "preprocess: images ", shape_str(images.shape()),
              " must be (N,H,W,3) RGB");
  NoGradGuard no_grad;
  const PreprocessAffine a = preprocess_affine(preset);
  if (preset != Preprocess::Caffe) {
    std::vector<float> scale(a.scale, a.scale + 3), shift(a.shift, a.shift + 3);
    Device d = images.device();
    return add(mul(images, Tensor::from_vector(scale, {3}, d)), Tensor::from_vector(shift, {3}, d));
  }
  // caffe: a channel permutation, done on the host (x * 1 + shift == x - mean exactly)
  Tensor host = images.to(kCPU);
  Tensor out = Tensor::empty(images.shape());
  const float* in = host.data<float>();
  float* o = out.data<float>();
  for (std::int64_t p = 0; p < images.numel() / 3; ++p)
    for (int c = 0; c < 3; ++c) o[3 * p + c] = in[3 * p + a.source[c]] + a.shift[c];
  return out.to(images.device());
}

const std::vector<std::string>& imagenet_class_names() {
  static const std::vector<std::string> names = [] {
    const std::string path = std::string(GRAFT_DATA_DIR) + "/imagenet_classes.txt";
    std::ifstream in(path);
    GRAFT_CHECK(in.good(), "imagenet_class_names: cannot read ", path);
    std::vector<std::string> out;
    for (std::string line; std::getline(in, line);)
      if (!line.empty()) out.push_back(line);
    GRAFT_CHECK(out.size() == 1000, "imagenet_class_names: ", path, " has ", out.size(), " names, not 1000");
    return out;
  }();
  return names;
}

}  // namespace graft
