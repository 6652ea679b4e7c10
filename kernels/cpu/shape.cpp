// CPU layout kernels (see shape.h). Permute collapses the reordering first (size-1 dims
// dropped, dims that stay adjacent merged), then runs one of three loops: contiguous row
// copies when the last dim stays last (ViT's [B,N,3,H,D] -> [3,B,H,N,D] copies rows of D),
// a tiled transpose when the last two merged dims swap, or a strided row gather otherwise.
#include "kernels/cpu/shape.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "kernels/cpu/parallel.h"

namespace qilin::kernels::cpu {
namespace {

// Calls fn with the element type of `elem_size`: copies move bits, never convert.
template <typename Fn>
void with_elem_type(size_t elem_size, Fn&& fn) {
  switch (elem_size) {
    case 1:
      return fn(uint8_t{});
    case 2:
      return fn(uint16_t{});
    case 4:
      return fn(uint32_t{});
    case 8:
      return fn(uint64_t{});
  }
  QILIN_FAIL("layout kernel: unsupported element size ", elem_size);
}

template <typename Fn>
void with_index_type(DType dtype, Fn&& fn) {
  if (dtype == DType::kInt64) return fn(int64_t{});
  if (dtype == DType::kInt32) return fn(int32_t{});
  QILIN_FAIL("index tensor must be int64 or int32, got ", dtype_name(dtype));
}

// Square tile of the blocked transpose: 16 x 16 floats = 1 KB read and written per tile.
constexpr int64_t kTransposeTile = 16;

template <typename T>
void permute_impl(T* out, const T* x, const Shape& x_shape, const std::vector<int64_t>& perm) {
  const std::vector<int64_t> x_strides = contiguous_strides(x_shape);
  std::vector<int64_t> size, stride;  // per merged output dim: its size and stride in x
  int64_t total = 1;
  for (int64_t p : perm) {
    const int64_t s = x_shape[p];
    total *= s;
    if (s == 1) continue;
    if (!size.empty() && stride.back() == x_strides[p] * s) {
      size.back() *= s;
      stride.back() = x_strides[p];
    } else {
      size.push_back(s);
      stride.push_back(x_strides[p]);
    }
  }
  if (total == 0) return;
  const int nd = static_cast<int>(size.size());
  if (nd <= 1) {  // the order of the elements did not change
    std::memcpy(out, x, sizeof(T) * total);
    return;
  }
  // Offset in x of the first element of output row `row` over merged dims [0, ndim).
  auto row_offset = [&](int64_t row, int ndim) {
    int64_t off = 0;
    for (int d = ndim - 1; d >= 0; --d) {
      off += (row % size[d]) * stride[d];
      row /= size[d];
    }
    return off;
  };
  const int64_t last = size[nd - 1], last_stride = stride[nd - 1];
  if (last_stride == 1 || stride[nd - 2] != 1) {
    // Row by row over all but the last merged dim; each row is a copy (stride 1) or a
    // strided gather.
    const int64_t rows = total / last;
    parallel_for(rows, last, [&](int64_t begin, int64_t end) {
      std::vector<int64_t> idx(nd - 1);
      int64_t rem = begin;
      for (int d = nd - 2; d >= 0; --d) idx[d] = rem % size[d], rem /= size[d];
      int64_t off = row_offset(begin, nd - 1);
      for (int64_t r = begin; r < end; ++r) {
        T* dst = out + r * last;
        const T* src = x + off;
        if (last_stride == 1) {
          std::memcpy(dst, src, sizeof(T) * last);
        } else {
          for (int64_t j = 0; j < last; ++j) dst[j] = src[j * last_stride];
        }
        for (int d = nd - 2; d >= 0; --d) {  // odometer step to the next row
          off += stride[d];
          if (++idx[d] < size[d]) break;
          off -= stride[d] * size[d];
          idx[d] = 0;
        }
      }
    });
    return;
  }
  // The last two merged dims swap: out[p][a][b] = x[off_p + a + b * last_stride], a blocked
  // transpose so both the reads (along a) and the writes (along b) stay in cache lines.
  const int64_t rows_a = size[nd - 2];
  const int64_t batches = total / (rows_a * last);
  const int64_t tiles_a = (rows_a + kTransposeTile - 1) / kTransposeTile;
  parallel_for(batches * tiles_a, kTransposeTile * last, [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {
      const int64_t p = task / tiles_a, a0 = (task % tiles_a) * kTransposeTile;
      const int64_t a1 = std::min(rows_a, a0 + kTransposeTile);
      const T* src = x + row_offset(p, nd - 2);
      T* dst = out + p * rows_a * last;
      for (int64_t b0 = 0; b0 < last; b0 += kTransposeTile) {
        const int64_t b1 = std::min(last, b0 + kTransposeTile);
        for (int64_t a = a0; a < a1; ++a)
          for (int64_t b = b0; b < b1; ++b) dst[a * last + b] = src[a + b * last_stride];
      }
    }
  });
}

template <typename T>
void copy_dim_range_impl(T* out, int64_t out_dim, int64_t out_start, int64_t out_step, const T* x,
                         int64_t x_dim, int64_t x_start, int64_t x_step, int64_t outer,
                         int64_t count, int64_t inner) {
  parallel_for(outer * count, inner, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t o = r / count, j = r % count;
      T* dst = out + (o * out_dim + out_start + j * out_step) * inner;
      const T* src = x + (o * x_dim + x_start + j * x_step) * inner;
      if (inner == 1)
        *dst = *src;
      else
        std::memcpy(dst, src, sizeof(T) * inner);
    }
  });
}

