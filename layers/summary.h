// A printable model summary: one row per module - dotted name, type, hyper-parameters, output shape for a given
// input, own parameter count, trainable/frozen, and BatchNorm mode - then totals.
#pragma once
#include <string>

#include "layers/module.h"

namespace graft {

// Runs one inference forward pass on zeros of `input_shape` (NHWC, on the module's device) to learn the output
// shapes; the module's modes and running statistics are left as they were.
std::string summary(Module& model, const Shape& input_shape);

}  // namespace graft
