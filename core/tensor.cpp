#include "core/tensor.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <iomanip>
#include <ostream>
#include <sstream>

#include "core/allocator.h"
#include "core/autograd.h"
#include "core/error.h"
#include "core/rng.h"
#include "kernels/elementwise.h"
#include "kernels/random.h"
#if GRAFT_HAS_CUDA
#include "kernels/cuda_device.h"
#endif

namespace graft {

// Largest tensor graft agrees to allocate (2^36 elements = 256 GiB of float32): absurd requests fail before
// touching the allocator.
constexpr std::int64_t kMaxElements = std::int64_t{1} << 36;

std::int64_t shape_numel(const Shape& shape) {
  std::int64_t n = 1;
  for (std::int64_t d : shape) n *= d;
  return n;
}

std::string shape_str(const Shape& shape) {
  std::ostringstream s;
  s << "(";
  for (std::size_t i = 0; i < shape.size(); ++i) s << (i ? "," : "") << shape[i];
  s << ")";
  return s.str();
}

Storage::Storage(std::size_t bytes_, Device device_) : bytes(bytes_), device(device_) {
  data = device_alloc(bytes, device);
}

Storage::~Storage() {
  try {
    device_free(data, bytes, device);
  } catch (...) {
    // A failing free (e.g. a dead CUDA context at exit) must not terminate the process.
  }
}

// ---- factories --------------------------------------------------------------------------------------------------

static void check_shape(const Shape& shape, const char* op) {
  std::int64_t n = 1;
  for (std::int64_t d : shape) {
    GRAFT_CHECK(d >= 0, op, ": negative dimension in shape ", shape_str(shape));
    GRAFT_CHECK(d == 0 || n <= kMaxElements / d, op, ": shape ", shape_str(shape), " has more than 2^36 elements");
    n *= d;
  }
}

Tensor Tensor::empty(const Shape& shape, Device device, DType dtype) {
  check_shape(shape, "empty");
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::make_shared<Storage>(static_cast<std::size_t>(shape_numel(shape)) * element_size(dtype), device);
  impl->shape = shape;
  impl->dtype = dtype;
  return Tensor(impl);
}

Tensor Tensor::zeros(const Shape& shape, Device device, DType dtype) {
  Tensor t = empty(shape, device, dtype);
#if GRAFT_HAS_CUDA
  if (device.is_cuda()) {
    GRAFT_CUDA_CHECK(cudaMemsetAsync(t.data<void>(), 0, t.nbytes(), cuda::stream()));
    return t;
  }
#endif
  if (t.nbytes()) std::memset(t.data<void>(), 0, t.nbytes());
  return t;
}

Tensor Tensor::full(const Shape& shape, float value, Device device) {
  Tensor t = empty(shape, device);
#if GRAFT_HAS_CUDA
  if (device.is_cuda()) return fill_cuda(t.data<float>(), value, t.numel()), t;
#endif
  fill_cpu(t.data<float>(), value, t.numel());
  return t;
}

Tensor Tensor::ones(const Shape& shape, Device device) { return full(shape, 1.f, device); }

Tensor Tensor::randn(const Shape& shape, Generator& gen, Device device, float mean, float stddev) {
  Tensor t = empty(shape, device);
  std::uint64_t offset = gen.advance(normal_counters(t.numel()));
#if GRAFT_HAS_CUDA
  if (device.is_cuda()) return normal_cuda(t.data<float>(), t.numel(), gen.seed(), offset, mean, stddev), t;
#endif
  normal_cpu(t.data<float>(), t.numel(), gen.seed(), offset, mean, stddev);
  return t;
}

Tensor Tensor::uniform(const Shape& shape, Generator& gen, float low, float high, Device device) {
  Tensor t = empty(shape, device);
  std::uint64_t offset = gen.advance(uniform_counters(t.numel()));
#if GRAFT_HAS_CUDA
  if (device.is_cuda()) return uniform_cuda(t.data<float>(), t.numel(), gen.seed(), offset, low, high), t;
#endif
  uniform_cpu(t.data<float>(), t.numel(), gen.seed(), offset, low, high);
  return t;
}

Tensor Tensor::arange(std::int64_t n, Device device) {
  Tensor t = empty({n}, device);
#if GRAFT_HAS_CUDA
  if (device.is_cuda()) return arange_cuda(t.data<float>(), n), t;
#endif
  arange_cpu(t.data<float>(), n);
  return t;
}

template <typename T>
static Tensor from_values(const std::vector<T>& values, const Shape& shape, Device device, DType dtype) {
  check_shape(shape, "from_vector");
  GRAFT_CHECK(static_cast<std::int64_t>(values.size()) == shape_numel(shape), "from_vector: ", values.size(),
              " values do not fill shape ", shape_str(shape));
  Tensor host = Tensor::empty(shape, kCPU, dtype);
  if (!values.empty()) std::memcpy(host.data<void>(), values.data(), values.size() * sizeof(T));
  return host.to(device);
}

Tensor Tensor::from_vector(const std::vector<float>& values, const Shape& shape, Device device) {
  return from_values(values, shape, device, DType::Float32);
}
Tensor Tensor::from_vector(const std::vector<std::int32_t>& values, const Shape& shape, Device device) {
  return from_values(values, shape, device, DType::Int32);
}

// ---- properties --------------------------------------------------------------------------------------------------

const TensorImpl& Tensor::checked() const {
  GRAFT_CHECK(impl_ != nullptr, "tensor: use of an undefined tensor");
  return *impl_;
}
const Shape& Tensor::shape() const { return checked().shape; }
Device Tensor::device() const { return checked().storage->device; }
DType Tensor::dtype() const { return checked().dtype; }

std::int64_t Tensor::dim(int axis) const {
  int n = ndim();
  int a = axis < 0 ? axis + n : axis;
  GRAFT_CHECK(a >= 0 && a < n, "dim: axis ", axis, " out of range for shape ", shape_str(shape()));
  return shape()[static_cast<std::size_t>(a)];
}

template <typename T>
T* Tensor::data() const {
  const TensorImpl& t = checked();
  char* base = static_cast<char*>(t.storage->data);
  return reinterpret_cast<T*>(base + t.offset * static_cast<std::int64_t>(element_size(t.dtype)));
}
template float* Tensor::data<float>() const;
template std::int32_t* Tensor::data<std::int32_t>() const;
template void* Tensor::data<void>() const;

// ---- data movement and views ---------------------------------------------------------------------------------------

Tensor Tensor::to(Device target) const {
  if (device() == target) return *this;
  GRAFT_CHECK(target.is_cpu() || cuda_available(), "to: cannot move tensor ", shape_str(shape()), " to ",
              target.str(), ": ", cuda_unavailable_reason());
  Tensor out = empty(shape(), target, dtype());
#if GRAFT_HAS_CUDA
  if (target.is_cuda()) cuda::copy_to_device(out.data<void>(), data<void>(), nbytes());
  else cuda::copy_to_host(out.data<void>(), data<void>(), nbytes());
#else
  GRAFT_FAIL("to: cannot move a tensor to ", target.str(), ": graft was built without CUDA");
#endif
  if (autograd::needs_grad({this})) {
    Device source = device();
    autograd::record(out, "to", {this}, [source](const Tensor& dout, const std::vector<bool>&) {
      return std::vector<Tensor>{dout.to(source)};
    });
  }
  return out;
}

// Views of one storage may overlap (t.slice(0, 5).copy_from(t.slice(1, 6))): memmove on the host; on the device,
// where a copy between overlapping ranges is undefined, through a temporary.
static void copy_same_device(const Tensor& dst, const Tensor& src) {
  const std::size_t bytes = src.nbytes();
  if (bytes == 0) return;
#if GRAFT_HAS_CUDA
  if (src.is_cuda()) {
    // Views are contiguous: two of one storage overlap when their element ranges do.
    const std::int64_t d = dst.impl()->offset, s = src.impl()->offset, n = src.numel();
    if (dst.impl()->storage == src.impl()->storage && d < s + n && s < d + n) {
      if (d == s) return;  // the same elements
      const Tensor staged = Tensor::empty(src.shape(), src.device(), src.dtype());
      cuda::copy_device_to_device(staged.data<void>(), src.data<void>(), bytes);
      return cuda::copy_device_to_device(dst.data<void>(), staged.data<void>(), bytes);
    }
    return cuda::copy_device_to_device(dst.data<void>(), src.data<void>(), bytes);
  }
#endif
  std::memmove(dst.data<void>(), src.data<void>(), bytes);
}

void Tensor::copy_from(const Tensor& src) {
  GRAFT_CHECK(src.shape() == shape() && src.dtype() == dtype(), "copy_from: source ", shape_str(src.shape()), " ",
              dtype_name(src.dtype()), " does not match tensor ", shape_str(shape()), " ", dtype_name(dtype()));
  if (src.device() == device()) return copy_same_device(*this, src);
#if GRAFT_HAS_CUDA
  if (is_cuda()) cuda::copy_to_device(data<void>(), src.data<void>(), nbytes());
  else cuda::copy_to_host(data<void>(), src.data<void>(), nbytes());
#endif
}

Tensor Tensor::clone() const {
  Tensor out = empty(shape(), device(), dtype());
  copy_same_device(out, *this);
  if (autograd::needs_grad({this})) {
    autograd::record(out, "clone", {this}, [](const Tensor& dout, const std::vector<bool>&) {
      return std::vector<Tensor>{dout};
    });
  }
  return out;
}

// A new impl sharing storage; differentiable as a reshape of the source.
static Tensor make_view(const Tensor& src, const Shape& shape, std::int64_t offset, const char* op) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = src.impl()->storage;
  impl->offset = src.impl()->offset + offset;
  impl->shape = shape;
  impl->dtype = src.dtype();
  return Tensor(impl);
}

