// Front-ends of the elementwise math and activations: dtype checks, dispatch to the
// forward kernel, and a backward that calls the fused backward kernel (dx = dy * f') on
// whichever of x or y the derivative is computed from (kernels/cpu/unary.h says which).
#include "core/ops/unary.h"

#include "core/autograd.h"
#include "core/dispatch.h"
#include "core/profiler.h"
#include "kernels/cpu/unary.h"

namespace qilin {
namespace {

void check_float(const Tensor& x, const char* op) {
  QILIN_CHECK(x.dtype() == DType::kFloat32, op, ": expected float32, got ", x.str());
}

// What the backward kernel reads besides dy.
enum class Saved : uint8_t { kInput, kOutput };

// Runs `forward(x, y)` into a new y, and records a backward that runs
// `backward(dx, saved, gy)` with saved = x or y. Both are lambdas around QILIN_DISPATCH.
template <typename Forward, typename Backward>
Tensor pointwise(const char* op, const Tensor& x, Saved saved, Forward forward,
                 Backward backward) {
  check_float(x, op);
  Tensor y = Tensor::empty(x.shape(), DType::kFloat32, x.device());
  forward(x, y);
  if (!any_requires_grad({x})) return y;
  Tensor keep = saved == Saved::kInput ? x.detach() : y.detach();
  return record_op(y, op, {x}, [keep, backward](const Tensor& gy, GradSlots& g) {
    Tensor dx = grad_buffer(gy, keep);  // the backward kernels allow dx == dy
    backward(dx, keep, gy);
    g.add(0, dx);
  });
}

}  // namespace

Tensor exp(const Tensor& x) {
  ProfileScope scope("exp");
  return pointwise(
      "exp", x, Saved::kOutput,
      [](const Tensor& in, Tensor& out) {
        QILIN_DISPATCH(in.device(), exp_forward, out.data<float>(), in.data<float>(), in.numel());
      },
      [](Tensor& dx, const Tensor& y, const Tensor& gy) {
        QILIN_DISPATCH(y.device(), exp_backward, dx.data<float>(), y.data<float>(),
                       gy.data<float>(), y.numel());
      });
}

Tensor log(const Tensor& x) {
  ProfileScope scope("log");
  return pointwise(
      "log", x, Saved::kInput,
      [](const Tensor& in, Tensor& out) {
        QILIN_DISPATCH(in.device(), log_forward, out.data<float>(), in.data<float>(), in.numel());
      },
      [](Tensor& dx, const Tensor& x_saved, const Tensor& gy) {
        QILIN_DISPATCH(x_saved.device(), log_backward, dx.data<float>(), x_saved.data<float>(),
                       gy.data<float>(), x_saved.numel());
      });
}

Tensor sqrt(const Tensor& x) {
  ProfileScope scope("sqrt");
  return pointwise(
      "sqrt", x, Saved::kOutput,
      [](const Tensor& in, Tensor& out) {
        QILIN_DISPATCH(in.device(), sqrt_forward, out.data<float>(), in.data<float>(),
                       in.numel());
      },
      [](Tensor& dx, const Tensor& y, const Tensor& gy) {
        QILIN_DISPATCH(y.device(), sqrt_backward, dx.data<float>(), y.data<float>(),
                       gy.data<float>(), y.numel());
      });
}

Tensor pow(const Tensor& x, float exponent) {
  ProfileScope scope("pow");
  return pointwise(
      "pow", x, Saved::kInput,
      [exponent](const Tensor& in, Tensor& out) {
        QILIN_DISPATCH(in.device(), pow_forward, out.data<float>(), in.data<float>(), exponent,
                       in.numel());
      },
      [exponent](Tensor& dx, const Tensor& x_saved, const Tensor& gy) {
        QILIN_DISPATCH(x_saved.device(), pow_backward, dx.data<float>(), x_saved.data<float>(),
                       gy.data<float>(), exponent, x_saved.numel());
      });
}

Tensor relu(const Tensor& x) {
  ProfileScope scope("relu");
  return pointwise(
      "relu", x, Saved::kInput,
      [](const Tensor& in, Tensor& out) {
        QILIN_DISPATCH(in.device(), relu_forward, out.data<float>(), in.data<float>(),
                       in.numel());
      },
      [](Tensor& dx, const Tensor& x_saved, const Tensor& gy) {
        QILIN_DISPATCH(x_saved.device(), relu_backward, dx.data<float>(), x_saved.data<float>(),
                       gy.data<float>(), x_saved.numel());
      });
}

Tensor gelu(const Tensor& x, GeluApprox approx) {
  if (approx == GeluApprox::kTanh) {
    ProfileScope scope("gelu_tanh");
    return pointwise(
        "gelu_tanh", x, Saved::kInput,
        [](const Tensor& in, Tensor& out) {
          QILIN_DISPATCH(in.device(), gelu_tanh_forward, out.data<float>(), in.data<float>(),
                         in.numel());
        },
        [](Tensor& dx, const Tensor& x_saved, const Tensor& gy) {
          QILIN_DISPATCH(x_saved.device(), gelu_tanh_backward, dx.data<float>(),
                         x_saved.data<float>(), gy.data<float>(), x_saved.numel());
        });
  }
  ProfileScope scope("gelu");
  return pointwise(
      "gelu", x, Saved::kInput,
      [](const Tensor& in, Tensor& out) {
        QILIN_DISPATCH(in.device(), gelu_forward, out.data<float>(), in.data<float>(),
                       in.numel());
      },
      [](Tensor& dx, const Tensor& x_saved, const Tensor& gy) {
        QILIN_DISPATCH(x_saved.device(), gelu_backward, dx.data<float>(), x_saved.data<float>(),
                       gy.data<float>(), x_saved.numel());
      });
}

Tensor sigmoid(const Tensor& x) {
  ProfileScope scope("sigmoid");
  return pointwise(
      "sigmoid", x, Saved::kInput,
      [](const Tensor& in, Tensor& out) {
        QILIN_DISPATCH(in.device(), sigmoid_forward, out.data<float>(), in.data<float>(),
                       in.numel());
      },
      [](Tensor& dx, const Tensor& x_saved, const Tensor& gy) {
        QILIN_DISPATCH(x_saved.device(), sigmoid_backward, dx.data<float>(),
                       x_saved.data<float>(), gy.data<float>(), x_saved.numel());
      });
}

Tensor tanh(const Tensor& x) {
  ProfileScope scope("tanh");
  return pointwise(
      "tanh", x, Saved::kInput,
      [](const Tensor& in, Tensor& out) {
        QILIN_DISPATCH(in.device(), tanh_forward, out.data<float>(), in.data<float>(),
                       in.numel());
      },
      [](Tensor& dx, const Tensor& x_saved, const Tensor& gy) {
        QILIN_DISPATCH(x_saved.device(), tanh_backward, dx.data<float>(), x_saved.data<float>(),
                       gy.data<float>(), x_saved.numel());
      });
}

Tensor silu(const Tensor& x) {
  ProfileScope scope("silu");
  return pointwise(
      "silu", x, Saved::kInput,
      [](const Tensor& in, Tensor& out) {
        QILIN_DISPATCH(in.device(), silu_forward, out.data<float>(), in.data<float>(),
                       in.numel());
      },
      [](Tensor& dx, const Tensor& x_saved, const Tensor& gy) {
        QILIN_DISPATCH(x_saved.device(), silu_backward, dx.data<float>(), x_saved.data<float>(),
                       gy.data<float>(), x_saved.numel());
      });
}

}  // namespace qilin
