// Tensor: a shape, a dtype, a device and a window (offset + numel) into shared storage.
// Tensors are always contiguous and row-major; activations are NHWC. Views (reshape, flatten, batch slices)
// share storage with their source. `to(Device)` is the only way data crosses devices.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <iosfwd>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/device.h"

namespace graft {

using Shape = std::vector<std::int64_t>;
std::int64_t shape_numel(const Shape& shape);
std::string shape_str(const Shape& shape);  // "(2,3,4)"

struct Node;  // core/autograd.h

// Owns one device allocation.
struct Storage {
  Storage(std::size_t bytes, Device device);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  void* data = nullptr;
  std::size_t bytes = 0;
  Device device;
};

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  std::int64_t offset = 0;  // in elements
  Shape shape;
  DType dtype = DType::Float32;
  // autograd
  bool requires_grad = false;
  std::shared_ptr<Node> grad_fn;  // set on outputs of recorded ops
  std::shared_ptr<TensorImpl> grad;
};

class Generator;  // core/rng.h

class Tensor {
 public:
  Tensor() = default;  // undefined tensor
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // ---- factories ----
  static Tensor empty(const Shape& shape, Device device = kCPU, DType dtype = DType::Float32);
  static Tensor zeros(const Shape& shape, Device device = kCPU, DType dtype = DType::Float32);
  static Tensor ones(const Shape& shape, Device device = kCPU);
  static Tensor full(const Shape& shape, float value, Device device = kCPU);
  // Counter-based (Philox) random numbers: the same generator state gives the same numbers on CPU and CUDA.
  static Tensor randn(const Shape& shape, Generator& gen, Device device = kCPU, float mean = 0.f, float stddev = 1.f);
  static Tensor uniform(const Shape& shape, Generator& gen, float low = 0.f, float high = 1.f, Device device = kCPU);
  static Tensor arange(std::int64_t n, Device device = kCPU);
  static Tensor from_vector(const std::vector<float>& values, const Shape& shape, Device device = kCPU);
  static Tensor from_vector(const std::vector<std::int32_t>& values, const Shape& shape, Device device = kCPU);

  // ---- properties ----
  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const;
  std::int64_t dim(int axis) const;  // negative axes count from the end
  int ndim() const { return static_cast<int>(shape().size()); }
  std::int64_t numel() const { return shape_numel(shape()); }
  Device device() const;
  DType dtype() const;
  bool is_cuda() const { return device().is_cuda(); }
  std::size_t nbytes() const { return static_cast<std::size_t>(numel()) * element_size(dtype()); }
  // Raw pointer to the first element, on the tensor's device.
  template <typename T>
  T* data() const;

  // ---- data movement and views ----
  Tensor to(Device device) const;       // copy (or this tensor itself when already there)
  Tensor clone() const;                 // deep copy on the same device (differentiable)
  // Overwrites this tensor's elements with src's (same shape and dtype, src on any device). In place, outside
  // autograd: for loading weights and checkpoints into tensors that optimizers and models already hold.
  void copy_from(const Tensor& src);
  Tensor reshape(const Shape& shape) const;  // a view; one axis may be -1 (differentiable)
  Tensor flatten(int start_axis = 0) const;  // view folding axes start_axis.. into one (differentiable)
  Tensor slice(std::int64_t begin, std::int64_t end) const;  // rows [begin,end) of axis 0, a view (differentiable)
  float item() const;                   // the value of a one-element float tensor
  std::vector<float> to_vector() const;
  std::vector<std::int32_t> to_int_vector() const;
  std::string str(std::int64_t max_per_axis = 6) const;

  // ---- autograd (core/autograd.h) ----
  bool requires_grad() const;
  Tensor& set_requires_grad(bool value);  // only on leaves
  bool is_leaf() const;
  Tensor grad() const;                     // undefined until a backward reached this leaf
  void zero_grad();                        // drops the gradient (explicit zeroing; gradients accumulate)
  void set_grad(const Tensor& grad);
  void backward() const;                   // on a one-element tensor
  void backward(const Tensor& seed) const;  // with a seed gradient of this tensor's shape
  Tensor detach() const;                   // same storage, no history

  TensorImpl* impl() const { return impl_.get(); }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }

 private:
  const TensorImpl& checked() const;
  std::shared_ptr<TensorImpl> impl_;
};

std::ostream& operator<<(std::ostream& out, const Tensor& t);

// Throws unless `t` is a defined float32 tensor; `op` names the caller in the message.
void check_float(const Tensor& t, const char* op, const char* arg);
// Throws unless all defined tensors are on the same device.
void check_same_device(const char* op, std::initializer_list<const Tensor*> tensors);

// How many of `n` floats are NaN, and how many infinite (what weight import and checkpoint loads warn about).
std::pair<std::int64_t, std::int64_t> count_nonfinite(const float* values, std::int64_t n);

}  // namespace graft
