// Front-ends of the classification losses: shape and target checks, the fused
// log-softmax + NLL kernels, and their backward ((softmax - q) / N * gy). The kernels save
// each row's log-sum-exp, so backward recomputes softmax in one pass without max or sum.
#include "core/ops/loss.h"

#include "core/autograd.h"
#include "core/dispatch.h"
#include "core/profiler.h"
#include "kernels/cpu/softmax.h"

namespace qilin {
namespace {

void check_logits(const Tensor& logits, const char* op) {
  QILIN_CHECK(logits.dtype() == DType::kFloat32, op, ": logits must be float32, got ",
              logits.str());
  QILIN_CHECK(logits.dim() == 2 && logits.size(1) > 0, op,
              ": logits must be [N, C] with C >= 1, got ", shape_str(logits.shape()));
}

// Every target must be a class index in [0, C): a bad label would read out of bounds.
template <typename T>
void check_targets(const T* target, int64_t n, int64_t classes) {
  for (int64_t i = 0; i < n; ++i) {
    QILIN_CHECK(target[i] >= 0 && target[i] < classes, "cross_entropy: target[", i, "] = ",
                static_cast<int64_t>(target[i]), " is not a class index in [0, ", classes,
                ") (C = ", classes, ")");
  }
}

}  // namespace

Tensor cross_entropy(const Tensor& logits, const Tensor& target, float label_smoothing) {
  ProfileScope scope("cross_entropy");
  check_logits(logits, "cross_entropy");
  const int64_t n = logits.size(0), classes = logits.size(1);
  QILIN_CHECK(target.dtype() == DType::kInt64 || target.dtype() == DType::kInt32,
              "cross_entropy: target must be int64 or int32 class indices, got ", target.str());
  QILIN_CHECK(target.dim() == 1 && target.size(0) == n, "cross_entropy: target ",
              shape_str(target.shape()), " does not match logits ", shape_str(logits.shape()),
              " (expected [", n, "])");
  QILIN_CHECK(label_smoothing >= 0.0f && label_smoothing <= 1.0f,
              "cross_entropy: label_smoothing = ", label_smoothing, " is not in [0, 1]");
  QILIN_CHECK(logits.device() == target.device(), "cross_entropy: logits on ",
              logits.device().str(), ", target on ", target.device().str());
  const bool i64 = target.dtype() == DType::kInt64;
  // Targets are read on the host to check them (N values per step).
  if (i64) {
    check_targets(target.to(Device::cpu()).data<int64_t>(), n, classes);
  } else {
    check_targets(target.to(Device::cpu()).data<int32_t>(), n, classes);
  }

  Tensor loss = Tensor::empty({}, DType::kFloat32, logits.device());
  Tensor lse = Tensor::empty({n}, DType::kFloat32, logits.device());
  if (i64) {
    QILIN_DISPATCH(logits.device(), cross_entropy_forward, loss.data<float>(), lse.data<float>(),
                   logits.data<float>(), target.data<int64_t>(), n, classes, label_smoothing);
  } else {
    QILIN_DISPATCH(logits.device(), cross_entropy_forward, loss.data<float>(), lse.data<float>(),
                   logits.data<float>(), target.data<int32_t>(), n, classes, label_smoothing);
  }
  if (!any_requires_grad({logits})) return loss;
  return record_op(
      loss, "cross_entropy", {logits, target},
      [x = logits.detach(), lse, t = target.detach(), n, classes, i64,
       label_smoothing](const Tensor& gy, GradSlots& g) {
        if (!g.needs(0)) return;
        Tensor dx = Tensor::empty(x.shape(), DType::kFloat32, x.device());
        if (i64) {
          QILIN_DISPATCH(x.device(), cross_entropy_backward, dx.data<float>(), x.data<float>(),
                         lse.data<float>(), t.data<int64_t>(), gy.data<float>(), n, classes,
                         label_smoothing);
        } else {
          QILIN_DISPATCH(x.device(), cross_entropy_backward, dx.data<float>(), x.data<float>(),
                         lse.data<float>(), t.data<int32_t>(), gy.data<float>(), n, classes,
                         label_smoothing);
        }
        g.add(0, dx);
      });
}

Tensor cross_entropy_soft(const Tensor& logits, const Tensor& target_probs) {
  ProfileScope scope("cross_entropy_soft");
  check_logits(logits, "cross_entropy_soft");
  QILIN_CHECK(target_probs.dtype() == DType::kFloat32,
              "cross_entropy_soft: target must be float32 probabilities, got ",
              target_probs.str());
  QILIN_CHECK(target_probs.shape() == logits.shape(), "cross_entropy_soft: target ",
              shape_str(target_probs.shape()), " does not match logits ",
              shape_str(logits.shape()));
  const int64_t n = logits.size(0), classes = logits.size(1);
  Tensor loss = Tensor::empty({}, DType::kFloat32, logits.device());
  Tensor lse = Tensor::empty({n}, DType::kFloat32, logits.device());
  QILIN_DISPATCH(logits.device(), cross_entropy_soft_forward, loss.data<float>(),
                 lse.data<float>(), logits.data<float>(), target_probs.data<float>(), n, classes);
  if (!any_requires_grad({logits, target_probs})) return loss;
  return record_op(
      loss, "cross_entropy_soft", {logits, target_probs},
      [x = logits.detach(), lse, t = target_probs.detach(), n, classes](const Tensor& gy,
                                                                       GradSlots& g) {
        Tensor dx, dt;
        if (g.needs(0)) dx = Tensor::empty(x.shape(), DType::kFloat32, x.device());
        if (g.needs(1)) dt = Tensor::empty(t.shape(), DType::kFloat32, t.device());
        QILIN_DISPATCH(x.device(), cross_entropy_soft_backward,
                       dx.defined() ? dx.data<float>() : nullptr,
                       dt.defined() ? dt.data<float>() : nullptr, x.data<float>(),
                       lse.data<float>(), t.data<float>(), gy.data<float>(), n, classes);
        if (dx.defined()) g.add(0, dx);
        if (dt.defined()) g.add(1, dt);
      });
}

}  // namespace qilin
