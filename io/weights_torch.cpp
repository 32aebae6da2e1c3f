// torchvision state_dict exports (tools/export_torchvision.py): one dataset per key, torch layouts; and the
// layout conversions of every format.
#include <algorithm>
#include <cstdio>
#include <map>
#include <set>

#include "core/error.h"
#include "io/hdf5_write.h"
#include "io/weights_internal.h"
#include "models/resnet.h"
#include "models/resnet_v2.h"
#include "models/vgg.h"
#include "models/zoo.h"

namespace graft::weights_detail {

Convert torch_convert(const std::string& key, const Shape& shape, bool vgg) {
  if (shape.size() == 4 && key.ends_with("weight")) return Convert::ConvOIHW;
  // torch flattens (C,7,7) maps in (c,h,w) order, graft's NHWC flatten is (h,w,c).
  if (vgg && key == "classifier.0.weight" && shape.size() == 2 && shape[1] % 49 == 0) return Convert::TorchVggFc1;
  return Convert::None;
}

namespace {

// "resnet50", "vgg16_bn", ... from the keys alone; "" when the keys fit no zoo model.
std::string guess_torch_arch(const std::vector<std::string>& keys, const std::map<std::string, Shape>& shapes) {
  std::map<int, std::set<int>> blocks;  // stage -> block indices
  bool bottleneck = false, vgg_bn = false;
  int vgg_convs = 0;
  for (const auto& key : keys) {
    int stage = 0, block = 0;
    char rest[64] = {0};
    if (std::sscanf(key.c_str(), "layer%d.%d.%63s", &stage, &block, rest) == 3) {
      blocks[stage].insert(block);
      if (std::string(rest) == "conv3.weight") bottleneck = true;
    }
    int index = 0;
    if (std::sscanf(key.c_str(), "features.%d.%63s", &index, rest) == 2) {
      if (std::string(rest) == "weight" && shapes.at(key).size() == 4) ++vgg_convs;
      if (std::string(rest) == "running_mean") vgg_bn = true;
    }
  }
  if (blocks.size() == 4) {
    std::vector<int> counts;
    for (auto& [stage, set] : blocks) counts.push_back(static_cast<int>(set.size()));
    const std::map<std::vector<int>, int> bottleneck_depths = {
        {{3, 4, 6, 3}, 50}, {{3, 4, 23, 3}, 101}, {{3, 8, 36, 3}, 152}};
    const std::map<std::vector<int>, int> basic_depths = {{{2, 2, 2, 2}, 18}, {{3, 4, 6, 3}, 34}};
    const auto& table = bottleneck ? bottleneck_depths : basic_depths;
    auto it = table.find(counts);
    if (it == table.end()) return "";
    ResNetOptions r;
    r.depth = it->second;
    // ResNeXt and Wide ResNet: layer1's bottleneck is width = width_per_group * groups wide (planes 64), and its
    // grouped 3x3 conv takes width / groups input channels.
    auto conv1 = shapes.find("layer1.0.conv1.weight"), conv2 = shapes.find("layer1.0.conv2.weight");
    if (bottleneck && conv1 != shapes.end() && conv2 != shapes.end() && conv1->second.size() == 4 &&
        conv2->second.size() == 4 && conv2->second[1] > 0 && conv1->second[0] % conv2->second[1] == 0) {
      r.groups = static_cast<int>(conv1->second[0] / conv2->second[1]);
      r.width_per_group = static_cast<int>(conv2->second[1]);
    }
    const std::string name = resnet_arch_name(r);
    return is_resnet_arch(name) ? name : "";
  }
  const std::map<int, int> vgg_depths = {{8, 11}, {10, 13}, {13, 16}, {16, 19}};
  auto it = vgg_depths.find(vgg_convs);
  if (it != vgg_depths.end()) return "vgg" + std::to_string(it->second) + (vgg_bn ? "_bn" : "");
  return "";
}

}  // namespace

Plan plan_torchvision(const hdf5::File& file, const std::string& model_arch) {
  Plan plan;
  plan.format = WeightFormat::Torchvision;
  plan.dialect = Dialect::Torchvision;
  std::vector<hdf5::DatasetInfo> datasets = file.datasets_below("/");
  // Keys: dataset paths without the leading '/'; nested groups (a/b/c) read as dotted keys (a.b.c).
  std::vector<std::string> keys;
  bool all_prefixed = !datasets.empty();
  for (const auto& d : datasets) {
    std::string key = d.path.substr(1);
    for (char& c : key)
      if (c == '/') c = '.';
    keys.push_back(key);
    all_prefixed = all_prefixed && key.rfind("module.", 0) == 0;
  }
  if (all_prefixed) {  // saved from a DataParallel wrapper
    for (auto& key : keys) key = key.substr(7);
    plan.notes.push_back("stripped the 'module.' prefix (a DataParallel state_dict)");
  }
  std::map<std::string, Shape> shapes;
  for (std::size_t i = 0; i < keys.size(); ++i) shapes[keys[i]] = datasets[i].shape;

  if (file.has_attribute("/", "arch")) {
    auto arch = file.string_list_attribute("/", "arch");
    if (!arch.empty()) plan.arch_guess = arch.front();
  }
  if (plan.arch_guess.empty()) plan.arch_guess = guess_torch_arch(keys, shapes);
  plan.resnet = is_resnet_arch(plan.arch_guess) || shapes.count("layer1.0.conv1.weight");
  const std::string& arch = model_arch.empty() ? plan.arch_guess : model_arch;
  const bool vgg = arch.rfind("vgg", 0) == 0;

  for (std::size_t i = 0; i < keys.size(); ++i) {
    if (keys[i].ends_with("num_batches_tracked")) continue;  // BatchNorm's step counter, not a weight
    Entry e;
    e.source = keys[i];
    e.dataset = datasets[i].path;
    e.target = keys[i];
    e.info = datasets[i];
    e.convert = torch_convert(keys[i], e.info.shape, vgg);
    plan.entries.push_back(std::move(e));
  }
  return plan;
}

Shape converted_shape(const Shape& s, Convert convert) {
  switch (convert) {
    case Convert::None:
      return s;
    case Convert::ConvOIHW:
      return s.size() == 4 ? Shape{s[0], s[2], s[3], s[1]} : s;
    case Convert::ConvHWIO:
      return s.size() == 4 ? Shape{s[3], s[0], s[1], s[2]} : s;
    case Convert::DenseInOut:
      return s.size() == 2 ? Shape{s[1], s[0]} : s;
    case Convert::TorchVggFc1:
      return s;
  }
  return s;
}

// In 32x32 tiles so both sides stay in cache (VGG's fc1 has 102M values).
void transpose_2d(float* dst, const float* src, std::int64_t rows, std::int64_t cols) {
  constexpr std::int64_t kTile = 32;
  for (std::int64_t r0 = 0; r0 < rows; r0 += kTile)
    for (std::int64_t c0 = 0; c0 < cols; c0 += kTile)
      for (std::int64_t r = r0; r < std::min(rows, r0 + kTile); ++r)
        for (std::int64_t c = c0; c < std::min(cols, c0 + kTile); ++c) dst[c * rows + r] = src[r * cols + c];
}

// Every conversion is a (batched) 2-D transpose:
//   Keras conv (H,W,I,O) = matrix (H*W*I, O)    -> (O, H*W*I) = graft (O,H,W,I)
//   torch conv (O,I,H,W) = O matrices (I, H*W) -> O x (H*W, I) = graft (O,H,W,I)
//   Keras dense (in,out)                        -> (out,in)
//   torch VGG fc1 (out, C*7*7) = out matrices (C, 7*7) -> out x (7*7, C): columns in (h,w,c) order
void convert_layout(float* dst, const float* src, const Shape& s, Convert convert) {
  switch (convert) {
    case Convert::None:
      std::copy(src, src + shape_numel(s), dst);
      return;
    case Convert::ConvHWIO:
      transpose_2d(dst, src, s[0] * s[1] * s[2], s[3]);
      return;
    case Convert::DenseInOut:
      transpose_2d(dst, src, s[0], s[1]);
      return;
    case Convert::ConvOIHW:
      for (std::int64_t o = 0, n = s[1] * s[2] * s[3]; o < s[0]; ++o)
        transpose_2d(dst + o * n, src + o * n, s[1], s[2] * s[3]);
      return;
    case Convert::TorchVggFc1:
      for (std::int64_t o = 0, n = s[1]; o < s[0]; ++o) transpose_2d(dst + o * n, src + o * n, n / 49, 49);
      return;
  }
  GRAFT_FAIL("load_weights: unknown layout conversion");
}

// Each case is the transpose that undoes convert_layout's, on graft's shape (O,H,W,I) / (out,in).
Tensor to_file_layout(const Tensor& graft_tensor, Convert convert) {
  const Shape& s = graft_tensor.shape();
  const float* src = graft_tensor.data<float>();
  switch (convert) {
    case Convert::None:
      return graft_tensor;
    case Convert::ConvOIHW: {  // O matrices (H*W, I) -> (I, H*W)
      Tensor file = Tensor::empty({s[0], s[3], s[1], s[2]});
      for (std::int64_t o = 0, n = s[1] * s[2] * s[3]; o < s[0]; ++o)
        transpose_2d(file.data<float>() + o * n, src + o * n, s[1] * s[2], s[3]);
      return file;
    }
    case Convert::ConvHWIO: {  // matrix (O, H*W*I) -> (H*W*I, O)
      Tensor file = Tensor::empty({s[1], s[2], s[3], s[0]});
      transpose_2d(file.data<float>(), src, s[0], s[1] * s[2] * s[3]);
      return file;
    }
    case Convert::DenseInOut: {
      Tensor file = Tensor::empty({s[1], s[0]});
      transpose_2d(file.data<float>(), src, s[0], s[1]);
      return file;
    }
    case Convert::TorchVggFc1: {  // out matrices (49, C): columns (h,w,c) -> (c,h,w)
      Tensor file = Tensor::empty(s);
      for (std::int64_t o = 0, n = s[1]; o < s[0]; ++o)
        transpose_2d(file.data<float>() + o * n, src + o * n, 49, n / 49);
      return file;
    }
  }
  GRAFT_FAIL("export: unknown layout conversion");
}

}  // namespace graft::weights_detail

