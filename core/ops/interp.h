// Interpolated activations and softmax as autograd ops (DESIGN.md §4.1): the forward runs
// the table's method (a table lookup, I-BERT's i-GELU, or the native function), the backward
// the table's grad mode (`slope`: k of the piece, the exact derivative of the forward;
// `table`: a second table interpolating f').
#pragma once

#include <memory>

#include "core/interp.h"
#include "core/tensor.h"

namespace qilin {

// y = f~(x) elementwise for table->spec().fn (sigmoid, tanh, gelu, silu or exp).
Tensor interp_activation(const Tensor& x, std::shared_ptr<const InterpTable> table);

// Softmax over the last dim with the table exp (table->spec().fn == kExp): e = exp~(x - max),
// y = e / sum e. Backward: `slope` is the exact derivative of this forward; `table` the usual
// softmax backward from y (the table exp treated as exact). Method native: softmax(x).
Tensor interp_softmax(const Tensor& x, std::shared_ptr<const InterpTable> table);

}  // namespace qilin