Tensor Tensor::reshape(const Shape& new_shape) const {
  Shape shape_out = new_shape;
  std::int64_t known = 1;
  int infer = -1;
  for (std::size_t i = 0; i < shape_out.size(); ++i) {
    if (shape_out[i] == -1) {
      GRAFT_CHECK(infer < 0, "reshape: more than one -1 in ", shape_str(new_shape));
      infer = static_cast<int>(i);
    } else {
      GRAFT_CHECK(shape_out[i] >= 0, "reshape: negative dimension in ", shape_str(new_shape));
      known *= shape_out[i];
    }
  }
  if (infer >= 0) {
    GRAFT_CHECK(known > 0 && numel() % known == 0, "reshape: cannot reshape ", shape_str(shape()), " to ",
                shape_str(new_shape));
    shape_out[static_cast<std::size_t>(infer)] = numel() / known;
  }
  GRAFT_CHECK(shape_numel(shape_out) == numel(), "reshape: cannot reshape ", shape_str(shape()), " (", numel(),
              " elements) to ", shape_str(new_shape));
  Tensor out = make_view(*this, shape_out, 0, "reshape");
  if (autograd::needs_grad({this})) {
    Shape source = shape();
    autograd::record(out, "reshape", {this}, [source](const Tensor& dout, const std::vector<bool>&) {
      return std::vector<Tensor>{dout.reshape(source)};
    });
  }
  return out;
}

