// CPU kernels of the interpolated layers (DESIGN.md §4.1): elementwise table lookup forward
// and backward for every table kind of core/interp_view.h, I-BERT's i-GELU, and the
// interpolated softmax. Vectorized with Highway (runtime dispatch AVX2 / AVX-512: in-register
// permutes for small uniform tables, gathers for large ones), OpenMP across cores.
//
// Contract: every output element equals the scalar reference of core/interp_view.h bit for
// bit (interp_eval, interp_slope with std::fma), whatever the vector width or thread count.
// The signatures are backend-neutral (pointers, sizes, views); CUDA provides the same.
#pragma once

#include <cstdint>

#include "core/interp_view.h"

namespace qilin::kernels::cpu {

// y[i] = interp_eval(t, x[i]). (writes; y may alias x)
void interp_forward(const InterpTableView& t, const float* x, float* y, int64_t n);

// dx[i] = dy[i] * interp_slope(t, x[i])  (grad: slope)
// dx[i] = dy[i] * interp_eval(dt, x[i])  (grad: table; dt interpolates f')
// (writes, or += when accumulate as dx = fma(dy, slope, dx): one rounding; dx may alias dy
// when !accumulate)
void interp_backward_slope(const InterpTableView& t, const float* x, const float* dy, float* dx,
                           int64_t n, bool accumulate);
void interp_backward_table(const InterpTableView& dt, const float* x, const float* dy, float* dx,
                           int64_t n, bool accumulate);

// I-BERT i-GELU (core/interp.h igelu, igelu_derivative), float32. (writes / writes or +=)
void igelu_forward(const float* x, float* y, int64_t n);
void igelu_backward(const float* x, const float* dy, float* dx, int64_t n, bool accumulate);

// Softmax over rows of `cols` with the table exp (t interpolates exp on a domain [a, 0]):
// e_j = interp_eval(t, x_j - max_j x), y_j = e_j / sum_j e_j. (writes y, and the row stats
// when `stats` is given: InterpSoftmaxRowStats, core/interp_view.h)
void interp_softmax_forward(const InterpTableView& t, const float* x, float* y, int64_t rows,
                            int64_t cols, const InterpSoftmaxRowStats* stats = nullptr);
// The exact derivative of interp_softmax_forward (grad: slope): with s_j = x_j - max,
// g_j = k(s_j) (gy_j - sum_i gy_i y_i) / sum_i e_i, then gx_j = g_j, minus sum_i g_i at
// the first index of the row's maximum (the max's own dependence on x; zero for the exact
// exp, not for a table). `stats`: the forward's row stats of this x (then max and sum are
// not recomputed; the result is the same bit for bit), or null. For grad: table, the
// ordinary softmax backward from y is used (kernels/cpu/softmax.h). (writes, or += when
// accumulate)
void interp_softmax_backward_slope(const InterpTableView& t, const float* x, const float* y,
                                   const float* gy, float* gx, int64_t rows, int64_t cols,
                                   bool accumulate, const InterpSoftmaxRowStats* stats = nullptr);

}  // namespace qilin::kernels::cpu
