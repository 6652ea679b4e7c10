// CPU kernels for 2-D convolution (cross-correlation, as PyTorch) over dense tensors:
//   x: [N, C, H, W], w: [O, C / groups, KH, KW], bias: [O], y: [N, O, OH, OW].
// Two implementations sit behind the same three functions (Conv2dGeometry::impl picks):
//   kOneDnn   oneDNN's convolution primitives (conv_onednn.cpp), the default: ~2x faster
//             than im2col on ResNet-20's shapes (conv_onednn.cpp's header: measurement);
//   kIm2col   our own (conv.cpp): im2col + Highway GEMM on chunks of images, and a direct
//             kernel for depthwise (one input channel per group); kept for comparison and
//             as the reference the oneDNN path is tested against.
// kDefault resolves to the process default: QILIN_CONV_IMPL=im2col|onednn, read once at the
// first call (an unknown value is an error listing the valid ones), else onednn.
#pragma once

#include <cstdint>

namespace qilin::kernels::cpu {

enum class ConvImpl : int { kDefault, kIm2col, kOneDnn };

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
  ConvImpl impl = ConvImpl::kDefault;
};

// The implementation kDefault stands for (QILIN_CONV_IMPL, see above), and a way to change
// it for the whole process: for tests and benchmarks that compare the two through the op
// front-end, which leaves `impl` at kDefault. Never returns kDefault.
ConvImpl default_conv_impl();
void set_default_conv_impl(ConvImpl impl);

// y = conv(x, w) + bias; bias may be null. (writes)
void conv2d_forward(float* y, const float* x, const float* w, const float* bias,
                    const Conv2dGeometry& g);

// dx = dL/dx from dy and w. (writes)
void conv2d_backward_input(float* dx, const float* dy, const float* w, const Conv2dGeometry& g);

// dw = dL/dw (may be null) and dbias = dL/dbias (may be null) from dy and x (x may be null
// when dw is). Deterministic: the same inputs and thread count give the same bits. im2col
// sums the batch in a fixed order of fixed-size chunks, so its result does not depend on
// the thread count either; oneDNN's differs across thread counts by float rounding. (writes)
void conv2d_backward_weight(float* dw, float* dbias, const float* dy, const float* x,
                            const Conv2dGeometry& g);

// Both of the above in one call, each output optional (null: not computed; x may be null
// when dw is, w when dx is): an implementation may share work between them (oneDNN puts
// dy into its blocked layout once for both). Same results as the two calls. (writes)
void conv2d_backward(float* dx, float* dw, float* dbias, const float* dy, const float* x,
                     const float* w, const Conv2dGeometry& g);

// The oneDNN implementation of the calls above, same contracts (conv_onednn.cpp); called
// through them. Zero-sized shapes never reach it (conv.cpp handles them).
void onednn_conv2d_forward(float* y, const float* x, const float* w, const float* bias,
                           const Conv2dGeometry& g);
void onednn_conv2d_backward(float* dx, float* dw, float* dbias, const float* dy,
                            const float* x, const float* w, const Conv2dGeometry& g);

}  // namespace qilin::kernels::cpu
