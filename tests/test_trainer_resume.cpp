// Resuming the training loop (train/trainer.h) bit for bit: after max_steps, after SIGINT (also inside an
// accumulation group), past batches the loader skipped; a resume with other settings refused before anything
// changes; checkpoint writes that die or hit a full disk; one run per run directory.
#include "tests/trainer_setup.h"

namespace graft {
namespace {

using namespace trainer_test;
using testing::expect_error;

TEST(Trainer, ResumeAfterMaxStepsIsBitExact) {
  Pipeline straight;
  TrainResult a = straight.fit(quiet(temp_dir("straight"), 3));
  for (std::int64_t stop : {2, 5, 7, 13}) {  // mid-epoch, at an epoch's end, mid-epoch later
    std::string dir = temp_dir("resume" + std::to_string(stop));
    {
      Pipeline first;
      TrainOptions o = quiet(dir, 3);
      o.max_steps = stop;
      TrainResult r = first.fit(o);
      EXPECT_EQ(r.steps, stop);
      EXPECT_FALSE(r.stopped_by_signal);
      EXPECT_EQ(read_checkpoint_meta(dir + "/last.h5").step, stop);
    }
    Pipeline second(1234);  // other initial weights: everything must come from last.h5
    TrainOptions o = quiet(dir, 3);
    o.resume = true;
    TrainResult b = second.fit(o);
    EXPECT_EQ(b.steps, 15);
    EXPECT_EQ(values(*second.net), values(*straight.net)) << "stopped at step " << stop;
    EXPECT_EQ(b.epoch_train_loss.back(), a.epoch_train_loss.back()) << "stopped at step " << stop;
    EXPECT_EQ(second.opt.param_groups()[0].lr, straight.opt.param_groups()[0].lr);
  }
}

// A checkpoint whose dropout seeds cannot be what fit wrote is refused with an error naming the file, before the
// run directory changes: a seed that is not a number, or more seeds than the model has dropout layers.
TEST(Trainer, ADamagedDropoutSeedListIsRefused) {
  const std::string dir = temp_dir("damaged_seeds");
  {
    Pipeline first;
    TrainOptions o = quiet(dir, 3);
    o.max_steps = 2;
    first.fit(o);
    CheckpointMeta meta = read_checkpoint_meta(dir + "/last.h5");
    ASSERT_EQ(meta.train_state.count("dropout_seeds"), 1u);
    meta.train_state["dropout_seeds"] = "12,x";
    save_checkpoint(dir + "/bad_number.h5", *first.net, &first.opt, meta);
    meta.train_state["dropout_seeds"] = "12,13";
    save_checkpoint(dir + "/two_seeds.h5", *first.net, &first.opt, meta);
  }
  for (const auto& [file, message] : std::vector<std::pair<std::string, std::string>>{
           {"bad_number.h5", "is damaged: its dropout seed 'x' is not a number"},
           {"two_seeds.h5", "the checkpoint has 2 dropout generators, the model 1"}}) {
    SCOPED_TRACE(file);
    fs::copy_file(dir + "/" + file, dir + "/last.h5", fs::copy_options::overwrite_existing);
    const std::string before = file_bytes(dir + "/last.h5");
    Pipeline second;
    TrainOptions o = quiet(dir, 3);
    o.resume = true;
    expect_error([&] { second.fit(o); }, {"fit: ", message});
    EXPECT_EQ(file_bytes(dir + "/last.h5"), before);
  }
}

// SIGINT at its default action for a test's duration: a process started with SIGINT ignored (a background job of a
// shell without job control) keeps ignoring it inside fit() (train/interrupt.h), so the tests that raise it set the
// default first, whatever the test runner was started with.
class DefaultSigint {
 public:
  DefaultSigint() {
    struct sigaction action {};
    action.sa_handler = SIG_DFL;
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, &saved_);
  }
  ~DefaultSigint() { sigaction(SIGINT, &saved_, nullptr); }

