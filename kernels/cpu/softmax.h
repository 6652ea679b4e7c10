// CPU kernels for softmax and log-softmax over the last dim, and the fused cross-entropy
// losses (log-softmax + NLL in one pass over the logits). Rows are dense: x is [rows, cols].
// Every output is written (=). Parallel over rows; each row is a few SIMD passes in L1.
#pragma once

#include <cstdint>

namespace qilin::kernels::cpu {

// y = exp(x - max) / sum exp(x - max), per row.
void softmax_forward(float* y, const float* x, int64_t rows, int64_t cols);
// dx = y * (dy - sum(dy * y)), per row.
void softmax_backward(float* dx, const float* y, const float* dy, int64_t rows, int64_t cols);

// y = (x - max) - log sum exp(x - max), per row.
void log_softmax_forward(float* y, const float* x, int64_t rows, int64_t cols);
// dx = dy - exp(y) * sum(dy), per row.
void log_softmax_backward(float* dx, const float* y, const float* dy, int64_t rows,
                          int64_t cols);

// Cross entropy with class targets and label smoothing s, mean over rows (as
// torch.nn.functional.cross_entropy(logits, target, label_smoothing=s)):
//   loss = mean_i [ lse_i - (1 - s) x[i, t_i] - s mean_c x[i, c] ],  lse_i = log sum_c e^x[i,c].
// Writes loss[0] and lse[rows] (saved for backward). Targets must be in [0, cols): the
// front-end checks them.
void cross_entropy_forward(float* loss, float* lse, const float* logits, const int64_t* target,
                           int64_t rows, int64_t cols, float label_smoothing);
void cross_entropy_forward(float* loss, float* lse, const float* logits, const int32_t* target,
                           int64_t rows, int64_t cols, float label_smoothing);
// dlogits = (softmax - q) * gy[0] / rows, q = (1 - s) onehot(t) + s / cols.
void cross_entropy_backward(float* dlogits, const float* logits, const float* lse,
                            const int64_t* target, const float* gy, int64_t rows, int64_t cols,
                            float label_smoothing);
void cross_entropy_backward(float* dlogits, const float* logits, const float* lse,
                            const int32_t* target, const float* gy, int64_t rows, int64_t cols,
                            float label_smoothing);

// Soft targets t [rows, cols]: loss = mean_i sum_c t[i, c] (lse_i - x[i, c]).
void cross_entropy_soft_forward(float* loss, float* lse, const float* logits,
                                const float* target, int64_t rows, int64_t cols);
// dlogits = (softmax * sum_c t - t) * gy[0] / rows and dtarget = (lse - x) * gy[0] / rows;
// either may be null (not needed).
void cross_entropy_soft_backward(float* dlogits, float* dtarget, const float* logits,
                                 const float* lse, const float* target, const float* gy,
                                 int64_t rows, int64_t cols);

}  // namespace qilin::kernels::cpu
