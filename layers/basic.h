// Weightless layers: ReLU, MaxPool2d, AvgPool2d, AdaptiveAvgPool2d, ZeroPad2d, Dropout, Flatten, Identity.
// All act on NHWC activations.
#pragma once
#include "core/ops.h"
#include "core/rng.h"
#include "layers/module.h"

namespace graft {

class ReLU : public Module {
 public:
  Tensor forward(const Tensor& x) override { return relu(x); }
  std::string type_name() const override { return "ReLU"; }
};

class Identity : public Module {
 public:
  Tensor forward(const Tensor& x) override { return x; }
  std::string type_name() const override { return "Identity"; }
};

class MaxPool2d : public Module {
 public:
  MaxPool2d(int kernel, int stride, int padding = 0, bool ceil_mode = false);
  Tensor forward(const Tensor& x) override { return max_pool2d(x, options_); }
  std::string type_name() const override { return "MaxPool2d"; }
  std::string describe() const override;

 private:
  Pool2dOptions options_;
};

class AvgPool2d : public Module {
 public:
  AvgPool2d(int kernel, int stride, int padding = 0, bool ceil_mode = false, bool count_include_pad = true);
  Tensor forward(const Tensor& x) override { return avg_pool2d(x, options_); }
  std::string type_name() const override { return "AvgPool2d"; }
  std::string describe() const override;

 private:
  Pool2dOptions options_;
};

// Output (N, out_h, out_w, C) with torch's bins; 1x1 is the global average pool.
class AdaptiveAvgPool2d : public Module {
 public:
  AdaptiveAvgPool2d(int out_h, int out_w) : out_h_(out_h), out_w_(out_w) {}
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "AdaptiveAvgPool2d"; }
  std::string describe() const override { return std::to_string(out_h_) + "x" + std::to_string(out_w_); }

 private:
  int out_h_, out_w_;
};

class ZeroPad2d : public Module {
 public:
  ZeroPad2d(int top, int bottom, int left, int right) : top_(top), bottom_(bottom), left_(left), right_(right) {}
  explicit ZeroPad2d(int all) : ZeroPad2d(all, all, all, all) {}
  Tensor forward(const Tensor& x) override { return pad2d(x, top_, bottom_, left_, right_); }
  std::string type_name() const override { return "ZeroPad2d"; }
  std::string describe() const override;

 private:
  int top_, bottom_, left_, right_;
};

// Inverted dropout in training mode, identity in eval mode; masks come from its own seeded Generator.
class Dropout : public Module {
 public:
  explicit Dropout(float p = 0.5f, std::uint64_t seed = 0x5eed);
  Tensor forward(const Tensor& x) override { return dropout(x, p_, gen_, training_); }
  std::string type_name() const override { return "Dropout"; }
  std::string describe() const override;
  Generator& generator() { return gen_; }

 private:
  float p_;
  Generator gen_;
};

// Folds every axis from 1 on: (N, ...) -> (N, prod(...)). In NHWC that is (H, W, C) order.
class Flatten : public Module {
 public:
  Tensor forward(const Tensor& x) override { return x.flatten(1); }
  std::string type_name() const override { return "Flatten"; }
};

}  // namespace graft
