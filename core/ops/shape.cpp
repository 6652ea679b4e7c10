// Front-ends of the layout ops: argument checks, dispatch to kernels/cpu/shape.h and each
// backward right under its forward. Everything except flatten makes a dense copy (tensors
// are always contiguous, core/tensor.h); copies work for every dtype, gradients flow only
// to float32 inputs.
#include "core/ops/shape.h"

#include <algorithm>

#include "core/autograd.h"
#include "core/broadcast.h"
#include "core/dispatch.h"
#include "core/ops/elementwise.h"
#include "core/profiler.h"
#include "kernels/cpu/shape.h"

namespace qilin {
namespace {

// Sizes of x seen as [outer, dim, inner] around dim d.
struct DimSplit {
  int64_t outer = 1, dim = 1, inner = 1;
};

DimSplit split_at(const Shape& shape, int64_t d) {
  DimSplit s;
  for (int64_t i = 0; i < static_cast<int64_t>(shape.size()); ++i) {
    if (i < d) s.outer *= shape[i];
    if (i > d) s.inner *= shape[i];
  }
  s.dim = shape[d];
  return s;
}

std::vector<int64_t> inverse_permutation(const std::vector<int64_t>& perm) {
  std::vector<int64_t> inv(perm.size());
  for (size_t k = 0; k < perm.size(); ++k) inv[perm[k]] = static_cast<int64_t>(k);
  return inv;
}

std::string dims_str(const std::vector<int64_t>& dims) { return shape_str(dims); }

void check_index_tensor(const Tensor& index, const char* op) {
  QILIN_CHECK(index.dtype() == DType::kInt64 || index.dtype() == DType::kInt32, op,
              ": index must be int64 or int32, got ", index.str());
}

}  // namespace

Tensor permute(const Tensor& x, const std::vector<int64_t>& dims) {
  ProfileScope scope("permute");
  const int64_t nd = x.dim();
  QILIN_CHECK(static_cast<int64_t>(dims.size()) == nd, "permute: dims ", dims_str(dims),
              " do not match ", shape_str(x.shape()));
  std::vector<int64_t> perm(nd);
  std::vector<bool> seen(nd, false);
  for (int64_t k = 0; k < nd; ++k) {
    perm[k] = wrap_dim(dims[k], nd, "permute");
    QILIN_CHECK(!seen[perm[k]], "permute: dims ", dims_str(dims), " repeat dim ", perm[k]);
    seen[perm[k]] = true;
  }
  Shape out_shape(nd);
  for (int64_t k = 0; k < nd; ++k) out_shape[k] = x.shape()[perm[k]];
  Tensor out = Tensor::empty(out_shape, x.dtype(), x.device());
  QILIN_DISPATCH(x.device(), permute_copy, out.raw_data(), x.raw_data(), x.shape(), perm,
                 dtype_size(x.dtype()));
  return record_op(out, "permute", {x}, [perm](const Tensor& gy, GradSlots& g) {
    g.add(0, permute(gy, inverse_permutation(perm)));
  });
}

Tensor transpose(const Tensor& x, int64_t dim0, int64_t dim1) {
  ProfileScope scope("transpose");
  const int64_t nd = x.dim();
  const int64_t d0 = wrap_dim(dim0, nd, "transpose"), d1 = wrap_dim(dim1, nd, "transpose");
  std::vector<int64_t> perm(nd);
  for (int64_t k = 0; k < nd; ++k) perm[k] = k;
  std::swap(perm[d0], perm[d1]);
  return permute(x, perm);
}

Tensor expand(const Tensor& x, const Shape& shape) {
  ProfileScope scope("expand");
  const Shape& xs = x.shape();
  QILIN_CHECK(shape.size() >= xs.size(), "expand: cannot expand ", shape_str(xs), " to ",
              shape_str(shape), " (fewer dims)");
  Shape target = shape;
  const size_t lead = shape.size() - xs.size();
  for (size_t k = 0; k < shape.size(); ++k) {
    if (shape[k] != -1) continue;
    QILIN_CHECK(k >= lead, "expand: -1 at new leading dim ", k, " of ", shape_str(shape));
    target[k] = xs[k - lead];
  }
  for (size_t k = 0; k < xs.size(); ++k) {
    const int64_t have = xs[k], want = target[lead + k];
    QILIN_CHECK(have == want || have == 1, "expand: cannot expand ", shape_str(xs), " to ",
                shape_str(shape), " (dim ", lead + k, ": ", have, " vs ", want, ")");
  }
  Tensor out = Tensor::empty(target, x.dtype(), x.device());
  if (out.numel() > 0) {
    BroadcastGeometry geom = make_broadcast_geometry(target, xs, xs);
    QILIN_DISPATCH(x.device(), expand_copy, out.raw_data(), x.raw_data(), geom,
                   dtype_size(x.dtype()));
  }
  return record_op(out, "expand", {x},
                   [xs](const Tensor& gy, GradSlots& g) { g.add(0, sum_to(gy, xs)); });
}

Tensor flatten(const Tensor& x, int64_t start_dim, int64_t end_dim) {
  if (x.dim() == 0) return x.reshape({1});
  const int64_t s = wrap_dim(start_dim, x.dim(), "flatten");
  const int64_t e = wrap_dim(end_dim, x.dim(), "flatten");
  QILIN_CHECK(s <= e, "flatten: start_dim ", start_dim, " after end_dim ", end_dim, " for ",
              shape_str(x.shape()));
  Shape shape(x.shape().begin(), x.shape().begin() + s);
  int64_t merged = 1;
  for (int64_t k = s; k <= e; ++k) merged *= x.shape()[k];
  shape.push_back(merged);
  shape.insert(shape.end(), x.shape().begin() + e + 1, x.shape().end());
  return x.reshape(shape);
}

Tensor concat(const std::vector<Tensor>& xs, int64_t dim) {
  ProfileScope scope("concat");
  QILIN_CHECK(!xs.empty(), "concat: no tensors");
  const Tensor& first = xs[0];
  const int64_t nd = first.dim();
  QILIN_CHECK(nd > 0, "concat: cannot concatenate scalars");
  const int64_t d = wrap_dim(dim, nd, "concat");
  Shape out_shape = first.shape();
  out_shape[d] = 0;
  for (size_t k = 0; k < xs.size(); ++k) {
    const Tensor& x = xs[k];
    bool same = x.dim() == nd && x.dtype() == first.dtype() && x.device() == first.device();
    for (int64_t i = 0; same && i < nd; ++i) same = i == d || x.shape()[i] == first.shape()[i];
    QILIN_CHECK(same, "concat: tensor ", k, " ", x.str(), " does not match tensor 0 ", first.str(),
                " outside dim ", d);
    out_shape[d] += x.shape()[d];
  }
  Tensor out = Tensor::empty(out_shape, first.dtype(), first.device());
  const DimSplit s = split_at(out_shape, d);
  std::vector<int64_t> sizes, offsets;
  std::vector<Shape> shapes;
  int64_t offset = 0;
  for (const Tensor& x : xs) {
    const int64_t n = x.shape()[d];
    QILIN_DISPATCH(x.device(), copy_dim_range, out.raw_data(), s.dim, offset, 1, x.raw_data(), n, 0,
                   1, s.outer, n, s.inner, dtype_size(x.dtype()));
    sizes.push_back(n);
    offsets.push_back(offset);
    shapes.push_back(x.shape());
    offset += n;
  }
  return record_op(out, "concat", xs, [s, sizes, offsets, shapes](const Tensor& gy, GradSlots& g) {
    for (size_t k = 0; k < sizes.size(); ++k) {
      if (!g.needs(k)) continue;
      Tensor dx = Tensor::empty(shapes[k], DType::kFloat32, gy.device());
      QILIN_DISPATCH(gy.device(), copy_dim_range, dx.raw_data(), sizes[k], 0, 1, gy.raw_data(),
                     s.dim, offsets[k], 1, s.outer, sizes[k], s.inner, sizeof(float));
      g.add(k, dx);
    }
  });
}

Tensor slice(const Tensor& x, int64_t dim, int64_t start, int64_t end, int64_t step) {
  ProfileScope scope("slice");
  QILIN_CHECK(x.dim() > 0, "slice: cannot slice a scalar");
  const int64_t d = wrap_dim(dim, x.dim(), "slice");
  QILIN_CHECK(step > 0, "slice: step must be positive, got ", step);
  const int64_t size = x.shape()[d];
  // PyTorch slicing: negative ends count from the back, then both clamp to [0, size].
  auto clamp_end = [size](int64_t v) { return std::clamp<int64_t>(v < 0 ? v + size : v, 0, size); };
  const int64_t b = clamp_end(start), e = clamp_end(end);
  const int64_t count = e > b ? (e - b + step - 1) / step : 0;
  Shape out_shape = x.shape();
  out_shape[d] = count;
  Tensor out = Tensor::empty(out_shape, x.dtype(), x.device());
  const DimSplit s = split_at(x.shape(), d);
  if (out.numel() > 0) {
    QILIN_DISPATCH(x.device(), copy_dim_range, out.raw_data(), count, 0, 1, x.raw_data(), size, b,
                   step, s.outer, count, s.inner, dtype_size(x.dtype()));
  }
  return record_op(
      out, "slice", {x}, [s, b, step, count, xs = x.shape()](const Tensor& gy, GradSlots& g) {
        Tensor dx = Tensor::zeros(xs, DType::kFloat32, gy.device());
        if (gy.numel() > 0) {
          QILIN_DISPATCH(gy.device(), copy_dim_range, dx.raw_data(), s.dim, b, step, gy.raw_data(),
                         count, 0, 1, s.outer, count, s.inner, sizeof(float));
        }
        g.add(0, dx);
      });
}

Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index) {
  ProfileScope scope("index_select");
  QILIN_CHECK(x.dim() > 0, "index_select: cannot index a scalar");
  const int64_t d = wrap_dim(dim, x.dim(), "index_select");
  check_index_tensor(index, "index_select");
  QILIN_CHECK(index.dim() == 1, "index_select: index must be 1-D, got ", index.str());
  QILIN_CHECK(index.device() == x.device(), "index_select: index on ", index.device().str(),
              ", x on ", x.device().str());
  const int64_t n = index.numel();
  const DimSplit s = split_at(x.shape(), d);
  QILIN_DISPATCH(x.device(), check_indices, index.raw_data(), index.dtype(), n, s.dim,
                 "index_select");
  Shape out_shape = x.shape();
  out_shape[d] = n;
  Tensor out = Tensor::empty(out_shape, x.dtype(), x.device());
  if (out.numel() > 0) {
    QILIN_DISPATCH(x.device(), index_select, out.raw_data(), x.raw_data(), index.raw_data(),
                   index.dtype(), n, s.outer, s.dim, s.inner, dtype_size(x.dtype()));
  }
  return record_op(out, "index_select", {x},
                   [s, n, index = index.detach(), xs = x.shape()](const Tensor& gy, GradSlots& g) {
                     Tensor dx = Tensor::zeros(xs, DType::kFloat32, gy.device());
                     QILIN_DISPATCH(gy.device(), index_select_backward, dx.data<float>(),
                                    gy.data<float>(), index.raw_data(), index.dtype(), n, s.outer,
                                    s.dim, s.inner);
                     g.add(0, dx);
                   });
}

