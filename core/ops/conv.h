// 2-D convolution (cross-correlation, as PyTorch): stride, zero padding, groups
// (depthwise when groups == in_channels).
#pragma once

#include "core/tensor.h"

namespace qilin {

struct Conv2dParams {
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_h = 0, pad_w = 0;
  int64_t groups = 1;
};

// x: [N, C, H, W]; weight: [O, C / groups, KH, KW]; bias: [O] or undefined.
// Result: [N, O, (H + 2 pad_h - KH) / stride_h + 1, (W + 2 pad_w - KW) / stride_w + 1].
Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias,
              const Conv2dParams& params = {});

}  // namespace qilin
