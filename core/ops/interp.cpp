// Front-ends of the interpolated ops: checks, dispatch to kernels/cpu/interp.h (or the
// native ops for method native), and the backward of the spec's grad mode. The table is
// held by the recorded backward, so it outlives the forward's caller.
#include "core/ops/interp.h"

#include "core/autograd.h"
#include "core/dispatch.h"
#include "core/ops/softmax.h"
#include "core/ops/unary.h"
#include "core/profiler.h"
#include "kernels/cpu/interp.h"
#include "kernels/cpu/softmax.h"

namespace qilin {
namespace {

void check_input(const Tensor& x, const InterpTable* table, const char* op) {
  QILIN_CHECK(table != nullptr, op, ": no table");
  QILIN_CHECK(x.dtype() == DType::kFloat32, op, ": expected float32, got ", x.str());
}

// The native op of a function (method native).
Tensor native(const Tensor& x, InterpFn fn) {
  switch (fn) {
    case InterpFn::kExp: return exp(x);
    case InterpFn::kSigmoid: return sigmoid(x);
    case InterpFn::kTanh: return tanh(x);
    case InterpFn::kGelu: return gelu(x, GeluApprox::kNone);
    case InterpFn::kSilu: return silu(x);
  }
  QILIN_FAIL("interp: unknown function ", static_cast<int>(fn));
}

// The op's name in profiles and autograd: the function and how it runs, e.g. "interp_gelu".
const char* op_name(const InterpSpec& spec) {
  if (spec.method == InterpMethod::kIgelu) return "igelu";
  switch (spec.fn) {
    case InterpFn::kExp: return "interp_exp";
    case InterpFn::kSigmoid: return "interp_sigmoid";
    case InterpFn::kTanh: return "interp_tanh";
    case InterpFn::kGelu: return "interp_gelu";
    case InterpFn::kSilu: return "interp_silu";
  }
  return "interp";
}

}  // namespace

Tensor interp_activation(const Tensor& x, std::shared_ptr<const InterpTable> table) {
  check_input(x, table.get(), "interp_activation");
  const InterpSpec& spec = table->spec();
  if (spec.method == InterpMethod::kNative) return native(x, spec.fn);
  const char* name = op_name(spec);
  ProfileScope scope(name);
  Tensor y = Tensor::empty(x.shape(), DType::kFloat32, x.device());
  const int64_t n = x.numel();
  if (spec.method == InterpMethod::kIgelu) {
    QILIN_DISPATCH(x.device(), igelu_forward, x.data<float>(), y.data<float>(), n);
  } else {
    QILIN_DISPATCH(x.device(), interp_forward, table->view(), x.data<float>(), y.data<float>(), n);
  }
  if (!any_requires_grad({x})) return y;
  return record_op(y, name, {x}, [x_saved = x.detach(), table](const Tensor& gy, GradSlots& g) {
    const int64_t n = x_saved.numel();
    Tensor dx = grad_buffer(gy, x_saved);  // the kernels allow dx == dy
    const float* xs = x_saved.data<float>();
    if (table->spec().method == InterpMethod::kIgelu) {
      QILIN_DISPATCH(gy.device(), igelu_backward, xs, gy.data<float>(), dx.data<float>(), n, false);
    } else if (table->spec().grad == InterpGrad::kTable) {
      QILIN_DISPATCH(gy.device(), interp_backward_table, table->derivative_view(), xs, gy.data<float>(),
                     dx.data<float>(), n, false);
    } else {
      QILIN_DISPATCH(gy.device(), interp_backward_slope, table->view(), xs, gy.data<float>(),
                     dx.data<float>(), n, false);
    }
    g.add(0, dx);
  });
}

Tensor interp_softmax(const Tensor& x, std::shared_ptr<const InterpTable> table) {
  check_input(x, table.get(), "interp_softmax");
  const InterpSpec& spec = table->spec();
  QILIN_CHECK(spec.fn == InterpFn::kExp, "interp_softmax: needs an exp table, got ", to_string(spec.fn));
  if (spec.method == InterpMethod::kNative) return softmax(x);
  QILIN_CHECK(table->has_table(), "interp_softmax: method ", to_string(spec.method), " has no exp table");
  ProfileScope scope("interp_softmax");
  const int64_t cols = x.dim() == 0 ? 1 : x.size(-1);
  const int64_t rows = cols == 0 ? 0 : x.numel() / cols;
  Tensor y = Tensor::empty(x.shape(), DType::kFloat32, x.device());
  const bool needs_grad = any_requires_grad({x});
  const bool slope = spec.grad == InterpGrad::kSlope;
  if (!needs_grad || !slope) {
    QILIN_DISPATCH(x.device(), interp_softmax_forward, table->view(), x.data<float>(), y.data<float>(),
                   rows, cols, nullptr);
    if (!needs_grad) return y;
    // grad: table: the softmax backward from y alone.
    return record_op(y, "interp_softmax", {x}, [y_saved = y.detach(), rows, cols](const Tensor& gy, GradSlots& g) {
      Tensor dx = Tensor::empty(gy.shape(), DType::kFloat32, gy.device());
      QILIN_DISPATCH(gy.device(), softmax_backward, dx.data<float>(), y_saved.data<float>(), gy.data<float>(),
                     rows, cols);
      g.add(0, dx);
    });
  }
  // grad: slope: the backward needs x, y and the rows' max, sum and argmax (saved here, so it
  // runs one table pass per row instead of three).
  Tensor row_max = Tensor::empty({rows}, DType::kFloat32, x.device());
  Tensor row_sum = Tensor::empty({rows}, DType::kFloat32, x.device());
  Tensor row_argmax = Tensor::empty({rows}, DType::kInt32, x.device());
  const InterpSoftmaxRowStats stats{row_max.data<float>(), row_sum.data<float>(),
                                                  row_argmax.data<int32_t>()};
  QILIN_DISPATCH(x.device(), interp_softmax_forward, table->view(), x.data<float>(), y.data<float>(),
                 rows, cols, &stats);
  return record_op(y, "interp_softmax", {x},
                   [x_saved = x.detach(), y_saved = y.detach(), table, rows, cols, row_max, row_sum,
                    row_argmax](const Tensor& gy, GradSlots& g) mutable {
                     Tensor dx = Tensor::empty(gy.shape(), DType::kFloat32, gy.device());
                     const InterpSoftmaxRowStats saved{row_max.data<float>(), row_sum.data<float>(),
                                                      row_argmax.data<int32_t>()};
                     QILIN_DISPATCH(gy.device(), interp_softmax_backward_slope, table->view(),
                                    x_saved.data<float>(), y_saved.data<float>(), gy.data<float>(),
                                    dx.data<float>(), rows, cols, false, &saved);
                     g.add(0, dx);
                   });
}

}  // namespace qilin
