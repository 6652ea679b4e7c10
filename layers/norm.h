// Normalisation layers: BatchNorm2d and LayerNorm, PyTorch's semantics and names, over
// core/ops/norm.h.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "layers/module.h"

namespace qilin {

// torch.nn.BatchNorm2d(C, eps, momentum, affine=True, track_running_stats=True).
// Parameters weight (ones), bias (zeros); persistent buffers running_mean (zeros),
// running_var (ones), num_batches_tracked (int64 scalar, 0), in PyTorch's order.
// Training: normalise by the batch mean and biased variance, increment num_batches_tracked,
// then running = (1 - f) running + f batch (unbiased variance), with f = momentum, or
// f = 1 / num_batches_tracked when momentum is nullopt (PyTorch's momentum=None: an exact
// average over the batches since the last reset; DESIGN.md §4.3 BN calibration).
// Eval: normalise by the running statistics.
// Folded (quant.fold_bn, DESIGN.md §4.3): after Conv2d::fold_batch_norm has moved this
// layer's eval-mode affine map into the convolution that feeds it, set_folded() makes it the
// identity, in training and eval alike, and unregisters its parameters and buffers, so the
// state dict holds no BN tensors (a model keeps calling forward on it).
class BatchNorm2d : public Layer {
 public:
  explicit BatchNorm2d(int64_t num_features, float eps = 1e-5f,
                       std::optional<float> momentum = 0.1f);
  // x: [N, C, H, W] -> same shape
  Tensor forward(const Tensor& x) override;
  // "BatchNorm2d(64, eps 1e-05, momentum 0.1)"; folded: "BatchNorm2d(64) folded into the conv"
  std::string describe() const override;

  // Irreversible; an error if already folded.
  void set_folded();
  bool folded() const { return folded_; }

  // running_mean = 0, running_var = 1, num_batches_tracked = 0 (PyTorch's
  // reset_running_stats). An error once folded (nothing is left to re-estimate).
  void reset_running_stats();
  void set_momentum(std::optional<float> momentum) { momentum_ = momentum; }
  std::optional<float> momentum() const { return momentum_; }
  float eps() const { return eps_; }
  int64_t num_features() const { return num_features_; }
  int64_t num_batches_tracked() const { return num_batches_tracked_.data<int64_t>()[0]; }
  const Tensor& weight() const { return weight_; }
  const Tensor& bias() const { return bias_; }
  const Tensor& running_mean() const { return running_mean_; }
  const Tensor& running_var() const { return running_var_; }

 private:
  int64_t num_features_;
  float eps_;
  std::optional<float> momentum_;
  bool folded_ = false;
  Tensor weight_, bias_, running_mean_, running_var_, num_batches_tracked_;
};

// torch.nn.LayerNorm(dim, eps) over the last dim, elementwise affine: weight (ones), bias
// (zeros). timm's ViT uses eps = 1e-6.
class LayerNorm : public Layer {
 public:
  explicit LayerNorm(int64_t dim, float eps = 1e-5f);
  // x: [..., dim] -> same shape
  Tensor forward(const Tensor& x) override;
  std::string describe() const override;  // "LayerNorm(64, eps 1e-06)"

  float eps() const { return eps_; }
  const Tensor& weight() const { return weight_; }
  const Tensor& bias() const { return bias_; }

 private:
  int64_t dim_;
  float eps_;
  Tensor weight_, bias_;
};

}  // namespace qilin
