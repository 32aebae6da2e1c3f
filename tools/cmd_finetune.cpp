// graft finetune: transfer learning from the command line (issue 5). A model from the zoo, optionally with
// ImageNet weights (the head is left out of the load when --num-classes differs from the file's), parts frozen,
// a new head, and fit() (train/trainer.h) writing the run directory (log.csv, curves.png, last.h5, best.h5, run.txt).
//   --freeze all      everything but the head is frozen (feature extraction; with --no-augment, and the default
//                     when freezing all, the backbone's features are computed once and cached)
//   --freeze none     everything trains;  --freeze PATTERN  the matching parameters are frozen
//   --unfreeze P      (repeatable) then unfreezes P, e.g. --freeze all --unfreeze layer4
//   --bn frozen       every BatchNorm normalises with its running statistics and never updates them; gamma/beta
//                     follow --freeze/--unfreeze (an unfrozen stage trains its BatchNorm affine)
//   --warmup W        linear warm-up for --schedule cosine: W epochs (may be fractional: 0.5) or "Nsteps"
//   --augment         random resized crop + horizontal flip; default: on unless --freeze all
//   --class-weights   balanced (scikit-learn's N / (classes x count), from the training labels) or W0,W1,...: the
//                     training loss's per-class weights (torch's cross_entropy weight=); validation stays plain
//   --accumulate N    one optimizer step per N batches (gradient accumulation); --max-steps, the schedule and
//                     --warmup's steps count optimizer steps
// Validation: the folder's val/ when DIR has train/ and val/, else a seeded stratified --val-fraction of the
// training data (after --classes and --per-class). Ctrl-C stops after the current step with last.h5 saved (exit
// 130); --resume continues from OUT/last.h5.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <iterator>
#include <map>
#include <sstream>

#include "core/allocator.h"
#include "core/error.h"
#include "core/lr_schedule.h"
#include "core/optim.h"
#include "io/checkpoint.h"
#include "io/dataset.h"
#include "io/hdf5_write.h"
#include "io/preprocess.h"
#include "io/temporary_file.h"
#include "io/weights.h"
#include "kernels/cuda_device.h"
#include "layers/batch_norm.h"
#include "layers/linear.h"
#include "tools/cli_common.h"
#include "tools/finetune_setup.h"
#include "train/run_lock.h"
#include "train/run_settings.h"
#include "train/trainer.h"

