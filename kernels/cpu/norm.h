// CPU kernels for layer norm (over the last dim) and 2-D batch norm (over N, H, W), in the
// llm.c style: the forward saves each row's (channel's) mean and 1/std, the backward uses
// them to produce dx, dweight and dbias in one fused pass. Every output is written (=);
// weight and bias may be null (meaning 1 and 0), as may any gradient that is not needed.
#pragma once

#include <cstdint>

namespace qilin::kernels::cpu {

// x, y: [rows, cols]; mean, rstd: [rows]; weight, bias: [cols].
// y = (x - mean) * rstd * weight + bias, rstd = 1 / sqrt(biased var + eps).
void layer_norm_forward(float* y, float* mean, float* rstd, const float* x, const float* weight,
                        const float* bias, int64_t rows, int64_t cols, float eps);
// dx = rstd (g - mean(g) - xhat mean(g xhat)), g = dy * weight, xhat = (x - mean) rstd;
// dweight = sum over rows of dy * xhat; dbias = sum over rows of dy.
void layer_norm_backward(float* dx, float* dweight, float* dbias, const float* dy, const float* x,
                         const float* mean, const float* rstd, const float* weight, int64_t rows,
                         int64_t cols);

// x, y: [n, channels, hw]; mean, rstd: [channels] (written: the statistics used);
// weight, bias: [channels].
// training: batch mean and biased variance over (n, hw); running_mean and running_var (if
// not null) become (1 - factor) r + factor * stat, with the unbiased variance.
// eval: normalises with running_mean and running_var (which must not be null).
void batch_norm2d_forward(float* y, float* mean, float* rstd, const float* x, const float* weight,
                          const float* bias, float* running_mean, float* running_var, int64_t n,
                          int64_t channels, int64_t hw, float eps, bool training, float factor);
// training: dx = weight rstd (dy - mean(dy) - xhat mean(dy xhat)) (the statistics depend on
// x); eval: dx = weight rstd dy (an affine map). dweight = sum dy xhat; dbias = sum dy.
void batch_norm2d_backward(float* dx, float* dweight, float* dbias, const float* dy,
                           const float* x, const float* mean, const float* rstd,
                           const float* weight, int64_t n, int64_t channels, int64_t hw,
                           bool training);

}  // namespace qilin::kernels::cpu
