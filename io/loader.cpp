// The data loader (see io/loader.h).
// Work is handed out per example, not per batch: every worker takes the next undecoded example of the open
// batches, so all workers help even when prefetch is 1, and each example is written straight into its row of
// the batch buffer. The batches in flight are the consumer's next one and the `prefetch - 1` after it; each owns
// a slot (buffer, labels, per-example outcome) that is reopened for batch b + prefetch once batch b is handed
// out. A batch is delivered when all its examples are done, so batches come strictly in order, and what each
// example becomes depends only on (seed, epoch, index): the result is the same for any number of workers.
// CUDA target: the slots' buffers are pinned host memory; the consumer issues the asynchronous copy into a fresh
// device tensor on graft's stream (so any later kernel on that stream sees the data) and records an event; the
// workers that next write into that slot wait for the event first.
#include "io/loader.h"

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <exception>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "core/allocator.h"
#include "core/error.h"
#if GRAFT_HAS_CUDA
#include "kernels/cuda_device.h"
#endif

namespace graft {
namespace {

std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

// Independent seeds for the epoch's shuffle (stream 0) and for example `index`'s transforms (stream 1).
std::uint64_t derive_seed(std::uint64_t seed, std::uint64_t epoch, std::uint64_t stream, std::uint64_t index) {
  std::uint64_t h = splitmix64(seed);
  h = splitmix64(h ^ epoch);
  h = splitmix64(h ^ stream);
  return splitmix64(h ^ index);
}

struct Slot {
  std::int64_t batch = -1, begin = 0, count = 0;  // examples order[begin, begin + count)
  std::int64_t claimed = 0, done = 0;             // handed to a worker / finished
  Tensor images;                                  // CPU target: the batch's own tensor, handed out as is
  float* pixels = nullptr;                        // where example k's image goes: pixels + k * image_floats
  std::vector<std::int32_t> labels;
  std::vector<char> ok;
  std::vector<std::exception_ptr> errors;
  void* pinned = nullptr;     // CUDA target: images then labels, the staging buffer of the copy
  bool copy_pending = false;  // CUDA: a copy from `pinned` was issued; wait for `copied` before writing
#if GRAFT_HAS_CUDA
  cudaEvent_t copied = nullptr;
#endif
};

}  // namespace

struct Loader::Impl {
  DatasetPtr dataset;
  LoaderOptions opt;
  std::string what;  // the dataset, for messages
  std::int64_t size = 0, num_batches = 0;
  std::size_t image_floats = 0;
  std::vector<Slot> slots;

  // the current epoch (consumer-side state, except where guarded by mu)
  bool started = false;
  int epoch = 0;
  std::vector<std::int64_t> order;
  std::int64_t skipped = 0;
  bool warned = false;
  // Per class: examples delivered and examples unreadable this epoch. A class that had only unreadable ones (all its
  // files truncated, say) would otherwise train as if it were not there, silently.
  std::vector<std::int64_t> read_per_class, unreadable_per_class;
  bool classes_checked = false, partial_epoch = false;

  void count_classes(const Slot& s) {
    const std::size_t classes = read_per_class.size();
    for (std::int64_t k = 0; k < s.count; ++k) {
      const std::size_t row = static_cast<std::size_t>(k);
      int label = -1;
      if (s.ok[row]) {
        label = s.labels[row];
      } else {
        try {
          label = dataset->label(order[static_cast<std::size_t>(s.begin + k)]);
        } catch (const std::exception&) {
        }
      }
      if (label < 0 || static_cast<std::size_t>(label) >= classes) continue;
      ++(s.ok[row] ? read_per_class : unreadable_per_class)[static_cast<std::size_t>(label)];
    }
  }

  // At the epoch's end: one warning naming the classes none of whose images could be read.
  void warn_about_unreadable_classes() {
    if (classes_checked || partial_epoch) return;  // a resumed epoch saw only some of each class's examples
    classes_checked = true;
    std::string list;
    int count = 0;
    for (std::size_t c = 0; c < read_per_class.size(); ++c) {
      if (unreadable_per_class[c] == 0 || read_per_class[c] > 0) continue;
      if (++count <= 5)
        list += detail::concat(list.empty() ? "" : ", ", "'", dataset->class_names()[c], "' (", unreadable_per_class[c],
                               " unreadable)");
    }
    if (count == 0) return;
    if (count > 5) list += ", ...";
    std::fprintf(stderr, "graft: warning: no image of %d class%s of %s could be read: %s\n", count,
                 count == 1 ? "" : "es", what.c_str(), list.c_str());
  }

