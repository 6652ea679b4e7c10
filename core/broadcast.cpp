#include "core/broadcast.h"

#include "core/error.h"

namespace qilin {

bool BroadcastGeometry::same_shape() const {
  if (ndim == 0) return true;
  return ndim == 1 && stride_a[0] == 1 && stride_b[0] == 1;
}

BroadcastGeometry make_broadcast_geometry(const Shape& out_shape, const Shape& a_shape,
                                          const Shape& b_shape) {
  const size_t n = out_shape.size();
  auto strides_of = [&](const Shape& s) {
    // Strides of s aligned to the right of out_shape, 0 where s has size 1 (or no dim).
    std::vector<int64_t> st(n, 0);
    int64_t running = 1;
    for (size_t k = 0; k < s.size(); ++k) {
      size_t i = s.size() - 1 - k;
      size_t o = n - 1 - k;
      st[o] = s[i] == 1 ? 0 : running;
      running *= s[i];
    }
    return st;
  };
  std::vector<int64_t> sa = strides_of(a_shape), sb = strides_of(b_shape);

  BroadcastGeometry g;
  g.numel = shape_numel(out_shape);
  // Merge dims from the right: dim i merges into the current (inner) block when both inputs
  // keep their "dense or broadcast" relation across the boundary.
  std::vector<int64_t> shape, stra, strb;
  for (size_t k = 0; k < n; ++k) {
    size_t i = n - 1 - k;
    if (out_shape[i] == 1) continue;
    if (!shape.empty()) {
      int64_t& inner = shape.back();
      bool a_ok = (sa[i] == 0 && stra.back() == 0) || (sa[i] == stra.back() * inner);
      bool b_ok = (sb[i] == 0 && strb.back() == 0) || (sb[i] == strb.back() * inner);
      if (a_ok && b_ok) {
        inner *= out_shape[i];
        continue;
      }
    }
    shape.push_back(out_shape[i]);
    stra.push_back(sa[i]);
    strb.push_back(sb[i]);
  }
  QILIN_CHECK(static_cast<int>(shape.size()) <= kMaxBroadcastDims, "broadcast of ",
              shape_str(a_shape), " and ", shape_str(b_shape), " needs more than ",
              kMaxBroadcastDims, " dims after merging");
  g.ndim = static_cast<int>(shape.size());
  for (int d = 0; d < g.ndim; ++d) {  // stored outermost first
    g.shape[d] = shape[g.ndim - 1 - d];
    g.stride_a[d] = stra[g.ndim - 1 - d];
    g.stride_b[d] = strb[g.ndim - 1 - d];
  }
  return g;
}

}  // namespace qilin
