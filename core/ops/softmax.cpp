// Front-ends of softmax and log-softmax over the last dim: checks, dispatch, and the
// backward from the saved output (softmax: y (dy - sum dy y); log-softmax: dy - e^y sum dy).
#include "core/ops/softmax.h"

#include "core/autograd.h"
#include "core/dispatch.h"
#include "core/profiler.h"
#include "kernels/cpu/softmax.h"

namespace qilin {
namespace {

// [rows, cols] view of x over its last dim (a 0-dim tensor is one row of one).
void rows_cols(const Tensor& x, const char* op, int64_t* rows, int64_t* cols) {
  QILIN_CHECK(x.dtype() == DType::kFloat32, op, ": expected float32, got ", x.str());
  *cols = x.dim() == 0 ? 1 : x.size(-1);
  *rows = *cols == 0 ? 0 : x.numel() / *cols;
}

}  // namespace

Tensor softmax(const Tensor& x) {
  ProfileScope scope("softmax");
  int64_t rows, cols;
  rows_cols(x, "softmax", &rows, &cols);
  Tensor y = Tensor::empty(x.shape(), DType::kFloat32, x.device());
  QILIN_DISPATCH(x.device(), softmax_forward, y.data<float>(), x.data<float>(), rows, cols);
  if (!any_requires_grad({x})) return y;
  return record_op(y, "softmax", {x},
                   [y_saved = y.detach(), rows, cols](const Tensor& gy, GradSlots& g) {
                     Tensor dx = Tensor::empty(gy.shape(), DType::kFloat32, gy.device());
                     QILIN_DISPATCH(gy.device(), softmax_backward, dx.data<float>(),
                                    y_saved.data<float>(), gy.data<float>(), rows, cols);
                     g.add(0, dx);
                   });
}

Tensor log_softmax(const Tensor& x) {
  ProfileScope scope("log_softmax");
  int64_t rows, cols;
  rows_cols(x, "log_softmax", &rows, &cols);
  Tensor y = Tensor::empty(x.shape(), DType::kFloat32, x.device());
  QILIN_DISPATCH(x.device(), log_softmax_forward, y.data<float>(), x.data<float>(), rows, cols);
  if (!any_requires_grad({x})) return y;
  return record_op(y, "log_softmax", {x},
                   [y_saved = y.detach(), rows, cols](const Tensor& gy, GradSlots& g) {
                     Tensor dx = Tensor::empty(gy.shape(), DType::kFloat32, gy.device());
                     QILIN_DISPATCH(gy.device(), log_softmax_backward, dx.data<float>(),
                                    y_saved.data<float>(), gy.data<float>(), rows, cols);
                     g.add(0, dx);
                   });
}

}  // namespace qilin