Tensor Tensor::flatten(int start_axis) const {
  int n = ndim();
  int start = start_axis < 0 ? start_axis + n : start_axis;
  GRAFT_CHECK(start >= 0 && start <= std::max(n - 1, 0), "flatten: start axis ", start_axis, " out of range for ",
              shape_str(shape()));
  Shape folded(shape().begin(), shape().begin() + start);
  // The folded size is the product of the trailing axes, not numel / rows: an empty batch (0,1,1,512) flattens to
  // (0,512), not (0,0).
  std::int64_t trailing = 1;
  for (int axis = start; axis < n; ++axis) trailing *= shape()[static_cast<std::size_t>(axis)];
  folded.push_back(trailing);
  return reshape(folded);
}

Tensor Tensor::slice(std::int64_t begin, std::int64_t end) const {
  GRAFT_CHECK(ndim() >= 1, "slice: tensor of shape ", shape_str(shape()), " has no batch axis");
  std::int64_t rows = shape()[0];
  GRAFT_CHECK(0 <= begin && begin <= end && end <= rows, "slice: rows [", begin, ",", end, ") out of range for ",
              shape_str(shape()));
  Shape out_shape = shape();
  out_shape[0] = end - begin;
  std::int64_t row = rows ? numel() / rows : 0;
  Tensor out = make_view(*this, out_shape, begin * row, "slice");
  if (autograd::needs_grad({this})) {
    Shape source = shape();
    autograd::record(out, "slice", {this}, [source, begin, row](const Tensor& dout, const std::vector<bool>&) {
      Tensor dx = Tensor::zeros(source, dout.device());
      copy_same_device(make_view(dx, dout.shape(), begin * row, "slice"), dout);
      return std::vector<Tensor>{dx};
    });
  }
  return out;
}

