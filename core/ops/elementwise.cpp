// Front-ends of the broadcasting arithmetic ops: shape checks, dispatch, and each op's
// backward right under its forward. Gradients of broadcast inputs are reduced by sum_to.
#include "core/ops/elementwise.h"

#include "core/autograd.h"
#include "core/broadcast.h"
#include "core/dispatch.h"
#include "core/profiler.h"
#include "kernels/cpu/elementwise.h"

namespace qilin {
namespace {

void check_float(const Tensor& t, const char* op) {
  QILIN_CHECK(t.dtype() == DType::kFloat32, op, ": expected float32, got ", t.str());
}

Tensor binary(BinaryOp kind, const char* op, const Tensor& a, const Tensor& b) {
  check_float(a, op);
  check_float(b, op);
  QILIN_CHECK(a.device() == b.device(), op, ": tensors on ", a.device().str(), " and ",
              b.device().str());
  Shape out_shape = broadcast_shapes(a.shape(), b.shape(), op);
  Tensor out = Tensor::empty(out_shape, DType::kFloat32, a.device());
  BroadcastGeometry geom = make_broadcast_geometry(out_shape, a.shape(), b.shape());
  QILIN_DISPATCH(a.device(), binary_forward, kind, out.data<float>(), a.data<float>(),
                 b.data<float>(), geom);
  return out;
}

Tensor scalar_op(BinaryOp kind, const Tensor& a, float s, bool scalar_first, const char* op) {
  check_float(a, op);
  Tensor out = Tensor::empty(a.shape(), DType::kFloat32, a.device());
  QILIN_DISPATCH(a.device(), binary_scalar_forward, kind, out.data<float>(), a.data<float>(),
                 s, scalar_first, a.numel());
  return out;
}

}  // namespace

Tensor sum_to(const Tensor& x, const Shape& shape) {
  if (x.shape() == shape) return x;
  ProfileScope scope("sum_to");
  Shape check = broadcast_shapes(shape, x.shape(), "sum_to");
  QILIN_CHECK(check == x.shape(), "sum_to: ", shape_str(shape), " does not broadcast to ",
              shape_str(x.shape()));
  Tensor out = Tensor::empty(shape, DType::kFloat32, x.device());
  BroadcastGeometry geom = make_broadcast_geometry(x.shape(), shape, x.shape());
  QILIN_DISPATCH(x.device(), reduce_to_forward, out.data<float>(), x.data<float>(), geom);
  return record_op(out, "sum_to", {x}, [xs = x.shape()](const Tensor& gy, GradSlots& g) {
    // Broadcasting gy back is an add to zeros of x's shape.
    g.add(0, add(Tensor::zeros(xs, DType::kFloat32, gy.device()), gy));
  });
}

Tensor add(const Tensor& a, const Tensor& b) {
  ProfileScope scope("add");
  Tensor out = binary(BinaryOp::kAdd, "add", a, b);
  return record_op(out, "add", {a, b},
                   [as = a.shape(), bs = b.shape()](const Tensor& gy, GradSlots& g) {
                     if (g.needs(0)) g.add(0, sum_to(gy, as));
                     if (g.needs(1)) g.add(1, sum_to(gy, bs));
                   });
}

Tensor sub(const Tensor& a, const Tensor& b) {
  ProfileScope scope("sub");
  Tensor out = binary(BinaryOp::kSub, "sub", a, b);
  return record_op(out, "sub", {a, b},
                   [as = a.shape(), bs = b.shape()](const Tensor& gy, GradSlots& g) {
                     if (g.needs(0)) g.add(0, sum_to(gy, as));
                     if (g.needs(1)) g.add(1, sum_to(neg(gy), bs));
                   });
}

Tensor mul(const Tensor& a, const Tensor& b) {
  ProfileScope scope("mul");
  Tensor out = binary(BinaryOp::kMul, "mul", a, b);
  bool grad = any_requires_grad({a, b});
  Tensor a_saved = grad && b.requires_grad() ? a.detach() : Tensor();
  Tensor b_saved = grad && a.requires_grad() ? b.detach() : Tensor();
  return record_op(out, "mul", {a, b},
                   [a_saved, b_saved, as = a.shape(), bs = b.shape()](const Tensor& gy,
                                                                      GradSlots& g) {
                     if (g.needs(0)) g.add(0, sum_to(mul(gy, b_saved), as));
                     if (g.needs(1)) g.add(1, sum_to(mul(gy, a_saved), bs));
                   });
}

Tensor div(const Tensor& a, const Tensor& b) {
  ProfileScope scope("div");
  Tensor out = binary(BinaryOp::kDiv, "div", a, b);
  bool grad = any_requires_grad({a, b});
  Tensor b_saved = grad ? b.detach() : Tensor();
  Tensor out_saved = grad && b.requires_grad() ? out.detach() : Tensor();
  return record_op(out, "div", {a, b},
                   [b_saved, out_saved, as = a.shape(), bs = b.shape()](const Tensor& gy,
                                                                        GradSlots& g) {
                     Tensor gy_over_b = div(gy, b_saved);
                     if (g.needs(0)) g.add(0, sum_to(gy_over_b, as));
                     // d(a/b)/db = -(a/b)/b: gy * -out / b
                     if (g.needs(1)) g.add(1, sum_to(neg(mul(gy_over_b, out_saved)), bs));
                   });
}

Tensor add(const Tensor& a, float s) {
  ProfileScope scope("add_scalar");
  return record_op(scalar_op(BinaryOp::kAdd, a, s, false, "add"), "add_scalar", {a},
                   [](const Tensor& gy, GradSlots& g) { g.add(0, gy); });
}

Tensor sub(const Tensor& a, float s) { return add(a, -s); }

Tensor rsub(float s, const Tensor& a) {
  ProfileScope scope("rsub_scalar");
  return record_op(scalar_op(BinaryOp::kSub, a, s, true, "rsub"), "rsub_scalar", {a},
                   [](const Tensor& gy, GradSlots& g) { g.add(0, neg(gy)); });
}

Tensor mul(const Tensor& a, float s) {
  ProfileScope scope("mul_scalar");
  return record_op(scalar_op(BinaryOp::kMul, a, s, false, "mul"), "mul_scalar", {a},
                   [s](const Tensor& gy, GradSlots& g) { g.add(0, mul(gy, s)); });
}

Tensor div(const Tensor& a, float s) {
  ProfileScope scope("div_scalar");
  return record_op(scalar_op(BinaryOp::kDiv, a, s, false, "div"), "div_scalar", {a},
                   [s](const Tensor& gy, GradSlots& g) { g.add(0, div(gy, s)); });
}

Tensor rdiv(float s, const Tensor& a) {
  ProfileScope scope("rdiv_scalar");
  Tensor out = scalar_op(BinaryOp::kDiv, a, s, true, "rdiv");
  Tensor a_saved = a.detach(), out_saved = out.detach();
  return record_op(out, "rdiv_scalar", {a},
                   [a_saved, out_saved](const Tensor& gy, GradSlots& g) {
                     // d(s/a)/da = -(s/a)/a
                     g.add(0, neg(div(mul(gy, out_saved), a_saved)));
                   });
}

Tensor neg(const Tensor& a) {
  ProfileScope scope("neg");
  return record_op(scalar_op(BinaryOp::kMul, a, -1.0f, false, "neg"), "neg", {a},
                   [](const Tensor& gy, GradSlots& g) { g.add(0, neg(gy)); });
}

}  // namespace qilin
