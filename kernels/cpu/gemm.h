// CPU matrix products: single and strided-batched SGEMM on row-major float32 matrices, with
// the BLAS transpose flags (no transposed copies), plus the row broadcast that seeds C with a
// bias. The signatures are backend-neutral (sizes, leading dims, element strides); the CUDA
// backend provides the same functions on cuBLAS. OpenBLAS stays behind this header.
#pragma once

#include <cstdint>
#include <string>

namespace qilin::kernels::cpu {

// C[m, n] = alpha * op(A) op(B) + beta * C, row-major. op(A) is [m, k]: A is [m, k] (lda >= k)
// or, with trans_a, [k, m] (lda >= m); likewise op(B) is [k, n] from B [k, n] or, with
// trans_b, [n, k]. beta == 0 writes C (its old contents, even NaN, are ignored); otherwise
// C is accumulated. (writes / +=)
void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
          int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc);

// `batch` independent gemms; matrix i of A starts at a + i * stride_a (likewise B, C). A
// stride of 0 shares one matrix across the batch (not allowed for C). (writes / +=)
void gemm_strided_batched(bool trans_a, bool trans_b, int64_t batch, int64_t m, int64_t n,
                          int64_t k, float alpha, const float* a, int64_t lda, int64_t stride_a,
                          const float* b, int64_t ldb, int64_t stride_b, float beta, float* c,
                          int64_t ldc, int64_t stride_c);

// c[i, :] = row for i in [0, m); c is dense [m, n]. Seeds C with a bias before a beta = 1
// gemm. (writes)
void broadcast_rows(float* c, const float* row, int64_t m, int64_t n);

// What runs the products, e.g. "OpenBLAS 0.3.21 SkylakeX (forced: CPU model not known to
// this OpenBLAS)", for run summaries and benchmark logs.
std::string gemm_backend();

}  // namespace qilin::kernels::cpu
