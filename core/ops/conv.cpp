// Front-end of conv2d: shape checks, dispatch, and the backward right under the forward.
// Backward saves x only when the weight needs a gradient and the weight only when x does.
#include "core/ops/conv.h"

#include "core/autograd.h"
#include "core/dispatch.h"
#include "core/profiler.h"
#include "kernels/cpu/conv.h"

namespace qilin {
namespace {

using kernels::cpu::Conv2dGeometry;

Conv2dGeometry geometry(const Tensor& x, const Tensor& weight, const Tensor& bias,
                        const Conv2dParams& p) {
  QILIN_CHECK(x.dtype() == DType::kFloat32 && weight.dtype() == DType::kFloat32,
              "conv2d: expected float32 x and weight, got ", x.str(), " and ", weight.str());
  QILIN_CHECK(x.dim() == 4, "conv2d: expected x of shape [N, C, H, W], got ",
              shape_str(x.shape()));
  QILIN_CHECK(weight.dim() == 4, "conv2d: expected weight of shape [O, C / groups, KH, KW], got ",
              shape_str(weight.shape()));
  QILIN_CHECK(p.groups > 0 && x.size(1) % p.groups == 0 && weight.size(0) % p.groups == 0,
              "conv2d: groups = ", p.groups, " must divide the input channels of x ",
              shape_str(x.shape()), " and the output channels of weight ",
              shape_str(weight.shape()));
  QILIN_CHECK(weight.size(1) * p.groups == x.size(1), "conv2d: weight ",
              shape_str(weight.shape()), " expects ", weight.size(1) * p.groups,
              " input channels (groups = ", p.groups, "), x ", shape_str(x.shape()), " has ",
              x.size(1));
  QILIN_CHECK(p.stride_h > 0 && p.stride_w > 0 && p.pad_h >= 0 && p.pad_w >= 0,
              "conv2d: stride ", p.stride_h, "x", p.stride_w, " must be positive and padding ",
              p.pad_h, "x", p.pad_w, " non-negative");
  Conv2dGeometry g;
  g.batch = x.size(0);
  g.in_c = x.size(1);
  g.in_h = x.size(2);
  g.in_w = x.size(3);
  g.out_c = weight.size(0);
  g.kernel_h = weight.size(2);
  g.kernel_w = weight.size(3);
  g.stride_h = p.stride_h;
  g.stride_w = p.stride_w;
  g.pad_h = p.pad_h;
  g.pad_w = p.pad_w;
  g.groups = p.groups;
  const int64_t span_h = g.in_h + 2 * g.pad_h - g.kernel_h;
  const int64_t span_w = g.in_w + 2 * g.pad_w - g.kernel_w;
  QILIN_CHECK(g.kernel_h > 0 && g.kernel_w > 0 && span_h >= 0 && span_w >= 0, "conv2d: kernel ",
              g.kernel_h, "x", g.kernel_w, " does not fit the padded input of x ",
              shape_str(x.shape()), " (padding ", g.pad_h, "x", g.pad_w, ")");
  g.out_h = span_h / g.stride_h + 1;
  g.out_w = span_w / g.stride_w + 1;
  if (bias.defined()) {
    QILIN_CHECK(bias.dtype() == DType::kFloat32 && bias.dim() == 1 && bias.size(0) == g.out_c,
                "conv2d: bias ", bias.str(), " does not match weight ", shape_str(weight.shape()));
    QILIN_CHECK(bias.device() == x.device(), "conv2d: bias on ", bias.device().str(), ", x on ",
                x.device().str());
  }
  QILIN_CHECK(weight.device() == x.device(), "conv2d: x on ", x.device().str(), ", weight on ",
              weight.device().str());
  return g;
}

}  // namespace

Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias,
              const Conv2dParams& params) {
  ProfileScope scope("conv2d");
  const Conv2dGeometry g = geometry(x, weight, bias, params);
  Tensor y = Tensor::empty({g.batch, g.out_c, g.out_h, g.out_w}, DType::kFloat32, x.device());
  QILIN_DISPATCH(x.device(), conv2d_forward, y.data<float>(), x.data<float>(),
                 weight.data<float>(), bias.defined() ? bias.data<float>() : nullptr, g);
  const bool grad = any_requires_grad({x, weight, bias});
  Tensor x_saved = grad && weight.requires_grad() ? x.detach() : Tensor();
  Tensor w_saved = grad && x.requires_grad() ? weight.detach() : Tensor();
  return record_op(
      y, "conv2d", {x, weight, bias},
      [x_saved, w_saved, g, xs = x.shape(), ws = weight.shape()](const Tensor& gy,
                                                                 GradSlots& grads) {
        // All needed gradients in one kernel call, which may share work between them.
        const Device device = gy.device();
        Tensor dx = grads.needs(0) ? Tensor::empty(xs, DType::kFloat32, device) : Tensor();
        Tensor dw = grads.needs(1) ? Tensor::empty(ws, DType::kFloat32, device) : Tensor();
        Tensor db = grads.needs(2) ? Tensor::empty({g.out_c}, DType::kFloat32, device) : Tensor();
        auto ptr = [](Tensor& t) { return t.defined() ? t.data<float>() : nullptr; };
        auto cptr = [](const Tensor& t) { return t.defined() ? t.data<float>() : nullptr; };
        QILIN_DISPATCH(device, conv2d_backward, ptr(dx), ptr(dw), ptr(db), gy.data<float>(),
                       dw.defined() ? cptr(x_saved) : nullptr,
                       dx.defined() ? cptr(w_saved) : nullptr, g);
        if (dx.defined()) grads.add(0, dx);
        if (dw.defined()) grads.add(1, dw);
        if (db.defined()) grads.add(2, db);
      });
}

}  // namespace qilin
