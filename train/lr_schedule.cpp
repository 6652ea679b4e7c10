// Learning-rate schedules (see lr_schedule.h for the formulas and their sources).
#include "train/lr_schedule.h"

#include <cmath>

#include "core/error.h"

namespace qilin {
namespace {
constexpr double kPi = 3.14159265358979323846;
}  // namespace

void LrSchedule::validate() const {
  QILIN_CHECK(std::isfinite(base_lr) && base_lr >= 0, "lr schedule: base_lr must be >= 0, got ", base_lr);
  switch (kind) {
    case LrScheduleKind::kConstant: break;
    case LrScheduleKind::kStep:
      QILIN_CHECK(step_size > 0, "lr schedule: step_size must be > 0, got ", step_size);
      QILIN_CHECK(std::isfinite(gamma) && gamma >= 0, "lr schedule: gamma must be >= 0, got ", gamma);
      break;
    case LrScheduleKind::kCosine:
      QILIN_CHECK(warmup_steps >= 0, "lr schedule: warmup_steps must be >= 0, got ", warmup_steps);
      QILIN_CHECK(total_steps > warmup_steps, "lr schedule: total_steps (", total_steps,
                  ") must exceed warmup_steps (", warmup_steps, ")");
      QILIN_CHECK(std::isfinite(warmup_lr) && warmup_lr >= 0, "lr schedule: warmup_lr must be >= 0, got ",
                  warmup_lr);
      QILIN_CHECK(std::isfinite(min_lr) && min_lr >= 0, "lr schedule: min_lr must be >= 0, got ", min_lr);
      break;
  }
}

float LrSchedule::lr_at(int64_t step) const {
  QILIN_CHECK(step >= 0, "lr schedule: negative step ", step);
  switch (kind) {
    case LrScheduleKind::kConstant: return static_cast<float>(base_lr);
    case LrScheduleKind::kStep: {
      QILIN_CHECK(step_size > 0, "lr schedule: step_size must be > 0, got ", step_size);
      return static_cast<float>(base_lr * std::pow(gamma, static_cast<double>(step / step_size)));
    }
    case LrScheduleKind::kCosine: {
      QILIN_CHECK(total_steps > warmup_steps && warmup_steps >= 0, "lr schedule: total_steps (",
                  total_steps, ") must exceed warmup_steps (", warmup_steps, ")");
      if (step < warmup_steps) {
        // timm: warmup_lr_init + t * (base - warmup_lr_init) / warmup_t.
        return static_cast<float>(warmup_lr + static_cast<double>(step) * (base_lr - warmup_lr) /
                                                  static_cast<double>(warmup_steps));
      }
      if (step >= total_steps) return static_cast<float>(min_lr);
      const int64_t t = warmup_prefix ? step - warmup_steps : step;
      const int64_t period = warmup_prefix ? total_steps - warmup_steps : total_steps;
      const double cosine = std::cos(kPi * static_cast<double>(t) / static_cast<double>(period));
      return static_cast<float>(min_lr + 0.5 * (base_lr - min_lr) * (1.0 + cosine));
    }
  }
  return static_cast<float>(base_lr);
}

}  // namespace qilin
