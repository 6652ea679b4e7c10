// Front-ends of layer norm and 2-D batch norm: shape checks, the running-statistics rule,
// dispatch to the fused kernels (which save mean and 1/std), and the backward for x,
// weight and bias from those saved statistics.
#include "core/ops/norm.h"

#include "core/autograd.h"
#include "core/dispatch.h"
#include "core/profiler.h"
#include "kernels/cpu/norm.h"

namespace qilin {
namespace {

// weight / bias / running stats: undefined, or float32 [channels].
void check_param(const Tensor& p, int64_t channels, const char* op, const char* name,
                 const Tensor& x) {
  if (!p.defined()) return;
  QILIN_CHECK(p.dtype() == DType::kFloat32 && p.shape() == Shape{channels}, op, ": ", name,
              " must be float32 [", channels, "] for input ", shape_str(x.shape()), ", got ",
              p.str());
  QILIN_CHECK(p.device() == x.device(), op, ": ", name, " on ", p.device().str(), ", input on ",
              x.device().str());
}

float* data_or_null(Tensor& t) { return t.defined() ? t.data<float>() : nullptr; }
const float* data_or_null(const Tensor& t) { return t.defined() ? t.data<float>() : nullptr; }

}  // namespace

Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, float eps) {
  ProfileScope scope("layer_norm");
  QILIN_CHECK(x.dtype() == DType::kFloat32 && x.dim() >= 1,
              "layer_norm: expected a float32 input with at least one dim, got ", x.str());
  const int64_t cols = x.size(-1);
  const int64_t rows = cols == 0 ? 0 : x.numel() / cols;
  check_param(weight, cols, "layer_norm", "weight", x);
  check_param(bias, cols, "layer_norm", "bias", x);
  QILIN_CHECK(eps >= 0.0f, "layer_norm: eps = ", eps, " must be >= 0");

  Tensor y = Tensor::empty(x.shape(), DType::kFloat32, x.device());
  Tensor mean = Tensor::empty({rows}, DType::kFloat32, x.device());
  Tensor rstd = Tensor::empty({rows}, DType::kFloat32, x.device());
  QILIN_DISPATCH(x.device(), layer_norm_forward, y.data<float>(), mean.data<float>(),
                 rstd.data<float>(), x.data<float>(), data_or_null(weight), data_or_null(bias),
                 rows, cols, eps);
  if (!any_requires_grad({x, weight, bias})) return y;
  Tensor w = weight.defined() ? weight.detach() : Tensor();
  return record_op(
      y, "layer_norm", {x, weight, bias},
      [xs = x.detach(), w, mean, rstd, rows, cols](const Tensor& gy, GradSlots& g) {
        Tensor dx, dw, db;
        if (g.needs(0)) dx = Tensor::empty(xs.shape(), DType::kFloat32, xs.device());
        if (g.needs(1)) dw = Tensor::empty({cols}, DType::kFloat32, xs.device());
        if (g.needs(2)) db = Tensor::empty({cols}, DType::kFloat32, xs.device());
        QILIN_DISPATCH(xs.device(), layer_norm_backward, data_or_null(dx), data_or_null(dw),
                       data_or_null(db), gy.data<float>(), xs.data<float>(), mean.data<float>(),
                       rstd.data<float>(), data_or_null(w), rows, cols);
        if (dx.defined()) g.add(0, dx);
        if (dw.defined()) g.add(1, dw);
        if (db.defined()) g.add(2, db);
      });
}

Tensor batch_norm2d(const Tensor& x, const Tensor& weight, const Tensor& bias,
                    Tensor running_mean, Tensor running_var, bool training, float momentum,
                    float eps, int64_t batches_seen) {
  ProfileScope scope("batch_norm2d");
  QILIN_CHECK(x.dtype() == DType::kFloat32 && x.dim() == 4,
              "batch_norm2d: expected a float32 [N, C, H, W] input, got ", x.str());
  const int64_t n = x.size(0), channels = x.size(1), hw = x.size(2) * x.size(3);
  check_param(weight, channels, "batch_norm2d", "weight", x);
  check_param(bias, channels, "batch_norm2d", "bias", x);
  check_param(running_mean, channels, "batch_norm2d", "running_mean", x);
  check_param(running_var, channels, "batch_norm2d", "running_var", x);
  QILIN_CHECK(eps >= 0.0f, "batch_norm2d: eps = ", eps, " must be >= 0");
  if (training) {
    // As PyTorch: one value per channel has no variance (and no unbiased estimate).
    QILIN_CHECK(n * hw > 1, "batch_norm2d: expected more than 1 value per channel when "
                "training, got input ", shape_str(x.shape()));
    QILIN_CHECK(momentum <= 1.0f, "batch_norm2d: momentum = ", momentum,
                " must be in [0, 1] (or negative: cumulative average)");
  } else {
    QILIN_CHECK(running_mean.defined() && running_var.defined(),
                "batch_norm2d: eval mode needs running_mean and running_var");
  }
  QILIN_CHECK(batches_seen >= 0, "batch_norm2d: batches_seen = ", batches_seen, " must be >= 0");
  // momentum < 0 (PyTorch momentum=None): cumulative average, this batch weighs 1/(k + 1)
  // after k batches.
  const float factor =
      momentum < 0.0f ? 1.0f / static_cast<float>(batches_seen + 1) : momentum;

  Tensor y = Tensor::empty(x.shape(), DType::kFloat32, x.device());
  Tensor mean = Tensor::empty({channels}, DType::kFloat32, x.device());
  Tensor rstd = Tensor::empty({channels}, DType::kFloat32, x.device());
  QILIN_DISPATCH(x.device(), batch_norm2d_forward, y.data<float>(), mean.data<float>(),
                 rstd.data<float>(), x.data<float>(), data_or_null(weight), data_or_null(bias),
                 data_or_null(running_mean), data_or_null(running_var), n, channels, hw, eps,
                 training, factor);
  if (!any_requires_grad({x, weight, bias})) return y;
  Tensor w = weight.defined() ? weight.detach() : Tensor();
  return record_op(
      y, "batch_norm2d", {x, weight, bias},
      [xs = x.detach(), w, mean, rstd, n, channels, hw, training](const Tensor& gy,
                                                                  GradSlots& g) {
        Tensor dx, dw, db;
        if (g.needs(0)) dx = Tensor::empty(xs.shape(), DType::kFloat32, xs.device());
        if (g.needs(1)) dw = Tensor::empty({channels}, DType::kFloat32, xs.device());
        if (g.needs(2)) db = Tensor::empty({channels}, DType::kFloat32, xs.device());
        QILIN_DISPATCH(xs.device(), batch_norm2d_backward, data_or_null(dx), data_or_null(dw),
                       data_or_null(db), gy.data<float>(), xs.data<float>(), mean.data<float>(),
                       rstd.data<float>(), data_or_null(w), n, channels, hw, training);
        if (dx.defined()) g.add(0, dx);
        if (dw.defined()) g.add(1, dw);
        if (db.defined()) g.add(2, db);
      });
}

}  // namespace qilin
