// Fused optimizer updates: each reads the gradient once and reads/writes the parameter and
// its state once, instead of the 4-6 whole-tensor passes of PyTorch's _single_tensor_*
// loops. The arithmetic per element follows those loops' order of operations.
#include "kernels/cpu/optim.h"

#include <cmath>

#include "kernels/cpu/parallel.h"

namespace qilin::kernels::cpu {

// Elements each update touches (p, g and up to two state tensors, read and written): the
// parallel_for cost that keeps small parameters (biases, norms) on one thread.
constexpr int64_t kOptimCostPerElement = 6;

void sgd_step(float* param, const float* grad, float* momentum_buffer, int64_t n,
              const SgdStepArgs& a) {
  parallel_for(n, kOptimCostPerElement, [&](int64_t begin, int64_t end) {
    float* __restrict p = param;
    const float* __restrict g = grad;
    float* __restrict buf = momentum_buffer;
    if (a.momentum == 0.0f) {
      for (int64_t i = begin; i < end; ++i) {
        const float d_p = g[i] + a.weight_decay * p[i];
        p[i] = p[i] + (-a.lr) * d_p;
      }
      return;
    }
    const float keep = 1.0f - a.dampening;
    for (int64_t i = begin; i < end; ++i) {
      const float d_p = g[i] + a.weight_decay * p[i];
      // torch.clone(d_p) on the first step; buf.mul_(momentum).add_(d_p, alpha=1-dampening) after.
      const float b = a.first_step ? d_p : buf[i] * a.momentum + keep * d_p;
      buf[i] = b;
      const float update = a.nesterov ? d_p + a.momentum * b : b;
      p[i] = p[i] + (-a.lr) * update;
    }
  });
}

void adamw_step(float* param, const float* grad, float* exp_avg, float* exp_avg_sq, int64_t n,
                const AdamWStepArgs& a) {
  parallel_for(n, kOptimCostPerElement, [&](int64_t begin, int64_t end) {
    float* __restrict p = param;
    const float* __restrict g = grad;
    float* __restrict m = exp_avg;
    float* __restrict v = exp_avg_sq;
    const float neg_step_size = -a.step_size;
    for (int64_t i = begin; i < end; ++i) {
      const float gi = g[i];
      const float mi = m[i] * a.beta1 + a.one_minus_beta1 * gi;
      const float vi = v[i] * a.beta2 + a.one_minus_beta2 * gi * gi;
      m[i] = mi;
      v[i] = vi;
      const float denom = std::sqrt(vi) / a.bias_correction2_sqrt + a.eps;
      p[i] = p[i] * a.decay_factor + neg_step_size * mi / denom;
    }
  });
}

}  // namespace qilin::kernels::cpu
