// Image transforms: from a decoded Example (HWC uint8) to the float NHWC input a model expects.
// The pipeline, in torchvision's order:
//   train (augment):  random resized crop to size x size (area scale [0.08, 1], aspect ratio [3/4, 4/3]),
//                     random horizontal flip (p = 0.5), gray -> 3 channels, normalise
//   eval:             resize (shorter side to resize_to, or exactly size x size), center crop size x size,
//                     gray -> 3 channels, normalise
// Resizing is bilinear with half-pixel centres and no antialiasing, as torch.nn.functional.interpolate(
// mode="bilinear", align_corners=False); values are computed in float and never rounded back to bytes.
// Normalisation is the model dialect's preset (io/preprocess.h): caffe (BGR, mean subtraction) or torch
// (x / 255, per-channel mean and std).
#pragma once
#include <cstdint>
#include <random>

#include "io/dataset.h"
#include "io/preprocess.h"

namespace graft {

struct TransformOptions {
  int size = 224;                // output height = width
  int resize_to = 0;             // eval: shorter side before the center crop; 0 = size * 256 / 224 (torchvision)
  bool exact_resize = false;     // eval: resize straight to size x size (no crop), e.g. 28x28 -> 32x32
  bool random_resized_crop = false;
  float crop_scale_min = 0.08f, crop_scale_max = 1.0f;
  bool random_flip = false;
  Preprocess normalize = Preprocess::Torch;
  bool augments() const { return random_resized_crop || random_flip; }
};

// Writes size*size*3 floats (HWC, normalised) to `out`. `rng` drives the random transforms only.
void transform_example(const Example& example, const TransformOptions& options, std::mt19937_64& rng, float* out);

// The building blocks (exposed for tests and for users composing their own pipeline). All HWC.
// Bilinear resize of a uint8 or float image to (out_h, out_w), float output.
void resize_bilinear(const std::uint8_t* in, int h, int w, int c, float* out, int out_h, int out_w);
void resize_bilinear(const float* in, int h, int w, int c, float* out, int out_h, int out_w);
struct CropBox {
  int top = 0, left = 0, height = 0, width = 0;
};
CropBox center_crop_box(int h, int w, int crop_h, int crop_w);
// torchvision's RandomResizedCrop.get_params: 10 tries at a random area/ratio, then a center-crop fallback.
CropBox random_resized_crop_box(int h, int w, float scale_min, float scale_max, std::mt19937_64& rng);

}  // namespace graft
