// Tensor semantics: factories, shapes, views sharing storage, data access, printing, devices, memory counters.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "core/allocator.h"
#include "core/error.h"
#include "core/ops.h"
#include "core/rng.h"
#include "core/tensor.h"
#include "tests/check.h"

namespace graft {
namespace {

using graft::testing::expect_error;

double mean_of(const std::vector<float>& v) {
  double s = 0;
  for (float x : v) s += x;
  return s / static_cast<double>(v.size());
}

double variance_of(const std::vector<float>& v) {
  double m = mean_of(v), s = 0;
  for (float x : v) s += (x - m) * (x - m);
  return s / static_cast<double>(v.size());
}

// ---- factories -----------------------------------------------------------------------------------------------------

TEST(Tensor, EmptyHasShapeDtypeDevice) {
  Tensor t = Tensor::empty({2, 3, 4});
  EXPECT_TRUE(t.defined());
  EXPECT_EQ(t.shape(), (Shape{2, 3, 4}));
  EXPECT_EQ(t.ndim(), 3);
  EXPECT_EQ(t.numel(), 24);
  EXPECT_EQ(t.nbytes(), 96u);
  EXPECT_EQ(t.dtype(), DType::Float32);
  EXPECT_EQ(t.device(), kCPU);
  EXPECT_FALSE(t.is_cuda());
  EXPECT_NE(t.data<float>(), nullptr);
}

TEST(Tensor, ZeroElementTensorIsValid) {
  Tensor t = Tensor::zeros({0, 5});
  EXPECT_EQ(t.numel(), 0);
  EXPECT_EQ(t.nbytes(), 0u);
  EXPECT_TRUE(t.to_vector().empty());
  EXPECT_EQ(t.reshape({5, 0}).shape(), (Shape{5, 0}));
}

TEST(Tensor, ZerosOnesFull) {
  for (float v : Tensor::zeros({3, 5}).to_vector()) EXPECT_EQ(v, 0.f);
  for (float v : Tensor::ones({7}).to_vector()) EXPECT_EQ(v, 1.f);
  std::vector<float> full = Tensor::full({2, 2, 3}, -2.5f).to_vector();
  ASSERT_EQ(full.size(), 12u);
  for (float v : full) EXPECT_EQ(v, -2.5f);
  Tensor zi = Tensor::zeros({4}, kCPU, DType::Int32);
  EXPECT_EQ(zi.dtype(), DType::Int32);
  EXPECT_EQ(zi.to_int_vector(), (std::vector<std::int32_t>{0, 0, 0, 0}));
}

TEST(Tensor, Arange) {
  Tensor t = Tensor::arange(6);
  EXPECT_EQ(t.shape(), (Shape{6}));
  EXPECT_EQ(t.to_vector(), (std::vector<float>{0, 1, 2, 3, 4, 5}));
  EXPECT_EQ(Tensor::arange(0).numel(), 0);
}

TEST(Tensor, FromVectorFloatAndInt) {
  Tensor f = Tensor::from_vector(std::vector<float>{1, 2, 3, 4, 5, 6}, {2, 3});
  EXPECT_EQ(f.shape(), (Shape{2, 3}));
  EXPECT_EQ(f.dtype(), DType::Float32);
  EXPECT_EQ(f.data<float>()[4], 5.f);
  Tensor i = Tensor::from_vector(std::vector<std::int32_t>{7, -1, 3}, {3});
  EXPECT_EQ(i.dtype(), DType::Int32);
  EXPECT_EQ(i.to_int_vector(), (std::vector<std::int32_t>{7, -1, 3}));
  EXPECT_EQ(i.data<std::int32_t>()[1], -1);
}

TEST(Tensor, FromVectorWrongCountThrows) {
  expect_error([] { Tensor::from_vector(std::vector<float>{1, 2, 3}, {2, 2}); }, {"from_vector", "3", "(2,2)"});
  expect_error([] { Tensor::from_vector(std::vector<std::int32_t>{1}, {2}); }, {"from_vector", "(2)"});
}

TEST(Tensor, RandnStatistics) {
  Generator gen(7);
  std::vector<float> v = Tensor::randn({100000}, gen, kCPU, 2.f, 3.f).to_vector();
  EXPECT_NEAR(mean_of(v), 2.0, 0.05);                // standard error 3/sqrt(1e5) ~ 0.01
  EXPECT_NEAR(std::sqrt(variance_of(v)), 3.0, 0.05);
}

TEST(Tensor, UniformStatisticsAndRange) {
  Generator gen(11);
  std::vector<float> v = Tensor::uniform({100000}, gen, -1.f, 3.f).to_vector();
  for (float x : v) ASSERT_TRUE(x >= -1.f && x < 3.f) << x;
  EXPECT_NEAR(mean_of(v), 1.0, 0.02);                 // standard error 4/sqrt(12e5) ~ 0.004
  EXPECT_NEAR(variance_of(v), 16.0 / 12.0, 0.03);
}

// ---- shapes ---------------------------------------------------------------------------------------------------------

TEST(Tensor, ShapeHelpers) {
  EXPECT_EQ(shape_str({2, 224, 224, 3}), "(2,224,224,3)");
  EXPECT_EQ(shape_str({}), "()");
  EXPECT_EQ(shape_numel({2, 3, 4}), 24);
  EXPECT_EQ(shape_numel({}), 1);
  EXPECT_EQ(shape_numel({5, 0}), 0);
}

TEST(Tensor, DimWithNegativeAxes) {
  Tensor t = Tensor::empty({2, 3, 4});
  EXPECT_EQ(t.dim(0), 2);
  EXPECT_EQ(t.dim(2), 4);
  EXPECT_EQ(t.dim(-1), 4);
  EXPECT_EQ(t.dim(-3), 2);
  expect_error([&] { t.dim(3); }, {"dim", "3", "(2,3,4)"});
  expect_error([&] { t.dim(-4); }, {"dim", "-4", "(2,3,4)"});
}

TEST(Tensor, UndefinedTensorThrowsOnUse) {
  Tensor t;
  EXPECT_FALSE(t.defined());
  expect_error([&] { t.shape(); }, {"undefined"});
  expect_error([&] { t.numel(); }, {"undefined"});
  EXPECT_EQ(t.str(), "Tensor(undefined)");
}

// ---- views ------------------------------------------------------------------------------------------------------------

TEST(Tensor, ReshapeIsAViewSharingStorage) {
  Tensor t = Tensor::arange(12);
  Tensor v = t.reshape({3, 4});
  EXPECT_EQ(v.shape(), (Shape{3, 4}));
  EXPECT_EQ(v.data<float>(), t.data<float>());
  v.data<float>()[5] = 100.f;
  EXPECT_EQ(t.to_vector()[5], 100.f);
  t.data<float>()[0] = -1.f;
  EXPECT_EQ(v.to_vector()[0], -1.f);
}

TEST(Tensor, ReshapeInfersMinusOne) {
  Tensor t = Tensor::zeros({2, 3, 4});
  EXPECT_EQ(t.reshape({-1, 4}).shape(), (Shape{6, 4}));
  EXPECT_EQ(t.reshape({2, -1}).shape(), (Shape{2, 12}));
  EXPECT_EQ(t.reshape({-1}).shape(), (Shape{24}));
  EXPECT_EQ(t.reshape({4, -1, 3}).shape(), (Shape{4, 2, 3}));
  EXPECT_EQ(Tensor::zeros({1}).reshape({}).shape(), Shape{});
}

TEST(Tensor, ReshapeErrors) {
  Tensor t = Tensor::zeros({2, 3, 4});
  expect_error([&] { t.reshape({5, 5}); }, {"reshape", "(2,3,4)", "(5,5)"});
  expect_error([&] { t.reshape({-1, -1}); }, {"reshape", "more than one -1", "(-1,-1)"});
  expect_error([&] { t.reshape({-1, 5}); }, {"reshape", "(2,3,4)", "(-1,5)"});
  expect_error([&] { t.reshape({-2, -12}); }, {"reshape", "negative"});
  expect_error([&] { t.reshape({0, -1}); }, {"reshape", "(0,-1)"});
}

TEST(Tensor, FlattenFromStartAxis) {
  Tensor t = Tensor::arange(2 * 3 * 4 * 5).reshape({2, 3, 4, 5});
  EXPECT_EQ(t.flatten().shape(), (Shape{120}));
  EXPECT_EQ(t.flatten(1).shape(), (Shape{2, 60}));
  EXPECT_EQ(t.flatten(2).shape(), (Shape{2, 3, 20}));
  EXPECT_EQ(t.flatten(-1).shape(), (Shape{2, 3, 4, 5}));
  EXPECT_EQ(t.flatten(-2).shape(), (Shape{2, 3, 20}));
  Tensor f = t.flatten(1);
  EXPECT_EQ(f.data<float>(), t.data<float>());
  f.data<float>()[61] = -7.f;  // row 1, element 1 -> t[1,0,0,1]
  EXPECT_EQ(t.to_vector()[61], -7.f);
  expect_error([&] { t.flatten(4); }, {"flatten", "4", "(2,3,4,5)"});
  expect_error([&] { t.flatten(-5); }, {"flatten", "(2,3,4,5)"});
}

TEST(Tensor, SliceAlongBatchSharesStorage) {
  Tensor t = Tensor::arange(5 * 3).reshape({5, 3});
  Tensor s = t.slice(1, 4);
  EXPECT_EQ(s.shape(), (Shape{3, 3}));
  EXPECT_EQ(s.to_vector(), (std::vector<float>{3, 4, 5, 6, 7, 8, 9, 10, 11}));
  EXPECT_EQ(s.data<float>(), t.data<float>() + 3);
  s.data<float>()[0] = 42.f;  // row 1 of t
  EXPECT_EQ(t.to_vector()[3], 42.f);
  // a slice of a slice, and a view of a slice
  Tensor ss = s.slice(1, 2);
  EXPECT_EQ(ss.to_vector(), (std::vector<float>{6, 7, 8}));
  ss.reshape({3}).data<float>()[2] = -8.f;
  EXPECT_EQ(t.to_vector()[8], -8.f);
  EXPECT_EQ(t.slice(2, 2).numel(), 0);
  EXPECT_EQ(t.slice(0, 5).to_vector(), t.to_vector());
}

// copy_from between overlapping views of one storage copies as if through a temporary, either way round (it was a
// memcpy over overlapping ranges: undefined, flagged by ASan).
TEST(Tensor, CopyBetweenOverlappingViews) {
  Tensor t = Tensor::arange(6);
  t.slice(0, 5).copy_from(t.slice(1, 6));
  EXPECT_EQ(t.to_vector(), (std::vector<float>{1, 2, 3, 4, 5, 5}));
  Tensor u = Tensor::arange(6);
  u.slice(1, 6).copy_from(u.slice(0, 5));
  EXPECT_EQ(u.to_vector(), (std::vector<float>{0, 0, 1, 2, 3, 4}));
}

TEST(Tensor, SliceBoundsErrors) {
  Tensor t = Tensor::zeros({5, 3});
  expect_error([&] { t.slice(0, 6); }, {"slice", "[0,6)", "(5,3)"});
  expect_error([&] { t.slice(-1, 2); }, {"slice", "(5,3)"});
  expect_error([&] { t.slice(3, 2); }, {"slice", "[3,2)"});
  expect_error([&] { Tensor::zeros({}).slice(0, 0); }, {"slice", "()"});
}

// ---- broadcasting semantics (hand-computed values; PyTorch comparisons live in the golden tests) -------------------

Tensor vec(const std::vector<float>& v, const Shape& shape) { return Tensor::from_vector(v, shape); }

TEST(Broadcast, EqualShapes) {
  Tensor a = vec({1, 2, 3, 4, 5, 6}, {2, 3}), b = vec({6, 5, 4, 3, 2, 1}, {2, 3});
  EXPECT_EQ(add(a, b).to_vector(), std::vector<float>(6, 7.f));
  EXPECT_EQ(sub(a, b).to_vector(), (std::vector<float>{-5, -3, -1, 1, 3, 5}));
  EXPECT_EQ(mul(a, b).to_vector(), (std::vector<float>{6, 10, 12, 12, 10, 6}));
  EXPECT_EQ(div(a, b).to_vector(), (std::vector<float>{1.f / 6, 2.f / 5, 3.f / 4, 4.f / 3, 5.f / 2, 6.f}));
  EXPECT_EQ(add(a, b).shape(), (Shape{2, 3}));
}

TEST(Broadcast, ScalarEitherSide) {
  Tensor a = vec({1, 2, 3, 4, 5, 6}, {2, 3});
  for (const Shape& scalar_shape : {Shape{}, Shape{1}, Shape{1, 1}}) {
    SCOPED_TRACE(shape_str(scalar_shape));
    Tensor s = vec({2}, scalar_shape);
    EXPECT_EQ(sub(a, s).shape(), (Shape{2, 3}));
    EXPECT_EQ(sub(s, a).shape(), (Shape{2, 3}));
    EXPECT_EQ(sub(a, s).to_vector(), (std::vector<float>{-1, 0, 1, 2, 3, 4}));
    EXPECT_EQ(sub(s, a).to_vector(), (std::vector<float>{1, 0, -1, -2, -3, -4}));
    EXPECT_EQ(div(s, a).to_vector(), (std::vector<float>{2, 1, 2.f / 3, 0.5f, 0.4f, 2.f / 6}));
    EXPECT_EQ(mul(a, s).to_vector(), (std::vector<float>{2, 4, 6, 8, 10, 12}));
  }
}

TEST(Broadcast, PerChannelEitherSide) {
  Tensor a = vec({1, 2, 3, 4, 5, 6}, {2, 3}), c = vec({10, 20, 30}, {3});
  EXPECT_EQ(add(a, c).to_vector(), (std::vector<float>{11, 22, 33, 14, 25, 36}));
  EXPECT_EQ(sub(c, a).to_vector(), (std::vector<float>{9, 18, 27, 6, 15, 24}));
  EXPECT_EQ(div(c, a).shape(), (Shape{2, 3}));
  EXPECT_EQ(div(c, a).to_vector(), (std::vector<float>{10, 10, 10, 2.5f, 4, 5}));
  // an NHWC activation plus a bias over its channels
  Tensor x = Tensor::arange(2 * 2 * 2 * 3).reshape({2, 2, 2, 3});
  std::vector<float> y = add(x, vec({0, 100, 200}, {3})).to_vector();
  ASSERT_EQ(y.size(), 24u);
  for (std::size_t i = 0; i < y.size(); ++i) EXPECT_EQ(y[i], static_cast<float>(i) + 100.f * (i % 3)) << i;
}

TEST(Broadcast, ScalarOperandsAndUnaryOps) {
  Tensor a = vec({-2, -0.5f, 0, 1, 3}, {5});
  EXPECT_EQ(add(a, 0.5f).to_vector(), (std::vector<float>{-1.5f, 0, 0.5f, 1.5f, 3.5f}));
  EXPECT_EQ(mul(a, -2.f).to_vector(), (std::vector<float>{4, 1, 0, -2, -6}));
  EXPECT_EQ(neg(a).to_vector(), (std::vector<float>{2, 0.5f, 0, -1, -3}));
  EXPECT_EQ(relu(a).to_vector(), (std::vector<float>{0, 0, 0, 1, 3}));
  std::vector<float> e = exp(a).to_vector(), l = log(vec({1, 2, 0.5f}, {3})).to_vector();
  for (std::size_t i = 0; i < 5; ++i) EXPECT_FLOAT_EQ(e[i], std::exp(a.to_vector()[i]));
  EXPECT_EQ(l[0], 0.f);
  EXPECT_FLOAT_EQ(l[1], std::log(2.f));
  EXPECT_FLOAT_EQ(l[2], -std::log(2.f));
}

TEST(Broadcast, ReductionShapesAndValues) {
  Tensor x = Tensor::arange(6).reshape({2, 3});  // [[0,1,2],[3,4,5]]
  EXPECT_EQ(sum(x).shape(), Shape{});
  EXPECT_EQ(sum(x).item(), 15.f);
  EXPECT_EQ(mean(x).item(), 2.5f);
  EXPECT_EQ(sum(x, 0).to_vector(), (std::vector<float>{3, 5, 7}));
  EXPECT_EQ(sum(x, 0, true).shape(), (Shape{1, 3}));
  EXPECT_EQ(sum(x, -1).to_vector(), (std::vector<float>{3, 12}));
  EXPECT_EQ(mean(x, 1, true).shape(), (Shape{2, 1}));
  EXPECT_EQ(mean(x, 1, true).to_vector(), (std::vector<float>{1, 4}));
  EXPECT_EQ(mean(x, 0).shape(), (Shape{3}));
}

// ---- data access --------------------------------------------------------------------------------------------------------

TEST(Tensor, ItemAndVectors) {
  EXPECT_EQ(Tensor::full({}, 3.5f).item(), 3.5f);
  EXPECT_EQ(Tensor::full({1, 1}, -2.f).item(), -2.f);
  expect_error([] { Tensor::zeros({2}).item(); }, {"item", "(2)"});
  expect_error([] { Tensor::zeros({1}, kCPU, DType::Int32).item(); }, {"item", "int32"});
  expect_error([] { Tensor::zeros({2}, kCPU, DType::Int32).to_vector(); }, {"to_vector", "int32"});
  expect_error([] { Tensor::zeros({2}).to_int_vector(); }, {"to_int_vector", "float32"});
}

TEST(Tensor, StrShowsShapeAndValues) {
  Tensor t = Tensor::from_vector(std::vector<float>{1.5f, -2.f, 3.f, 4.25f}, {2, 2});
  std::string s = t.str();
  EXPECT_NE(s.find("(2,2)"), std::string::npos) << s;
  EXPECT_NE(s.find("float32"), std::string::npos) << s;
  EXPECT_NE(s.find("1.5"), std::string::npos) << s;
  EXPECT_NE(s.find("-2"), std::string::npos) << s;
  EXPECT_NE(s.find("4.25"), std::string::npos) << s;
  EXPECT_EQ(s.find("..."), std::string::npos) << s;
  std::ostringstream out;
  out << t;
  EXPECT_EQ(out.str(), s);
  std::string si = Tensor::from_vector(std::vector<std::int32_t>{9, 8}, {2}).str();
  EXPECT_NE(si.find("int32"), std::string::npos) << si;
  EXPECT_NE(si.find("9, 8"), std::string::npos) << si;
  EXPECT_NE(Tensor::full({}, 0.25f).str().find("0.25"), std::string::npos);
}

TEST(Tensor, StrElidesLongAxes) {
  std::string s = Tensor::arange(100).str();
  EXPECT_NE(s.find("(100)"), std::string::npos) << s;
  EXPECT_NE(s.find("..."), std::string::npos) << s;
  EXPECT_NE(s.find("[0, 1, 2, ..., 97, 98, 99]"), std::string::npos) << s;
  EXPECT_EQ(s.find("50"), std::string::npos) << s;
  // every axis is elided independently
  std::string m = Tensor::arange(20 * 20).reshape({20, 20}).str(4);
  EXPECT_NE(m.find("[0, 1, ..., 18, 19]"), std::string::npos) << m;
  EXPECT_NE(m.find("[380, 381, ..., 398, 399]"), std::string::npos) << m;
  EXPECT_EQ(m.find("[40,"), std::string::npos) << m;
  // a tiny budget still prints within bounds
  std::string tiny = Tensor::arange(10).str(1);
  EXPECT_NE(tiny.find("..."), std::string::npos) << tiny;
  EXPECT_NE(tiny.find("9"), std::string::npos) << tiny;
}

TEST(Tensor, CloneIsIndependent) {
  Tensor t = Tensor::arange(6).reshape({2, 3});
  Tensor c = t.clone();
  EXPECT_EQ(c.shape(), t.shape());
  EXPECT_NE(c.data<float>(), t.data<float>());
  EXPECT_EQ(c.to_vector(), t.to_vector());
  c.data<float>()[0] = 99.f;
  EXPECT_EQ(t.to_vector()[0], 0.f);
  t.data<float>()[1] = -99.f;
  EXPECT_EQ(c.to_vector()[1], 1.f);
  Tensor ci = Tensor::from_vector(std::vector<std::int32_t>{1, 2}, {2}).clone();
  EXPECT_EQ(ci.dtype(), DType::Int32);
  EXPECT_EQ(ci.to_int_vector(), (std::vector<std::int32_t>{1, 2}));
}

// ---- devices --------------------------------------------------------------------------------------------------------------

TEST(Tensor, ToCpuIsIdentity) {
  Tensor t = Tensor::arange(4);
  Tensor u = t.to(kCPU);
  EXPECT_EQ(u.impl(), t.impl());
  EXPECT_EQ(u.data<float>(), t.data<float>());
}

TEST(Tensor, ToCudaWithoutCudaThrows) {
  Tensor t = Tensor::arange(5);
  if (cuda_available()) {  // with a device, the same call must round-trip instead
    Tensor back = t.to(kCUDA).to(kCPU);
    EXPECT_EQ(back.to_vector(), t.to_vector());
    return;
  }
  EXPECT_FALSE(cuda_unavailable_reason().empty());
  expect_error([&] { t.to(kCUDA); }, {"to", "cuda", "(5)"});
}

TEST(Tensor, ParseDevice) {
  EXPECT_EQ(parse_device("cpu"), kCPU);
  EXPECT_EQ(parse_device("cuda"), kCUDA);
  expect_error([] { parse_device("tpu"); }, {"device", "tpu"});
  EXPECT_EQ(kCPU.str(), "cpu");
  EXPECT_EQ(kCUDA.str(), "cuda");
}

// ---- memory ---------------------------------------------------------------------------------------------------------------

TEST(Tensor, AbsurdShapesRefusedBeforeAllocating) {
  reset_peak_memory(kCPU);
  MemoryStats before = memory_stats(kCPU);
  expect_error([] { Tensor::empty({2, -3}); }, {"negative", "(2,-3)"});
  expect_error([] { Tensor::zeros({-1}); }, {"negative", "(-1)"});
  expect_error([] { Tensor::empty({1 << 20, 1 << 20}); }, {"2^36", "(1048576,1048576)"});
  expect_error([] { Tensor::empty({std::int64_t{1} << 37}); }, {"2^36"});
  expect_error([] { Tensor::full({std::int64_t{1} << 62, 4}, 1.f); }, {"2^36"});
  expect_error([] { Tensor::arange(-4); }, {"negative"});
  Generator gen(0);
  expect_error([&] { Tensor::randn({65536, 65536, 65536}, gen); }, {"2^36"});
  EXPECT_EQ(gen.offset(), 0u) << "a refused draw must not consume random numbers";
  MemoryStats after = memory_stats(kCPU);
  EXPECT_EQ(after.current_bytes, before.current_bytes);
  EXPECT_EQ(after.peak_bytes, before.peak_bytes);
}

TEST(Tensor, MemoryStatsCountCurrentAndPeak) {
  const std::int64_t base = memory_stats(kCPU).current_bytes;
  reset_peak_memory(kCPU);
  EXPECT_EQ(memory_stats(kCPU).peak_bytes, base);
  {
    Tensor a = Tensor::empty({1000});
    EXPECT_EQ(memory_stats(kCPU).current_bytes, base + 4000);
    {
      Tensor b = Tensor::zeros({250, 2}, kCPU, DType::Int32);
      Tensor view = b.reshape({500});  // views allocate nothing
      EXPECT_EQ(memory_stats(kCPU).current_bytes, base + 6000);
    }
    EXPECT_EQ(memory_stats(kCPU).current_bytes, base + 4000);
    EXPECT_EQ(memory_stats(kCPU).peak_bytes, base + 6000);
  }
  EXPECT_EQ(memory_stats(kCPU).current_bytes, base);
  EXPECT_EQ(memory_stats(kCPU).peak_bytes, base + 6000);
  reset_peak_memory(kCPU);
  EXPECT_EQ(memory_stats(kCPU).peak_bytes, base);
}

TEST(Tensor, StorageLivesAsLongAsAnyView) {
  const std::int64_t base = memory_stats(kCPU).current_bytes;
  Tensor view;
  {
    Tensor t = Tensor::full({10, 10}, 2.f);
    view = t.slice(3, 5);
  }
  EXPECT_EQ(memory_stats(kCPU).current_bytes, base + 400);  // the whole storage, not just the slice
  EXPECT_EQ(view.to_vector(), std::vector<float>(20, 2.f));
  view = Tensor();
  EXPECT_EQ(memory_stats(kCPU).current_bytes, base);
}

}  // namespace
}  // namespace graft
