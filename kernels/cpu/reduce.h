// CPU reduction kernels. Every reduction over one dim sees x as [outer, dim, inner]
// (row-major, dense): outer = product of the sizes before the dim, inner = after it.
// Sums accumulate in double (one double accumulator per SIMD lane or per output column),
// so a sum of n float32 terms carries ~n * 1e-16 relative rounding, not ~n * 6e-8, before
// the single final rounding to float32.
#pragma once

#include <cstdint>

namespace qilin::kernels::cpu {

// out[0] = scale * sum of x[0, n). (writes)
void sum_all(float* out, const float* x, int64_t n, float scale);

// out[o, i] = scale * sum_d x[o, d, i]. (writes)
void sum_dim(float* out, const float* x, int64_t outer, int64_t dim, int64_t inner, float scale);

// dx[o, d, i] = scale * gy[o, i]: the backward of sum_dim (and of sum_all with outer =
// inner = 1). (writes)
void sum_dim_backward(float* dx, const float* gy, int64_t outer, int64_t dim, int64_t inner,
                      float scale);

// values[o, i] = max_d x[o, d, i], index[o, i] = the first d holding it. NaN counts as the
// largest value (PyTorch propagates NaN). dim must be > 0. (writes)
void max_dim(float* values, int64_t* index, const float* x, int64_t outer, int64_t dim,
             int64_t inner);

// dx[o, d, i] = gy[o, i] where d == index[o, i], else 0. (writes)
void max_dim_backward(float* dx, const float* gy, const int64_t* index, int64_t outer, int64_t dim,
                      int64_t inner);

}  // namespace qilin::kernels::cpu
