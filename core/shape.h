// Shapes: a small vector of int64 sizes, row-major; helpers for element counts, printing,
// dimension wrapping and broadcasting (NumPy/PyTorch rules).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace qilin {

using Shape = std::vector<int64_t>;

int64_t shape_numel(const Shape& shape);
std::string shape_str(const Shape& shape);  // "[2, 3, 4]"

// Wraps a possibly negative dim into [0, ndim); `op` names the caller in the error.
int64_t wrap_dim(int64_t dim, int64_t ndim, const char* op);

// Broadcast result of two shapes; `op` names the caller in the error.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);

// Row-major element strides of a contiguous shape.
std::vector<int64_t> contiguous_strides(const Shape& shape);

}  // namespace qilin