template <typename T>
void expand_impl(T* out, const T* x, const BroadcastGeometry& g) {
  if (g.ndim == 0) {
    out[0] = x[0];
    return;
  }
  const int64_t inner = g.shape[g.ndim - 1], sx = g.stride_a[g.ndim - 1];
  const int64_t rows = g.numel / inner;
  parallel_for(rows, inner, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      int64_t off = 0, rem = r;
      for (int d = g.ndim - 2; d >= 0; --d)
        off += (rem % g.shape[d]) * g.stride_a[d], rem /= g.shape[d];
      T* dst = out + r * inner;
      if (sx == 0)
        std::fill(dst, dst + inner, x[off]);
      else
        std::memcpy(dst, x + off, sizeof(T) * inner);
    }
  });
}

// Scatter-adds go to disjoint [dim, inner] blocks per outer index; with fewer outer blocks
// than threads the columns are split instead (repeated indices never race: a thread owns
// whole columns).
template <typename Fn>
void parallel_scatter(int64_t outer, int64_t inner, int64_t work_per_outer, Fn&& fn) {
  const int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
  if (outer >= threads || inner < 2 * threads) {
    parallel_for(outer, work_per_outer, [&](int64_t b, int64_t e) {
      for (int64_t o = b; o < e; ++o) fn(o, int64_t{0}, inner);
    });
  } else {
    parallel_for(inner, outer * work_per_outer / inner, [&](int64_t b, int64_t e) {
      for (int64_t o = 0; o < outer; ++o) fn(o, b, e);
    });
  }
}

}  // namespace

void permute_copy(void* out, const void* x, const Shape& x_shape, const std::vector<int64_t>& perm,
                  size_t elem_size) {
  with_elem_type(elem_size, [&](auto t) {
    using T = decltype(t);
    permute_impl(static_cast<T*>(out), static_cast<const T*>(x), x_shape, perm);
  });
}

void copy_dim_range(void* out, int64_t out_dim, int64_t out_start, int64_t out_step, const void* x,
                    int64_t x_dim, int64_t x_start, int64_t x_step, int64_t outer, int64_t count,
                    int64_t inner, size_t elem_size) {
  with_elem_type(elem_size, [&](auto t) {
    using T = decltype(t);
    copy_dim_range_impl(static_cast<T*>(out), out_dim, out_start, out_step,
                        static_cast<const T*>(x), x_dim, x_start, x_step, outer, count, inner);
  });
}

void expand_copy(void* out, const void* x, const BroadcastGeometry& geom, size_t elem_size) {
  with_elem_type(elem_size, [&](auto t) {
    using T = decltype(t);
    expand_impl(static_cast<T*>(out), static_cast<const T*>(x), geom);
  });
}

