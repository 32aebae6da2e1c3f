// Input preprocessing presets, as each family of ImageNet weights was trained with. Images arrive as float32
// NHWC RGB in [0, 255] (what a decoder produces).
//   caffe (Keras ResNet50 and VGG16 weights): RGB -> BGR, then subtract the BGR means [103.939, 116.779, 123.68];
//          no scaling.
//   torch (torchvision weights): x / 255, then (x - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225] per RGB channel.
//   tf    (Keras ResNet50V2/101V2/152V2 weights): x / 127.5 - 1, RGB, every channel alike (into [-1, 1]).
#pragma once
#include <string>
#include <vector>

#include "core/tensor.h"
#include "models/resnet.h"

namespace graft {

enum class Preprocess { Caffe, Torch, Tf };
const char* preprocess_name(Preprocess p);
Preprocess parse_preprocess(const std::string& name);  // caffe | torch | tf
// Keras-trained weights (Keras dialects) use caffe; torchvision weights use torch.
Preprocess preprocess_for(Dialect dialect);
// The preset an architecture's ImageNet weights expect: tf for the V2 ResNets (Keras trained only those so),
// else preprocess_for(dialect).
Preprocess preprocess_for(const std::string& arch, Dialect dialect);

// images (N,H,W,3) RGB 0..255 on any device -> a new tensor on the same device.
Tensor preprocess(const Tensor& images, Preprocess preset);

// A preset as a per-channel affine map of an RGB 0..255 pixel: out[c] = in[source[c]] * scale[c] + shift[c].
// caffe: source = (2,1,0) (RGB -> BGR), scale 1, shift = -BGR mean; torch: source = (0,1,2),
// scale = 1 / (255 std), shift = -mean / std; tf: source = (0,1,2), scale 1 / 127.5, shift -1. The one place the
// presets' constants live (preprocess() and the loader's transforms, io/transforms.h, use it).
struct PreprocessAffine {
  int source[3];
  float scale[3];
  float shift[3];
};
PreprocessAffine preprocess_affine(Preprocess preset);

// The 1000 ImageNet class names in index order (0 = tench), from data/imagenet_classes.txt (shipped with graft;
// the same order in Keras and torchvision).
const std::vector<std::string>& imagenet_class_names();

}  // namespace graft