float Tensor::item() const {
  GRAFT_CHECK(numel() == 1, "item: tensor of shape ", shape_str(shape()), " has ", numel(), " elements, not 1");
  GRAFT_CHECK(dtype() == DType::Float32, "item: tensor is ", dtype_name(dtype()), ", not float32");
  Tensor host = to(kCPU);
  return *host.data<float>();
}

std::vector<float> Tensor::to_vector() const {
  GRAFT_CHECK(dtype() == DType::Float32, "to_vector: tensor is ", dtype_name(dtype()), ", not float32");
  Tensor host = detach().to(kCPU);
  const float* p = host.data<float>();
  return std::vector<float>(p, p + numel());
}

std::vector<std::int32_t> Tensor::to_int_vector() const {
  GRAFT_CHECK(dtype() == DType::Int32, "to_int_vector: tensor is ", dtype_name(dtype()), ", not int32");
  Tensor host = detach().to(kCPU);
  const std::int32_t* p = host.data<std::int32_t>();
  return std::vector<std::int32_t>(p, p + numel());
}

// Prints nested brackets, eliding the middle of long axes.
static void print_axis(std::ostringstream& out, const Tensor& host, std::size_t axis, std::int64_t base,
                       std::int64_t max_per_axis) {
  const Shape& shape = host.shape();
  if (shape.empty()) {
    out << (host.dtype() == DType::Float32 ? host.data<float>()[0] : host.data<std::int32_t>()[0]);
    return;
  }
  std::int64_t len = shape[axis];
  std::int64_t stride = 1;
  for (std::size_t a = axis + 1; a < shape.size(); ++a) stride *= shape[a];
  // at least one element is shown at each end, so a tiny budget cannot index past the axis
  const std::int64_t half = std::max<std::int64_t>(max_per_axis / 2, 1);
  out << "[";
  for (std::int64_t i = 0; i < len; ++i) {
    if (len > max_per_axis && len > 2 * half && i == half) {
      out << "..., ";
      i = len - half;
    }
    if (axis + 1 == shape.size()) {
      std::int64_t idx = base + i;
      if (host.dtype() == DType::Float32) out << host.data<float>()[idx];
      else out << host.data<std::int32_t>()[idx];
    } else {
      print_axis(out, host, axis + 1, base + i * stride, max_per_axis);
    }
    if (i + 1 < len) out << (axis + 1 == shape.size() ? ", " : ",\n");
  }
  out << "]";
}

