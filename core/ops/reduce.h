// Reductions over one dim or all elements: sum, mean, max (values; the gradient flows to
// the first maximum) and argmax (no gradient).
#pragma once

#include "core/tensor.h"

namespace qilin {

Tensor sum(const Tensor& x);  // all elements -> scalar []
Tensor sum(const Tensor& x, int64_t dim, bool keepdim = false);
Tensor mean(const Tensor& x);
Tensor mean(const Tensor& x, int64_t dim, bool keepdim = false);
Tensor max(const Tensor& x, int64_t dim, bool keepdim = false);
Tensor argmax(const Tensor& x, int64_t dim, bool keepdim = false);  // int64

}  // namespace qilin
