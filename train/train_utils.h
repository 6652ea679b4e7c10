// Pieces of the training loop that act on a whole model: gradient-norm clipping (PyTorch's
// clip_grad_norm_) and an exponential moving average of the weights (timm's ModelEmaV2).
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "core/safetensors.h"
#include "core/tensor.h"
#include "layers/module.h"

namespace qilin {

// Scales every gradient by min(1, max_norm / (total_norm + 1e-6)) where total_norm is the
// L2 norm of all gradients together (torch.nn.utils.clip_grad_norm_); returns total_norm.
// Parameters without a gradient are skipped. A non-finite total norm leaves the gradients
// as they are (the caller stops on a non-finite loss).
double clip_grad_norm(const std::vector<Tensor>& params, double max_norm);

// ema = decay * ema + (1 - decay) * model, for every parameter; buffers (BatchNorm running
// statistics) are copied (timm ModelEmaV2). The EMA lives in its own tensors, named as the
// model's, so it can be evaluated by swapping it into the model (swap_into).
class ModelEma {
 public:
  ModelEma(const Module& model, double decay);
  void update(const Module& model);
  double decay() const { return decay_; }
  // Exchanges the EMA weights with the model's (call twice to restore).
  void swap_into(Module& model);
  // "ema.<name>" tensors for checkpoints, and their inverse.
  NamedTensors state_dict() const;
  void load_state_dict(const NamedTensors& state);

 private:
  double decay_;
  NamedTensors params_;   // copies of the model's parameters
  NamedTensors buffers_;  // copies of the model's buffers
};

}  // namespace qilin