void check_indices(const void* index, DType index_dtype, int64_t n, int64_t size, const char* op) {
  with_index_type(index_dtype, [&](auto t) {
    using I = decltype(t);
    const I* idx = static_cast<const I*>(index);
    int64_t bad = -1;
    for (int64_t j = 0; j < n; ++j) {
      if (idx[j] < 0 || idx[j] >= size) {
        bad = j;
        break;
      }
    }
    QILIN_CHECK(bad < 0, op, ": index ", static_cast<int64_t>(idx[bad < 0 ? 0 : bad]),
                " (at position ", bad, ") is out of range for a dim of size ", size);
  });
}

void index_select(void* out, const void* x, const void* index, DType index_dtype, int64_t n_index,
                  int64_t outer, int64_t x_dim, int64_t inner, size_t elem_size) {
  with_index_type(index_dtype, [&](auto it) {
    using I = decltype(it);
    const I* idx = static_cast<const I*>(index);
    with_elem_type(elem_size, [&](auto t) {
      using T = decltype(t);
      T* o_ptr = static_cast<T*>(out);
      const T* x_ptr = static_cast<const T*>(x);
      parallel_for(outer * n_index, inner, [&](int64_t begin, int64_t end) {
        for (int64_t r = begin; r < end; ++r) {
          const int64_t o = r / n_index, j = r % n_index;
          const T* src = x_ptr + (o * x_dim + static_cast<int64_t>(idx[j])) * inner;
          std::memcpy(o_ptr + r * inner, src, sizeof(T) * inner);
        }
      });
    });
  });
}

void index_select_backward(float* dx, const float* gy, const void* index, DType index_dtype,
                           int64_t n_index, int64_t outer, int64_t x_dim, int64_t inner) {
  with_index_type(index_dtype, [&](auto it) {
    using I = decltype(it);
    const I* idx = static_cast<const I*>(index);
    parallel_scatter(outer, inner, n_index * inner, [&](int64_t o, int64_t i0, int64_t i1) {
      for (int64_t j = 0; j < n_index; ++j) {
        float* dst = dx + (o * x_dim + static_cast<int64_t>(idx[j])) * inner;
        const float* src = gy + (o * n_index + j) * inner;
#pragma omp simd
        for (int64_t i = i0; i < i1; ++i) dst[i] += src[i];
      }
    });
  });
}

void gather(void* out, const void* x, const void* index, DType index_dtype, int64_t outer,
            int64_t x_dim, int64_t index_dim, int64_t inner, size_t elem_size) {
  with_index_type(index_dtype, [&](auto it) {
    using I = decltype(it);
    const I* idx = static_cast<const I*>(index);
    with_elem_type(elem_size, [&](auto t) {
      using T = decltype(t);
      T* o_ptr = static_cast<T*>(out);
      const T* x_ptr = static_cast<const T*>(x);
      parallel_for(outer * index_dim, inner, [&](int64_t begin, int64_t end) {
        for (int64_t r = begin; r < end; ++r) {
          const T* base = x_ptr + (r / index_dim) * x_dim * inner;
          const I* row_idx = idx + r * inner;
          T* dst = o_ptr + r * inner;
          for (int64_t i = 0; i < inner; ++i)
            dst[i] = base[static_cast<int64_t>(row_idx[i]) * inner + i];
        }
      });
    });
  });
}

void gather_backward(float* dx, const float* gy, const void* index, DType index_dtype,
                     int64_t outer, int64_t x_dim, int64_t index_dim, int64_t inner) {
  with_index_type(index_dtype, [&](auto it) {
    using I = decltype(it);
    const I* idx = static_cast<const I*>(index);
    parallel_scatter(outer, inner, index_dim * inner, [&](int64_t o, int64_t i0, int64_t i1) {
      float* base = dx + o * x_dim * inner;
      for (int64_t j = 0; j < index_dim; ++j) {
        const int64_t r = o * index_dim + j;
        for (int64_t i = i0; i < i1; ++i)
          base[static_cast<int64_t>(idx[r * inner + i]) * inner + i] += gy[r * inner + i];
      }
    });
  });
}

}  // namespace qilin::kernels::cpu
