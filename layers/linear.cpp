#include "layers/linear.h"

#include "core/ops/matmul.h"

namespace qilin {

Linear::Linear(int64_t in_features, int64_t out_features, bool bias)
    : in_features_(in_features), out_features_(out_features) {
  QILIN_CHECK(in_features > 0 && out_features > 0, "Linear: sizes ", in_features, " -> ",
              out_features, " must be positive");
  weight_ = register_parameter("weight", Tensor::zeros({out_features, in_features}));
  if (bias) bias_ = register_parameter("bias", Tensor::zeros({out_features}));
}

Tensor Linear::forward(const Tensor& x) { return linear(x, weight_, bias_); }

std::string Linear::describe() const {
  return str_cat("Linear(", in_features_, " -> ", out_features_, bias_.defined() ? ", bias)" : ", no bias)");
}

}  // namespace qilin
