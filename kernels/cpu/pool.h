// CPU kernels for 2-D pooling on dense [N, C, H, W] planes: max (with the argmax kept for
// backward), average (with or without the padding in the divisor) and adaptive average
// (PyTorch's bins). Each plane is independent; kernels run parallel over planes.
#pragma once

#include <cstdint>

namespace qilin::kernels::cpu {

// Sizes of one pooling call. `planes` = N * C; out_h/out_w are computed by the front-end.
// (A CUDA backend would share this struct; it belongs in core/op_types.h once one exists.)
struct Pool2dGeometry {
  int64_t planes = 0;
  int64_t in_h = 0, in_w = 0, out_h = 0, out_w = 0;
  int64_t kernel_h = 1, kernel_w = 1, stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0;
};

// y = max over each window (padding never wins), argmax = index ih * in_w + iw of the first
// maximum in row-major window order; NaN propagates (as PyTorch). (writes y and argmax)
void max_pool2d_forward(float* y, int32_t* argmax, const float* x, const Pool2dGeometry& g);
// dx = scatter of dy to each window's argmax. (writes dx)
void max_pool2d_backward(float* dx, const float* dy, const int32_t* argmax,
                         const Pool2dGeometry& g);

// y = window sum / divisor: the window clipped to the padded input when count_include_pad,
// else to the input itself (PyTorch's avg_pool2d). (writes)
void avg_pool2d_forward(float* y, const float* x, const Pool2dGeometry& g,
                        bool count_include_pad);
// dx = sum over the windows covering each input of dy / divisor. (writes)
void avg_pool2d_backward(float* dx, const float* dy, const Pool2dGeometry& g,
                         bool count_include_pad);

// Output bin i covers [floor(i * in / out), ceil((i + 1) * in / out)) in each dim (PyTorch's
// adaptive_avg_pool2d); y = its mean. Kernel/stride/pad fields of g are unused. (writes)
void adaptive_avg_pool2d_forward(float* y, const float* x, const Pool2dGeometry& g);
// dx = sum over the bins covering each input of dy / bin size. (writes)
void adaptive_avg_pool2d_backward(float* dx, const float* dy, const Pool2dGeometry& g);

}  // namespace qilin::kernels::cpu
