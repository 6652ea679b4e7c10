#include "layers/norm.h"

#include "core/ops/norm.h"

namespace qilin {

BatchNorm2d::BatchNorm2d(int64_t num_features, float eps, std::optional<float> momentum)
    : num_features_(num_features), eps_(eps), momentum_(momentum) {
  QILIN_CHECK(num_features > 0, "BatchNorm2d: num_features ", num_features, " must be positive");
  QILIN_CHECK(eps > 0.0f, "BatchNorm2d: eps ", eps, " must be positive");
  QILIN_CHECK(!momentum || (*momentum >= 0.0f && *momentum <= 1.0f), "BatchNorm2d: momentum ",
              momentum.value_or(0.0f), " is outside [0, 1]");
  weight_ = register_parameter("weight", Tensor::ones({num_features}));
  bias_ = register_parameter("bias", Tensor::zeros({num_features}));
  running_mean_ = register_buffer("running_mean", Tensor::zeros({num_features}));
  running_var_ = register_buffer("running_var", Tensor::ones({num_features}));
  num_batches_tracked_ = register_buffer("num_batches_tracked", Tensor::zeros({}, DType::kInt64));
}

Tensor BatchNorm2d::forward(const Tensor& x) {
  QILIN_CHECK(x.dim() == 4 && x.size(1) == num_features_, "BatchNorm2d(", num_features_,
              "): expected [N, ", num_features_, ", H, W], got ", shape_str(x.shape()));
  if (folded_) return x;  // the convolution before it applies the affine map
  if (!is_training()) {
    return batch_norm2d(x, weight_, bias_, running_mean_, running_var_, false, 0.0f, eps_);
  }
  // torch/nn/modules/batchnorm.py _BatchNorm.forward: count the batch first, then
  // exponential_average_factor = momentum, or 1 / num_batches_tracked when momentum is None.
  int64_t& tracked = num_batches_tracked_.data<int64_t>()[0];
  tracked += 1;
  const float factor = momentum_ ? *momentum_ : static_cast<float>(1.0 / static_cast<double>(tracked));
  return batch_norm2d(x, weight_, bias_, running_mean_, running_var_, true, factor, eps_);
}

void BatchNorm2d::reset_running_stats() {
  QILIN_CHECK(!folded_, "BatchNorm2d(", num_features_,
              "): folded into its convolution; no running statistics to reset");
  running_mean_.fill_(0.0f);
  running_var_.fill_(1.0f);
  num_batches_tracked_.fill_(0.0f);
}

void BatchNorm2d::set_folded() {
  QILIN_CHECK(!folded_, "BatchNorm2d(", num_features_, "): already folded");
  for (const char* name : {"weight", "bias", "running_mean", "running_var", "num_batches_tracked"})
    unregister_tensor(name);
  folded_ = true;
}

std::string BatchNorm2d::describe() const {
  if (folded_) return str_cat("BatchNorm2d(", num_features_, ") folded into the conv");
  return str_cat("BatchNorm2d(", num_features_, ", eps ", eps_, ", momentum ",
                 momentum_ ? str_cat(*momentum_) : std::string("cumulative"), ")");
}

LayerNorm::LayerNorm(int64_t dim, float eps) : dim_(dim), eps_(eps) {
  QILIN_CHECK(dim > 0, "LayerNorm: dim ", dim, " must be positive");
  QILIN_CHECK(eps > 0.0f, "LayerNorm: eps ", eps, " must be positive");
  weight_ = register_parameter("weight", Tensor::ones({dim}));
  bias_ = register_parameter("bias", Tensor::zeros({dim}));
}

Tensor LayerNorm::forward(const Tensor& x) {
  QILIN_CHECK(x.dim() >= 1 && x.size(-1) == dim_, "LayerNorm(", dim_, "): last dim of ",
              shape_str(x.shape()), " must be ", dim_);
  return layer_norm(x, weight_, bias_, eps_);
}

std::string LayerNorm::describe() const {
  return str_cat("LayerNorm(", dim_, ", eps ", eps_, ")");
}

}  // namespace qilin
