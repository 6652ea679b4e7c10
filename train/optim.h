// Optimizers with PyTorch 1.13's update formulas (torch.optim.SGD and torch.optim.AdamW,
// the _single_tensor_* paths): same math, so a run here and a run there follow the same
// trajectory up to float rounding. The fused per-parameter loops live in
// kernels/cpu/optim.cpp; this file holds parameter groups, per-parameter state and its
// (de)serialisation for checkpoints.
//
// Not here: learning-rate schedules (train/lr_schedule.h set the rate through set_lr()),
// gradient clipping, amsgrad, maximize.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/safetensors.h"
#include "core/tensor.h"

namespace qilin {

// Parameters sharing one weight decay (e.g. timm's: no decay on biases and norms).
struct ParamGroup {
  std::vector<std::pair<std::string, Tensor>> params;
  float weight_decay = 0.0f;
};

class Optimizer {
 public:
  virtual ~Optimizer() = default;

  // One update of every parameter that has a .grad (parameters without one are skipped and
  // their state left untouched, as in PyTorch). Runs without recording a graph.
  void step();
  // Drops every parameter's accumulated gradient (PyTorch's zero_grad(set_to_none=True)).
  void zero_grad();

  void set_lr(float lr) { lr_ = lr; }
  float lr() const { return lr_; }
  int64_t steps() const { return steps_; }  // calls to step() so far

  // State for checkpoints: "step" (int64 0-d: calls to step()), "lr" (float32 0-d), and per
  // parameter "<param>.step" (int64 0-d: updates applied to it) plus the optimizer's buffers,
  // e.g. "<param>.exp_avg", "<param>.exp_avg_sq", "<param>.momentum_buffer".
  NamedTensors state_dict() const;
  // Copies a state_dict() into this optimizer's state. Every expected entry must be present
  // with its dtype and shape, and no other entry may be: errors name the entry.
  void load_state_dict(const NamedTensors& state);

  const std::vector<ParamGroup>& param_groups() const { return groups_; }

 protected:
  // `buffer_names`: the per-parameter state tensors this optimizer keeps, each shaped like
  // its parameter and zero-initialised.
  Optimizer(std::vector<ParamGroup> groups, float lr, std::vector<std::string> buffer_names,
            const char* kind);

  struct ParamState {
    int64_t steps = 0;             // updates applied to this parameter
    std::vector<Tensor> buffers;   // in the order of buffer_names_
  };
  // Updates one parameter in place; `state.steps` is already incremented.
  virtual void update(Tensor& param, const Tensor& grad, ParamState& state,
                      float weight_decay) = 0;

 private:
  std::vector<ParamGroup> groups_;
  std::vector<std::vector<ParamState>> states_;  // [group][param]
  std::vector<std::string> buffer_names_;
  const char* kind_;
  float lr_;
  int64_t steps_ = 0;
};

// torch.optim.SGD: d_p = g + wd * p; with momentum, buf = momentum * buf + (1 - dampening) *
// d_p (buf = d_p on a parameter's first update), d_p = nesterov ? d_p + momentum * buf : buf;
// p -= lr * d_p.
struct SgdOptions {
  float lr = 0.1f;
  float momentum = 0.0f;
  float dampening = 0.0f;
  bool nesterov = false;
};

class Sgd : public Optimizer {
 public:
  Sgd(std::vector<ParamGroup> groups, SgdOptions options);
  const SgdOptions& options() const { return options_; }

 private:
  void update(Tensor& param, const Tensor& grad, ParamState& state, float weight_decay) override;
  SgdOptions options_;
};

// torch.optim.AdamW (decoupled weight decay, Loshchilov & Hutter 2019, arXiv:1711.05101):
// p *= 1 - lr * wd; m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
// p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps), t = the parameter's step.
struct AdamWOptions {
  float lr = 1e-3f;
  float beta1 = 0.9f;
  float beta2 = 0.999f;
  float eps = 1e-8f;
};

class AdamW : public Optimizer {
 public:
  AdamW(std::vector<ParamGroup> groups, AdamWOptions options);
  const AdamWOptions& options() const { return options_; }

 private:
  void update(Tensor& param, const Tensor& grad, ParamState& state, float weight_decay) override;
  AdamWOptions options_;
};

}  // namespace qilin
