// fit(): see train/trainer.h. The loop is written once over a "batch source" so the uncached path
// (the Loader through the whole model) and the feature-cache path (cached backbone features through the head)
// share the step, the fault checks, the checkpoints and the logs.
#include "train/trainer.h"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <optional>
#include <set>
#include <sstream>

#include "core/error.h"
#include "core/ops.h"
#include "layers/basic.h"
#include "layers/batch_norm.h"
#include "layers/linear.h"
#include "train/class_weights.h"
#include "train/feature_cache.h"
#include "train/interrupt.h"
#include "train/plot.h"
#include "train/progress.h"
#include "train/run_lock.h"
#include "train/run_log.h"

namespace graft {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

std::string hex(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%a", v);
  return buf;
}
double parse_double(const std::map<std::string, std::string>& m, const std::string& key, double fallback) {
  auto it = m.find(key);
  return it == m.end() ? fallback : std::strtod(it->second.c_str(), nullptr);
}

void check_options(const TrainOptions& options, const Loader* validation) {
  GRAFT_CHECK(options.epochs >= 1, "fit: epochs is ", options.epochs, ", must be >= 1");
  GRAFT_CHECK(options.label_smoothing >= 0.f && options.label_smoothing < 1.f, "fit: label smoothing is ",
              options.label_smoothing, ", must be in [0, 1)");
  GRAFT_CHECK(options.patience >= 0, "fit: patience is ", options.patience, ", must be >= 0 (0: no early stopping)");
  GRAFT_CHECK(options.patience == 0 || validation, "fit: early stopping (patience ", options.patience,
              ") needs validation data to watch");
  GRAFT_CHECK(options.clip_grad_norm >= 0.f, "fit: clip_grad_norm is ",  // (false for NaN too)
              options.clip_grad_norm, ", must be >= 0 (0: no clipping)");
  for (float w : options.class_weights)
    GRAFT_CHECK(std::isfinite(w) && w >= 0.f, "fit: class weight ", w, " must be finite and >= 0");
  GRAFT_CHECK(options.accumulate >= 1, "fit: accumulate is ", options.accumulate,
              ", must be >= 1 (batches per optimizer step)");
  GRAFT_CHECK(!options.resume || !options.out_dir.empty(), "fit: resume needs out_dir (where last.h5 is)");
}

// The loop's running state besides its position: what every checkpoint records with the position (hexadecimal
// floats, read back exactly), so that a resumed run goes on bit for bit as an uninterrupted one. The best epoch and
// its validation scores are kept in TrainResult.
struct LoopState {
  std::int64_t step = 0;                 // optimizer steps done
  double best_top1 = -1;                 // the best validation top-1 so far (-1: none yet)
  double loss_sum = 0;                   // this epoch's training loss so far, summed over its images
  std::int64_t images = 0, correct = 0;  // this epoch's training images so far, and their top-1 hits
};

// Where a resumed run starts: the epoch to run next (0-based) and the batches of it already done (unreadable ones the
// loader skipped included), the loop's state there, and the dropout generators' seeds (empty: none recorded).
struct ResumePoint {
  int epoch = 0;
  std::int64_t batch = 0;
  LoopState state;
  std::vector<std::uint64_t> dropout_seeds;
};

// "s1,s2,...", as DropoutStreams::seeds() writes them.
std::vector<std::uint64_t> parse_seeds(const std::string& list, const std::string& checkpoint) {
  std::vector<std::uint64_t> seeds;
  std::stringstream in(list);
  for (std::string item; std::getline(in, item, ',');) {
    std::uint64_t seed = 0;
    const auto [end, error] = std::from_chars(item.data(), item.data() + item.size(), seed);
    GRAFT_CHECK(error == std::errc() && end == item.data() + item.size(), "fit: '", checkpoint,
                "' is damaged: its dropout seed '", item, "' is not a number");
    seeds.push_back(seed);
  }
  return seeds;
}

// The resume point a checkpoint records; the best validation so far goes into `result` (best_epoch, top-1, top-5).
ResumePoint resume_point(const CheckpointMeta& meta, const std::string& checkpoint, TrainResult& result) {
  const auto& s = meta.train_state;
  ResumePoint at;
  at.epoch = static_cast<int>(meta.epoch);
  at.batch = static_cast<std::int64_t>(parse_double(s, "batch_in_epoch", 0));
  at.state.step = meta.step;
  at.state.best_top1 = parse_double(s, "best_top1", -1);
  at.state.loss_sum = parse_double(s, "epoch_loss_sum", 0);
  at.state.images = static_cast<std::int64_t>(parse_double(s, "epoch_images", 0));
  at.state.correct = static_cast<std::int64_t>(parse_double(s, "epoch_correct", 0));
  if (auto it = s.find("dropout_seeds"); it != s.end()) at.dropout_seeds = parse_seeds(it->second, checkpoint);
  result.best_epoch = static_cast<int>(parse_double(s, "best_epoch", -1));
  result.best_validation.top1 = std::max(at.state.best_top1, 0.0);
  result.best_validation.top5 = parse_double(s, "best_top5", 0);
  return at;
}

// The train_state entries of a checkpoint taken after `batch` batches of an epoch (its number is CheckpointMeta's).
void record_state(const LoopState& state, std::int64_t batch, const TrainResult& result,
                  std::map<std::string, std::string>& train_state) {
  train_state["batch_in_epoch"] = std::to_string(batch);
  train_state["best_top1"] = hex(state.best_top1);
  train_state["best_epoch"] = std::to_string(result.best_epoch);
  train_state["best_top5"] = hex(result.best_validation.top5);
  train_state["epoch_loss_sum"] = hex(state.loss_sum);
  train_state["epoch_images"] = std::to_string(state.images);
  train_state["epoch_correct"] = std::to_string(state.correct);
}

// The batches fit() trains on: the Loader's through the whole model, or the cached backbone features
// (train/feature_cache.h) through the head alone, batched in the order the Loader would give (its seed, its
// shuffle).
class BatchSource {
 public:
  explicit BatchSource(Loader& train) : train_(train) {}
  void use_cache(FeatureCache cache) {
    cache_ = std::move(cache);
    cached_ = true;
  }
  std::int64_t batches_per_epoch() const {
    const LoaderOptions& o = train_.options();
    return cached_ ? cache_.batches(o.batch_size, o.drop_last) : train_.batches_per_epoch();
  }
  void start_epoch(int epoch, std::int64_t batch) {
    if (!cached_) return train_.start_epoch(epoch, batch);
    order_ = epoch_order(cache_.size(), train_.options().seed, epoch, train_.options().shuffle);
    cursor_ = batch;
  }
  std::optional<TrainBatch> next() {
    if (!cached_) {
      auto b = train_.next();
      if (!b) return std::nullopt;
      return TrainBatch{b->images, b->labels, b->index};
    }
    if (cursor_ >= batches_per_epoch()) return std::nullopt;
    const std::int64_t size = train_.options().batch_size, begin = cursor_ * size;
    TrainBatch out = cache_.gather(order_, begin, std::min(begin + size, cache_.size()));
    out.index = cursor_++;
    return out;
  }

