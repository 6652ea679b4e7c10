// Softmax and log-softmax over the last dim (numerically stable: x - max).
#pragma once

#include "core/tensor.h"

namespace qilin {

Tensor softmax(const Tensor& x);
Tensor log_softmax(const Tensor& x);

}  // namespace qilin
