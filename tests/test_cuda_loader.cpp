// The loader's CUDA path: batches staged in pinned host memory and copied asynchronously on graft's stream must
// be bitwise the batches of the CPU path - also when the consumer keeps every batch of the epoch (a staging
// buffer reused before its copy finished would corrupt an earlier batch) and when GPU work sits between batches.
#include <gtest/gtest.h>

#include <cstring>

#include "core/ops.h"
#include "io/loader.h"
#include "tests/check.h"
#include "tests/memory_dataset.h"

namespace graft {
namespace {

LoaderOptions options(Device device, int workers) {
  LoaderOptions o;
  o.batch_size = 5, o.workers = workers, o.prefetch = 2, o.seed = 3, o.device = device;
  o.transform.size = 64, o.transform.random_resized_crop = true, o.transform.random_flip = true;
  return o;
}

std::vector<Batch> epoch(Loader& loader, int e, bool compute_between) {
  loader.start_epoch(e);
  std::vector<Batch> out;
  while (auto batch = loader.next()) {
    if (compute_between) {  // queue GPU work on the stream the copies use, so copies and kernels interleave
      Tensor x = batch->images;
      for (int i = 0; i < 4; ++i) x = add(mul(x, x), x);
      (void)sum(x);
    }
    out.push_back(*batch);
  }
  return out;
}

void expect_same(const std::vector<Batch>& gpu, const std::vector<Batch>& cpu) {
  ASSERT_EQ(gpu.size(), cpu.size());
  for (std::size_t b = 0; b < gpu.size(); ++b) {
    EXPECT_TRUE(gpu[b].images.is_cuda());
    EXPECT_TRUE(gpu[b].labels.is_cuda());
    EXPECT_EQ(gpu[b].labels.dtype(), DType::Int32);
    EXPECT_EQ(gpu[b].index, cpu[b].index);
    Tensor gi = gpu[b].images.to(kCPU), gl = gpu[b].labels.to(kCPU);
    ASSERT_EQ(gi.shape(), cpu[b].images.shape());
    EXPECT_EQ(std::memcmp(gi.data<void>(), cpu[b].images.data<void>(), gi.nbytes()), 0) << "images of batch " << b;
    ASSERT_EQ(gl.shape(), cpu[b].labels.shape());
    EXPECT_EQ(std::memcmp(gl.data<void>(), cpu[b].labels.data<void>(), gl.nbytes()), 0) << "labels of batch " << b;
  }
}

TEST(CudaLoader, BatchesOnTheDeviceAreBitwiseTheCpuBatches) {
  GRAFT_REQUIRE_CUDA();
  auto data = std::make_shared<testing::MemoryDataset>(47, 70, 90, 3);
  Loader cpu(data, options(kCPU, 2));
  std::vector<Batch> ref0 = epoch(cpu, 0, false), ref1 = epoch(cpu, 1, false);
  for (int workers : {0, 3}) {
    Loader gpu(data, options(kCUDA, workers));
    expect_same(epoch(gpu, 0, true), ref0);
    expect_same(epoch(gpu, 1, false), ref1);
  }
}

TEST(CudaLoader, DroppedExamplesAndGrayImagesOnTheDevice) {
  GRAFT_REQUIRE_CUDA();
  auto data = std::make_shared<testing::MemoryDataset>(23, 30, 20, 1, 4, std::set<std::int64_t>{3, 4, 17});
  LoaderOptions o = options(kCPU, 2);
  o.transform.random_resized_crop = false, o.transform.size = 16;
  Loader cpu(data, o);
  std::vector<Batch> ref = epoch(cpu, 2, false);
  o.device = kCUDA;
  Loader gpu(data, o);
  ::testing::internal::CaptureStderr();
  std::vector<Batch> got = epoch(gpu, 2, true);
  ::testing::internal::GetCapturedStderr();
  expect_same(got, ref);
  EXPECT_EQ(gpu.skipped_this_epoch(), 3);
}

}  // namespace
}  // namespace graft
