// Layout ops: transpose, permute (contiguous copies), expand (broadcast, backward sums),
// flatten, concat, slice, index_select and gather.
#pragma once

#include <vector>

#include "core/tensor.h"

namespace qilin {

Tensor transpose(const Tensor& x, int64_t dim0, int64_t dim1);
Tensor permute(const Tensor& x, const std::vector<int64_t>& dims);
// Broadcasts x to `shape` (NumPy rules, -1 keeps a size), as a dense copy.
Tensor expand(const Tensor& x, const Shape& shape);
// Merges dims [start_dim, end_dim] into one (a view).
Tensor flatten(const Tensor& x, int64_t start_dim = 1, int64_t end_dim = -1);
Tensor concat(const std::vector<Tensor>& xs, int64_t dim);
// Elements start, start+step, ... < end along dim (PyTorch slicing; end clamps to size).
Tensor slice(const Tensor& x, int64_t dim, int64_t start, int64_t end, int64_t step = 1);
// The slices x[i] along dim (torch.unbind). For dim 0 they are views; the backward gathers
// every slice's gradient into one buffer.
std::vector<Tensor> unbind(const Tensor& x, int64_t dim = 0);
// Selects entries along dim with a 1-D int64/int32 index (torch.index_select).
Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index);
// out[i][j][k] = x[i][index[i][j][k]][k] for dim 1 (torch.gather); index int64/int32 with
// the same number of dims as x.
Tensor gather(const Tensor& x, int64_t dim, const Tensor& index);

}  // namespace qilin
