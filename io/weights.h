// Weight import from the HDF5 files users hold for ImageNet ResNet/VGG models (docs: shared/WEIGHT_FORMATS.md):
//   Torchvision  one float32 dataset per state_dict key (tools/export_torchvision.py writes it); ResNets, ResNeXts
//                and Wide ResNets are told apart by their tensors' shapes
//   KerasLegacy  Keras 1/2/3 `.h5`: root attribute layer_names, one group per layer, attribute weight_names;
//                whole-model files hold the same under /model_weights
//   Keras3       Keras 3 `.weights.h5`: /layers/<class_snake>[_k]/vars/<i>, optional attribute `name`
// The format is detected from the contents, never the file name. Every format maps onto graft's
// torchvision-style names and layouts:
//   conv weight (out,kh,kw,in)  <- Keras HWIO transpose (3,0,1,2); torch OIHW transpose (0,2,3,1)
//   linear weight (out,in)      <- Keras (in,out) transpose; torch as is, except VGG classifier.0 whose columns
//                                  are permuted from torch's (c,h,w) flatten order to graft's NHWC (h,w,c)
//   BatchNorm                   <- Keras [gamma, beta, moving_mean, moving_variance] by position
// Keras layers are matched by name (2018 ResNet names conv1_conv/conv2_block1_1_conv/..., 2016 names
// conv1/bn_conv1/res2a_branch2a/..., ResNetV2 conv2_block1_preact_bn/post_bn/..., VGG block1_conv1/fc1/fc2/
// predictions) and, when the names are not
// recognised (Keras 3 files before 3.6), by position in Keras's model.layers order with a warning.
// float64/float16 datasets are converted to float32; integer datasets are refused; num_batches_tracked ignored.
// export_torchvision and export_keras write the torchvision and the Keras legacy formats back (below).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "io/preprocess.h"
#include "layers/module.h"
#include "models/resnet.h"

