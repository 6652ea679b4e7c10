// Learning-rate schedules as pure functions of the step: the trainer calls
// optimizer.set_lr(schedule.lr_at(step)) before each update, so a resumed run gets the same
// rates without any schedule state in the checkpoint.
//
// "step" is whatever unit the caller counts in (optimizer updates in qilin's trainer); the
// schedule's own lengths (step_size, warmup_steps, total_steps) are in that same unit.
#pragma once

#include <cstdint>

namespace qilin {

enum class LrScheduleKind {
  kConstant,  // base_lr always
  kStep,      // torch.optim.lr_scheduler.StepLR: base_lr * gamma^(step / step_size)
  kCosine,    // linear warm-up, then half a cosine from base_lr down to min_lr
};

struct LrSchedule {
  LrScheduleKind kind = LrScheduleKind::kConstant;
  double base_lr = 1e-3;

  // kStep
  int64_t step_size = 1;  // > 0
  double gamma = 0.1;

  // kCosine: timm's CosineLRScheduler (t_in_epochs=False, one cycle, no noise). For
  // step < warmup_steps: warmup_lr + step * (base_lr - warmup_lr) / warmup_steps.
  // After: min_lr + (base_lr - min_lr) * (1 + cos(pi * t / T)) / 2, where with
  // warmup_prefix (default) t = step - warmup_steps, T = total_steps - warmup_steps (the
  // cosine starts at base_lr when warm-up ends and spans the remaining steps), and without
  // it t = step, T = total_steps (timm's default: warm-up overrides the cosine's start).
  // From step >= total_steps on: min_lr.
  int64_t warmup_steps = 0;
  double warmup_lr = 0.0;
  int64_t total_steps = 0;  // > warmup_steps
  double min_lr = 0.0;
  bool warmup_prefix = true;

  // Throws qilin::Error naming the bad field when the schedule is inconsistent.
  void validate() const;
  // The learning rate for `step` (>= 0). Computed in double, returned as float.
  float lr_at(int64_t step) const;
};

}  // namespace qilin