Tensor gather(const Tensor& x, int64_t dim, const Tensor& index) {
  ProfileScope scope("gather");
  QILIN_CHECK(x.dim() > 0, "gather: cannot index a scalar");
  const int64_t d = wrap_dim(dim, x.dim(), "gather");
  check_index_tensor(index, "gather");
  bool match = index.dim() == x.dim();
  for (int64_t i = 0; match && i < x.dim(); ++i) match = i == d || index.shape()[i] == x.shape()[i];
  QILIN_CHECK(match, "gather: index ", shape_str(index.shape()), " must match x ",
              shape_str(x.shape()), " in every dim but ", d);
  QILIN_CHECK(index.device() == x.device(), "gather: index on ", index.device().str(), ", x on ",
              x.device().str());
  const DimSplit s = split_at(x.shape(), d);
  const int64_t index_dim = index.shape()[d];
  QILIN_DISPATCH(x.device(), check_indices, index.raw_data(), index.dtype(), index.numel(), s.dim,
                 "gather");
  Tensor out = Tensor::empty(index.shape(), x.dtype(), x.device());
  if (out.numel() > 0) {
    QILIN_DISPATCH(x.device(), gather, out.raw_data(), x.raw_data(), index.raw_data(),
                   index.dtype(), s.outer, s.dim, index_dim, s.inner, dtype_size(x.dtype()));
  }
  return record_op(
      out, "gather", {x},
      [s, index_dim, index = index.detach(), xs = x.shape()](const Tensor& gy, GradSlots& g) {
        Tensor dx = Tensor::zeros(xs, DType::kFloat32, gy.device());
        QILIN_DISPATCH(gy.device(), gather_backward, dx.data<float>(), gy.data<float>(),
                       index.raw_data(), index.dtype(), s.outer, s.dim, index_dim, s.inner);
        g.add(0, dx);
      });
}

