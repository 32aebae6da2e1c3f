// Softmax, log-softmax and the fused softmax-cross-entropy, all over the last axis.
#include "core/autograd.h"
#include "core/error.h"
#include "core/ops.h"
#include "kernels/reduce.h"
#include "kernels/softmax.h"

namespace graft {
namespace {

Tensor softmax_impl(const Tensor& x, bool log, const char* name) {
  check_float(x, name, "x");
  GRAFT_CHECK(x.ndim() >= 1 && x.dim(-1) > 0, name, ": input ", shape_str(x.shape()), " has no last axis to normalise");
  const std::int64_t cols = x.dim(-1), rows = x.numel() / cols;
  Tensor out = Tensor::empty(x.shape(), x.device());
#if GRAFT_HAS_CUDA
  if (x.is_cuda()) softmax_forward_cuda(out.data<float>(), x.data<float>(), rows, cols, log); else
#endif
  softmax_forward_cpu(out.data<float>(), x.data<float>(), rows, cols, log);
  if (autograd::needs_grad({&x})) {
    Tensor y = out.detach();
    autograd::record(out, name, {&x}, [y, rows, cols, log](const Tensor& dout, const std::vector<bool>&) {
      Tensor dx = Tensor::empty(y.shape(), y.device());
#if GRAFT_HAS_CUDA
      if (y.is_cuda()) softmax_backward_cuda(dx.data<float>(), dout.data<float>(), y.data<float>(), rows, cols, log); else
#endif
      softmax_backward_cpu(dx.data<float>(), dout.data<float>(), y.data<float>(), rows, cols, log);
      return std::vector<Tensor>{dx};
    });
  }
  return out;
}

}  // namespace

Tensor softmax(const Tensor& x) { return softmax_impl(x, false, "softmax"); }
Tensor log_softmax(const Tensor& x) { return softmax_impl(x, true, "log_softmax"); }

Tensor softmax_cross_entropy(const Tensor& logits, const Tensor& labels, float label_smoothing) {
  check_float(logits, "softmax_cross_entropy", "logits");
  GRAFT_CHECK(labels.defined(), "softmax_cross_entropy: argument 'labels' is an undefined tensor");
  GRAFT_CHECK(labels.dtype() == DType::Int32, "softmax_cross_entropy: labels ", shape_str(labels.shape()), " are ",
              dtype_name(labels.dtype()), ", expected int32 class indices for logits ", shape_str(logits.shape()));
  check_same_device("softmax_cross_entropy", {&logits, &labels});
  GRAFT_CHECK(logits.ndim() == 2 && logits.dim(0) > 0 && logits.dim(1) > 0, "softmax_cross_entropy: logits ",
              shape_str(logits.shape()), " must be (N,C) with N,C > 0");
  GRAFT_CHECK(labels.ndim() == 1 && labels.dim(0) == logits.dim(0), "softmax_cross_entropy: labels ",
              shape_str(labels.shape()), " do not match logits ", shape_str(logits.shape()));
  GRAFT_CHECK(label_smoothing >= 0.f && label_smoothing <= 1.f, "softmax_cross_entropy: label smoothing ",
              label_smoothing, " outside [0,1]");
  const std::int64_t rows = logits.dim(0), cols = logits.dim(1);
  if (!labels.is_cuda()) {  // CUDA: the kernel checks (a NaN loss), see core/ops.h
    const std::int32_t* host_labels = labels.data<std::int32_t>();
    for (std::int64_t r = 0; r < rows; ++r)
      GRAFT_CHECK(host_labels[r] >= 0 && host_labels[r] < cols, "softmax_cross_entropy: label ", host_labels[r],
                  " at row ", r, " is outside [0, ", cols, ") for logits ", shape_str(logits.shape()));
  }
  Tensor losses = Tensor::empty({rows}, logits.device());
  Tensor probs = Tensor::empty(logits.shape(), logits.device());
#if GRAFT_HAS_CUDA
  if (logits.is_cuda())
    cross_entropy_forward_cuda(losses.data<float>(), probs.data<float>(), logits.data<float>(),
                               labels.data<std::int32_t>(), rows, cols, label_smoothing);
  else
#endif
    cross_entropy_forward_cpu(losses.data<float>(), probs.data<float>(), logits.data<float>(),
                              labels.data<std::int32_t>(), rows, cols, label_smoothing);
  Tensor out;
  {
    NoGradGuard no_grad;
    out = mean(losses);
  }
  if (autograd::needs_grad({&logits})) {
    Tensor saved_labels = labels.detach();
    autograd::record(out, "softmax_cross_entropy", {&logits},
                     [probs, saved_labels, rows, cols, label_smoothing](const Tensor& dout, const std::vector<bool>&) {
                       Tensor dlogits = Tensor::empty(probs.shape(), probs.device());
                       const float scale = 1.f / static_cast<float>(rows);
#if GRAFT_HAS_CUDA
                       if (probs.is_cuda())
                         cross_entropy_backward_cuda(dlogits.data<float>(), probs.data<float>(),
                                                     saved_labels.data<std::int32_t>(), dout.data<float>(), rows, cols,
                                                     label_smoothing, scale);
                       else
#endif
                         cross_entropy_backward_cpu(dlogits.data<float>(), probs.data<float>(),
                                                    saved_labels.data<std::int32_t>(), dout.data<float>(), rows, cols,
                                                    label_smoothing, scale);
                       return std::vector<Tensor>{dlogits};
                     });
  }
  return out;
}

}  // namespace graft
