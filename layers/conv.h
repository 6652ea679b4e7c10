// Conv2d (torch.nn.Conv2d with square kernel, stride and zero padding; groups) on
// core/ops/conv.h. weight: [out, in / groups, k, k], bias: [out]. Created zero-filled;
// models initialise it (layers/init.h).
#pragma once

#include <cstdint>
#include <string>

#include "layers/module.h"

namespace qilin {

class BatchNorm2d;

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
  // "Conv2d(16 -> 32, 3x3, stride 2, pad 1, groups 1, no bias)"; after a fold
  // "Conv2d(16 -> 32, 3x3, stride 2, pad 1, groups 1, bias, BN folded)"
  std::string describe() const override;

  // Folds `bn`, which this convolution feeds, into the weight and bias with bn's running
  // statistics (eval-mode BN: quant.fold_bn, DESIGN.md §4.3), as
  // torch.nn.utils.fusion.fuse_conv_bn_weights does, in double, stored float32:
  //   s[o] = gamma[o] / sqrt(running_var[o] + eps)
  //   W'[o] = W[o] * s[o];   b'[o] = (b[o] - running_mean[o]) * s[o] + beta[o]   (b = 0 if none)
  // A convolution without bias gains the parameter "bias" (so spec().bias becomes true), then
  // bn.set_folded() makes bn the identity: conv then bn computes what it did in eval mode.
  // Changes the weights in place: a QuantConv2d must fold before freeze_weights.
  void fold_batch_norm(BatchNorm2d& bn);
  bool batch_norm_folded() const { return bn_folded_; }

  const Conv2dSpec& spec() const { return spec_; }
  const Tensor& weight() const { return weight_; }
  const Tensor& bias() const { return bias_; }  // undefined without bias

 private:
  Conv2dSpec spec_;
  bool bn_folded_ = false;
  Tensor weight_, bias_;
};

}  // namespace qilin