std::string Tensor::str(std::int64_t max_per_axis) const {
  if (!defined()) return "Tensor(undefined)";
  std::ostringstream out;
  out << "Tensor(shape=" << shape_str(shape()) << ", dtype=" << dtype_name(dtype()) << ", device=" << device().str()
      << (requires_grad() ? ", requires_grad" : "") << ")\n";
  out << std::setprecision(6);
  Tensor host = detach().to(kCPU);
  print_axis(out, host, 0, 0, max_per_axis);
  return out.str();
}

std::ostream& operator<<(std::ostream& out, const Tensor& t) { return out << t.str(); }

// ---- autograd ----------------------------------------------------------------------------------------------------

bool Tensor::requires_grad() const { return checked().requires_grad; }

Tensor& Tensor::set_requires_grad(bool value) {
  GRAFT_CHECK(is_leaf(), "set_requires_grad: only leaf tensors can be marked (this one is the output of '",
              impl_->grad_fn->name, "'); use detach() first");
  GRAFT_CHECK(!value || dtype() == DType::Float32, "set_requires_grad: ", dtype_name(dtype()),
              " tensors cannot require grad");
  impl_->requires_grad = value;
  return *this;
}

bool Tensor::is_leaf() const { return checked().grad_fn == nullptr; }

Tensor Tensor::grad() const {
  const TensorImpl& t = checked();
  return t.grad ? Tensor(t.grad) : Tensor();
}

void Tensor::zero_grad() { checked(), impl_->grad.reset(); }

void Tensor::set_grad(const Tensor& grad) {
  checked();
  if (grad.defined())
    GRAFT_CHECK(grad.shape() == shape() && grad.device() == device() && grad.dtype() == DType::Float32,
                "set_grad: gradient ", shape_str(grad.shape()), " ", dtype_name(grad.dtype()), " on ",
                grad.device().str(), " does not match tensor ", shape_str(shape()), " on ", device().str(),
                " (gradients are float32)");
  impl_->grad = grad.defined() ? grad.impl_ptr() : nullptr;
}

void Tensor::backward() const {
  GRAFT_CHECK(numel() == 1, "backward: called without a seed gradient on a tensor of shape ", shape_str(shape()),
              " (only one-element tensors have an implicit seed)");
  autograd::run_backward(*this, Tensor::ones(shape(), device()));
}

void Tensor::backward(const Tensor& seed) const { autograd::run_backward(*this, seed); }

Tensor Tensor::detach() const {
  const TensorImpl& t = checked();
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = t.storage;
  impl->offset = t.offset;
  impl->shape = t.shape;
  impl->dtype = t.dtype;
  return Tensor(impl);
}

// ---- checks used by ops ------------------------------------------------------------------------------------------

void check_float(const Tensor& t, const char* op, const char* arg) {
  GRAFT_CHECK(t.defined(), op, ": argument '", arg, "' is an undefined tensor");
  GRAFT_CHECK(t.dtype() == DType::Float32, op, ": argument '", arg, "' ", shape_str(t.shape()), " is ",
              dtype_name(t.dtype()), ", expected float32");
}

void check_same_device(const char* op, std::initializer_list<const Tensor*> tensors) {
  const Tensor* first = nullptr;
  for (const Tensor* t : tensors) {
    if (!t || !t->defined()) continue;
    if (!first) {
      first = t;
      continue;
    }
    GRAFT_CHECK(t->device() == first->device(), op, ": tensors on different devices: ", shape_str(first->shape()),
                " on ", first->device().str(), " and ", shape_str(t->shape()), " on ", t->device().str(),
                " (use .to(device) first)");
  }
}

std::pair<std::int64_t, std::int64_t> count_nonfinite(const float* values, std::int64_t n) {
  std::int64_t nan = 0, inf = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    nan += std::isnan(values[i]) ? 1 : 0;
    inf += std::isinf(values[i]) ? 1 : 0;
  }
  return {nan, inf};
}

}  // namespace graft