  std::mutex mu;
  std::condition_variable work_cv, ready_cv;
  std::int64_t next_batch = 0;   // the batch next() delivers next
  std::int64_t open_end = 0;     // batches [next_batch, open_end) have open slots
  std::int64_t claim_batch = 0;  // the batch whose next unclaimed example a worker takes
  bool stopping = false;
  std::vector<std::thread> threads;

  Slot& slot_of(std::int64_t batch) { return slots[static_cast<std::size_t>(batch % opt.prefetch)]; }

  // Prepares the slot of `batch` (caller holds mu, or no worker runs). Allocates first, so a failure leaves the
  // slot as it was.
  void open(std::int64_t batch) {
    Slot& s = slot_of(batch);
    const std::int64_t begin = batch * opt.batch_size;
    const std::int64_t count = std::min<std::int64_t>(opt.batch_size, size - begin);
    if (opt.device.is_cpu()) {
      Tensor images = Tensor::empty({count, opt.transform.size, opt.transform.size, 3});
      s.images = images;
      s.pixels = images.data<float>();
    } else {
      s.pixels = static_cast<float*>(s.pinned);
    }
    s.batch = batch, s.begin = begin, s.count = count, s.claimed = 0, s.done = 0;
    s.labels.assign(static_cast<std::size_t>(count), -1);
    s.ok.assign(static_cast<std::size_t>(count), 0);
    s.errors.assign(static_cast<std::size_t>(count), nullptr);
    open_end = batch + 1;
  }

  static void wait_for_copy(Slot& s) {
#if GRAFT_HAS_CUDA
    if (s.copy_pending) GRAFT_CUDA_CHECK(cudaEventSynchronize(s.copied));
#else
    (void)s;
#endif
  }

  // Decodes and transforms example k of slot s into its row; never throws (the outcome goes to ok/errors).
  void process(Slot& s, std::int64_t k, bool copy_pending) {
    const std::size_t row = static_cast<std::size_t>(k);
    const std::int64_t index = order[static_cast<std::size_t>(s.begin + k)];
    try {
      if (copy_pending) wait_for_copy(s);
      Example ex = dataset->get(index);
      GRAFT_CHECK(ex.label >= 0 && (dataset->num_classes() == 0 || ex.label < dataset->num_classes()), "label ",
                  ex.label, " is outside [0, ", dataset->num_classes(), ")");
      std::mt19937_64 rng(
          derive_seed(opt.seed, static_cast<std::uint64_t>(epoch), 1, static_cast<std::uint64_t>(index)));
      transform_example(ex, opt.transform, rng, s.pixels + row * image_floats);
      s.labels[row] = ex.label;
      s.ok[row] = 1;
    } catch (const Error& e) {
      s.errors[row] = std::make_exception_ptr(
          Error(detail::concat("loader: example ", index, " of ", what, ": ", e.message()), __FILE__, __LINE__));
    } catch (const std::exception& e) {
      s.errors[row] = std::make_exception_ptr(
          Error(detail::concat("loader: example ", index, " of ", what, ": ", e.what()), __FILE__, __LINE__));
    } catch (...) {
      s.errors[row] = std::make_exception_ptr(
          Error(detail::concat("loader: example ", index, " of ", what, ": unknown exception"), __FILE__, __LINE__));
    }
  }

  void worker() {
    std::unique_lock<std::mutex> lock(mu);
    for (;;) {
      work_cv.wait(lock, [&] { return stopping || claim_batch < open_end; });
      if (stopping) return;
      Slot& s = slot_of(claim_batch);
      const std::int64_t k = s.claimed++;
      if (s.claimed == s.count) ++claim_batch;
      const bool copy_pending = s.copy_pending;
      lock.unlock();
      process(s, k, copy_pending);
      lock.lock();
      if (++s.done == s.count) ready_cv.notify_all();
    }
  }

  void stop() {
    {
      std::lock_guard<std::mutex> lock(mu);
      stopping = true;
    }
    work_cv.notify_all();
    for (std::thread& t : threads) t.join();
    threads.clear();
    stopping = false;
  }

