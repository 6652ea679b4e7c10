// Matrix products on OpenBLAS sgemm: matmul (2-D, N-D x 2-D folded into one GEMM, and
// batched N-D x N-D with equal batch dims), optional transposes of the last two dims
// (no copies), and linear (x W^T + b, the bias fused into the GEMM's C).
#pragma once

#include "core/tensor.h"

namespace qilin {

// a: [..., M, K] (or [..., K, M] with trans_a), b: [K, N] or [..., K, N] (or [..., N, K]
// with trans_b). When b is 2-D, a's batch dims fold into M. Otherwise a and b have the
// same batch dims. Result: alpha * [..., M, N] (alpha folds a scale into the GEMM, e.g.
// attention's 1/sqrt(d), saving a pass).
Tensor matmul(const Tensor& a, const Tensor& b, bool trans_a = false, bool trans_b = false,
              float alpha = 1.0f);

// y = x W^T + b. x: [..., in], weight: [out, in], bias: [out] or undefined. y: [..., out].
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias);

}  // namespace qilin
