// CPU kernels for broadcasting binary arithmetic and for reducing a gradient back to a
// broadcast input's shape. Plain functions over pointers; geometry from core/broadcast.h.
#pragma once

#include <cstdint>

#include "core/broadcast.h"
#include "core/op_types.h"

namespace qilin::kernels::cpu {

// out[i] = a[ia] op b[ib] over the broadcast geometry; out is dense. (writes)
void binary_forward(BinaryOp op, float* out, const float* a, const float* b,
                    const BroadcastGeometry& geom);

// out[i] = a[i] op scalar, or scalar op a[i] when `scalar_first`. (writes)
void binary_scalar_forward(BinaryOp op, float* out, const float* a, float scalar,
                           bool scalar_first, int64_t n);

// out = sum of `in` (dense, of the geometry's full shape) over the dims where stride_a is 0;
// `out` is dense in the remaining dims (strides stride_a). (writes)
void reduce_to_forward(float* out, const float* in, const BroadcastGeometry& geom);

// a[i] = a[i] * alpha + b[i] * beta, in place (axpby). (writes a)
void axpby(float* a, const float* b, float alpha, float beta, int64_t n);

}  // namespace qilin::kernels::cpu