namespace graft::cli {
namespace {

// The files a run writes in its run directory (train/trainer.h).
constexpr const char* kRunFiles[] = {"log.csv", "curves.png", "last.h5", "best.h5", "run.txt"};

namespace fs = std::filesystem;

struct FinetuneArgs {
  ModelArgs model{"resnet18", "torchvision", 0, 0};
  std::string weights, data, freeze = "all", bn = "frozen", optimizer = "sgd", schedule = "cosine", warmup = "0";
  std::string device = "auto", out = "runs/finetune", classes, class_weights;
  std::vector<std::string> unfreeze;
  float lr = 0.01f, backbone_lr = -1, weight_decay = 1e-4f, momentum = 0.9f, label_smoothing = 0.f, clip = 0.f;
  int epochs = 5, batch = 32, size = 224, workers = -1, per_class = 0, patience = 0, accumulate = 1;
  double val_fraction = 0.1;
  bool resume = false, strict = false, augment = false, no_augment = false, no_progress = false;
  bool deterministic = false;
  std::int64_t max_steps = 0;
};

// The training and validation data as the options choose them, and the classes the model is built for.
struct FinetuneData {
  DatasetPtr train, val;      // val: null when there is none
  bool separate_val = false;  // val is the folder's val/ (else a split of train/, or none)
  int num_classes = 0;        // the head's outputs: --num-classes, else the data's classes
  std::vector<float> class_weights;
};

FinetuneData open_data(const FinetuneArgs& a) {
  FinetuneData d;
  ImageFolderOptions folder_options{a.strict};
  DatasetPtr train_data = open_dataset(a.data, true, folder_options), val_data;
  const bool separate_val = fs::is_directory(fs::path(a.data) / "train") && fs::is_directory(fs::path(a.data) / "val");
  // val/ may hold fewer class folders than train/ (or list them in another order): its labels follow train/'s by
  // class name. A val/ class that train/ lacks is an error.
  if (separate_val) val_data = match_classes(open_dataset(a.data, false, folder_options), train_data->class_names());
  if (!a.classes.empty()) {
    std::vector<int> classes = parse_classes(a.classes);
    for (int c : classes)
      GRAFT_CHECK(c < train_data->num_classes(), "finetune: --classes ", a.classes, ": class ", c, " is not in ",
                  train_data->describe());
    train_data = select_classes(train_data, classes);
    if (val_data) val_data = select_classes(val_data, classes);
    if (val_data && val_data->size() == 0) {
      std::printf("finetune: val/ holds no image of the chosen classes: training without validation\n");
      val_data = nullptr;
    }
  }
  if (a.per_class > 0) train_data = sample_per_class(train_data, a.per_class, a.model.seed);
  if (!separate_val && a.val_fraction > 0) {
    TrainValidation split = split_train_validation(train_data, a.val_fraction, a.model.seed);
    train_data = split.train, val_data = split.validation;
    if (val_data && val_data->size() == 0) val_data = nullptr;
  }
  const int data_classes = train_data->num_classes();
  GRAFT_CHECK(data_classes >= 2, "finetune: ", train_data->describe(), " has ", data_classes,
              " class(es); classification needs at least two");
  const int num_classes = a.model.num_classes > 0 ? a.model.num_classes : data_classes;
  GRAFT_CHECK(num_classes >= data_classes, "finetune: --num-classes ", num_classes, " is smaller than the ",
              data_classes, " classes of ", train_data->describe(), " (labels up to ", data_classes - 1, ")");
  d.class_weights = class_weights_for(a.class_weights, *train_data, num_classes);
  d.train = train_data, d.val = val_data, d.separate_val = separate_val, d.num_classes = num_classes;
  return d;
}

// --weights: a graft checkpoint (of this architecture and dialect; its head kept when its classes are the data's,
// else taken over class by class), or ImageNet weights from torchvision or Keras (the head left out unless the model
// has their 1000 classes). `model` may be replaced by the checkpoint's.
void start_from_weights(const FinetuneArgs& a, const ModelArgs& margs, const std::string& head,
                        const std::vector<std::string>& names, std::shared_ptr<Module>& model) {
  if (is_checkpoint(a.weights)) {
    CheckpointMeta m = read_checkpoint_meta(a.weights);
    GRAFT_CHECK(m.arch == a.model.arch, "finetune: --weights '", a.weights, "' holds a ", m.arch, ", not a ",
                a.model.arch);
    GRAFT_CHECK(m.dialect.empty() || m.dialect == built_dialect(a.model), "finetune: --weights '", a.weights,
                "' holds a ", m.arch, " in the ", m.dialect, " dialect: pass --dialect ", m.dialect);
    ModelArgs file_args = margs;
    file_args.num_classes = m.num_classes;
    auto from = build_model(file_args);
    load_checkpoint_reporting(a.weights, *from, nullptr);
    if (m.num_classes == margs.num_classes && (m.class_names.empty() || m.class_names == names)) {
      if (m.class_names.empty())
        std::printf("finetune: --weights '%s' names no classes: its %d outputs are taken as the data's classes in "
                    "order\n", a.weights.c_str(), m.num_classes);
      model = from;
    } else {
      const int kept = take_all_but_the_head(*model, *from, head, names, m.class_names, m.num_classes);
      std::printf("finetune: --weights '%s' has %d output(s)%s; the head's rows of %d of the data's %zu classes are "
                  "taken from it by name, the others start fresh\n",
                  a.weights.c_str(), m.num_classes, m.class_names.empty() ? " and no class names" : "", kept,
                  names.size());
    }
  } else {
    LoadOptions lo;
    if (margs.num_classes != 1000) lo.exclude = {head + ".*"};
    load_weights_reporting(*model, a.weights, lo);
  }
}

// --freeze, then --unfreeze, then --bn frozen.
void apply_freezing(Module& model, const FinetuneArgs& a, const std::string& head) {
  if (a.freeze == "all") {
    model.freeze("*");
    model.unfreeze(head);
  } else if (a.freeze != "none") {
    model.freeze(a.freeze);
  }
  for (const auto& p : a.unfreeze) model.unfreeze(p);
  // --bn frozen fixes the statistics only (running mean/var, never updated, whatever train() says); gamma and
  // beta follow --freeze/--unfreeze like every other parameter, so an unfrozen stage trains its BatchNorm affine
  // (Keras's fine-tuning recipe: BatchNorm in inference mode, its weights trainable).
  if (a.bn == "frozen")
    for (auto& [name, m] : model.named_modules())
      if (auto* bn = dynamic_cast<BatchNorm2d*>(m)) bn->pin_stats(false, false);
}

// The optimizer over the trainable parameters - the head's group first (its lr is the one logged), the rest at
// --backbone-lr - and the learning-rate schedule over --epochs of optimizer steps (batches / --accumulate each).
struct Optimization {
  std::unique_ptr<Optimizer> optimizer;
  std::unique_ptr<LRSchedule> schedule;  // null for --schedule none
  float backbone_lr = 0;
  std::int64_t warmup_steps = 0;
};

Optimization make_optimization(const FinetuneArgs& a, Module& model, const std::string& head,
                               std::int64_t batches_per_epoch) {
  ParamGroup head_group{{}, a.lr, a.weight_decay, "head"};
  ParamGroup backbone_group{{}, a.backbone_lr >= 0 ? a.backbone_lr : a.lr, a.weight_decay, "backbone"};
  for (const auto& [name, p] : model.named_parameters()) {
    if (!p.requires_grad()) continue;
    (name.rfind(head + ".", 0) == 0 ? head_group : backbone_group).params.push_back(p);
  }
  std::vector<ParamGroup> groups;
  for (auto* g : {&head_group, &backbone_group})
    if (!g->params.empty()) groups.push_back(*g);
  GRAFT_CHECK(!groups.empty(), "finetune: nothing to train (every parameter is frozen)");
  Optimization o;
  std::unique_ptr<Optimizer>& opt = o.optimizer;
  if (a.optimizer == "sgd") opt = std::make_unique<SGD>(groups, SGDOptions{.momentum = a.momentum});
  else if (a.optimizer == "adam") opt = std::make_unique<Adam>(groups, AdamOptions{});
  else opt = std::make_unique<AdamW>(groups, AdamWOptions{});
  const std::int64_t steps_per_epoch = (batches_per_epoch + a.accumulate - 1) / a.accumulate;
  // The schedule spans --epochs; --max-steps only stops the run early, so a --resume continues the same run.
  const std::int64_t total = steps_per_epoch * a.epochs;
  const std::int64_t warmup = warmup_steps(a.warmup, steps_per_epoch);
  GRAFT_CHECK(warmup == 0 || a.schedule == "cosine", "finetune: --warmup applies to --schedule cosine only");
  std::unique_ptr<LRSchedule>& schedule = o.schedule;
  // A warm-up longer than the run is cut to leave at least one cosine step.
  if (a.schedule == "cosine")
    schedule = std::make_unique<CosineWithWarmup>(*opt, std::min(warmup, std::max<std::int64_t>(total - 1, 0)), total);
  else if (a.schedule == "step") schedule = std::make_unique<StepLR>(*opt, std::max<std::int64_t>(1, total / 3), 0.1f);
  o.backbone_lr = backbone_group.lr;
  o.warmup_steps = warmup;
  return o;
}

// What the run did and where its files are (stdout).
void print_summary(const FinetuneArgs& a, const Dataset& train_data, const TrainResult& r, bool augment,
                   Device device) {
  std::printf("finetune: %s on %s: %d epoch(s), %lld steps in %.1f s (%.1f images/s)\n", a.model.arch.c_str(),
              train_data.describe().c_str(), r.epochs_done, static_cast<long long>(r.steps), r.seconds,
              r.images_per_second);
  if (r.best_epoch > 0)
    std::printf("best validation top-1 %.2f%% (epoch %d), top-5 %.2f%%; last top-1 %.2f%%\n",
                100 * r.best_validation.top1, r.best_epoch, 100 * r.best_validation.top5,
                100 * r.last_validation.top1);
  if (r.stopped_early)
    std::printf("stopped early: no better validation top-1 in the last %d epoch%s (best: epoch %d)\n", a.patience,
                a.patience == 1 ? "" : "s", r.best_epoch);
  if (r.used_feature_cache && r.epochs_done == 0)  // stopped inside the first epoch: no epoch time to compare
    std::printf("feature cache: used (backbone features computed once in %.3f s)\n", r.cache_seconds);
  else if (r.used_feature_cache)
    std::printf("feature cache: used (backbone features computed once in %.3f s; an epoch on the cache took %.4f s, "
                "%.0fx less than that pass)\n",
                r.cache_seconds, r.first_epoch_seconds,
                r.first_epoch_seconds > 0 ? r.cache_seconds / r.first_epoch_seconds : 0.0);
  else
    std::printf("feature cache: not used (%s)\n",
                augment ? "random augmentation is on" : "parameters outside the head train, or BN uses batch stats");
  if (r.skipped_images) std::printf("skipped %lld unreadable image(s)\n", static_cast<long long>(r.skipped_images));
  if (r.lone_examples_skipped)
    std::printf("passed over %lld batch(es) that unreadable images left with one image (BatchNorm with batch "
                "statistics)\n", static_cast<long long>(r.lone_examples_skipped));
  std::string files;  // what the run directory holds now (a run stopped inside its first epoch has no log yet)
  for (const char* name : kRunFiles)
    if (fs::exists(fs::path(a.out) / name)) files += std::string(files.empty() ? "" : ", ") + name;
  std::printf("peak memory: %.1f MB (%s)\nrun directory: %s (%s)\n", memory_stats(device).peak_bytes / 1048576.0,
              device.str().c_str(), a.out.c_str(), files.c_str());
}

// A new run in a directory where an earlier run wrote: that run's files move to a folder of their own in it,
// DIR/previous-N with the first N not taken, and a note says so. Nothing is deleted, and the directory never holds
// two runs' files side by side: a new run stopped inside its first epoch used to leave the old log.csv, curves.png
// and best.h5 beside its own run.txt and last.h5.
void set_aside_previous_run(const std::string& dir) {
  const fs::path out(dir);
  std::error_code ec;
  std::vector<const char*> found;
  for (const char* name : kRunFiles)
    if (fs::exists(fs::symlink_status(out / name, ec))) found.push_back(name);
  if (found.empty()) return;
  fs::path previous;
  for (int n = 1;; ++n) {
    previous = out / ("previous-" + std::to_string(n));
    if (!fs::exists(fs::symlink_status(previous, ec))) break;
  }
  fs::create_directory(previous, ec);
  GRAFT_CHECK(!ec, "finetune: cannot create '", previous.string(), "' for the earlier run's files: ", ec.message());
  std::string moved;
  for (const char* name : found) {
    fs::rename(out / name, previous / name, ec);
    GRAFT_CHECK(!ec, "finetune: cannot move the earlier run's '", (out / name).string(), "' to '", previous.string(),
                "': ", ec.message());
    moved += std::string(moved.empty() ? "" : ", ") + name;
  }
  std::printf("note: '%s' held an earlier run's files (%s): moved to '%s' (move them back to --resume that run)\n",
              dir.c_str(), moved.c_str(), previous.string().c_str());
}

void finetune(const FinetuneArgs& a) {
  GRAFT_CHECK(!(a.augment && a.no_augment), "finetune: --augment and --no-augment both given");
  GRAFT_CHECK(a.val_fraction >= 0 && a.val_fraction < 1, "finetune: --val-fraction ", a.val_fraction,
              " must be in [0, 1)");
  GRAFT_CHECK(a.label_smoothing >= 0 && a.label_smoothing < 1, "finetune: --label-smoothing ", a.label_smoothing,
              " must be in [0, 1)");
  if (!a.class_weights.empty() && a.class_weights != "balanced") parse_class_weights(a.class_weights);
  const Device device = resolve_device(a.device);
  cuda::set_deterministic(a.deterministic);

  const FinetuneData data = open_data(a);
  const DatasetPtr& train_data = data.train;
  const DatasetPtr& val_data = data.val;
  const bool separate_val = data.separate_val;
  const int num_classes = data.num_classes;
  const std::vector<float>& class_weights = data.class_weights;

  // ---- model ----
  ModelArgs margs = a.model;
  margs.num_classes = num_classes;
  auto model = build_model(margs);
  const std::string head = head_path(*model);
  // A resumed run takes the model, the optimizer and the preprocessing from OUT/last.h5: --weights is not read.
  const std::string last = a.out + "/last.h5";
  const std::string weights = a.resume ? std::string() : a.weights;
  if (a.resume) GRAFT_CHECK(fs::exists(last), "finetune: cannot resume: no checkpoint '", last, "'");
  // One run per run directory (train/run_lock.h), taken before run.txt is written (fit() takes it again); a resume
  // takes it before reading last.h5, which a run still going there could replace under it.
  std::optional<RunDirectoryLock> run_lock;
  if (a.resume) run_lock.emplace(a.out, "finetune");
  const CheckpointMeta resumed = a.resume ? read_checkpoint_meta(last) : CheckpointMeta{};  // where a --resume starts
  if (!weights.empty()) start_from_weights(a, margs, head, train_data->class_names(), model);
  apply_freezing(*model, a, head);
  model->to(device);

  // ---- loaders ----
  const bool augment = a.augment || (!a.no_augment && a.freeze != "all");
  LoaderOptions lo;
  lo.batch_size = a.batch;
  lo.seed = a.model.seed;
  lo.workers = default_workers(a.workers, device);
  lo.strict = a.strict;
  lo.device = device;
  lo.transform.size = a.size;
  lo.transform.exact_resize = small_fixed_images(a.data);
  lo.transform.normalize = preprocess_of_weights(a.resume ? last : a.weights, a.model.arch, parse_dialect(a.model.dialect));
  // A resumed run goes on as it began (a run begun before graft antialiased goes on without: train/run_settings.h).
  if (a.resume) lo.transform.antialias = trained_with_antialias(resumed);
  LoaderOptions vo = lo;
  vo.shuffle = false;
  if (augment) {
    lo.transform.random_resized_crop = true;
    lo.transform.crop_scale_min = small_fixed_images(a.data) ? 0.35f : 0.08f;
    lo.transform.random_flip = true;
  }
  // BatchNorm with batch statistics cannot normalise a batch of one image: such a last batch is left out of each
  // epoch (torch's drop_last; with shuffling, a different image each epoch).
  if (a.bn == "train" && a.batch > 1 && train_data->size() % a.batch == 1) {
    lo.drop_last = true;
    std::printf("note: with --bn train the epoch's last batch would hold 1 image, which BatchNorm cannot normalise "
                "with batch statistics: it is left out of each epoch\n");
  }
  Loader train(train_data, lo);
  GRAFT_CHECK(train.batches_per_epoch() > 0, "finetune: ", train_data->describe(), " gives no training batch of ",
              a.batch, " images");
  std::unique_ptr<Loader> val;
  if (val_data) val = std::make_unique<Loader>(val_data, vo);
  GRAFT_CHECK(a.patience == 0 || val, "finetune: --patience ", a.patience, " watches the validation top-1, and '",
              a.data, "' gives no validation data here (no val/ folder, --val-fraction ", a.val_fraction, ")");

  Optimization optimization = make_optimization(a, *model, head, train.batches_per_epoch());
  Optimizer& opt = *optimization.optimizer;
  const float backbone_lr = optimization.backbone_lr;
  const std::int64_t warmup = optimization.warmup_steps;

  // ---- run ----
  TrainOptions to;
  to.epochs = a.epochs;
  to.out_dir = a.out;
  to.resume = a.resume;
  to.progress = !a.no_progress;
  to.max_steps = a.max_steps;
  to.label_smoothing = a.label_smoothing;
  to.clip_grad_norm = a.clip;
  to.patience = a.patience;
  to.accumulate = a.accumulate;
  to.class_weights = class_weights;
  to.checkpoint.arch = a.model.arch;
  to.checkpoint.dialect = built_dialect(a.model);
  to.checkpoint.num_classes = num_classes;
  to.checkpoint.class_names = train_data->class_names();
  to.checkpoint.train_state["preprocess"] = preprocess_name(lo.transform.normalize);
  to.checkpoint.train_state["image_size"] = std::to_string(a.size);
  to.checkpoint.train_state["resize"] = lo.transform.exact_resize ? "exact" : "crop";
  // What shapes the run besides fit's own settings (train/run_settings.h): a --resume must repeat them.
  // (the data itself is compared by what it holds: train/run_settings.h)
  std::vector<std::string> unfreeze_sorted = a.unfreeze;  // each pattern unfreezes its parameters: order is moot
  std::sort(unfreeze_sorted.begin(), unfreeze_sorted.end());
  std::string unfreeze, classes;
  for (const auto& p : unfreeze_sorted) unfreeze += (unfreeze.empty() ? "" : " ") + p;
  if (!a.classes.empty())
    for (int c : parse_classes(a.classes)) classes += (classes.empty() ? "" : ",") + std::to_string(c);
  const std::map<std::string, std::string> cli_settings = {
      {"arch", a.model.arch}, {"dialect", built_dialect(a.model)}, {"num-classes", std::to_string(num_classes)},
      {"classes", classes}, {"per-class", std::to_string(a.per_class)},
      {"val-fraction", separate_val ? "val/ folder" : shortest_text(a.val_fraction)},
      {"freeze", a.freeze}, {"unfreeze", unfreeze}, {"bn", a.bn}, {"optimizer", a.optimizer},
      {"lr", shortest_text(a.lr)}, {"backbone-lr", shortest_text(backbone_lr)},
      {"weight-decay", shortest_text(a.weight_decay)},
      {"momentum", a.optimizer == "sgd" ? shortest_text(a.momentum) : "-"}, {"schedule", a.schedule},
      {"warmup-steps", std::to_string(warmup)}, {"resize", lo.transform.exact_resize ? "exact" : "crop"}};
  for (const auto& [name, value] : cli_settings) to.checkpoint.train_state[kSettingPrefix + name] = value;
  if (a.resume) check_resume_settings("finetune", last, run_settings(train, to));
  // The checkpoints are renamed into place at each epoch's end: a link or device there is refused now, not after
  // the first epoch's training.
  for (const char* name : {"last.h5", "best.h5"})
    hdf5::check_replaceable_file((fs::path(a.out) / name).string(), "finetune:");
  if (!run_lock) run_lock.emplace(a.out, "finetune");
  if (!a.resume) set_aside_previous_run(a.out);
  std::ostringstream clipping;
  if (a.clip > 0)
    clipping << "at norm " << a.clip;
  else
    clipping << "off";
  std::ostringstream weights_text;
  if (class_weights.empty()) weights_text << "none";
  if (a.class_weights == "balanced") weights_text << "balanced ";
  for (std::size_t c = 0; c < class_weights.size(); ++c) weights_text << (c ? "," : "(") << class_weights[c];
  if (!class_weights.empty()) weights_text << ")";
  std::ostringstream run;
  run << "graft finetune\n  arch " << a.model.arch << " (" << built_dialect(a.model) << "), " << num_classes
      << " classes, weights " << (a.weights.empty() ? "none (random init)" : a.weights) << "\n  train "
      << train_data->describe() << "\n  validation " << (val_data ? val_data->describe() : "none") << "\n  freeze "
      << a.freeze << (unfreeze.empty() ? std::string() : ", unfreeze " + unfreeze) << ", bn " << a.bn
      << ", trainable parameters " << model->trainable_parameter_count() << " of "
      << model->parameter_count() << "\n  optimizer " << a.optimizer << " lr " << a.lr << " backbone lr "
      << backbone_lr << " weight decay " << a.weight_decay << ", schedule " << a.schedule << " (warmup "
      << warmup << " steps), label smoothing " << a.label_smoothing << ", class weights " << weights_text.str()
      << ", gradient clipping "
      << clipping.str() << "\n  epochs " << a.epochs << " (early stopping "
      << (a.patience > 0 ? "after " + std::to_string(a.patience) + " epoch(s) without a better validation top-1"
                         : std::string("off"))
      << "), batch " << a.batch
      << (a.accumulate > 1 ? " x " + std::to_string(a.accumulate) + " accumulated (effective batch " +
                                 std::to_string(static_cast<std::int64_t>(a.batch) * a.accumulate) + ")"
                           : std::string())
      << ", size " << a.size << ", augment "
      << (augment ? "on" : "off") << ", preprocess " << preprocess_name(lo.transform.normalize) << ", seed "
      << a.model.seed << ", device " << device.str() << ", deterministic " << (a.deterministic ? "on" : "off")
      << "\n";
  std::string history = run.str();  // a resumed run keeps the run.txt of the run it continues, plus a line
  std::string before_resume = history;
  if (a.resume) {
    std::ifstream previous(a.out + "/run.txt");
    if (previous) history = before_resume = std::string(std::istreambuf_iterator<char>(previous), {});
    history += "resumed from last.h5 at epoch " + std::to_string(resumed.epoch) + ", step " +
               std::to_string(resumed.step) +
               ", device " + device.str() + ", deterministic " + (a.deterministic ? "on" : "off") + "\n";
  }
  auto write_run = [&](const std::string& extra) {  // all or nothing (io/temporary_file.h), as every output
    TemporaryFile file(a.out + "/run.txt", "finetune");
    const std::string text = history + extra;
    std::fwrite(text.data(), 1, text.size(), file.create());
    file.commit();
  };
  write_run("");
  reset_peak_memory(device);
  TrainResult r = fit(*model, opt, train, val.get(), to, optimization.schedule.get());
  if (r.stopped_early && r.epochs_done == 0) {  // resumed where an early stop ended the run
    std::printf("finetune: %s already stopped early (no better validation top-1 since epoch %d: %.2f%%); nothing "
                "to train\n", a.out.c_str(), r.best_epoch, 100 * r.best_validation.top1);
    history = before_resume;  // no resume happened
    write_run("");
    return;
  }
  if (a.resume && r.steps == resumed.step && !r.stopped_by_signal) {  // finished, or at --max-steps already
    std::printf("finetune: %s is at epoch %lld of %d, step %lld: nothing to train\n", a.out.c_str(),
                static_cast<long long>(resumed.epoch), a.epochs, static_cast<long long>(resumed.step));
    history = before_resume;  // no resume happened
    write_run("");
    return;
  }
  std::string algos = cuda::conv_algorithms_report();
  write_run(algos.empty() ? "" : "cuDNN convolution algorithms:\n" + algos);

  print_summary(a, *train_data, r, augment, device);
  if (r.stopped_by_signal) {
    std::fprintf(stderr, "graft: finetune interrupted after step %lld; %s/last.h5 saved, continue with --resume\n",
                 static_cast<long long>(r.steps), a.out.c_str());
    throw CLI::RuntimeError(130);
  }
}

}  // namespace

void register_finetune(CLI::App& app) {
  auto* cmd = app.add_subcommand("finetune", "train a (pretrained) model on your images: new head, frozen parts");
  auto a = std::make_shared<FinetuneArgs>();
  cmd->add_option("--arch", a->model.arch, std::string("architecture: ") + kArchitectures)->capture_default_str();
  cmd->add_option("--dialect", a->model.dialect, "ResNet dialect: torchvision, keras or keras-legacy")->capture_default_str();
  cmd->add_option("--weights", a->weights, "ImageNet weights (torchvision export, Keras .h5) or a graft checkpoint");
  cmd->add_option("--data", a->data, "fashion-mnist[:DIR] | cifar10:DIR | cifar100:DIR | image folder DIR")->required();
  cmd->add_option("--num-classes", a->model.num_classes, "outputs of the new head (default: the data's classes)")->check(CLI::PositiveNumber);
  cmd->add_option("--freeze", a->freeze, "all (everything but the head) | none | PATTERN")->capture_default_str();
  cmd->add_option("--unfreeze", a->unfreeze, "PATTERN to train again (repeatable), e.g. layer4");
  cmd->add_option("--bn", a->bn, "frozen (running stats, not updated; gamma/beta follow --freeze) | train")->capture_default_str()->check(CLI::IsMember({"frozen", "train"}));
  cmd->add_option("--optimizer", a->optimizer, "sgd | adam | adamw")->capture_default_str()->check(CLI::IsMember({"sgd", "adam", "adamw"}));
  cmd->add_option("--lr", a->lr, "learning rate (of the head)")->capture_default_str()->check(kNonNegativeNumber);
  cmd->add_option("--backbone-lr", a->backbone_lr, "learning rate of unfrozen non-head parameters (default: --lr)")->check(kNonNegativeNumber);
  cmd->add_option("--weight-decay", a->weight_decay, "weight decay")->capture_default_str()->check(kNonNegativeNumber);
  cmd->add_option("--momentum", a->momentum, "SGD momentum")->capture_default_str()->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--label-smoothing", a->label_smoothing, "training targets (1-S) onehot + S/classes, S in [0, 1)")
      ->capture_default_str()
      ->check(kNonNegativeNumber);
  cmd->add_option("--patience", a->patience, "stop after N epochs without a better validation top-1 (0: off)")
      ->capture_default_str()
      ->check(kNonNegativeNumber);
  cmd->add_option("--class-weights", a->class_weights,
                  "weights of the training loss per class: balanced (N / (classes x count)) or W0,W1,...");
  cmd->add_option("--accumulate", a->accumulate,
                  "gradient accumulation: one optimizer step per N batches (an effective batch of N x --batch)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 20));
  cmd->add_option("--clip-grad-norm", a->clip, "clip the global gradient 2-norm to N every step (0: off)")
      ->capture_default_str()
      ->check(kNonNegativeNumber);
  cmd->add_option("--schedule", a->schedule, "cosine | step (x0.1 at 1/3 and 2/3) | none")->capture_default_str()->check(CLI::IsMember({"cosine", "step", "none"}));
  cmd->add_option("--warmup", a->warmup, "cosine warm-up: epochs (1, 0.5) or steps (200steps)")->capture_default_str();
  cmd->add_option("--epochs", a->epochs, "epochs")->capture_default_str()->check(CLI::Range(1, 100000));
  cmd->add_option("--batch", a->batch, "batch size")->capture_default_str()->check(CLI::Range(1, 65536));
  cmd->add_option("--size", a->size, "input image size (square)")->capture_default_str()->check(CLI::Range(8, 4096));
  cmd->add_option("--device", a->device, "auto | cpu | cuda")->capture_default_str()->check(CLI::IsMember({"auto", "cpu", "cuda"}));
  cmd->add_option("--seed", a->model.seed, "seed (initial head, split, sampling, shuffling, augmentation)")
      ->capture_default_str()
      ->check(kSeed);
  cmd->add_option("--out", a->out, "run directory")->capture_default_str();
  cmd->add_flag("--resume", a->resume, "continue from OUT/last.h5 (the same settings; --weights is not read)");
  cmd->add_option("--workers", a->workers, "decoding threads (default: all cores but one, at most 16, on the GPU; 2 on the CPU)")
      ->check(CLI::Range(0, 256));
  cmd->add_option("--val-fraction", a->val_fraction, "validation share of the training data (no val/ folder)")
      ->capture_default_str()
      ->check(kNonNegativeNumber);
  cmd->add_option("--classes", a->classes, "class subset, e.g. 5,6,7 (relabelled 0..k-1)");
  cmd->add_option("--per-class", a->per_class, "at most N images per class (few-shot; the validation share is taken from them)")->check(CLI::PositiveNumber);
  cmd->add_flag("--augment", a->augment, "random resized crop + flip (default unless --freeze all)");
  cmd->add_flag("--no-augment", a->no_augment, "no random augmentation");
  cmd->add_flag("--strict", a->strict, "an unreadable image is an error (default: skipped with a warning)");
  cmd->add_option("--max-steps", a->max_steps,
                  "stop after N optimizer steps in all, last.h5 saved (the schedule still spans --epochs: --resume "
                  "continues the same run); 0: no limit")
      ->check(kNonNegativeNumber);
  cmd->add_flag("--no-progress", a->no_progress, "no progress bar");
  cmd->add_flag("--deterministic", a->deterministic, "GPU: deterministic cuDNN algorithms (recorded in run.txt)");
  cmd->callback([a] { finetune(*a); });
}

}  // namespace graft::cli
