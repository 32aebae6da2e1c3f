// Bad inputs throw graft::Error whose message names the op and the shapes involved.
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/ops.h"
#include "core/tensor.h"
#include "kernels/elementwise.h"
#include "tests/check.h"

namespace graft {
namespace {

using graft::testing::expect_error;

Tensor f32(const Shape& shape) { return Tensor::ones(shape); }
Tensor i32(const Shape& shape) { return Tensor::zeros(shape, kCPU, DType::Int32); }
Tensor labels(const std::vector<std::int32_t>& v) {
  return Tensor::from_vector(v, {static_cast<std::int64_t>(v.size())});
}

using BinaryFn = Tensor (*)(const Tensor&, const Tensor&);
struct NamedBinary {
  const char* name;
  BinaryFn fn;
};
const NamedBinary kBinaryOps[] = {{"add", static_cast<BinaryFn>(&add)},
                                  {"sub", &graft::sub},
                                  {"mul", static_cast<BinaryFn>(&mul)},
                                  {"div", &graft::div}};

// ---- the error type ---------------------------------------------------------------------------------------------------

TEST(Errors, MessageAndLocation) {
  try {
    add(f32({2, 3}), f32({3, 2}));
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.message().find('['), std::string::npos) << "message() has no source location: " << e.message();
    const std::string what = e.what();
    EXPECT_EQ(what.rfind(e.message(), 0), 0u) << what;
    EXPECT_NE(what.find("ops_elementwise.cpp:"), std::string::npos) << what;
  }
}

// ---- elementwise --------------------------------------------------------------------------------------------------------

TEST(Errors, BinaryShapesThatDoNotBroadcast) {
  for (const NamedBinary& op : kBinaryOps) {
    SCOPED_TRACE(op.name);
    expect_error([&] { op.fn(f32({2, 3}), f32({3, 2})); }, {op.name, "(2,3)", "(3,2)", "broadcast"});
    expect_error([&] { op.fn(f32({2, 3}), f32({2})); }, {op.name, "(2,3)", "(2)"});   // 1-D but not the last axis
    expect_error([&] { op.fn(f32({4}), f32({4, 3})); }, {op.name, "(4)", "(4,3)"});
    expect_error([&] { op.fn(f32({4, 3}), f32({4, 1})); }, {op.name, "(4,3)", "(4,1)"});  // no general broadcast
    expect_error([&] { op.fn(f32({2, 3, 4}), f32({3, 4})); }, {op.name, "(2,3,4)", "(3,4)"});
  }
}

// The CPU kernel beneath: a per-channel operand needs channels > 0, and a last row shorter than `channels` is
// still written (the CUDA kernel covers every element; an emulation of it found the CPU reference skipping them).
TEST(Errors, BinaryKernelChannelBroadcastCoversEveryElementAndNeedsChannels) {
  const std::vector<float> a = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, b = {10, 20, 30, 40};
  std::vector<float> out(10, -1.f);
  binary_forward_cpu(out.data(), a.data(), Broadcast::Full, b.data(), Broadcast::Channel, BinaryOp::Add, 10, 4);
  EXPECT_EQ(out, (std::vector<float>{10, 21, 32, 43, 14, 25, 36, 47, 18, 29}));
  expect_error([&] {
    binary_forward_cpu(out.data(), a.data(), Broadcast::Full, b.data(), Broadcast::Channel, BinaryOp::Add, 10, 0);
  }, {"binary_forward_cpu", "channels > 0"});
}

TEST(Errors, BinaryInt32Operand) {
  for (const NamedBinary& op : kBinaryOps) {
    SCOPED_TRACE(op.name);
    expect_error([&] { op.fn(i32({2, 3}), f32({2, 3})); }, {op.name, "'a'", "(2,3)", "int32"});
    expect_error([&] { op.fn(f32({2, 3}), i32({5})); }, {op.name, "'b'", "(5)", "int32"});
  }
}

TEST(Errors, BinaryUndefinedOperand) {
  for (const NamedBinary& op : kBinaryOps) {
    SCOPED_TRACE(op.name);
    expect_error([&] { op.fn(Tensor(), f32({2})); }, {op.name, "'a'", "undefined"});
    expect_error([&] { op.fn(f32({2}), Tensor()); }, {op.name, "'b'", "undefined"});
  }
}

TEST(Errors, ScalarOpsRejectInt32AndUndefined) {
  expect_error([] { add(i32({3, 1}), 1.f); }, {"add", "(3,1)", "int32"});
  expect_error([] { mul(i32({3, 1}), 2.f); }, {"mul", "(3,1)", "int32"});
  expect_error([] { add(Tensor(), 1.f); }, {"add", "undefined"});
  expect_error([] { mul(Tensor(), 1.f); }, {"mul", "undefined"});
}

TEST(Errors, UnaryOpsRejectInt32AndUndefined) {
  const std::pair<const char*, Tensor (*)(const Tensor&)> ops[] = {
      {"neg", &neg}, {"relu", &relu}, {"exp", &graft::exp}, {"log", &graft::log}};
  for (const auto& op : ops) {  // no structured binding: clang 14 cannot capture one in the lambdas below
    const char* op_name = op.first;
    Tensor (*op_fn)(const Tensor&) = op.second;
    SCOPED_TRACE(op_name);
    expect_error([&] { op_fn(i32({4, 2})); }, {op_name, "(4,2)", "int32"});
    expect_error([&] { op_fn(Tensor()); }, {op_name, "undefined"});
  }
}

// ---- reductions -----------------------------------------------------------------------------------------------------------

TEST(Errors, ReductionAxisOutOfRange) {
  expect_error([] { sum(f32({2, 3, 4}), 3); }, {"sum", "axis 3", "(2,3,4)"});
  expect_error([] { sum(f32({2, 3, 4}), -4); }, {"sum", "axis -4", "(2,3,4)"});
  expect_error([] { mean(f32({2, 3}), 2, true); }, {"mean", "axis 2", "(2,3)"});
  expect_error([] { sum(f32({}), 0); }, {"sum", "axis 0", "()"});
}

TEST(Errors, MeanOfEmpty) {
  expect_error([] { mean(f32({0, 3})); }, {"mean", "(0,3)", "empty"});
  expect_error([] { mean(f32({2, 0}), 1); }, {"mean", "(2,0)", "empty"});
}

TEST(Errors, ReductionsRejectInt32AndUndefined) {
  expect_error([] { sum(i32({2, 2})); }, {"sum", "(2,2)", "int32"});
  expect_error([] { mean(i32({2, 2}), 0); }, {"mean", "(2,2)", "int32"});
  expect_error([] { sum(Tensor(), 0); }, {"sum", "undefined"});
  expect_error([] { mean(Tensor()); }, {"mean", "undefined"});
}

// ---- matrix products --------------------------------------------------------------------------------------------------------

TEST(Errors, MatmulInnerMismatch) {
  expect_error([] { matmul(f32({2, 3}), f32({4, 5})); }, {"matmul", "(2,3)", "(4,5)"});
  expect_error([] { matmul(f32({3, 2}), f32({3, 2})); }, {"matmul", "(3,2)"});
}

TEST(Errors, MatmulNeedsMatrices) {
  expect_error([] { matmul(f32({2, 3, 4}), f32({4, 5})); }, {"matmul", "(2,3,4)", "(4,5)"});
  expect_error([] { matmul(f32({3}), f32({3, 5})); }, {"matmul", "(3)", "(3,5)"});
  expect_error([] { matmul(f32({2, 3}), f32({3})); }, {"matmul", "(2,3)", "(3)"});
}

TEST(Errors, MatmulRejectsInt32AndUndefined) {
  expect_error([] { matmul(i32({2, 3}), f32({3, 5})); }, {"matmul", "'a'", "(2,3)", "int32"});
  expect_error([] { matmul(f32({2, 3}), i32({3, 5})); }, {"matmul", "'b'", "(3,5)", "int32"});
  expect_error([] { matmul(f32({2, 3}), Tensor()); }, {"matmul", "undefined"});
}

TEST(Errors, LinearFeatureMismatch) {
  expect_error([] { linear(f32({5, 7}), f32({3, 6})); }, {"linear", "(5,7)", "7", "(3,6)", "6"});
  expect_error([] { linear(f32({2, 4, 7}), f32({3, 8})); }, {"linear", "(2,4,7)", "(3,8)"});
  expect_error([] { linear(f32({}), f32({3, 1})); }, {"linear", "()", "(3,1)"});
}

TEST(Errors, LinearWeightAndBiasShapes) {
  expect_error([] { linear(f32({5, 7}), f32({7})); }, {"linear", "weight", "(7)"});
  expect_error([] { linear(f32({5, 7}), f32({3, 7, 1})); }, {"linear", "weight", "(3,7,1)"});
  expect_error([] { linear(f32({5, 7}), f32({3, 7}), f32({4})); }, {"linear", "bias", "(4)", "(3,7)"});
  expect_error([] { linear(f32({5, 7}), f32({3, 7}), f32({1, 3})); }, {"linear", "bias", "(1,3)", "(3,7)"});
}

TEST(Errors, LinearRejectsInt32AndUndefined) {
  expect_error([] { linear(i32({5, 7}), f32({3, 7})); }, {"linear", "'x'", "(5,7)", "int32"});
  expect_error([] { linear(f32({5, 7}), i32({3, 7})); }, {"linear", "'weight'", "(3,7)", "int32"});
  expect_error([] { linear(f32({5, 7}), f32({3, 7}), i32({3})); }, {"linear", "'bias'", "(3)", "int32"});
  expect_error([] { linear(Tensor(), f32({3, 7})); }, {"linear", "'x'", "undefined"});
  // an undefined optional bias means "no bias"
  EXPECT_EQ(linear(f32({5, 7}), f32({3, 7}), Tensor()).shape(), (Shape{5, 3}));
}

// ---- softmax family -----------------------------------------------------------------------------------------------------------

TEST(Errors, SoftmaxNeedsALastAxis) {
  expect_error([] { softmax(f32({})); }, {"softmax", "()"});
  expect_error([] { softmax(f32({3, 0})); }, {"softmax", "(3,0)"});
  expect_error([] { log_softmax(f32({})); }, {"log_softmax", "()"});
  expect_error([] { log_softmax(f32({2, 0})); }, {"log_softmax", "(2,0)"});
}

TEST(Errors, SoftmaxRejectsInt32AndUndefined) {
  expect_error([] { softmax(i32({2, 3})); }, {"softmax", "(2,3)", "int32"});
  expect_error([] { log_softmax(i32({2, 3})); }, {"log_softmax", "(2,3)", "int32"});
  expect_error([] { softmax(Tensor()); }, {"softmax", "undefined"});
}

TEST(Errors, CrossEntropyLabelEqualToClassCount) {
  expect_error([] { softmax_cross_entropy(f32({5, 7}), labels({0, 1, 7, 2, 3})); },
               {"softmax_cross_entropy", "label 7", "row 2", "[0, 7)", "(5,7)"});
}

TEST(Errors, CrossEntropyNegativeLabel) {
  expect_error([] { softmax_cross_entropy(f32({3, 4}), labels({0, -1, 2})); },
               {"softmax_cross_entropy", "label -1", "row 1", "(3,4)"});
  expect_error([] { softmax_cross_entropy(f32({1, 4}), labels({-2147483647 - 1})); },
               {"softmax_cross_entropy", "label -2147483648", "(1,4)"});
}

TEST(Errors, CrossEntropyLabelsWrongLength) {
  expect_error([] { softmax_cross_entropy(f32({5, 7}), labels({0, 1, 2, 3})); },
               {"softmax_cross_entropy", "labels (4)", "(5,7)"});
  expect_error([] { softmax_cross_entropy(f32({2, 7}), Tensor::zeros({2, 1}, kCPU, DType::Int32)); },
               {"softmax_cross_entropy", "(2,1)", "(2,7)"});
}

TEST(Errors, CrossEntropyLabelsWrongDtypeOrUndefined) {
  expect_error([] { softmax_cross_entropy(f32({5, 7}), f32({5})); },
               {"softmax_cross_entropy", "labels (5)", "float32", "int32", "(5,7)"});
  expect_error([] { softmax_cross_entropy(f32({5, 7}), Tensor()); }, {"softmax_cross_entropy", "labels", "undefined"});
  expect_error([] { softmax_cross_entropy(Tensor(), labels({0})); }, {"softmax_cross_entropy", "logits", "undefined"});
  expect_error([] { softmax_cross_entropy(i32({1, 3}), labels({0})); },
               {"softmax_cross_entropy", "logits", "(1,3)", "int32"});
}

TEST(Errors, CrossEntropyLogitsShape) {
  expect_error([] { softmax_cross_entropy(f32({2, 3, 4}), labels({0, 1})); }, {"softmax_cross_entropy", "(2,3,4)"});
  expect_error([] { softmax_cross_entropy(f32({7}), labels({0})); }, {"softmax_cross_entropy", "(7)"});
  expect_error([] { softmax_cross_entropy(f32({0, 3}), Tensor::zeros({0}, kCPU, DType::Int32)); },
               {"softmax_cross_entropy", "(0,3)"});
}

TEST(Errors, CrossEntropyLabelSmoothingRange) {
  expect_error([] { softmax_cross_entropy(f32({2, 3}), labels({0, 1}), 1.5f); },
               {"softmax_cross_entropy", "smoothing", "1.5"});
  expect_error([] { softmax_cross_entropy(f32({2, 3}), labels({0, 1}), -0.1f); },
               {"softmax_cross_entropy", "smoothing", "-0.1"});
}

TEST(Errors, FailedOpsLeaveNoGraph) {
  Tensor x = f32({2, 3});
  x.set_requires_grad(true);
  expect_error([&] { add(x, f32({3, 2})); }, {"add"});
  expect_error([&] { matmul(x, f32({2, 2})); }, {"matmul"});
  EXPECT_FALSE(x.grad().defined());
  sum(x).backward();  // the leaf is still usable
  EXPECT_EQ(x.grad().to_vector(), std::vector<float>(6, 1.f));
}

}  // namespace
}  // namespace graft
