// Front-ends of the reductions: shape checks, dispatch and each backward right under its
// forward. Kernels see x as [outer, dim, inner] (kernels/cpu/reduce.h).
#include "core/ops/reduce.h"

#include "core/autograd.h"
#include "core/dispatch.h"
#include "core/profiler.h"
#include "kernels/cpu/reduce.h"

namespace qilin {
namespace {

struct DimSplit {
  int64_t outer = 1, dim = 1, inner = 1;
  Shape out_shape;
};

DimSplit split_at(const Tensor& x, int64_t dim, bool keepdim, const char* op) {
  QILIN_CHECK(x.dtype() == DType::kFloat32, op, ": expected float32, got ", x.str());
  const int64_t d = wrap_dim(dim, std::max<int64_t>(x.dim(), 1), op);
  DimSplit s;
  const Shape& shape = x.shape();
  if (shape.empty()) {  // a scalar reduces over its single implicit dim (as PyTorch does)
    return s;
  }
  for (int64_t i = 0; i < x.dim(); ++i) {
    if (i < d) s.outer *= shape[i];
    if (i > d) s.inner *= shape[i];
    if (i != d)
      s.out_shape.push_back(shape[i]);
    else if (keepdim)
      s.out_shape.push_back(1);
  }
  s.dim = shape[d];
  return s;
}

Tensor sum_impl(const Tensor& x, int64_t dim, bool keepdim, bool mean, const char* op) {
  DimSplit s = split_at(x, dim, keepdim, op);
  QILIN_CHECK(!mean || s.dim > 0, op, ": mean over an empty dim of ", shape_str(x.shape()));
  const float scale = mean ? 1.0f / static_cast<float>(s.dim) : 1.0f;
  Tensor out = Tensor::empty(s.out_shape, DType::kFloat32, x.device());
  QILIN_DISPATCH(x.device(), sum_dim, out.data<float>(), x.data<float>(), s.outer, s.dim, s.inner,
                 scale);
  return record_op(out, op, {x}, [s, scale, xs = x.shape()](const Tensor& gy, GradSlots& g) {
    Tensor dx = Tensor::empty(xs, DType::kFloat32, gy.device());
    QILIN_DISPATCH(gy.device(), sum_dim_backward, dx.data<float>(), gy.data<float>(), s.outer,
                   s.dim, s.inner, scale);
    g.add(0, dx);
  });
}

Tensor sum_all_impl(const Tensor& x, bool mean, const char* op) {
  QILIN_CHECK(x.dtype() == DType::kFloat32, op, ": expected float32, got ", x.str());
  const int64_t n = x.numel();
  QILIN_CHECK(!mean || n > 0, op, ": mean of an empty tensor ", shape_str(x.shape()));
  const float scale = mean ? 1.0f / static_cast<float>(n) : 1.0f;
  Tensor out = Tensor::empty({}, DType::kFloat32, x.device());
  QILIN_DISPATCH(x.device(), sum_all, out.data<float>(), x.data<float>(), n, scale);
  return record_op(out, op, {x}, [n, scale, xs = x.shape()](const Tensor& gy, GradSlots& g) {
    Tensor dx = Tensor::empty(xs, DType::kFloat32, gy.device());
    QILIN_DISPATCH(gy.device(), sum_dim_backward, dx.data<float>(), gy.data<float>(), 1, n, 1,
                   scale);
    g.add(0, dx);
  });
}

// Values and int64 indices of the max over `dim`; no graph.
std::pair<Tensor, Tensor> max_impl(const Tensor& x, const DimSplit& s, const char* op) {
  QILIN_CHECK(s.dim > 0, op, ": reduction over an empty dim of ", shape_str(x.shape()));
  Tensor values = Tensor::empty(s.out_shape, DType::kFloat32, x.device());
  Tensor index = Tensor::empty(s.out_shape, DType::kInt64, x.device());
  QILIN_DISPATCH(x.device(), max_dim, values.data<float>(), index.data<int64_t>(), x.data<float>(),
                 s.outer, s.dim, s.inner);
  return {values, index};
}

}  // namespace

Tensor sum(const Tensor& x) {
  ProfileScope scope("sum");
  return sum_all_impl(x, false, "sum");
}

Tensor sum(const Tensor& x, int64_t dim, bool keepdim) {
  ProfileScope scope("sum");
  return sum_impl(x, dim, keepdim, false, "sum");
}

Tensor mean(const Tensor& x) {
  ProfileScope scope("mean");
  return sum_all_impl(x, true, "mean");
}

Tensor mean(const Tensor& x, int64_t dim, bool keepdim) {
  ProfileScope scope("mean");
  return sum_impl(x, dim, keepdim, true, "mean");
}

Tensor max(const Tensor& x, int64_t dim, bool keepdim) {
  ProfileScope scope("max");
  DimSplit s = split_at(x, dim, keepdim, "max");
  auto [values, index] = max_impl(x, s, "max");
  Tensor index_saved = x.requires_grad() ? index : Tensor();
  return record_op(
      values, "max", {x}, [s, index_saved, xs = x.shape()](const Tensor& gy, GradSlots& g) {
        // The whole gradient goes to the first maximum (PyTorch's max.dim).
        Tensor dx = Tensor::empty(xs, DType::kFloat32, gy.device());
        QILIN_DISPATCH(gy.device(), max_dim_backward, dx.data<float>(), gy.data<float>(),
                       index_saved.data<int64_t>(), s.outer, s.dim, s.inner);
        g.add(0, dx);
      });
}

Tensor argmax(const Tensor& x, int64_t dim, bool keepdim) {
  ProfileScope scope("argmax");
  DimSplit s = split_at(x, dim, keepdim, "argmax");
  return max_impl(x, s, "argmax").second;
}

}  // namespace qilin