 private:
  struct sigaction saved_ {};
};

TEST(Trainer, SigintStopsAfterSavingAndResumes) {
  DefaultSigint default_sigint;
  Pipeline straight;
  straight.fit(quiet(temp_dir("sig_straight"), 2));
  std::string dir = temp_dir("sigint");
  struct sigaction before {};
  sigaction(SIGINT, nullptr, &before);
  {
    Pipeline first;
    TrainOptions o = quiet(dir, 2);
    o.on_step = [](const StepInfo& s) {
      if (s.step == 3) std::raise(SIGINT);  // as Ctrl-C during step 3
    };
    TrainResult r = first.fit(o);
    EXPECT_TRUE(r.stopped_by_signal);
    EXPECT_EQ(r.steps, 3);
    CheckpointMeta m = read_checkpoint_meta(dir + "/last.h5");
    EXPECT_EQ(m.step, 3);
    EXPECT_EQ(m.epoch, 0);
    EXPECT_EQ(m.train_state.at("batch_in_epoch"), "3");
  }
  struct sigaction after {};
  sigaction(SIGINT, nullptr, &after);
  EXPECT_EQ(after.sa_handler, before.sa_handler);  // fit put the previous handler back
  Pipeline second;
  TrainOptions o = quiet(dir, 2);
  o.resume = true;
  second.fit(o);
  EXPECT_EQ(values(*second.net), values(*straight.net));
}

TEST(Trainer, ResumeCountsTheBatchesTheLoaderSkipped) {
  // 24 images, batch 5 in order: batches 0, 2, 3, 4 arrive (batch 1 is unreadable). A stop after the step on batch
  // 2 must resume at batch 3 - counting the delivered batches instead would train batch 2 twice.
  auto run = [](const std::string& dir, std::int64_t max_steps, bool resume, int accumulate) {
    auto net = per_example_net(8);
    Loader train(std::make_shared<BandsWithUnreadable>(5, 9), loader_options(5, false));
    SGD opt(net->parameters(), SGDOptions{.lr = 0.1f, .momentum = 0.9f});
    TrainOptions o = quiet(dir, 2);
    o.max_steps = max_steps, o.resume = resume, o.accumulate = accumulate;
    TrainResult r = fit(*net, opt, train, nullptr, o);
    return std::make_pair(r.steps, values(*net));
  };
  for (int accumulate : {1, 2}) {
    const auto [steps, straight] = run(temp_dir("holes_straight"), 0, false, accumulate);
    EXPECT_EQ(steps, accumulate == 1 ? 8 : 4);  // 4 batches per epoch; in pairs: (0,2), (3,4)
    for (std::int64_t stop = 1; stop < steps; ++stop) {
      const std::string dir = temp_dir("holes_" + std::to_string(accumulate) + "_" + std::to_string(stop));
      run(dir, stop, false, accumulate);
      const auto [resumed_steps, resumed] = run(dir, 0, true, accumulate);
      EXPECT_EQ(resumed_steps, steps) << "accumulate " << accumulate << ", stopped after step " << stop;
      EXPECT_EQ(resumed, straight) << "accumulate " << accumulate << ", stopped after step " << stop;
    }
  }
}

TEST(Trainer, GradientAccumulationResumesBitExactAtItsSteps) {
  // Batches 5,5,5,5,4 in groups of 2: steps after batches 2, 4 and 5 of each epoch. Stopped after step 1 (mid-epoch),
  // step 3 (the epoch's last batch) and step 4, resumed: the same weights as a straight run, dropout and BatchNorm
  // included.
  auto run = [](Pipeline& p, const std::string& dir, std::int64_t max_steps, bool resume) {
    TrainOptions o = quiet(dir, 3);
    o.accumulate = 2;
    o.max_steps = max_steps;
    o.resume = resume;
    return p.fit(o);
  };
  Pipeline straight;
  EXPECT_EQ(run(straight, temp_dir("accumulate_straight"), 0, false).steps, 9);
  for (std::int64_t stop : {1, 3, 4}) {
    const std::string dir = temp_dir("accumulate_resume" + std::to_string(stop));
    {
      Pipeline first;
      run(first, dir, stop, false);
      CheckpointMeta m = read_checkpoint_meta(dir + "/last.h5");
      EXPECT_EQ(m.step, stop);
      EXPECT_EQ(m.train_state.at("batch_in_epoch"), stop % 3 == 0 ? "5" : std::to_string(2 * (stop % 3)));
    }
    Pipeline second(1234);
    EXPECT_EQ(run(second, dir, 0, true).steps, 9);
    EXPECT_EQ(values(*second.net), values(*straight.net)) << "stopped at step " << stop;
  }
}

TEST(Trainer, ResumeWithOtherSettingsIsRefusedBeforeAnythingChanges) {
  const std::string dir = temp_dir("settings");
  {
    Pipeline first;
    TrainOptions o = quiet(dir, 3);
    o.max_steps = 2;
    o.accumulate = 2;
    first.fit(o);
  }
  const std::string last = dir + "/last.h5";
  const CheckpointMeta meta = read_checkpoint_meta(last);
  EXPECT_EQ(meta.train_state.at("setting.accumulate"), "2");
  EXPECT_EQ(meta.train_state.at("setting.batch"), "5");
  EXPECT_EQ(meta.train_state.at("setting.train-examples"), "24");
  EXPECT_EQ(meta.train_state.at("setting.class-weights"), "none");
  const std::string bytes = file_bytes(last);
  auto refused = [&](const std::function<void(TrainOptions&)>& change, std::vector<std::string> message) {
    Pipeline second(1234);
    const auto before = values(*second.net);
    const float lr = second.opt.param_groups()[0].lr;
    TrainOptions o = quiet(dir, 3);
    o.accumulate = 2;
    o.resume = true;
    change(o);
    message.insert(message.begin(), "fit: cannot resume from '" + last + "': it was written by a run with other settings");
    expect_error([&] { second.fit(o); }, message);
    EXPECT_EQ(values(*second.net), before) << "the model changed before the refusal";
    EXPECT_EQ(second.opt.param_groups()[0].lr, lr) << "the schedule changed before the refusal";
    EXPECT_EQ(file_bytes(last), bytes);
  };
  refused([](TrainOptions& o) { o.accumulate = 3; }, {"\n  accumulate: 2 in the checkpoint, 3 now"});
  refused([](TrainOptions& o) { o.epochs = 4; }, {"\n  epochs: 3 in the checkpoint, 4 now"});
  refused([](TrainOptions& o) { o.class_weights = {1.f, 0.5f, 2.f}; o.label_smoothing = 0.1f; },
          {"\n  class-weights: none in the checkpoint, 1,0.5,2 now", "\n  label-smoothing: 0 in the checkpoint, 0.1 now",
           "resume with the checkpoint's settings, or start a new run from its weights"});
  {  // the loader's batch size
    auto net = small_net(3, true);
    Loader train(std::make_shared<Bands>(8, 3, 8, 1), loader_options(6, true));
    SGD opt(net->parameters(), SGDOptions{.lr = 0.05f});
    TrainOptions o = quiet(dir, 3);
    o.accumulate = 2, o.resume = true;
    expect_error([&] { fit(*net, opt, train, nullptr, o); }, {"\n  batch: 5 in the checkpoint, 6 now"});
    Loader other(std::make_shared<Bands>(9, 3, 8, 1), loader_options(5, true));  // other data: 27 images
    expect_error([&] { fit(*net, opt, other, nullptr, o); }, {"\n  train-examples: 24 in the checkpoint, 27 now"});
  }
  // What is not a setting may change: the resumed run ends where a straight one does.
  Pipeline straight;
  TrainOptions so = quiet(temp_dir("settings_straight"), 3);
  so.accumulate = 2;
  straight.fit(so);
  Pipeline second(1234);
  TrainOptions o = quiet(dir, 3);
  o.accumulate = 2, o.resume = true, o.max_steps = 0, o.keep_best = false, o.grad_check_every = 1;
  o.checkpoint.train_state["setting.optimizer"] = "sgd";  // a setting the checkpoint does not know: not compared
  EXPECT_EQ(second.fit(o).steps, 9);
  EXPECT_EQ(values(*second.net), values(*straight.net));
  // A checkpoint written before settings were recorded is not checked.
  std::map<std::string, std::string> state = read_checkpoint_meta(last).train_state;
  for (auto it = state.begin(); it != state.end();) it = it->first.rfind("setting.", 0) == 0 ? state.erase(it) : std::next(it);
  CheckpointMeta old = read_checkpoint_meta(last);
  old.train_state = state;
  save_checkpoint(dir + "/old.h5", *second.net, &second.opt, old);
  EXPECT_NO_THROW(check_resume_settings("fit", dir + "/old.h5", {{"batch", "99"}}));
  // Antialiased resizes: recorded by fit; a fit checkpoint without the record predates them; other checkpoints
  // (converted ImageNet weights) were trained with them.
  EXPECT_EQ(meta.train_state.at("setting.antialias"), "on");
  EXPECT_TRUE(trained_with_antialias(meta));
  EXPECT_FALSE(trained_with_antialias(old));
  EXPECT_TRUE(trained_with_antialias(CheckpointMeta{.arch = "resnet50", .train_state = {{"preprocess", "torch"}}}));
  // A long value (a weight per class) is shortened in the message.
  old.train_state["setting.class-weights"] = std::string(200, '1');
  save_checkpoint(dir + "/old.h5", *second.net, &second.opt, old);
  expect_error([&] { check_resume_settings("fit", dir + "/old.h5", {{"class-weights", "none"}}); },
               {"class-weights: " + std::string(60, '1') + "... (200 characters) in the checkpoint, none now"});
}

// Bands that raise SIGINT (as Ctrl-C would) while example `at` is read, once.
class BandsInterruptedAt : public Bands {
 public:
  explicit BandsInterruptedAt(std::int64_t at) : Bands(8, 3, 8, 1), at_(at) {}
  Example get(std::int64_t i) const override {
    if (i == at_ && !raised_.exchange(true)) std::raise(SIGINT);
    return Bands::get(i);
  }

