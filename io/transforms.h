// Image transforms: from a decoded Example (HWC uint8) to the float NHWC input a model expects.
// The pipeline, in torchvision's order:
//   train (augment):  random resized crop to size x size (area scale [0.08, 1], aspect ratio [3/4, 4/3]),
//                     random horizontal flip (p = 0.5), gray -> 3 channels, normalise
//   eval:             resize (shorter side to resize_to, or exactly size x size), center crop size x size,
//                     gray -> 3 channels, normalise
// Resizing is bilinear with half-pixel centres, as torch.nn.functional.interpolate(mode="bilinear",
// align_corners=False), antialiased where the image shrinks (antialias=True: what torchvision's Resize and
// RandomResizedCrop do on PIL images, and by default on tensors since 0.17) unless TransformOptions::antialias is
// off; values are computed in float and never rounded back to bytes.
// Normalisation is the model dialect's preset (io/preprocess.h): caffe (BGR, mean subtraction), torch
// (x / 255, per-channel mean and std) or tf (x / 127.5 - 1, Keras's V2 ResNets).
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
  bool antialias = true;         // a shrinking resize averages the source pixels under each output (see above)
  Preprocess normalize = Preprocess::Torch;
  bool augments() const { return random_resized_crop || random_flip; }
};

// Throws graft::Error naming the bad value: size <= 0, resize_to < 0 or (when used) below size, a crop scale
// range outside 0 < min <= max <= 1.
void check_transform_options(const TransformOptions& options);

// Writes size*size*3 floats (HWC, normalised) to `out`. `rng` drives the random transforms only.
// Errors (graft::Error naming the values): bad options, example dims <= 0, channels not 1 or 3,
// pixels.size() != height*width*channels.
void transform_example(const Example& example, const TransformOptions& options, std::mt19937_64& rng, float* out);

// The draws the random transforms (and the loader's shuffle) make. Spelled out rather than
// std::uniform_*_distribution, whose results differ between standard libraries: a seed gives the same crops and
// orders everywhere. random_below: unbiased integer in [0, n) (n >= 1, by rejection); random_uniform: [lo, hi)
// from 53 random bits.
std::uint64_t random_below(std::mt19937_64& rng, std::uint64_t n);
double random_uniform(std::mt19937_64& rng, double lo, double hi);

// The building blocks (exposed for tests and for users composing their own pipeline). All HWC.
// Bilinear resize of a uint8 or float image to (out_h, out_w), float output (sizes > 0, else graft::Error);
// antialias: interpolate(antialias=True) along an axis that shrinks.
void resize_bilinear(const std::uint8_t* in, int h, int w, int c, float* out, int out_h, int out_w,
                     bool antialias = false);
void resize_bilinear(const float* in, int h, int w, int c, float* out, int out_h, int out_w, bool antialias = false);
struct CropBox {
  int top = 0, left = 0, height = 0, width = 0;
};
// torchvision's CenterCrop: top = round((h - crop_h) / 2) (round half to even, as Python); the crop must fit.
CropBox center_crop_box(int h, int w, int crop_h, int crop_w);
// torchvision's RandomResizedCrop.get_params: 10 tries at a random area/ratio, then a center-crop fallback.
CropBox random_resized_crop_box(int h, int w, float scale_min, float scale_max, std::mt19937_64& rng);

}  // namespace graft