namespace graft {

void export_torchvision(const Module& model, const std::string& path) {
  using namespace weights_detail;
  const std::string arch = model_arch(&model);
  GRAFT_CHECK(!dynamic_cast<const ResNetV2*>(&model), "export_torchvision: '", path, "': the model is a ", arch,
              ", Keras's pre-activation ResNet, which torchvision does not have; export it to Keras instead");
  if (auto* resnet = dynamic_cast<const ResNet*>(&model))
    GRAFT_CHECK(resnet->options().dialect == Dialect::Torchvision, "export_torchvision: '", path, "': the model is a ",
                arch, " in the ", dialect_name(resnet->options().dialect), " dialect, which torchvision's ResNet "
                "cannot hold (", kKerasResNetDifference, "); only torchvision-dialect ResNets (and every VGG) export "
                "to torchvision");
  std::vector<std::pair<std::string, Tensor>> tensors = model.named_parameters();
  for (auto& buffer : model.named_buffers()) tensors.push_back(std::move(buffer));
  for (const auto& [key, tensor] : tensors)
    GRAFT_CHECK(tensor.dtype() == DType::Float32, "export_torchvision: '", path, "': ", key, " holds ",
                dtype_name(tensor.dtype()), " values; weight files hold float32 tensors");
  const bool vgg = arch.rfind("vgg", 0) == 0;
  hdf5::Writer writer(path);
  for (const auto& [key, tensor] : tensors) {
    const Tensor host = tensor.detach().to(kCPU);
    writer.dataset(key, to_file_layout(host, torch_convert(key, host.shape(), vgg)));
    if (key.ends_with("running_var"))  // a BatchNorm's buffer (graft has no other): torch adds its batch count
      writer.int64_scalar(key.substr(0, key.size() - std::string("running_var").size()) + "num_batches_tracked", 0);
  }
  writer.attribute("graft_format", "torchvision-state-dict");
  if (!arch.empty()) writer.attribute("arch", arch);
  writer.commit();
}

}  // namespace graft
