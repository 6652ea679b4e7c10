// Dropout (torch.nn.Dropout): inverted dropout in training, identity in eval or at p = 0,
// over core/ops/dropout.h. The mask stream comes from a Philox Generator the layer owns
// (seeded) or shares with other layers of a model (one stream per model, so a checkpoint
// saves one (seed, offset) and a resumed run draws the same masks).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "core/random.h"
#include "layers/module.h"

namespace qilin {

class Dropout : public Layer {
 public:
  // Shares `generator` (must be non-null when p > 0).
  Dropout(float p, std::shared_ptr<Generator> generator);
  // Owns a Generator seeded with `seed`.
  Dropout(float p, uint64_t seed);
  Tensor forward(const Tensor& x) override;
  std::string describe() const override;  // "Dropout(p 0.1)"

  float p() const { return p_; }
  const std::shared_ptr<Generator>& generator() const { return generator_; }

 private:
  float p_;
  std::shared_ptr<Generator> generator_;
};

}  // namespace qilin
