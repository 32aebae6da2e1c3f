// Learning-rate schedules (formulas in core/lr_schedule.h). Factors are computed in double, like PyTorch's
// Python floats, and rounded to float once when written into the group.
#include "core/lr_schedule.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "core/error.h"

namespace graft {

LRSchedule::LRSchedule(Optimizer& optimizer, const char* name) : name_(name), optimizer_(&optimizer) {
  for (const ParamGroup& group : optimizer.param_groups()) base_lrs_.push_back(group.lr);
}

void LRSchedule::step() { set_last_step(last_step_ + 1); }

void LRSchedule::set_last_step(std::int64_t step) {
  GRAFT_CHECK(step >= 0, name_, ": set_last_step: position ", step, " is negative");
  auto& groups = optimizer_->param_groups();
  GRAFT_CHECK(groups.size() == base_lrs_.size(), name_, ": the optimizer has ", groups.size(),
              " parameter groups, the schedule was made for ", base_lrs_.size());
  const double f = factor(step);
  for (std::size_t g = 0; g < groups.size(); ++g) groups[g].lr = static_cast<float>(base_lrs_[g] * f);
  last_step_ = step;
}

StepLR::StepLR(Optimizer& optimizer, std::int64_t step_size, float gamma)
    : LRSchedule(optimizer, "StepLR"), step_size_(step_size), gamma_(gamma) {
  GRAFT_CHECK(step_size >= 1, "StepLR: step_size must be >= 1, got ", step_size);
  GRAFT_CHECK(std::isfinite(gamma) && gamma >= 0.f, "StepLR: gamma must be finite and >= 0, got ", gamma);
  set_last_step(0);
}

double StepLR::factor(std::int64_t step) const {
  return std::pow(gamma_, static_cast<double>(step / step_size_));
}

MultiStepLR::MultiStepLR(Optimizer& optimizer, std::vector<std::int64_t> milestones, float gamma)
    : LRSchedule(optimizer, "MultiStepLR"), milestones_(std::move(milestones)), gamma_(gamma) {
  for (std::int64_t m : milestones_) GRAFT_CHECK(m >= 0, "MultiStepLR: milestone ", m, " is negative");
  GRAFT_CHECK(std::isfinite(gamma) && gamma >= 0.f, "MultiStepLR: gamma must be finite and >= 0, got ", gamma);
  std::sort(milestones_.begin(), milestones_.end());
  set_last_step(0);
}

double MultiStepLR::factor(std::int64_t step) const {
  const auto passed = std::upper_bound(milestones_.begin(), milestones_.end(), step) - milestones_.begin();
  return std::pow(gamma_, static_cast<double>(passed));
}

CosineWithWarmup::CosineWithWarmup(Optimizer& optimizer, std::int64_t warmup_steps, std::int64_t total_steps,
                                   float min_lr_ratio, float warmup_start_factor)
    : LRSchedule(optimizer, "CosineWithWarmup"),
      warmup_(warmup_steps),
      total_(total_steps),
      min_ratio_(min_lr_ratio),
      start_factor_(warmup_start_factor) {
  GRAFT_CHECK(warmup_steps >= 0 && total_steps > warmup_steps, "CosineWithWarmup: needs 0 <= warmup_steps < ",
              "total_steps, got warmup_steps ", warmup_steps, ", total_steps ", total_steps);
  GRAFT_CHECK(min_lr_ratio >= 0.f && min_lr_ratio <= 1.f, "CosineWithWarmup: min_lr_ratio must be in [0, 1], got ",
              min_lr_ratio);
  GRAFT_CHECK(warmup_start_factor >= 0.f && warmup_start_factor <= 1.f,
              "CosineWithWarmup: warmup_start_factor must be in [0, 1], got ", warmup_start_factor);
  set_last_step(0);
}

double CosineWithWarmup::factor(std::int64_t step) const {
  if (step < warmup_)
    return start_factor_ + (1.0 - start_factor_) * static_cast<double>(step) / static_cast<double>(warmup_);
  if (step > total_) return min_ratio_;
  const double progress = static_cast<double>(step - warmup_) / static_cast<double>(total_ - warmup_);
  return min_ratio_ + (1.0 - min_ratio_) * 0.5 * (1.0 + std::cos(std::numbers::pi * progress));
}

}  // namespace graft
