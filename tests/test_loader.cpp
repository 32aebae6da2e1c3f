// The threaded loader: every example once per epoch, seeded orders, results independent of the number of
// workers (augmentation included), drop_last, the prefetch bound, strict and non-strict unreadable examples,
// mid-epoch resume, stopping mid-epoch, and option errors. The dataset is tests/memory_dataset.h, whose labels
// name the example (label = index), so every row can be checked against transform_example itself.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>

#include "io/loader.h"
#include "tests/check.h"
#include "tests/memory_dataset.h"

namespace graft {
namespace {

using testing::MemoryDataset;

struct Collected {
  std::vector<std::int64_t> index;  // batch numbers
  std::vector<std::vector<std::int32_t>> labels;
  std::vector<std::vector<float>> images;
};

Collected collect(Loader& loader, int epoch, std::int64_t first_batch = 0) {
  loader.start_epoch(epoch, first_batch);
  Collected c;
  while (auto batch = loader.next()) {
    const std::int64_t b = batch->labels.numel();
    EXPECT_EQ(batch->labels.dtype(), DType::Int32);
    EXPECT_EQ(batch->images.shape(), (Shape{b, loader.options().transform.size, loader.options().transform.size, 3}));
    c.index.push_back(batch->index);
    const std::int32_t* l = batch->labels.data<std::int32_t>();
    c.labels.emplace_back(l, l + b);
    c.images.push_back(batch->images.to_vector());
  }
  return c;
}

bool bitwise_equal(const Collected& a, const Collected& b) {
  if (a.index != b.index || a.labels != b.labels || a.images.size() != b.images.size()) return false;
  for (std::size_t i = 0; i < a.images.size(); ++i)
    if (a.images[i].size() != b.images[i].size() ||
        std::memcmp(a.images[i].data(), b.images[i].data(), a.images[i].size() * sizeof(float)) != 0)
      return false;
  return true;
}

LoaderOptions augmenting(int workers) {
  LoaderOptions o;
  o.batch_size = 4, o.workers = workers, o.prefetch = 2, o.seed = 17;
  o.transform.size = 8, o.transform.random_resized_crop = true, o.transform.random_flip = true;
  return o;
}

TEST(Loader, EveryExampleOncePerEpochWithItsOwnPixelsAndLabel) {
  auto data = std::make_shared<MemoryDataset>(23, 7, 9, 3);
  LoaderOptions o;
  o.batch_size = 5, o.workers = 2, o.transform.size = 6;
  Loader loader(data, o);
  EXPECT_EQ(loader.batches_per_epoch(), 5);
  Collected c = collect(loader, 0);
  ASSERT_EQ(c.labels.size(), 5u);
  EXPECT_EQ(c.index, (std::vector<std::int64_t>{0, 1, 2, 3, 4}));
  std::vector<std::int32_t> seen;
  for (std::size_t b = 0; b < c.labels.size(); ++b) {
    EXPECT_EQ(c.labels[b].size(), b < 4 ? 5u : 3u);
    for (std::size_t r = 0; r < c.labels[b].size(); ++r) {
      const std::int32_t index = c.labels[b][r];
      seen.push_back(index);
      std::vector<float> expected(6 * 6 * 3);
      std::mt19937_64 unused(0);  // eval transforms draw nothing
      transform_example(data->get(index), o.transform, unused, expected.data());
      EXPECT_TRUE(
          std::equal(expected.begin(), expected.end(), c.images[b].begin() + std::ptrdiff_t(r * expected.size())))
          << "batch " << b << " row " << r << " (example " << index << ")";
    }
  }
  std::sort(seen.begin(), seen.end());
  for (std::int32_t i = 0; i < 23; ++i) EXPECT_EQ(seen[static_cast<std::size_t>(i)], i);
  EXPECT_NE(c.labels[0], (std::vector<std::int32_t>{0, 1, 2, 3, 4})) << "shuffle is on by default";
}

TEST(Loader, SameSeedGivesBitwiseIdenticalBatchesForAnyNumberOfWorkers) {
  auto data = std::make_shared<MemoryDataset>(19, 12, 10, 3);
  Loader inline_loader(data, augmenting(0));
  const Collected ref0 = collect(inline_loader, 0), ref1 = collect(inline_loader, 1);
  for (int workers : {1, 3}) {
    for (int prefetch : {1, 3}) {
      LoaderOptions o = augmenting(workers);
      o.prefetch = prefetch;
      Loader loader(data, o);
      EXPECT_TRUE(bitwise_equal(collect(loader, 0), ref0)) << workers << " workers, prefetch " << prefetch;
      EXPECT_TRUE(bitwise_equal(collect(loader, 1), ref1)) << workers << " workers, prefetch " << prefetch;
    }
  }
  // the augmentation really is random: another seed gives other pixels for the same examples
  LoaderOptions other = augmenting(2);
  other.seed = 18;
  other.shuffle = false;
  LoaderOptions same = augmenting(2);
  same.shuffle = false;
  Loader a(data, other), b(data, same);
  Collected ca = collect(a, 0), cb = collect(b, 0);
  EXPECT_EQ(ca.labels, cb.labels);
  EXPECT_NE(ca.images, cb.images);
}

TEST(Loader, EpochsAndSeedsGiveDifferentOrders) {
  auto data = std::make_shared<MemoryDataset>(40, 2, 2, 1);
  LoaderOptions o;
  o.batch_size = 40, o.transform.size = 2, o.seed = 5;
  Loader loader(data, o), twin(data, o);
  Collected e0 = collect(loader, 0), e1 = collect(loader, 1), again = collect(twin, 0);
  EXPECT_NE(e0.labels, e1.labels);
  EXPECT_EQ(e0.labels, again.labels);
  o.seed = 6;
  Loader reseeded(data, o);
  EXPECT_NE(collect(reseeded, 0).labels, e0.labels);
  o.shuffle = false;
  Loader ordered(data, o);
  std::vector<std::int32_t> identity(40);
  for (int i = 0; i < 40; ++i) identity[static_cast<std::size_t>(i)] = i;
  EXPECT_EQ(collect(ordered, 3).labels[0], identity);
}

TEST(Loader, DropLastDropsTheShortBatch) {
  auto data = std::make_shared<MemoryDataset>(23, 3, 3, 3);
  LoaderOptions o;
  o.batch_size = 5, o.drop_last = true, o.transform.size = 3;
  Loader loader(data, o);
  EXPECT_EQ(loader.batches_per_epoch(), 4);
  Collected c = collect(loader, 0);
  ASSERT_EQ(c.labels.size(), 4u);
  std::set<std::int32_t> distinct;
  for (const auto& l : c.labels) {
    EXPECT_EQ(l.size(), 5u);
    distinct.insert(l.begin(), l.end());
  }
  EXPECT_EQ(distinct.size(), 20u);
}

TEST(Loader, WorkersStayWithinThePrefetchWindow) {
  constexpr int kBatch = 4, kPrefetch = 2;
  auto data = std::make_shared<MemoryDataset>(40, 4, 4, 3);
  std::atomic<int> gets{0}, started{0}, violations{0};
  // example i belongs to batch i / 4 (no shuffle); with `started` next() calls begun, batches up to
  // started + prefetch - 1 may be decoded, never further
  data->hook = [&](std::int64_t index) {
    gets++;
    if (index / kBatch >= started.load() + kPrefetch) violations++;
  };
  LoaderOptions o;
  o.batch_size = kBatch, o.prefetch = kPrefetch, o.workers = 3, o.shuffle = false, o.transform.size = 4;
  Loader loader(data, o);
  loader.start_epoch(0);
  // the workers fill exactly the window and stop (waiting for the condition, then for any excess)
  for (int i = 0; i < 1000 && gets.load() < kBatch * kPrefetch; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(gets.load(), kBatch * kPrefetch);
  for (;;) {
    started++;
    if (!loader.next()) break;
  }
  EXPECT_EQ(gets.load(), 40);
  EXPECT_EQ(violations.load(), 0);
}

TEST(Loader, StrictStopsTheEpochAtTheFirstUnreadableExample) {
  auto data = std::make_shared<MemoryDataset>(12, 3, 3, 3, 0, std::set<std::int64_t>{6, 9});
  LoaderOptions o;
  o.batch_size = 4, o.shuffle = false, o.strict = true, o.workers = 2, o.transform.size = 3;
  Loader loader(data, o);
  loader.start_epoch(0);
  auto first = loader.next();
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->labels.numel(), 4);
  testing::expect_error([&] { loader.next(); }, {"example 6", "memory (12 images)", "record 6 is corrupt"});
  EXPECT_FALSE(loader.next().has_value()) << "the epoch ended with the error";
  // a new epoch starts afresh (and fails at the same place)
  loader.start_epoch(1, 1);
  testing::expect_error([&] { loader.next(); }, {"record 6 is corrupt"});
}

TEST(Loader, NonStrictDropsCountsAndWarnsOncePerEpochNamingClassesLeftWithoutExamples) {
  for (int workers : {0, 2}) {
    auto data = std::make_shared<MemoryDataset>(12, 3, 3, 3, 0, std::set<std::int64_t>{5, 6, 9, 8, 10, 11});
    LoaderOptions o;
    o.batch_size = 4, o.shuffle = false, o.workers = workers, o.transform.size = 3;
    Loader loader(data, o);
    for (int epoch : {0, 1}) {
      ::testing::internal::CaptureStderr();
      Collected c = collect(loader, epoch);
      const std::string err = ::testing::internal::GetCapturedStderr();
      // batch 2 (8..11) lost every example: it is skipped, the batch numbers say so
      EXPECT_EQ(c.index, (std::vector<std::int64_t>{0, 1}));
      ASSERT_EQ(c.labels.size(), 2u);
      EXPECT_EQ(c.labels[0], (std::vector<std::int32_t>{0, 1, 2, 3}));
      EXPECT_EQ(c.labels[1], (std::vector<std::int32_t>{4, 7}));
      EXPECT_EQ(loader.skipped_this_epoch(), 6);
      EXPECT_NE(err.find("record 5 is corrupt"), std::string::npos) << err;
      // one warning per epoch for the skipping, and one at its end naming the classes that lost every example
      // (here each example is its own class: 5, 6, 8, 9, 10, 11)
      EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 2) << "two warnings per epoch: " << err;
      EXPECT_NE(err.find("no image of 6 classes of memory (12 images) could be read: "
                         "'class5' (1 unreadable), 'class6' (1 unreadable), 'class8'"),
                std::string::npos)
          << err;
      // the kept rows are the right examples, moved up in order
      std::vector<float> seven(27);
      std::mt19937_64 unused(0);
      transform_example(data->get(7), o.transform, unused, seven.data());
      EXPECT_TRUE(std::equal(seven.begin(), seven.end(), c.images[1].begin() + 27));
    }
  }
}

TEST(Loader, ResumingMidEpochGivesTheRemainingBatchesWithoutDecodingTheSkippedOnes) {
  auto data = std::make_shared<MemoryDataset>(30, 12, 10, 3);
  std::atomic<int> gets{0};
  data->hook = [&](std::int64_t) { gets++; };
  Loader full(data, augmenting(2));
  Collected all = collect(full, 3);
  ASSERT_EQ(all.index.size(), 8u);
  gets = 0;
  Loader resumed(data, augmenting(3));
  Collected rest = collect(resumed, 3, 5);
  EXPECT_EQ(gets.load(), 30 - 5 * 4) << "the first five batches are not decoded";
  Collected tail;
  tail.index.assign(all.index.begin() + 5, all.index.end());
  tail.labels.assign(all.labels.begin() + 5, all.labels.end());
  tail.images.assign(all.images.begin() + 5, all.images.end());
  EXPECT_TRUE(bitwise_equal(rest, tail));
  EXPECT_TRUE(collect(resumed, 3, 8).labels.empty()) << "first_batch == batches_per_epoch: an empty epoch";
  testing::expect_error([&] { resumed.start_epoch(3, 9); }, {"first_batch 9", "8 batches"});
  testing::expect_error([&] { resumed.start_epoch(-1); }, {"start_epoch(-1"});
}

TEST(Loader, StoppingMidEpochAndRestartingIsClean) {
  auto data = std::make_shared<MemoryDataset>(64, 8, 8, 3);
  data->hook = [](std::int64_t) { std::this_thread::sleep_for(std::chrono::milliseconds(1)); };
  LoaderOptions o = augmenting(3);
  {
    Loader loader(data, o);
    loader.start_epoch(0);
    ASSERT_TRUE(loader.next().has_value());
  }  // destroyed with workers busy: joins them
  Loader loader(data, o), fresh(data, o);
  loader.start_epoch(0);
  ASSERT_TRUE(loader.next().has_value());
  ASSERT_TRUE(loader.next().has_value());
  // a new epoch while the old one is running: the new one is complete and exact
  EXPECT_TRUE(bitwise_equal(collect(loader, 1), collect(fresh, 1)));
  Loader never_started(data, o);  // destroyed without an epoch
  testing::expect_error([&] { never_started.next(); }, {"before start_epoch"});
}

TEST(Loader, BadOptionsAreErrors) {
  auto data = std::make_shared<MemoryDataset>(10, 3, 3, 3);
  auto with = [&](auto change) {
    LoaderOptions o;
    o.transform.size = 3;
    change(o);
    return o;
  };
  testing::expect_error([&] { Loader(data, with([](LoaderOptions& o) { o.batch_size = 0; })); }, {"batch_size 0"});
  testing::expect_error([&] { Loader(data, with([](LoaderOptions& o) { o.workers = -1; })); }, {"workers -1"});
  testing::expect_error([&] { Loader(data, with([](LoaderOptions& o) { o.prefetch = 0; })); }, {"prefetch 0"});
  testing::expect_error([&] { Loader(data, with([](LoaderOptions& o) { o.transform.size = 0; })); }, {"size 0"});
  testing::expect_error([&] { Loader(data, with([](LoaderOptions& o) { o.batch_size = 11, o.drop_last = true; })); },
                        {"drop_last", "batch_size 11", "10 examples"});
  testing::expect_error([&] { Loader(std::make_shared<MemoryDataset>(0, 3, 3, 3, 2), with([](LoaderOptions&) {})); },
                        {"memory (0 images)", "empty"});
  testing::expect_error([&] { Loader(nullptr, with([](LoaderOptions&) {})); }, {"no dataset"});
  if (!cuda_available())
    testing::expect_error([&] { Loader(data, with([](LoaderOptions& o) { o.device = kCUDA; })); }, {"device cuda"});
}

}  // namespace
}  // namespace graft
