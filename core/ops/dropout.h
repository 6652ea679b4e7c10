// Inverted dropout: in training, zero each element with probability p and scale the rest
// by 1/(1-p); identity in eval or when p == 0. The mask comes from a Philox Generator.
#pragma once

#include "core/random.h"
#include "core/tensor.h"

namespace qilin {

Tensor dropout(const Tensor& x, float p, bool training, Generator& gen);

}  // namespace qilin