 private:
  Loader& train_;
  FeatureCache cache_;
  bool cached_ = false;
  std::vector<std::int64_t> order_;  // the epoch's order of the cached rows
  std::int64_t cursor_ = 0;          // the next batch of the epoch
};

// Every Dropout module's generator. Before each training batch each is set to (its seed, an offset fixed by the
// batch's place): batch k of an optimizer step's group starts its own 2^32 counters, so the masks depend only on
// the seeds, the step and k (accumulate 1: step << 32).
class DropoutStreams {
 public:
  DropoutStreams(Module& model, std::int64_t accumulate) : accumulate_(accumulate) {
    for (auto& [name, m] : model.named_modules())
      if (auto* d = dynamic_cast<Dropout*>(m)) dropouts_.push_back(d);
  }
  std::uint64_t offset(std::int64_t step, std::int64_t k) const {
    return static_cast<std::uint64_t>(step * accumulate_ + k) << 32;
  }
  void position_for(std::int64_t step, std::int64_t k) {
    for (Dropout* d : dropouts_) d->generator().set_state(d->generator().seed(), offset(step, k));
  }
  std::uint64_t first_seed() const { return dropouts_.empty() ? 0 : dropouts_.front()->generator().seed(); }
  // The seeds as a checkpoint keeps them: "s1,s2,..." ("" without dropout); restore_seeds takes them back.
  std::string seeds() const {
    std::string list;
    for (Dropout* d : dropouts_) list += (list.empty() ? "" : ",") + std::to_string(d->generator().seed());
    return list;
  }
  void restore_seeds(const std::vector<std::uint64_t>& seeds) {
    GRAFT_CHECK(seeds.size() == dropouts_.size(), "fit: the checkpoint has ", seeds.size(),
                " dropout generators, the model ", dropouts_.size());
    for (std::size_t i = 0; i < dropouts_.size(); ++i) dropouts_[i]->generator().set_state(seeds[i], 0);
  }