std::vector<Tensor> unbind(const Tensor& x, int64_t dim) {
  ProfileScope scope("unbind");
  QILIN_CHECK(x.dim() >= 1, "unbind: a 0-d tensor has no dim to unbind");
  dim = wrap_dim(dim, x.dim(), "unbind");
  if (dim != 0) {  // bring dim to the front (one copy), then unbind its rows
    std::vector<int64_t> order{dim};
    for (int64_t d = 0; d < x.dim(); ++d)
      if (d != dim) order.push_back(d);
    return unbind(permute(x, order), 0);
  }
  const int64_t n = x.size(0);
  const Shape row_shape(x.shape().begin() + 1, x.shape().end());
  std::vector<Tensor> rows;
  rows.reserve(n);
  for (int64_t i = 0; i < n; ++i) {
    NoGradGuard no_graph;  // views without their own nodes: the one node below covers all
    rows.push_back(x.view_rows(i, i + 1).reshape(row_shape));
  }
  // Backward: every row's gradient lands in one buffer (zeros where none arrived), instead of
  // one full-size zero-filled gradient per row.
  return record_multi_op(std::move(rows), "unbind", {x},
                         [xs = x.shape(), device = x.device()](const std::vector<Tensor>& gys,
                                                               GradSlots& g) {
                           Tensor gx = Tensor::empty(xs, DType::kFloat32, device);
                           for (size_t i = 0; i < gys.size(); ++i) {
                             Tensor dst = gx.view_rows(i, i + 1);
                             if (gys[i].defined()) {
                               dst.copy_(gys[i].reshape(dst.shape()));
                             } else {
                               dst.fill_(0.0f);
                             }
                           }
                           g.add(0, gx);
                         });
}

}  // namespace qilin
