// Normalisations: layer norm over the last dim, and 2-D batch norm over (N, H, W).
#pragma once

#include "core/tensor.h"

namespace qilin {

// x: [..., C]; weight, bias: [C] (either may be undefined). Biased variance, as PyTorch.
Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, float eps);

// x: [N, C, H, W]; weight, bias: [C] (may be undefined); running_mean, running_var: [C].
// training: normalise with the batch mean and biased variance and update the running stats
// in place: r = (1 - momentum) r + momentum * batch_stat, with the unbiased variance;
// momentum < 0 means a cumulative average (PyTorch momentum=None) given `batches_seen`
// (the count before this batch). eval: normalise with the running stats.
Tensor batch_norm2d(const Tensor& x, const Tensor& weight, const Tensor& bias,
                    Tensor running_mean, Tensor running_var, bool training, float momentum,
                    float eps, int64_t batches_seen = 0);

}  // namespace qilin
