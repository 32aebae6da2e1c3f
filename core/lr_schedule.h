// Learning-rate schedules. A schedule remembers each parameter group's base lr (the group lr when the schedule
// is made) and a position `last_step`; it writes  group.lr = base_lr * factor(last_step)  into the optimizer.
// This is the closed form of torch.optim.lr_scheduler: like torch, making a schedule applies position 0, and each
// step() advances one position, so the usual loop is  opt.step(); schedule.step();  (optimizer step k uses
// factor(k)). A lr changed by hand is overwritten at the next step() (torch's chained form would scale it).
// For checkpoint resume, save last_step() and call set_last_step(saved) on a schedule made over an optimizer
// with the same base lrs. The schedule keeps a pointer to the optimizer: it must not outlive it.
//
//   StepLR:       factor(s) = gamma^floor(s / step_size)                         (= torch StepLR)
//   MultiStepLR:  factor(s) = gamma^(number of milestones <= s)                  (= torch MultiStepLR; a
//                 milestone listed twice counts twice)
//   CosineWithWarmup (W warmup_steps, T total_steps, r min_lr_ratio, f0 warmup_start_factor):
//     s < W:       factor = f0 + (1 - f0) * s / W                   linear warm-up from f0 to 1
//     W <= s <= T: factor = r + (1 - r) * (1 + cos(pi * (s - W) / (T - W))) / 2       cosine from 1 down to r
//     s > T:       factor = r
#pragma once
#include <cstdint>
#include <vector>

#include "core/optim.h"

namespace graft {

class LRSchedule {
 public:
  virtual ~LRSchedule() = default;
  LRSchedule(const LRSchedule&) = delete;
  LRSchedule& operator=(const LRSchedule&) = delete;

  // Advances one position and writes the group lrs.
  void step();
  std::int64_t last_step() const { return last_step_; }
  // Moves to position `step` (>= 0) and writes the group lrs.
  void set_last_step(std::int64_t step);
  const std::vector<float>& base_lrs() const { return base_lrs_; }
  // The lr multiplier at position `step` (>= 0).
  virtual double factor(std::int64_t step) const = 0;

 protected:
  // Records the optimizer's group lrs as the base lrs. Derived constructors finish with set_last_step(0).
  LRSchedule(Optimizer& optimizer, const char* name);
  const char* name_;

 private:
  Optimizer* optimizer_;
  std::vector<float> base_lrs_;
  std::int64_t last_step_ = 0;
};

class StepLR : public LRSchedule {
 public:
  StepLR(Optimizer& optimizer, std::int64_t step_size, float gamma = 0.1f);
  double factor(std::int64_t step) const override;

 private:
  std::int64_t step_size_;
  double gamma_;
};

class MultiStepLR : public LRSchedule {
 public:
  MultiStepLR(Optimizer& optimizer, std::vector<std::int64_t> milestones, float gamma = 0.1f);
  double factor(std::int64_t step) const override;

 private:
  std::vector<std::int64_t> milestones_;  // sorted
  double gamma_;
};

class CosineWithWarmup : public LRSchedule {
 public:
  CosineWithWarmup(Optimizer& optimizer, std::int64_t warmup_steps, std::int64_t total_steps,
                   float min_lr_ratio = 0.f, float warmup_start_factor = 0.f);
  double factor(std::int64_t step) const override;

 private:
  std::int64_t warmup_, total_;
  double min_ratio_, start_factor_;
};

}  // namespace graft
