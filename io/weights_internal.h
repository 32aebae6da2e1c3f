// Internals of weight import shared by io/weights.cpp (detection, matching, loading), io/weights_torch.cpp and
// io/weights_keras.cpp (each turns one file format into a Plan: file tensors -> graft names + layout conversion).
#pragma once
#include <string>
#include <vector>

#include "io/hdf5.h"
#include "io/weights.h"

namespace graft::weights_detail {

// How a file tensor becomes a graft tensor.
enum class Convert {
  None,
  ConvOIHW,     // torch conv (out,in,kh,kw) -> (out,kh,kw,in)
  ConvHWIO,     // Keras conv (kh,kw,in,out) -> (out,kh,kw,in)
  DenseInOut,   // Keras dense (in,out) -> (out,in)
  TorchVggFc1,  // torch VGG classifier.0 (out, c*7*7) columns (c,h,w) -> (h,w,c)
};

struct Entry {
  std::string source;         // the name a user recognises in the file
  std::string dataset;        // HDF5 path
  std::string target;         // graft state key; "" when not recognised
  std::string why_unmatched;  // when target is "": the reason, for the report
  hdf5::DatasetInfo info;
  Convert convert = Convert::None;
};

struct Plan {
  WeightFormat format = WeightFormat::Torchvision;
  std::string root = "/";
  std::string keras_version, backend;
  std::string arch_guess;
  bool resnet = false;  // a ResNet file: dialect below is meaningful
  Dialect dialect = Dialect::Torchvision;
  bool dialect_known = true;  // false: a Keras file matched by position (no layer name tells 2016 from later)
  bool matched_by_order = false;
  std::vector<std::string> notes;  // become LoadReport warnings
  std::vector<Entry> entries;
};

// The architecture a loaded model has, as the zoo names it ("resnet50", "vgg16_bn"), "" for other modules;
// Keras-order matching and the VGG flatten permutation need it.
std::string model_arch(const Module* model);

Plan plan_torchvision(const hdf5::File& file, const std::string& model_arch);
Plan plan_keras_legacy(const hdf5::File& file, const std::string& root, const std::string& model_arch);
Plan plan_keras3(const hdf5::File& file, const std::string& model_arch);

// Shape after conversion; the file shape itself when the rank does not fit the conversion (reported as a
// mismatch by the caller).
Shape converted_shape(const Shape& file_shape, Convert convert);
// dst (cols, rows) = src (rows, cols)^T.
void transpose_2d(float* dst, const float* src, std::int64_t rows, std::int64_t cols);
// dst and src hold numel(file_shape) floats; dst in graft layout.
void convert_layout(float* dst, const float* src, const Shape& file_shape, Convert convert);
// The way back (export): a CPU float32 tensor in graft layout -> a new tensor in the file's layout and shape
// (the tensor itself for Convert::None).
Tensor to_file_layout(const Tensor& graft_tensor, Convert convert);

// The conversion a torchvision state_dict tensor needs, from its key and shape (the same rank and column count in
// the file and in graft); `vgg`: the model is a zoo VGG (its classifier.0 follows the flatten).
Convert torch_convert(const std::string& key, const Shape& shape, bool vgg);

// Why a ResNet of one dialect cannot hold the other's weights, for refusals.
inline constexpr const char* kKerasResNetDifference =
    "biased convolutions, the stride on the first 1x1 convolution";

}  // namespace graft::weights_detail
