// Broadcast geometry shared by the elementwise kernels of every backend: the output shape
// collapsed to at most kMaxBroadcastDims dims, with each input's element strides (0 along
// broadcast dims). Built once by the op front-end, so kernels see only sizes and strides.
#pragma once

#include <cstdint>

#include "core/shape.h"

namespace qilin {

constexpr int kMaxBroadcastDims = 8;

struct BroadcastGeometry {
  int ndim = 0;
  int64_t numel = 0;
  int64_t shape[kMaxBroadcastDims] = {};
  int64_t stride_a[kMaxBroadcastDims] = {};
  int64_t stride_b[kMaxBroadcastDims] = {};
  bool same_shape() const;  // both inputs dense and of the output's shape
};

// Geometry of out = f(a, b) for out_shape = broadcast(a_shape, b_shape); adjacent dims that
// broadcast the same way are merged (e.g. [8,16,64] + [64] -> [128, 64] with b stride (0,1)).
BroadcastGeometry make_broadcast_geometry(const Shape& out_shape, const Shape& a_shape,
                                          const Shape& b_shape);

}  // namespace qilin
