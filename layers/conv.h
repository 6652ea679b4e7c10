// Conv2d (torch.nn.Conv2d with square kernel, stride and zero padding; groups) on
// core/ops/conv.h. weight: [out, in / groups, k, k], bias: [out]. Created zero-filled;
// models initialise it (layers/init.h).
#pragma once

#include <cstdint>
#include <string>

#include "layers/module.h"

namespace qilin {

struct Conv2dSpec {
  int64_t in_channels = 1;
  int64_t out_channels = 1;
  int64_t kernel = 1;
  int64_t stride = 1;
  int64_t padding = 0;
  int64_t groups = 1;
  bool bias = true;
};

class Conv2d : public Layer {
 public:
  explicit Conv2d(const Conv2dSpec& spec);
  // x: [N, in, H, W] -> [N, out, (H + 2p - k) / s + 1, (W + 2p - k) / s + 1]
  Tensor forward(const Tensor& x) override;
  // "Conv2d(16 -> 32, 3x3, stride 2, pad 1, groups 1, no bias)"
  std::string describe() const override;

  const Conv2dSpec& spec() const { return spec_; }
  const Tensor& weight() const { return weight_; }
  const Tensor& bias() const { return bias_; }  // undefined without bias

 private:
  Conv2dSpec spec_;
  Tensor weight_, bias_;
};

}  // namespace qilin
