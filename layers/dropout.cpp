#include "layers/dropout.h"

#include "core/ops/dropout.h"

namespace qilin {

Dropout::Dropout(float p, std::shared_ptr<Generator> generator)
    : p_(p), generator_(std::move(generator)) {
  QILIN_CHECK(p >= 0.0f && p < 1.0f, "Dropout: p = ", p, " is outside [0, 1)");
  QILIN_CHECK(generator_ != nullptr || p == 0.0f, "Dropout(p ", p, "): no generator");
}

Dropout::Dropout(float p, uint64_t seed) : Dropout(p, std::make_shared<Generator>(seed)) {}

Tensor Dropout::forward(const Tensor& x) {
  // No draw at p = 0 or in eval: the stream only advances when masks are made.
  if (p_ == 0.0f || !is_training()) return x;
  return dropout(x, p_, true, *generator_);
}

std::string Dropout::describe() const { return str_cat("Dropout(p ", p_, ")"); }

}  // namespace qilin