 private:
  std::vector<Dropout*> dropouts_;
  std::int64_t accumulate_;
};

// What one batch backpropagates and adds to its step's loss. The plain case (no accumulation, no class weights)
// backpropagates the batch's mean loss. Otherwise each batch backpropagates its loss SUM (rows weighted by their
// labels' class weights) and the step divides the gradients by the group's denominator (its examples, or their
// labels' total weight): the gradient of the group's mean loss, exactly as if its batches were one (torch's
// cross_entropy over them, weight= included), whatever their sizes.
struct BatchLoss {
  Tensor backprop;
  float mean = 0;          // the batch's mean loss (weighted mean with class weights; 0 if all weigh 0)
  double denominator = 0;  // its share of the group's denominator
};

BatchLoss batch_loss(const Tensor& logits, const Tensor& labels, const TrainOptions& options, bool plain) {
  BatchLoss out;
  if (options.class_weights.empty()) {
    Tensor mean = softmax_cross_entropy(logits, labels, options.label_smoothing);
    out.mean = mean.item();
    out.denominator = static_cast<double>(labels.numel());
    out.backprop = plain ? mean : mul(mean, static_cast<float>(labels.numel()));
  } else {
    WeightedLoss parts = weighted_cross_entropy_parts(logits, labels, options.class_weights, options.label_smoothing);
    const float total = parts.sum.item();
    out.mean = parts.label_weight > 0 ? static_cast<float>(total / parts.label_weight) : total * 0.f;
    out.denominator = parts.label_weight;
    out.backprop = parts.sum;
  }
  return out;
}

}  // namespace

