// Front-ends of 2-D pooling: shape checks, dispatch, backward right under each forward.
// max_pool2d keeps the int32 argmax of each window (within its plane) for backward, as
// PyTorch keeps its indices; the average pools need nothing but the geometry.
#include "core/ops/pool.h"

#include <cstdint>

#include "core/autograd.h"
#include "core/dispatch.h"
#include "core/profiler.h"
#include "kernels/cpu/pool.h"

namespace qilin {
namespace {

using kernels::cpu::Pool2dGeometry;

void check_input(const Tensor& x, const char* op) {
  QILIN_CHECK(x.dtype() == DType::kFloat32, op, ": expected float32, got ", x.str());
  QILIN_CHECK(x.dim() == 4, op, ": expected x of shape [N, C, H, W], got ",
              shape_str(x.shape()));
}

Pool2dGeometry windowed_geometry(const Tensor& x, const Pool2dParams& p, const char* op) {
  check_input(x, op);
  QILIN_CHECK(p.kernel_h > 0 && p.kernel_w > 0 && p.stride_h > 0 && p.stride_w > 0, op,
              ": kernel ", p.kernel_h, "x", p.kernel_w, " and stride ", p.stride_h, "x",
              p.stride_w, " must be positive");
  // PyTorch's rule: a window may not lie entirely in the padding.
  QILIN_CHECK(p.pad_h >= 0 && p.pad_w >= 0 && 2 * p.pad_h <= p.kernel_h &&
                  2 * p.pad_w <= p.kernel_w,
              op, ": padding ", p.pad_h, "x", p.pad_w, " must be in [0, kernel / 2] for kernel ",
              p.kernel_h, "x", p.kernel_w);
  Pool2dGeometry g;
  g.planes = x.size(0) * x.size(1);
  g.in_h = x.size(2);
  g.in_w = x.size(3);
  g.kernel_h = p.kernel_h;
  g.kernel_w = p.kernel_w;
  g.stride_h = p.stride_h;
  g.stride_w = p.stride_w;
  g.pad_h = p.pad_h;
  g.pad_w = p.pad_w;
  const int64_t span_h = g.in_h + 2 * p.pad_h - p.kernel_h;
  const int64_t span_w = g.in_w + 2 * p.pad_w - p.kernel_w;
  QILIN_CHECK(span_h >= 0 && span_w >= 0, op, ": kernel ", p.kernel_h, "x", p.kernel_w,
              " is larger than the padded input of x ", shape_str(x.shape()));
  g.out_h = span_h / p.stride_h + 1;
  g.out_w = span_w / p.stride_w + 1;
  return g;
}

Shape out_shape(const Tensor& x, const Pool2dGeometry& g) {
  return {x.size(0), x.size(1), g.out_h, g.out_w};
}

}  // namespace

Tensor max_pool2d(const Tensor& x, const Pool2dParams& params) {
  ProfileScope scope("max_pool2d");
  const Pool2dGeometry g = windowed_geometry(x, params, "max_pool2d");
  QILIN_CHECK(g.in_h * g.in_w <= INT32_MAX, "max_pool2d: plane of x ", shape_str(x.shape()),
              " too large for int32 indices");
  Tensor out = Tensor::empty(out_shape(x, g), DType::kFloat32, x.device());
  Tensor argmax = Tensor::empty(out.shape(), DType::kInt32, x.device());
  QILIN_DISPATCH(x.device(), max_pool2d_forward, out.data<float>(), argmax.data<int32_t>(),
                 x.data<float>(), g);
  return record_op(out, "max_pool2d", {x},
                   [argmax, g, xs = x.shape()](const Tensor& gy, GradSlots& grads) {
                     Tensor dx = Tensor::empty(xs, DType::kFloat32, gy.device());
                     QILIN_DISPATCH(gy.device(), max_pool2d_backward, dx.data<float>(),
                                    gy.data<float>(), argmax.data<int32_t>(), g);
                     grads.add(0, dx);
                   });
}

Tensor avg_pool2d(const Tensor& x, const Pool2dParams& params) {
  ProfileScope scope("avg_pool2d");
  const Pool2dGeometry g = windowed_geometry(x, params, "avg_pool2d");
  const bool include_pad = params.count_include_pad;
  Tensor out = Tensor::empty(out_shape(x, g), DType::kFloat32, x.device());
  QILIN_DISPATCH(x.device(), avg_pool2d_forward, out.data<float>(), x.data<float>(), g,
                 include_pad);
  return record_op(out, "avg_pool2d", {x},
                   [g, include_pad, xs = x.shape()](const Tensor& gy, GradSlots& grads) {
                     Tensor dx = Tensor::empty(xs, DType::kFloat32, gy.device());
                     QILIN_DISPATCH(gy.device(), avg_pool2d_backward, dx.data<float>(),
                                    gy.data<float>(), g, include_pad);
                     grads.add(0, dx);
                   });
}

Tensor adaptive_avg_pool2d(const Tensor& x, int64_t out_h, int64_t out_w) {
  ProfileScope scope("adaptive_avg_pool2d");
  check_input(x, "adaptive_avg_pool2d");
  QILIN_CHECK(out_h > 0 && out_w > 0, "adaptive_avg_pool2d: output size ", out_h, "x", out_w,
              " must be positive (x ", shape_str(x.shape()), ")");
  QILIN_CHECK(x.size(2) > 0 && x.size(3) > 0, "adaptive_avg_pool2d: empty plane in x ",
              shape_str(x.shape()));
  Pool2dGeometry g;
  g.planes = x.size(0) * x.size(1);
  g.in_h = x.size(2);
  g.in_w = x.size(3);
  g.out_h = out_h;
  g.out_w = out_w;
  Tensor out = Tensor::empty(out_shape(x, g), DType::kFloat32, x.device());
  QILIN_DISPATCH(x.device(), adaptive_avg_pool2d_forward, out.data<float>(), x.data<float>(),
                 g);
  return record_op(out, "adaptive_avg_pool2d", {x},
                   [g, xs = x.shape()](const Tensor& gy, GradSlots& grads) {
                     Tensor dx = Tensor::empty(xs, DType::kFloat32, gy.device());
                     QILIN_DISPATCH(gy.device(), adaptive_avg_pool2d_backward,
                                    dx.data<float>(), gy.data<float>(), g);
                     grads.add(0, dx);
                   });
}

}  // namespace qilin