 private:
  std::int64_t at_;
  mutable std::atomic<bool> raised_{false};
};

TEST(Trainer, CtrlCInsideAGroupStopsAfterTheGroupsStepAndResumesBitExact) {
  DefaultSigint default_sigint;
  // Batches 5,5,5,5,4 in order (decoded on the calling thread), groups of 3: Ctrl-C while batch 1 is read (example 7)
  // lets the group finish - batches 0-2, one step - and then stops with the position after batch 2.
  auto run = [](DatasetPtr data, const std::string& dir, bool resume) {
    auto net = per_example_net(10);
    LoaderOptions lo = loader_options(5, false);
    lo.workers = 0;
    Loader train(std::move(data), lo);
    SGD opt(net->parameters(), SGDOptions{.lr = 0.1f, .momentum = 0.9f});
    TrainOptions o = quiet(dir, 2);
    o.accumulate = 3, o.resume = resume;
    TrainResult r = fit(*net, opt, train, nullptr, o);
    return std::make_pair(r, values(*net));
  };
  const auto [straight_result, straight] = run(std::make_shared<Bands>(8, 3, 8, 1), temp_dir("group_sig_straight"), false);
  EXPECT_EQ(straight_result.steps, 4);
  const std::string dir = temp_dir("group_sig");
  const auto [stopped, unused] = run(std::make_shared<BandsInterruptedAt>(7), dir, false);
  EXPECT_TRUE(stopped.stopped_by_signal);
  EXPECT_EQ(stopped.steps, 1);
  const CheckpointMeta m = read_checkpoint_meta(dir + "/last.h5");
  EXPECT_EQ(m.step, 1);
  EXPECT_EQ(m.train_state.at("batch_in_epoch"), "3");
  const auto [resumed_result, resumed] = run(std::make_shared<Bands>(8, 3, 8, 1), dir, true);
  EXPECT_EQ(resumed_result.steps, 4);
  EXPECT_EQ(resumed, straight);
}

// ---- checkpoint writes that fail -------------------------------------------------------------------------------

// Under a 256 KiB file size limit (a full disk, tests/check.h).
TEST(Trainer, FullDiskDuringACheckpointWriteLeavesThePreviousOneLoadable) {
  std::string dir = temp_dir("fullness");
  auto small = small_net(1, false);
  save_checkpoint(dir + "/last.h5", *small, nullptr, {.arch = "small_net", .step = 1});
  ModelOptions mo;
  mo.num_classes = 10;
  auto big = make_model("resnet18", mo);  // ~45 MB: far over the limit
  const int status = testing::exit_status_under_file_size_limit(256 * 1024, [&] {
    try {
      save_checkpoint(dir + "/last.h5", *big, nullptr, {.arch = "resnet18", .step = 2});
      return 3;  // it should not have fitted
    } catch (const Error& e) {
      const std::string m = e.message();
      return m.find("last.h5") != std::string::npos && m.find("failed") != std::string::npos ? 0 : 4;
    }
  });
  EXPECT_EQ(status, 0) << "3: the write succeeded, 4: the error did not name the file, < 0: a signal";
  EXPECT_EQ(testing::temporaries_beside(dir + "/last.h5"), std::vector<std::string>{});
  EXPECT_EQ(read_checkpoint_meta(dir + "/last.h5").step, 1);
  auto other = small_net(2, false);
  EXPECT_NO_THROW(load_checkpoint(dir + "/last.h5", *other, nullptr));
}

TEST(Trainer, KillingTheProcessDuringCheckpointWritesNeverBreaksTheFile) {
  std::string dir = temp_dir("killed");
  ModelOptions mo;
  mo.num_classes = 10;
  auto model = make_model("resnet18", mo);
  save_checkpoint(dir + "/last.h5", *model, nullptr, {.arch = "resnet18", .num_classes = 10, .step = 0});
  for (int round = 0; round < 3; ++round) {
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      for (std::int64_t step = 1;; ++step)
        save_checkpoint(dir + "/last.h5", *model, nullptr, {.arch = "resnet18", .num_classes = 10, .step = step});
    }
    ::usleep(150000 + 70000 * round);  // somewhere inside a write (each takes tens of milliseconds)
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    ASSERT_TRUE(WIFSIGNALED(status));
    remove_dead_temporaries(dir + "/last.h5");  // the dead writer's temporary, as the next writer removes it
    EXPECT_EQ(testing::temporaries_beside(dir + "/last.h5"), std::vector<std::string>{});
    auto back = make_model("resnet18", mo);
    EXPECT_NO_THROW(load_checkpoint(dir + "/last.h5", *back, nullptr)) << "round " << round;
    EXPECT_EQ(values(*back), values(*model));
  }
}