  // Hands out the first `kept` rows of a completed slot (already compacted) on the target device.
  Batch deliver(Slot& s, std::int64_t kept) {
    const int S = opt.transform.size;
    Batch batch;
    if (opt.device.is_cpu()) {
      if (kept == s.count) {
        batch.images = s.images;
      } else {
        batch.images = Tensor::empty({kept, S, S, 3});
        std::memcpy(batch.images.data<void>(), s.pixels, static_cast<std::size_t>(kept) * image_floats * sizeof(float));
      }
      batch.labels = Tensor::from_vector(std::vector<std::int32_t>(s.labels.begin(), s.labels.begin() + kept), {kept});
      return batch;
    }
#if GRAFT_HAS_CUDA
    // Every worker that wrote this slot waited for its previous copy; the labels go behind the images.
    std::int32_t* labels =
        reinterpret_cast<std::int32_t*>(s.pixels + static_cast<std::size_t>(opt.batch_size) * image_floats);
    std::copy(s.labels.begin(), s.labels.begin() + kept, labels);
    batch.images = Tensor::empty({kept, S, S, 3}, kCUDA);
    batch.labels = Tensor::empty({kept}, kCUDA, DType::Int32);
    cuda::copy_to_device(batch.images.data<void>(), s.pixels, batch.images.nbytes());
    cuda::copy_to_device(batch.labels.data<void>(), labels, batch.labels.nbytes());
    GRAFT_CUDA_CHECK(cudaEventRecord(s.copied, cuda::stream()));
    s.copy_pending = true;
    return batch;
#else
    GRAFT_FAIL("loader: device ", opt.device.str(), " needs a CUDA build");
#endif
  }
};

Loader::Loader(DatasetPtr dataset, LoaderOptions options) : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  GRAFT_CHECK(dataset != nullptr, "loader: no dataset (null DatasetPtr)");
  m.what = dataset->describe();
  GRAFT_CHECK(options.batch_size >= 1, "loader: batch_size ", options.batch_size, " must be >= 1 (dataset ", m.what,
              ")");
  GRAFT_CHECK(options.workers >= 0, "loader: workers ", options.workers, " must be >= 0 (0 = on the calling thread)");
  GRAFT_CHECK(options.prefetch >= 1, "loader: prefetch ", options.prefetch, " must be >= 1");
  check_transform_options(options.transform);
  m.size = dataset->size();
  GRAFT_CHECK(m.size > 0, "loader: dataset ", m.what, " is empty");
  m.num_batches =
      options.drop_last ? m.size / options.batch_size : (m.size + options.batch_size - 1) / options.batch_size;
  GRAFT_CHECK(m.num_batches > 0, "loader: drop_last with batch_size ", options.batch_size,
              " leaves no batch of dataset ", m.what, " (", m.size, " examples)");
  GRAFT_CHECK(options.device.is_cpu() || cuda_available(), "loader: device ", options.device.str(),
              " requested: ", cuda_unavailable_reason());
  m.dataset = std::move(dataset);
  m.opt = options;
  m.image_floats =
      static_cast<std::size_t>(options.transform.size) * static_cast<std::size_t>(options.transform.size) * 3;
  m.slots.resize(static_cast<std::size_t>(options.prefetch));
#if GRAFT_HAS_CUDA
  if (options.device.is_cuda()) {
    const std::size_t bytes =
        static_cast<std::size_t>(options.batch_size) * (m.image_floats * sizeof(float) + sizeof(std::int32_t));
    for (Slot& s : m.slots) {  // ~Loader does not run if the constructor throws: free what was made so far
      try {
        s.pinned = pinned_host_alloc(bytes);
        GRAFT_CUDA_CHECK(cudaEventCreateWithFlags(&s.copied, cudaEventDisableTiming));
      } catch (...) {
        for (Slot& t : m.slots) {
          if (t.copied) cudaEventDestroy(t.copied);
          if (t.pinned) cudaFreeHost(t.pinned);
        }
        throw;
      }
    }
  }
#endif
}

Loader::~Loader() {
  Impl& m = *impl_;
  try {
    m.stop();
  } catch (...) {
  }
#if GRAFT_HAS_CUDA
  for (Slot& s : m.slots) {  // a copy may still read the buffer: wait for it before freeing
    if (s.copied) {
      if (s.copy_pending) cudaEventSynchronize(s.copied);
      cudaEventDestroy(s.copied);
    }
    try {
      pinned_host_free(s.pinned);
    } catch (...) {
    }
  }
#endif
}

std::vector<std::int64_t> epoch_order(std::int64_t n, std::uint64_t seed, int epoch, bool shuffle) {
  std::vector<std::int64_t> order(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) order[static_cast<std::size_t>(i)] = i;
  if (!shuffle) return order;
  std::mt19937_64 rng(derive_seed(seed, static_cast<std::uint64_t>(epoch), 0, 0));
  for (std::int64_t i = n - 1; i > 0; --i)  // Fisher-Yates
    std::swap(order[static_cast<std::size_t>(i)], order[random_below(rng, static_cast<std::uint64_t>(i) + 1)]);
  return order;
}