TrainResult fit(Module& model, Optimizer& optimizer, Loader& train, Loader* validation, const TrainOptions& options,
                LRSchedule* schedule) {
  check_options(options, validation);
  // One run at a time writes a run directory (train/run_lock.h): taken before anything there is read or written.
  std::optional<RunDirectoryLock> run_lock;
  if (!options.out_dir.empty()) run_lock.emplace(options.out_dir, "fit");
  const auto start = Clock::now();
  const std::map<std::string, std::string> settings = run_settings(train, options);
  TrainResult result;
  RunLog log(options.out_dir);

  // ---- where to start: the beginning, or where out_dir/last.h5 left off ----
  ResumePoint start_at;  // the beginning, unless resumed
  if (options.resume) {
    const std::string last = options.out_dir + "/last.h5";
    GRAFT_CHECK(fs::exists(last), "fit: cannot resume: no checkpoint '", last, "'");
    check_resume_settings("fit", last, settings);
    const CheckpointMeta meta = load_checkpoint(last, model, &optimizer);
    start_at = resume_point(meta, last, result);
    if (schedule) schedule->set_last_step(meta.schedule_step);
    log.resume(start_at.epoch);
    GRAFT_CHECK(start_at.epoch <= options.epochs, "fit: '", last, "' is at epoch ", start_at.epoch, ", past the ",
                options.epochs, " epochs asked for");
  }
  if (!options.out_dir.empty()) fs::create_directories(options.out_dir);
  const int first_epoch = start_at.epoch;
  const std::int64_t first_batch = start_at.batch;
  LoopState state = start_at.state;
  // Early stopping: after `epochs_done` epochs, the last `patience` of them brought no better validation top-1.
  auto patience_ran_out = [&](int epochs_done) {
    return options.patience > 0 && result.best_epoch > 0 && epochs_done - result.best_epoch >= options.patience;
  };
  if (first_batch == 0 && patience_ran_out(first_epoch)) {  // resumed from where a run stopped early: nothing to do
    result.stopped_early = true;
    result.steps = state.step;
    return result;
  }
  if (options.max_steps > 0 && state.step >= options.max_steps) {  // resumed at or past max_steps: nothing to do
    result.steps = state.step;
    return result;
  }

  // ---- the batches: the whole model on the loader's, or the head on cached features ----
  model.train();
  const int classes = train.dataset()->num_classes();
  const std::string head_name = feature_cache_head(model, train, options);
  std::shared_ptr<Module> head;
  BatchSource source(train);
  FeatureCache val_cache;
  if (!head_name.empty()) {
    auto t = Clock::now();
    head = module_at(model, head_name);
    source.use_cache(extract_features(model, head_name, train, options.progress, "features (train)"));
    if (validation) val_cache = extract_features(model, head_name, *validation, options.progress, "features (val)");
    result.used_feature_cache = true;
    result.cache_seconds = since(t);
    model.train();
  }
  Module& net = head ? *head : model;
  const std::int64_t batches_per_epoch = source.batches_per_epoch();
  // BatchNorm with batch statistics cannot normalise a batch of one example where a layer's output is 1x1 (one value
  // per channel): a training batch that unreadable examples left with one (it was to hold more) is passed over, with
  // a warning. A batch of one by design (batch size 1, or an epoch's last batch) is trained on as before (the CLI
  // leaves out such a last batch itself: drop_last).
  bool batch_statistics = false;
  for (auto& [name, m] : net.named_modules())
    if (const auto* bn = dynamic_cast<const BatchNorm2d*>(m); bn && bn->use_batch_stats()) batch_statistics = true;

  DropoutStreams dropout(model, options.accumulate);
  if (!start_at.dropout_seeds.empty()) dropout.restore_seeds(start_at.dropout_seeds);  // the masks go on as they were
  // A checkpoint of the state after `epoch` epochs and `batch` batches of the next.
  auto save = [&](const std::string& file, int epoch, std::int64_t batch) {
    if (options.out_dir.empty()) return;
    CheckpointMeta meta = options.checkpoint;
    meta.epoch = epoch;
    meta.step = state.step;
    meta.schedule_step = schedule ? schedule->last_step() : 0;
    meta.rng_seed = dropout.first_seed();
    meta.rng_offset = dropout.offset(state.step, 0);
    if (const std::string seeds = dropout.seeds(); !seeds.empty()) meta.train_state["dropout_seeds"] = seeds;
    for (const auto& [name, value] : settings) meta.train_state[kSettingPrefix + name] = value;
    record_state(state, batch, result, meta.train_state);
    save_checkpoint(options.out_dir + "/" + file, model, &optimizer, meta);
  };

  // The head's width is known without running the model when it ends in a Linear layer (ResNet, VGG, most
  // heads): a mismatch is then reported before anything (BN statistics included) changes.
  Linear* last_linear = nullptr;
  for (auto& [name, m] : model.named_modules())
    if (auto* l = dynamic_cast<Linear*>(m)) last_linear = l;
  if (last_linear) check_outputs(last_linear->out_features(), classes, "fit");

  const std::vector<Tensor> params = optimizer.params();
  {
    // The optimizer must step this model's own tensors (train/trainer.h): one built over another model's (or a copy's)
    // would train nothing here, silently.
    std::set<const TensorImpl*> own;
    for (const Tensor& p : model.parameters()) own.insert(p.impl());
    for (const Tensor& p : params)
      GRAFT_CHECK(own.count(p.impl()), "fit: the optimizer holds a ", shape_str(p.shape()), " tensor that is not a "
                  "parameter of this ", model.type_name(), " (an optimizer built over another model or a copy?)");
  }
  // Gradients left from before the call (a check's backward, an earlier fit stopped mid-group) must not enter the
  // first step: each step uses the gradient of its own group's loss.
  optimizer.zero_grad();
  InterruptScope sigint;
  const std::int64_t accumulate = options.accumulate;
  const float clip = options.clip_grad_norm > 0 ? options.clip_grad_norm : std::numeric_limits<float>::infinity();
  std::int64_t images_this_call = 0;
  bool checked_outputs = false;
  auto fault = [&](const char* what, float v, int epoch, std::int64_t batch) {
    optimizer.zero_grad();
    const char* text = std::isnan(v) ? "nan" : v > 0 ? "inf" : "-inf";
    GRAFT_FAIL("finetune: ", what, " is ", text, " at epoch ", epoch + 1, " step ", state.step + 1, " (batch ",
               batch + 1, " of ", batches_per_epoch, "); training stopped before applying it",
               options.out_dir.empty() ? std::string()
                                       : "; " + options.out_dir + "/last.h5 holds the last good state (if any)");
  };
  const auto train_start = Clock::now();
  for (int epoch = first_epoch; epoch < options.epochs; ++epoch) {
    // Checked before an epoch rather than after one, so a run resumed from that last.h5 stops at once too.
    if (patience_ran_out(epoch)) {
      result.stopped_early = true;
      break;
    }
    const auto epoch_start = Clock::now();
    std::int64_t batch = epoch == first_epoch ? first_batch : 0;
    if (epoch != first_epoch) state.loss_sum = 0, state.images = 0, state.correct = 0;
    source.start_epoch(epoch, batch);
    ProgressBar bar("epoch " + std::to_string(epoch + 1) + "/" + std::to_string(options.epochs), batches_per_epoch,
                    options.progress);
    std::int64_t bar_images = 0;
    // One optimizer step per group of `accumulate` batches (the epoch's last group may be shorter; batch_loss says
    // what each batch backpropagates).
    const bool plain = accumulate == 1 && options.class_weights.empty();
    std::int64_t pending = 0;
    double group_denominator = 0, group_loss = 0;
    while (true) {
      std::optional<TrainBatch> b = source.next();
      if (b) {
        const std::int64_t n = b->labels.numel();
        if (n == 0) continue;  // (loaders skip unreadable batches themselves; an empty one would have no mean)
        const std::int64_t batch_size = train.options().batch_size;
        const std::int64_t planned = std::min(batch_size, train.dataset()->size() - b->index * batch_size);
        if (n == 1 && planned > 1 && batch_statistics) {
          if (result.lone_examples_skipped++ == 0)
            std::fprintf(stderr, "graft: warning: epoch %d, batch %lld of %lld: the only readable example of its batch "
                         "is passed over (BatchNorm with batch statistics cannot normalise one example)\n", epoch + 1,
                         static_cast<long long>(b->index + 1), static_cast<long long>(batches_per_epoch));
          continue;
        }
        dropout.position_for(state.step, pending);
        Tensor logits = net(b->inputs);
        if (!checked_outputs) {
          check_outputs(logits.dim(1), classes, "fit");
          GRAFT_CHECK(
              options.class_weights.empty() || static_cast<std::int64_t>(options.class_weights.size()) == logits.dim(1),
              "fit: ", options.class_weights.size(), " class weights for a model with ", logits.dim(1),
              " outputs (one weight per output)");
          checked_outputs = true;
        }
        const BatchLoss loss = batch_loss(logits, b->labels, options, plain);
        if (!std::isfinite(loss.mean)) {
          // On the GPU a label outside [0, classes) makes the loss NaN (core/ops.h): name it if that is the cause.
          const std::vector<std::int32_t> y = b->labels.to_int_vector();
          for (std::size_t i = 0; i < y.size(); ++i)
            GRAFT_CHECK(y[i] >= 0 && y[i] < logits.dim(1), "finetune: label ", y[i], " at row ", i, " of epoch ",
                        epoch + 1, " step ", state.step + 1, " is outside [0, ", logits.dim(1), ")");
          fault("loss", loss.mean, epoch, b->index);
        }
        loss.backprop.backward();
        ++pending;
        batch = b->index + 1;  // the position in the epoch's batches (unreadable ones skipped by the loader count)
        group_denominator += loss.denominator, group_loss += static_cast<double>(loss.mean) * loss.denominator;
        state.loss_sum += static_cast<double>(loss.mean) * n;
        state.images += n, bar_images += n, images_this_call += n;
        state.correct += count_top1(logits.detach(), b->labels);
        if (pending < accumulate && batch < batches_per_epoch) {
          bar.update(batch, bar_images, state.loss_sum / state.images);
          continue;
        }
      } else if (pending == 0) {
        break;
      }  // else: the epoch's batches ended before the group was full (unreadable batches): its step is taken now
      const bool update = plain || group_denominator > 0;  // a group whose labels all weigh 0 changes nothing
      if (!plain && update) scale_grads(params, static_cast<float>(1.0 / group_denominator));
      if (options.clip_grad_norm > 0 ||
          (options.grad_check_every > 0 && (state.step + 1) % options.grad_check_every == 0)) {
        float norm = clip_grad_norm(params, clip);
        if (!std::isfinite(norm)) fault("the gradient norm", norm, epoch, batch - 1);
      }
      if (update) optimizer.step();
      optimizer.zero_grad();
      if (schedule) schedule->step();
      const double step_loss = group_denominator > 0 ? group_loss / group_denominator : 0.0;
      ++state.step, pending = 0, group_denominator = 0, group_loss = 0;
      bar.update(batch, bar_images, state.loss_sum / state.images);
      if (options.on_step) options.on_step({epoch, state.step, batch, step_loss});
      bool stop_signal = interrupted();
      if (stop_signal || (options.max_steps > 0 && state.step >= options.max_steps)) {
        bar.finish();
        save("last.h5", epoch, batch);
        result.stopped_by_signal = stop_signal;
        result.steps = state.step;
        result.seconds = since(start);
        result.images_per_second = images_this_call / std::max(since(train_start), 1e-9);
        if (head) model.train();
        return result;
      }
      if (!b) break;
    }
    bar.finish();
    if (!head) result.skipped_images += train.skipped_this_epoch();

    // ---- end of epoch: validation, checkpoints, log ----
    EpochPoint point{epoch + 1,
                     state.images ? state.loss_sum / state.images : NAN,
                     state.images ? double(state.correct) / state.images : NAN,
                     NAN,
                     NAN,
                     NAN};
    bool improved = false;
    if (validation) {
      result.last_validation = head ? evaluate_features(*head, val_cache, validation->dataset()->num_classes(),
                                                        validation->options().batch_size)
                                    : evaluate(model, *validation);
      point.val_loss = result.last_validation.loss;
      point.val_top1 = result.last_validation.top1;
      point.val_top5 = result.last_validation.top5;
      if (point.val_top1 > state.best_top1) {
        state.best_top1 = point.val_top1, improved = true;
        result.best_validation = result.last_validation;
        result.best_epoch = epoch + 1;
      }
    }
    const double epoch_seconds = since(epoch_start);
    if (result.epochs_done == 0) result.first_epoch_seconds = epoch_seconds;
    result.epochs_done += 1;
    result.epoch_train_loss.push_back(point.train_loss);
    state.loss_sum = 0, state.images = 0, state.correct = 0;  // the checkpoint marks the start of the next epoch
    save("last.h5", epoch + 1, 0);
    if (improved && options.keep_best) save("best.h5", epoch + 1, 0);
    log.add(point, state.step, optimizer.param_groups().front().lr, epoch_seconds > 0 ? bar_images / epoch_seconds : 0,
            since(start));
    if (interrupted()) {
      result.stopped_by_signal = true;
      break;
    }
  }
  result.steps = state.step;
  result.seconds = since(start);
  result.images_per_second = images_this_call / std::max(since(train_start), 1e-9);
  if (head) model.train();
  return result;
}

}  // namespace graft
