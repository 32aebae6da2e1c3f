// Limits (issue 7 item 5): absurd requests are refused with a graft::Error before anything is allocated - tensor
// shapes past 2^36 elements or past the machine's memory, zero-size batches where an op has no answer, and HDF5
// files whose datasets claim enormous dimensions. Also the regression tests for what fuzz_checkpoint found.
#include <gtest/gtest.h>
#include <hdf5.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "core/allocator.h"
#include "core/ops.h"
#include "core/optim.h"
#include "io/checkpoint.h"
#include "io/hdf5.h"
#include "io/weights.h"
#include "layers/linear.h"
#include "layers/sequential.h"
#include "models/zoo.h"
#include "tests/check.h"

namespace graft {
namespace {

using testing::expect_error;
namespace fs = std::filesystem;

std::string temp_path(const std::string& name) {
  fs::path dir = fs::temp_directory_path() / ("graft_limits_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  return (dir / name).string();
}

TEST(Limits, TensorOfTwoToTheFortyElementsIsRefusedBeforeAllocating) {
  const std::int64_t before = memory_stats(kCPU).current_bytes;
  expect_error([] { Tensor::empty({std::int64_t{1} << 40}); }, {"empty", "2^36", "(1099511627776)"});
  expect_error([] { Tensor::zeros({std::int64_t{1} << 20, std::int64_t{1} << 20}); }, {"2^36"});
  // The element count would overflow int64: the check divides instead of multiplying.
  expect_error([] { Tensor::empty({std::int64_t{1} << 32, std::int64_t{1} << 32, 16}); }, {"2^36"});
  expect_error([] { Tensor::empty({3, -1, 4}); }, {"negative", "(3,-1,4)"});
  EXPECT_EQ(memory_stats(kCPU).current_bytes, before);
}

TEST(Limits, HostTensorLargerThanPhysicalMemoryIsRefusedAndTheEngineStaysUsable) {
  const std::uint64_t physical = physical_memory_bytes();
  ASSERT_GT(physical, 0u);
  const std::int64_t n = static_cast<std::int64_t>(physical / 4) + (std::int64_t{1} << 28);  // memory + 1 GiB
  if (n > (std::int64_t{1} << 36)) GTEST_SKIP() << "this machine has more than 255 GiB: the 2^36 cap comes first";
  const std::int64_t before = memory_stats(kCPU).current_bytes;
  expect_error([&] { Tensor::empty({n}); },
               {"allocator", std::to_string(4 * n) + " bytes", std::to_string(physical), "physical memory"});
  EXPECT_EQ(memory_stats(kCPU).current_bytes, before) << "a refused allocation is not counted";
  Tensor x = Tensor::full({1000}, 2.f);
  EXPECT_EQ(sum(x).item(), 2000.f);
}

// Zero-size batches: shape-preserving ops return empty results; ops whose result would be undefined refuse.
TEST(Limits, ZeroSizeBatches) {
  Generator gen(3);
  Tensor x = Tensor::randn({0, 8, 8, 3}, gen);
  Tensor w = Tensor::randn({4, 3, 3, 3}, gen);
  EXPECT_EQ(conv2d(x, w, std::nullopt, {.pad_h = 1, .pad_w = 1}).shape(), (Shape{0, 8, 8, 4}));
  EXPECT_EQ(max_pool2d(x, {.kernel_h = 2, .kernel_w = 2, .stride_h = 2, .stride_w = 2}).shape(), (Shape{0, 4, 4, 3}));
  EXPECT_EQ(relu(x).shape(), x.shape());
  Tensor features = Tensor::randn({0, 6}, gen);
  Tensor weight = Tensor::randn({2, 6}, gen);
  EXPECT_EQ(linear(features, weight, std::nullopt).shape(), (Shape{0, 2}));
  // A whole ResNet in inference mode (running statistics): an empty batch in, an empty batch of logits out.
  auto model = make_model("resnet18", {.num_classes = 7});
  model->eval();
  EXPECT_EQ((*model)(Tensor::zeros({0, 32, 32, 3})).shape(), (Shape{0, 7}));
  // No loss and no batch statistics exist for zero samples.
  expect_error([&] { softmax_cross_entropy(Tensor::zeros({0, 5}), Tensor::zeros({0}, kCPU, DType::Int32)); },
               {"softmax_cross_entropy", "(0,5)"});
  model->train();
  expect_error([&] { (*model)(Tensor::zeros({0, 32, 32, 3})); }, {"batch_norm", "more than one value"});
}

// Writes an HDF5 file with one float32 dataset of `dims` whose data is never written (HDF5 allocates contiguous
// storage late, so the file stays a few KB whatever the dimensions claim).
void write_claiming_file(const std::string& path, const std::string& name, const std::vector<hsize_t>& dims) {
  hid_t file = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  ASSERT_GE(file, 0);
  hid_t space = H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr);
  hid_t links = H5Pcreate(H5P_LINK_CREATE);
  H5Pset_create_intermediate_group(links, 1);
  hid_t set = H5Dcreate2(file, name.c_str(), H5T_IEEE_F32LE, space, links, H5P_DEFAULT, H5P_DEFAULT);
  EXPECT_GE(set, 0);
  H5Dclose(set);
  H5Pclose(links);
  H5Sclose(space);
  H5Fclose(file);
  ASSERT_LT(fs::file_size(path), 1u << 20);
}

TEST(Limits, Hdf5DatasetClaimingMoreThanTwoToTheThirtySixElementsIsRefused) {
  const std::string path = temp_path("claims_2e40.h5");
  write_claiming_file(path, "/fc.weight", {std::uint64_t{1} << 20, std::uint64_t{1} << 20});
  hdf5::File file(path);
  expect_error([&] { file.dataset_info("/fc.weight"); }, {"fc.weight", "(1048576,1048576)", "2^36"});
  expect_error([&] { file.read_floats("/fc.weight"); }, {"2^36"});
  expect_error([&] { inspect_weights(path); }, {"2^36"});
  // Dimensions near 2^64 must not wrap around to small or negative numbers.
  const std::string wrap = temp_path("claims_wrap.h5");
  write_claiming_file(wrap, "/x", {std::uint64_t{1} << 62, 8});
  expect_error([&] { hdf5::File(wrap).dataset_info("/x"); }, {"2^36"});
}

TEST(Limits, Hdf5DatasetClaimingMoreBytesThanItsFileIsRefusedBeforeAllocating) {
  const std::string path = temp_path("claims_4gib.h5");
  write_claiming_file(path, "/fc.weight", {std::uint64_t{1} << 30});  // 4 GiB of float32 in a file of ~2 KB
  hdf5::File file(path);
  EXPECT_EQ(file.dataset_info("/fc.weight").shape, (Shape{std::int64_t{1} << 30})) << "describing it is fine";
  const std::int64_t before = memory_stats(kCPU).current_bytes;
  expect_error([&] { file.read_floats("/fc.weight"); },
               {"fc.weight", "claims 4294967296 bytes", std::to_string(fs::file_size(path)) + " bytes"});
  expect_error([&] { inspect_weights(path); }, {"claims 4294967296 bytes"});
  EXPECT_EQ(memory_stats(kCPU).current_bytes, before);
}

// ---- fuzz_checkpoint regressions ----------------------------------------------------------------------------

std::shared_ptr<Sequential> tiny_model() {
  Generator gen(1);
  return std::make_shared<Sequential>(std::vector<std::shared_ptr<Module>>{std::make_shared<Linear>(3, 2, true, gen)});
}

// A valid checkpoint, then the root attribute `name` overwritten with `value`.
std::string checkpoint_with_attribute(const std::string& file_name, const std::string& name,
                                      const std::string& value) {
  const std::string path = temp_path(file_name);
  auto model = tiny_model();
  save_checkpoint(path, *model, nullptr, {.arch = "tiny", .num_classes = 2});
  hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  EXPECT_GE(file, 0);
  H5Adelete(file, name.c_str());
  hid_t type = H5Tcopy(H5T_C_S1);
  H5Tset_size(type, value.size() + 1);
  hid_t space = H5Screate(H5S_SCALAR);
  hid_t attr = H5Acreate2(file, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT);
  EXPECT_GE(H5Awrite(attr, type, value.c_str()), 0);
  H5Aclose(attr);
  H5Sclose(space);
  H5Tclose(type);
  H5Fclose(file);
  return path;
}

// std::stoull threw std::invalid_argument (not graft::Error) on "x" and read "-1" as 2^64-1.
TEST(Limits, CheckpointWithNonNumericRngStateIsAGraftError) {
  for (const char* bad : {"x", "-1", "", "99999999999999999999999"}) {
    const std::string path = checkpoint_with_attribute("bad_rng.h5", "rng_seed", bad);
    expect_error([&] { read_checkpoint_meta(path); }, {"rng_seed", "not an unsigned 64-bit integer"});
    auto model = tiny_model();
    expect_error([&] { load_checkpoint(path, *model, nullptr); }, {"rng_seed"});
  }
  const std::string ok = checkpoint_with_attribute("good_rng.h5", "rng_offset", "18446744073709551615");
  EXPECT_EQ(read_checkpoint_meta(ok).rng_offset, ~std::uint64_t{0});
}

TEST(Limits, CheckpointWithAbsurdNumClassesIsRefused) {
  const std::string path = checkpoint_with_attribute("bad_classes.h5", "num_classes", "99999999999");
  expect_error([&] { read_checkpoint_meta(path); }, {"num_classes", "99999999999", "out of range"});
}

// An optimizer entry that claims 2^30 elements: refused while reading, and the model keeps its values.
TEST(Limits, CheckpointClaimingAHugeOptimizerTensorLeavesTheModelUntouched) {
  const std::string path = temp_path("huge_optimizer.h5");
  auto model = tiny_model();
  save_checkpoint(path, *model, nullptr, {.arch = "tiny", .num_classes = 2});
  const std::string claiming = temp_path("huge_optimizer_part.h5");
  fs::copy_file(path, claiming, fs::copy_options::overwrite_existing);
  {
    hid_t file = H5Fopen(claiming.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    ASSERT_GE(file, 0);
    const hsize_t dims[1] = {hsize_t{1} << 30};
    hid_t space = H5Screate_simple(1, dims, nullptr);
    hid_t links = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(links, 1);
    hid_t set = H5Dcreate2(file, "/optimizer/group0.param0.momentum_buffer", H5T_IEEE_F32LE, space, links,
                           H5P_DEFAULT, H5P_DEFAULT);
    EXPECT_GE(set, 0);
    H5Dclose(set);
    H5Pclose(links);
    H5Sclose(space);
    H5Fclose(file);
  }
  auto target = tiny_model();
  const std::vector<float> weight_before = target->state().at("0.weight").to_vector();
  SGD sgd(target->trainable_parameters(), {.lr = 0.1f, .momentum = 0.9f});
  expect_error([&] { load_checkpoint(claiming, *target, &sgd); }, {"claims 4294967296 bytes"});
  EXPECT_EQ(target->state().at("0.weight").to_vector(), weight_before) << "all or nothing";
}

}  // namespace
}  // namespace graft
