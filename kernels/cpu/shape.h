// CPU layout kernels: permute copies, strided range copies along one dim (slice, concat and
// their backwards), broadcast copies (expand), and index_select/gather with their
// scatter-add backwards. Copies move raw elements of `elem_size` bytes (1, 4 or 8), so they
// serve every dtype; index tensors are int32 or int64. Views of one dim are [outer, dim,
// inner], row-major and dense.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/broadcast.h"
#include "core/dtype.h"
#include "core/shape.h"

namespace qilin::kernels::cpu {

// out = x with its dims reordered: out dim k is x dim perm[k]; out is dense. (writes)
void permute_copy(void* out, const void* x, const Shape& x_shape, const std::vector<int64_t>& perm,
                  size_t elem_size);

// out[o, out_start + j * out_step, i] = x[o, x_start + j * x_step, i] for j in [0, count):
// slice (out_step 1), the backward of slice into zeros (x_step 1), concat (one call per
// input) and its backward. out has out_dim entries along the dim, x has x_dim. (writes the
// addressed entries only)
void copy_dim_range(void* out, int64_t out_dim, int64_t out_start, int64_t out_step, const void* x,
                    int64_t x_dim, int64_t x_start, int64_t x_step, int64_t outer, int64_t count,
                    int64_t inner, size_t elem_size);

// out = x broadcast to the geometry's shape (make_broadcast_geometry(out, x, x): stride_a is
// x's). (writes)
void expand_copy(void* out, const void* x, const BroadcastGeometry& geom, size_t elem_size);

// Throws qilin::Error naming `op`, the first index outside [0, size) and the size.
void check_indices(const void* index, DType index_dtype, int64_t n, int64_t size, const char* op);

// out[o, j, i] = x[o, index[j], i], j in [0, n_index). (writes)
void index_select(void* out, const void* x, const void* index, DType index_dtype, int64_t n_index,
                  int64_t outer, int64_t x_dim, int64_t inner, size_t elem_size);

// dx[o, index[j], i] += gy[o, j, i]; repeated indices add up. (+=)
void index_select_backward(float* dx, const float* gy, const void* index, DType index_dtype,
                           int64_t n_index, int64_t outer, int64_t x_dim, int64_t inner);

// out[o, j, i] = x[o, index[o, j, i], i]; index is [outer, index_dim, inner]. (writes)
void gather(void* out, const void* x, const void* index, DType index_dtype, int64_t outer,
            int64_t x_dim, int64_t index_dim, int64_t inner, size_t elem_size);

// dx[o, index[o, j, i], i] += gy[o, j, i]. (+=)
void gather_backward(float* dx, const float* gy, const void* index, DType index_dtype,
                     int64_t outer, int64_t x_dim, int64_t index_dim, int64_t inner);

}  // namespace qilin::kernels::cpu
