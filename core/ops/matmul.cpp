// Front-ends of matmul and linear: shape checks, the batching geometry, dispatch to the
// GEMM kernels (kernels/cpu/gemm.h) and the backwards. Backwards use the GEMM transpose
// flags, never transposed copies, and reduce gradients of an operand shared across a batch
// inside GEMMs (one GEMM over all rows where the layout allows it).
#include "core/ops/matmul.h"

#include "core/autograd.h"
#include "core/dispatch.h"
#include "core/profiler.h"
#include "kernels/cpu/gemm.h"
#include "kernels/cpu/reduce.h"

namespace qilin {
namespace {

std::string operands_str(const Tensor& a, const Tensor& b, bool ta, bool tb) {
  return str_cat(shape_str(a.shape()), ta ? "^T" : "", " x ", shape_str(b.shape()), tb ? "^T" : "");
}

Shape batch_dims(const Tensor& t) { return Shape(t.shape().begin(), t.shape().end() - 2); }

// out = op(a) op(b) without recording a graph. Batching (matmul.h): b 2-D folds a's batch
// dims into M (or, with trans_a, shares b across a's batch); a 2-D is shared across b's
// batch; otherwise the batch dims must be equal.
Tensor mm(const Tensor& a, const Tensor& b, bool ta, bool tb, const char* op, float alpha = 1.0f) {
  QILIN_CHECK(a.dtype() == DType::kFloat32 && b.dtype() == DType::kFloat32, op,
              ": expected float32, got ", a.str(), " and ", b.str());
  QILIN_CHECK(a.dim() >= 2 && b.dim() >= 2, op, ": both operands need >= 2 dims, got ",
              operands_str(a, b, ta, tb));
  QILIN_CHECK(a.device() == b.device(), op, ": operands on ", a.device().str(), " and ",
              b.device().str());
  const int64_t a_rows = a.size(-2), a_cols = a.size(-1), b_rows = b.size(-2), b_cols = b.size(-1);
  const int64_t m = ta ? a_cols : a_rows, k = ta ? a_rows : a_cols;
  const int64_t n = tb ? b_rows : b_cols, kb = tb ? b_cols : b_rows;
  QILIN_CHECK(k == kb, op, ": inner sizes differ (", k, " vs ", kb, ") in ",
              operands_str(a, b, ta, tb));
  int64_t batch = 1, rows = m, stride_a = a_rows * a_cols, stride_b = b_rows * b_cols;
  Shape out_shape;
  if (b.dim() == 2 && !ta) {  // fold a's batch dims into M: one GEMM
    out_shape = batch_dims(a);
    rows = shape_numel(out_shape) * m;
  } else if (b.dim() == 2) {  // a^T per batch entry, b shared
    out_shape = batch_dims(a);
    batch = shape_numel(out_shape);
    stride_b = 0;
  } else if (a.dim() == 2) {  // a shared across b's batch
    out_shape = batch_dims(b);
    batch = shape_numel(out_shape);
    stride_a = 0;
  } else {
    out_shape = batch_dims(a);
    QILIN_CHECK(out_shape == batch_dims(b), op, ": batch dims differ in ",
                operands_str(a, b, ta, tb));
    batch = shape_numel(out_shape);
  }
  out_shape.push_back(m);
  out_shape.push_back(n);
  Tensor out = Tensor::empty(out_shape, DType::kFloat32, a.device());
  QILIN_DISPATCH(a.device(), gemm_strided_batched, ta, tb, batch, rows, n, k, alpha, a.data<float>(),
                 a_cols, stride_a, b.data<float>(), b_cols, stride_b, 0.0f, out.data<float>(), n,
                 m * n);
  return out;
}

// sum over the batch of op(a_i) op(b_i): the gradient of an operand shared across a batch.
// a and b have equal batch dims. With op(a) = a^T and op(b) = b the batch folds into the
// GEMM's K (rows of a and b stack); otherwise the products accumulate (beta = 1).
Tensor mm_sum(const Tensor& a, const Tensor& b, bool ta, bool tb, const char* op,
              float alpha = 1.0f) {
  if (a.dim() == 2 && b.dim() == 2) return mm(a, b, ta, tb, op, alpha);
  if (ta && !tb)
    return mm(a.reshape({-1, a.size(-1)}), b.reshape({-1, b.size(-1)}), true, false, op, alpha);
  const int64_t a_rows = a.size(-2), a_cols = a.size(-1), b_rows = b.size(-2), b_cols = b.size(-1);
  const int64_t m = ta ? a_cols : a_rows, k = ta ? a_rows : a_cols, n = tb ? b_rows : b_cols;
  const int64_t batch = a.numel() / std::max<int64_t>(a_rows * a_cols, 1);
  Tensor out = Tensor::zeros({m, n}, DType::kFloat32, a.device());
  for (int64_t i = 0; i < batch; ++i) {
    QILIN_DISPATCH(a.device(), gemm, ta, tb, m, n, k, alpha, a.data<float>() + i * a_rows * a_cols,
                   a_cols, b.data<float>() + i * b_rows * b_cols, b_cols, 1.0f, out.data<float>(),
                   n);
  }
  return out;
}

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b, bool trans_a, bool trans_b, float alpha) {
  ProfileScope scope("matmul");
  Tensor out = mm(a, b, trans_a, trans_b, "matmul", alpha);
  bool grad = any_requires_grad({a, b});
  Tensor a_saved = grad && b.requires_grad() ? a.detach() : Tensor();
  Tensor b_saved = grad && a.requires_grad() ? b.detach() : Tensor();
  // Which operand, if any, is shared across the batch (its gradient sums over the batch).
  const bool a_shared = a.dim() == 2 && b.dim() > 2;
  const bool b_shared = b.dim() == 2 && a.dim() > 2;
  return record_op(out, "matmul", {a, b},
                   [a_saved, b_saved, trans_a, trans_b, alpha, a_shared, b_shared, as = a.shape(),
                    bs = b.shape()](const Tensor& gy, GradSlots& g) {
                     const bool ta = trans_a, tb = trans_b;
                     // Per matrix, C = alpha op(A) op(B):  d op(A) = alpha dC op(B)^T,
                     // d op(B) = alpha op(A)^T dC.
                     if (g.needs(0)) {
                       auto product = a_shared ? mm_sum : mm;
                       Tensor da = ta ? product(b_saved, gy, tb, true, "matmul backward", alpha)
                                      : product(gy, b_saved, false, !tb, "matmul backward", alpha);
                       g.add(0, da.reshape(as));
                     }
                     if (g.needs(1)) {
                       auto product = b_shared ? mm_sum : mm;
                       Tensor db = tb ? product(gy, a_saved, true, ta, "matmul backward", alpha)
                                      : product(a_saved, gy, !ta, false, "matmul backward", alpha);
                       g.add(1, db.reshape(bs));
                     }
                   });
}

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  ProfileScope scope("linear");
  QILIN_CHECK(x.dtype() == DType::kFloat32 && weight.dtype() == DType::kFloat32,
              "linear: expected float32, got ", x.str(), " and ", weight.str());
  QILIN_CHECK(weight.dim() == 2 && x.dim() >= 1 && x.size(-1) == weight.size(1), "linear: x ",
              shape_str(x.shape()), " does not match weight ", shape_str(weight.shape()),
              " ([out, in])");
  const int64_t in = weight.size(1), out_features = weight.size(0);
  const bool has_bias = bias.defined();
  if (has_bias) {
    QILIN_CHECK(bias.dtype() == DType::kFloat32 && bias.dim() == 1 && bias.size(0) == out_features,
                "linear: bias ", bias.str(), " does not match weight ", shape_str(weight.shape()));
  }
  QILIN_CHECK(x.device() == weight.device() && (!has_bias || bias.device() == x.device()),
              "linear: operands on different devices");
  Shape out_shape = x.shape();
  out_shape.back() = out_features;
  const int64_t n_rows = shape_numel(Shape(x.shape().begin(), x.shape().end() - 1));
  Tensor y = Tensor::empty(out_shape, DType::kFloat32, x.device());
  // y = b (every row) then y += x W^T: the bias costs one pass over y and no extra kernel.
  if (has_bias) {
    QILIN_DISPATCH(x.device(), broadcast_rows, y.data<float>(), bias.data<float>(), n_rows,
                   out_features);
  }
  QILIN_DISPATCH(x.device(), gemm, false, true, n_rows, out_features, in, 1.0f, x.data<float>(), in,
                 weight.data<float>(), in, has_bias ? 1.0f : 0.0f, y.data<float>(), out_features);
  Tensor x_saved = weight.requires_grad() ? x.detach() : Tensor();
  Tensor w_saved = x.requires_grad() ? weight.detach() : Tensor();
  std::vector<Tensor> inputs{x, weight};
  if (has_bias) inputs.push_back(bias);
  return record_op(
      y, "linear", inputs,
      [x_saved, w_saved, n_rows, in, out_features, xs = x.shape()](const Tensor& gy, GradSlots& g) {
        const float* dy = gy.data<float>();
        if (g.needs(0)) {  // dX[rows, in] = dY[rows, out] W[out, in]
          Tensor dx = Tensor::empty(xs, DType::kFloat32, gy.device());
          QILIN_DISPATCH(gy.device(), gemm, false, false, n_rows, in, out_features, 1.0f, dy,
                         out_features, w_saved.data<float>(), in, 0.0f, dx.data<float>(), in);
          g.add(0, dx);
        }
        if (g.needs(1)) {  // dW[out, in] = dY^T X: one GEMM over all rows
          Tensor dw = Tensor::empty({out_features, in}, DType::kFloat32, gy.device());
          QILIN_DISPATCH(gy.device(), gemm, true, false, out_features, in, n_rows, 1.0f, dy,
                         out_features, x_saved.data<float>(), in, 0.0f, dw.data<float>(), in);
          g.add(1, dw);
        }
        if (g.needs(2)) {  // db = column sums of dY
          Tensor db = Tensor::empty({out_features}, DType::kFloat32, gy.device());
          QILIN_DISPATCH(gy.device(), sum_dim, db.data<float>(), dy, 1, n_rows, out_features, 1.0f);
          g.add(2, db);
        }
      });
}

}  // namespace qilin