namespace graft {

// (Native is unused: a graft checkpoint given to the functions below is refused, pointing to load_checkpoint.)
enum class WeightFormat { Torchvision, KerasLegacy, Keras3, Native };
const char* weight_format_name(WeightFormat format);  // "torchvision", "keras-legacy-h5", "keras3-weights-h5"

struct WeightTensorInfo {
  std::string name;                           // as stored: state_dict key, or "<layer>/<weight name>" (Keras)
  std::string graft_name;                     // the graft state key it maps to; "" when not recognised
  Shape shape;                                // as stored (before layout conversion)
  std::string dtype;                          // "float32", "float64", "float16", "int64", ...
  std::int64_t nan_count = 0, inf_count = 0;  // float datasets
};

struct WeightFileInfo {
  WeightFormat format = WeightFormat::Torchvision;
  // The ResNet dialect the file implies: torchvision for torch exports, keras-legacy for the 2016 Keras names
  // (BatchNorm eps 1e-3), keras otherwise. Meaningless for VGG, which has a single architecture.
  Dialect dialect = Dialect::Torchvision;
  std::string arch_guess;              // "resnet50", "vgg16", ...; "" when unknown
  std::string root;                    // the group holding the weights ("/" or "/model_weights")
  std::string keras_version, backend;  // Keras legacy files that record them
  bool matched_by_order = false;       // Keras layer names not recognised: mapped by model.layers position
  std::vector<WeightTensorInfo> tensors;
  std::string str() const;  // a readable table
};

// Reads the structure and every value (for the NaN/Inf counts). Throws graft::Error for anything that is not a
// weight file graft knows.
WeightFileInfo inspect_weights(const std::string& path);
// The input preprocessing the file's weights were trained with (io/preprocess.h): torch for torchvision files, tf
// for Keras's V2 ResNets, caffe for Keras's other ResNets and VGGs.
Preprocess preprocess_for(const WeightFileInfo& info);

struct LoadOptions {
  // Glob patterns ('*' any run, '?' one character) over graft names or file names; "fc" also covers "fc.*".
  // Excluded model tensors keep their initial values (e.g. a new head), excluded file tensors are not read.
  std::vector<std::string> exclude;
  // Strict: ONE graft::Error listing every missing, unexpected and wrong-shaped tensor, nothing loaded.
  // Not strict: those are reported as warnings and left out.
  bool strict = true;
};

struct LoadReport {
  std::vector<std::string> loaded;        // graft names written
  std::vector<std::string> skipped;       // file tensors not loaded (excluded, or unmatched when not strict)
  std::vector<std::string> left_at_init;  // graft names not written
  std::vector<std::string> warnings;      // NaN/Inf values, BatchNorm eps changes, order-based matching, ...
  std::string str() const;
};

// Loads a weight file into `model` (on any device; the model's tensors keep their identity). All-or-nothing:
// on error the model is unchanged. A ResNet file of another dialect than the model's is refused, naming the dialect
// to build - the two Keras dialects too, where the file's layer names tell them apart - so the model's dialect
// fixes what the file's implies beyond its tensors (BatchNorm eps: 1e-3 in Keras's 2016 ResNet, the stem's pooling).
LoadReport load_weights(Module& model, const std::string& path, const LoadOptions& options = {});

// The way back: writes `model`'s parameters and buffers as a torchvision state_dict file, the format load_weights
// reads and tools/export_torchvision.py writes, so that PyTorch loads a model trained or converted by graft with
//     f = h5py.File(path); model.load_state_dict({k: torch.as_tensor(f[k][()]) for k in f})
// into the torchvision model of the same architecture and number of classes (strict: every key matches; a model
// without its top, or with a head of its own, lacks or adds the head's keys: load that with strict=False).
// The import's conversions reversed: conv weights (out,kh,kw,in) -> torch's OIHW; the zoo VGG's classifier.0
// columns from graft's NHWC flatten order (h,w,c) back to torch's (c,h,w). Values are copied bit for bit, as
// float32. Each BatchNorm also gets torch's num_batches_tracked, a 0-dim int64 dataset holding 0: graft does not
// count batches, and torch reads the count only for momentum=None. Root attributes: graft_format =
// "torchvision-state-dict" and, for a zoo model, arch ("resnet50", "vgg16_bn", ...). A model of another kind is
// written by the same rules (4-D weights as OIHW, no flatten reordering). A Keras-dialect ResNet is refused:
// torchvision's ResNet cannot hold it (biased convolutions, the stride on the first 1x1 convolution); so is a
// ResNetV2 (torchvision has none). Integer tensors are refused (weight files hold float32). Written to a temporary file
// renamed into place: a failure leaves no file, and an existing one intact.
void export_torchvision(const Module& model, const std::string& path);

// The way back to Keras: writes `model` as a Keras legacy HDF5 weights file, the format keras.applications
// downloads, which Keras 3 loads with
//     keras.applications.ResNet50(weights=path, classes=N)      or      keras_model.load_weights(path)
// into the Keras application of the same architecture: ResNet50/101/152 built in the keras dialect,
// ResNet50V2/101V2/152V2, VGG16/19 (the V2 bottleneck's 1x1 and 3x3 convs have no bias: their layers hold a kernel).
// One group per weighted layer with Keras's names (conv1_conv, conv2_block1_1_bn, ..., block1_conv1, fc1,
// predictions) in Keras's model.layers order (the legacy loader matches layers by that order); root attribute
// layer_names, per layer weight_names ("conv1_conv/kernel:0", ...); conv kernels (out,kh,kw,in) -> HWIO, dense
// kernels (out,in) -> (in,out) (VGG's fc1 columns are in Keras's NHWC flatten order already), BatchNorm as gamma,
// beta, moving_mean, moving_variance; values bit for bit. A model without its top writes no predictions layer
// (for include_top=False). Refused, before anything is written: torchvision- and 2016-dialect ResNets,
// architectures Keras has no application for (ResNet-18/34, ResNeXt, Wide ResNet, VGG-11/13, the _bn VGGs), a
// model with tensors Keras's model has no place for (a custom head), integer tensors, and a path not ending in .h5
// or .hdf5 or ending in .weights.h5 (Keras reads this format only from the first, and the last as its Keras 3 format).
// Written to a temporary file renamed into place.
void export_keras(const Module& model, const std::string& path);

}  // namespace graft
