// Classification losses. cross_entropy is fused (log-softmax + NLL in one kernel) and
// matches torch.nn.functional.cross_entropy(logits, target, label_smoothing=s) with mean
// reduction: loss_i = (1 - s) * -log p[y_i] + s * mean_c(-log p[c]).
#pragma once

#include "core/tensor.h"

namespace qilin {

// logits: [N, C] float32; target: [N] int64 (or int32) class indices in [0, C).
Tensor cross_entropy(const Tensor& logits, const Tensor& target, float label_smoothing = 0.0f);
// Soft targets (mixup/cutmix): target [N, C] probabilities; mean over N of -sum_c t log p.
Tensor cross_entropy_soft(const Tensor& logits, const Tensor& target_probs);

}  // namespace qilin
