// CPU kernels for 2-D convolution (cross-correlation, as PyTorch) over dense tensors:
//   x: [N, C, H, W], w: [O, C / groups, KH, KW], bias: [O], y: [N, O, OH, OW].
// Grouped convolutions with one input channel per group (depthwise) run a direct kernel;
// all others run im2col + GEMM on chunks of images.
#pragma once

#include <cstdint>

namespace qilin::kernels::cpu {

// Sizes of one conv2d call, filled by the front-end (out_h/out_w included).
// (A CUDA backend would share this struct; it belongs in core/op_types.h once one exists.)
struct Conv2dGeometry {
  int64_t batch = 0;
  int64_t in_c = 0, in_h = 0, in_w = 0;
  int64_t out_c = 0, out_h = 0, out_w = 0;
  int64_t kernel_h = 1, kernel_w = 1;
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_h = 0, pad_w = 0;
  int64_t groups = 1;
};

// y = conv(x, w) + bias; bias may be null. (writes)
void conv2d_forward(float* y, const float* x, const float* w, const float* bias,
                    const Conv2dGeometry& g);

// dx = dL/dx from dy and w. (writes)
void conv2d_backward_input(float* dx, const float* dy, const float* w, const Conv2dGeometry& g);

// dw = dL/dw (may be null) and dbias = dL/dbias (may be null) from dy and x, summed over
// the batch in a fixed order of fixed-size chunks: the result does not depend on the
// thread count. (writes)
void conv2d_backward_weight(float* dw, float* dbias, const float* dy, const float* x,
                            const Conv2dGeometry& g);

}  // namespace qilin::kernels::cpu