void Loader::start_epoch(int epoch, std::int64_t first_batch) {
  Impl& m = *impl_;
  GRAFT_CHECK(epoch >= 0, "loader: start_epoch(", epoch, "): the epoch must be >= 0");
  GRAFT_CHECK(first_batch >= 0 && first_batch <= m.num_batches, "loader: start_epoch(", epoch, ", first_batch ",
              first_batch, "): an epoch of ", m.what, " has ", m.num_batches, " batches");
  m.stop();
  m.started = false;
  m.epoch = epoch;
  m.order = epoch_order(m.size, m.opt.seed, epoch, m.opt.shuffle);
  m.skipped = 0;
  m.warned = false;
  const std::size_t classes = m.dataset->class_names().size();
  m.read_per_class.assign(classes, 0);
  m.unreadable_per_class.assign(classes, 0);
  m.classes_checked = false;
  m.partial_epoch = first_batch > 0;
  m.next_batch = m.claim_batch = m.open_end = first_batch;
  for (std::int64_t b = first_batch; b < std::min<std::int64_t>(first_batch + m.opt.prefetch, m.num_batches); ++b)
    m.open(b);
  try {
    for (int i = 0; i < m.opt.workers; ++i) m.threads.emplace_back([&m] { m.worker(); });
  } catch (...) {  // the system refused a thread: no half-started epoch
    m.stop();
    throw;
  }
  m.started = true;
}

std::optional<Batch> Loader::next() {
  Impl& m = *impl_;
  GRAFT_CHECK(m.started, "loader: next() before start_epoch()");
  for (;;) {
    std::unique_lock<std::mutex> lock(m.mu);
    if (m.next_batch >= m.num_batches) {
      m.warn_about_unreadable_classes();
      return std::nullopt;
    }
    const std::int64_t b = m.next_batch;
    Slot& s = m.slot_of(b);
    if (m.threads.empty()) {  // workers = 0: decode here
      lock.unlock();
      for (std::int64_t k = 0; k < s.count; ++k) m.process(s, k, s.copy_pending);
      s.claimed = s.done = s.count;
      lock.lock();
    } else {
      m.ready_cv.wait(lock, [&] { return s.done == s.count; });
    }
    lock.unlock();  // the slot is complete: no worker touches it until it is reopened below

    m.count_classes(s);
    std::int64_t kept = 0, first_failure = -1;
    for (std::int64_t k = 0; k < s.count; ++k) {
      const std::size_t row = static_cast<std::size_t>(k);
      if (!s.ok[row]) {
        if (first_failure < 0) first_failure = k;
        continue;
      }
      if (kept != k) {
        std::memmove(s.pixels + static_cast<std::size_t>(kept) * m.image_floats, s.pixels + row * m.image_floats,
                     m.image_floats * sizeof(float));
        s.labels[static_cast<std::size_t>(kept)] = s.labels[row];
      }
      ++kept;
    }
    if (first_failure >= 0) {
      std::exception_ptr error = s.errors[static_cast<std::size_t>(first_failure)];
      if (m.opt.strict) {  // the epoch ends with this error
        m.stop();
        m.next_batch = m.num_batches;
        std::rethrow_exception(error);
      }
      m.skipped += s.count - kept;
      if (!m.warned) {
        m.warned = true;
        std::string message = "unknown error";
        try {
          std::rethrow_exception(error);
        } catch (const Error& e) {
          message = e.message();
        } catch (...) {
        }
        // Once per pass over the data (training epochs, each validation); the count of skipped examples is
        // Loader::skipped_this_epoch() (the trainer reports it).
        std::fprintf(stderr, "graft: warning: skipping unreadable examples; the first: %s\n", message.c_str());
      }
    }
    std::optional<Batch> batch;
    if (kept > 0) {
      try {
        batch = m.deliver(s, kept);
      } catch (...) {  // the slot is compacted already: it cannot be delivered again, so the epoch ends here
        m.stop();
        m.next_batch = m.num_batches;
        throw;
      }
    }

    lock.lock();
    if (m.open_end < m.num_batches) m.open(m.open_end);  // this slot, now for batch b + prefetch
    ++m.next_batch;
    lock.unlock();
    m.work_cv.notify_all();
    if (batch) {
      batch->index = b;
      return batch;
    }
  }
}

std::int64_t Loader::batches_per_epoch() const { return impl_->num_batches; }
std::int64_t Loader::skipped_this_epoch() const { return impl_->skipped; }
const DatasetPtr& Loader::dataset() const { return impl_->dataset; }
const LoaderOptions& Loader::options() const { return impl_->opt; }

}  // namespace graft