// One run per run directory (train/run_lock.h): while another process holds OUT's lock, a lock and a fit() into OUT
// are refused naming that process, before anything is written; a holder killed with SIGKILL blocks nobody after it;
// within one process the lock is re-entrant (graft finetune holds it around fit()); a link as the lock file is refused.
TEST(Trainer, ASecondRunIntoTheSameDirectoryIsRefusedWhileTheFirstHoldsIt) {
  const std::string dir = temp_dir("locked");
  int ready[2], release[2];
  ASSERT_EQ(pipe(ready), 0);
  ASSERT_EQ(pipe(release), 0);
  const pid_t holder = fork();
  ASSERT_GE(holder, 0);
  if (holder == 0) {  // never returns into the test runner, whatever happens
    close(ready[0]), close(release[1]);
    try {
      RunDirectoryLock lock(dir, "holder");
      char byte = 1;
      if (write(ready[1], &byte, 1) != 1) _exit(2);
      while (read(release[0], &byte, 1) > 0) {  // until the parent kills it
      }
    } catch (...) {
      _exit(3);
    }
    _exit(0);
  }
  close(ready[1]), close(release[0]);
  char byte = 0;
  if (read(ready[0], &byte, 1) != 1) {  // the holder ended without taking the lock
    int status = 0;
    waitpid(holder, &status, 0);
    FAIL() << "the lock holder exited with status " << WEXITSTATUS(status);
  }
  const std::string in_use = "is in use by process " + std::to_string(holder);
  testing::expect_error([&] { RunDirectoryLock again(dir, "second"); }, {"second: the run directory", in_use});
  Pipeline run;
  testing::expect_error([&] { run.fit(quiet(dir, 1)); }, {"fit: the run directory", in_use});
  for (const char* f : {"last.h5", "best.h5", "log.csv", "curves.png"}) EXPECT_FALSE(fs::exists(dir + "/" + f)) << f;

  kill(holder, SIGKILL);
  int status = 0;
  waitpid(holder, &status, 0);
  close(ready[0]), close(release[1]);
  {
    const RunDirectoryLock outer(dir, "finetune");  // as graft finetune holds it around fit()
    std::ifstream pid_file(dir + "/" + RunDirectoryLock::kFileName);
    std::string pid;
    pid_file >> pid;
    EXPECT_EQ(pid, std::to_string(getpid()));
    EXPECT_EQ(run.fit(quiet(dir, 1)).epochs_done, 1);
  }
  EXPECT_TRUE(fs::exists(dir + "/last.h5"));

  const std::string linked = temp_dir("locked_link");
  fs::create_symlink(dir + "/log.csv", linked + "/" + RunDirectoryLock::kFileName);
  testing::expect_error([&] { RunDirectoryLock lock(linked, "fit"); }, {"lock file", "symbolic link"});
}

}  // namespace
}  // namespace graft
