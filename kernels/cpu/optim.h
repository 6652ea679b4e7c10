// CPU kernels for optimizer updates: one fused pass per parameter, in place. Each kernel is
// the exact update formula of the PyTorch 1.13 optimizer it names (torch/optim/sgd.py and
// adamw.py, _single_tensor_*), with the per-step scalars (bias corrections, step size)
// computed by the caller in double, as Python does, and passed in as floats.
#pragma once

#include <cstdint>

namespace qilin::kernels::cpu {

struct SgdStepArgs {
  float lr;
  float weight_decay;  // L2: added to the gradient (d_p = g + wd * p)
  float momentum;      // 0: plain SGD, `momentum_buffer` unused (may be null)
  float dampening;
  bool nesterov;
  bool first_step;     // the buffer is created from d_p (PyTorch's `buf is None` branch)
};

// p -= lr * d_p, where d_p is the (weight-decayed, momentum-filtered) gradient.
// Updates p and momentum_buffer in place (writes).
void sgd_step(float* param, const float* grad, float* momentum_buffer, int64_t n,
              const SgdStepArgs& args);

struct AdamWStepArgs {
  float decay_factor;           // 1 - lr * weight_decay (decoupled decay, applied first)
  float beta1, beta2;
  float one_minus_beta1, one_minus_beta2;
  float step_size;              // lr / (1 - beta1^t)
  float bias_correction2_sqrt;  // sqrt(1 - beta2^t)
  float eps;
};

// p = p * decay_factor; m = beta1 m + (1 - beta1) g; v = beta2 v + (1 - beta2) g^2;
// p -= step_size * m / (sqrt(v) / bias_correction2_sqrt + eps).
// Updates p, exp_avg (m) and exp_avg_sq (v) in place (writes).
void adamw_step(float* param, const float* grad, float* exp_avg, float* exp_avg_sq, int64_t n,
                const AdamWStepArgs& args);

}  // namespace qilin::kernels::cpu
