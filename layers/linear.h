// Linear: y = x W^T + b (torch.nn.Linear), on core/ops/matmul.h linear (bias fused into
// the GEMM). weight: [out, in], bias: [out]. Created zero-filled; models initialise it
// (layers/init.h), e.g. init_torch_default() for PyTorch's own reset_parameters().
#pragma once

#include <cstdint>
#include <string>

#include "layers/module.h"

namespace qilin {

class Linear : public Layer {
 public:
  Linear(int64_t in_features, int64_t out_features, bool bias = true);
  // x: [..., in] -> [..., out]
  Tensor forward(const Tensor& x) override;
  std::string describe() const override;  // "Linear(64 -> 256, bias)"

  int64_t in_features() const { return in_features_; }
  int64_t out_features() const { return out_features_; }
  const Tensor& weight() const { return weight_; }
  const Tensor& bias() const { return bias_; }  // undefined without bias

 private:
  int64_t in_features_, out_features_;
  Tensor weight_, bias_;
};

}  // namespace qilin
