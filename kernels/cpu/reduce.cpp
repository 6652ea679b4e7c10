// CPU reductions over [outer, dim, inner] views: sums (double accumulators), max/argmax and
// their backwards. Parallel over output rows/tiles, or over the reduced dim with per-thread
// partial sums (combined in thread order: deterministic for a fixed thread count) when the
// output is too small to split.
#include "kernels/cpu/reduce.h"

#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/cpu/parallel.h"

namespace qilin::kernels::cpu {
namespace {

// Sixteen double accumulators: GCC turns the fixed inner loop into four independent
// 4-wide vector adds, so the sum runs at load speed instead of one add latency per vector.
constexpr int kSumLanes = 16;
// Columns per task when summing along a middle dim: the double accumulators (4 KB) stay in L1.
constexpr int64_t kColumnTile = 512;

double sum_contiguous(const float* x, int64_t n) {
  double lanes[kSumLanes] = {};
  int64_t d = 0;
  for (; d + kSumLanes <= n; d += kSumLanes)
    for (int l = 0; l < kSumLanes; ++l) lanes[l] += static_cast<double>(x[d + l]);
  double tail = 0;
  for (; d < n; ++d) tail += static_cast<double>(x[d]);
  for (int l = 0; l < kSumLanes; ++l) tail += lanes[l];
  return tail;
}

// acc[i] += sum_d x[d * stride + i] for d in [d0, d1), i in [0, width). Four rows per pass:
// one load and store of the accumulator per four inputs (the accumulator traffic, not the
// adds, bounds this loop).
void add_columns(double* __restrict acc, const float* __restrict x, int64_t d0, int64_t d1,
                 int64_t stride, int64_t width) {
  int64_t d = d0;
  for (; d + 4 <= d1; d += 4) {
    const float* r0 = x + d * stride;
    const float* r1 = r0 + stride;
    const float* r2 = r1 + stride;
    const float* r3 = r2 + stride;
#pragma omp simd
    for (int64_t i = 0; i < width; ++i)
      acc[i] += (static_cast<double>(r0[i]) + static_cast<double>(r1[i])) +
                (static_cast<double>(r2[i]) + static_cast<double>(r3[i]));
  }
  for (; d < d1; ++d) {
    const float* row = x + d * stride;
#pragma omp simd
    for (int64_t i = 0; i < width; ++i) acc[i] += static_cast<double>(row[i]);
  }
}

int team_size(int64_t work) {
  if (omp_in_parallel() || work < kMinParallelWork) return 1;
  return static_cast<int>(std::min<int64_t>(omp_get_max_threads(), work / kMinParallelWork));
}

// out[i] = scale * sum_d x[d * inner + i], the reduced dim split across threads.
void sum_columns_split(float* out, const float* x, int64_t dim, int64_t inner, float scale,
                       int threads) {
  std::vector<double> partial(static_cast<size_t>(threads) * inner, 0.0);
#pragma omp parallel num_threads(threads)
  {
    const int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
    const int64_t chunk = (dim + nt - 1) / nt;
    const int64_t d0 = std::min(dim, t * chunk), d1 = std::min(dim, d0 + chunk);
    add_columns(partial.data() + t * inner, x, d0, d1, inner, inner);
  }
  for (int64_t i = 0; i < inner; ++i) {
    double s = 0;
    for (int t = 0; t < threads; ++t) s += partial[static_cast<size_t>(t) * inner + i];
    out[i] = static_cast<float>(s * scale);
  }
}

double sum_split(const float* x, int64_t n, int threads) {
  std::vector<double> partial(threads, 0.0);
#pragma omp parallel num_threads(threads)
  {
    const int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
    const int64_t chunk = (n + nt - 1) / nt;
    const int64_t b = std::min(n, t * chunk), e = std::min(n, b + chunk);
    partial[t] = sum_contiguous(x + b, e - b);
  }
  double s = 0;
  for (double p : partial) s += p;
  return s;
}

// Max of row[0, n) (n >= 1) ignoring NaN ordering; *has_nan set when any entry is NaN.
// GCC does not turn a select-based max into vmaxps (it keeps NaN order), so AVX2
// intrinsics; vmaxps's NaN behaviour does not matter, NaN rows are handled by the caller.
float row_max(const float* row, int64_t n, int* has_nan) {
  int64_t d = 0;
  float best = row[0];
  int nan = 0;
#ifdef __AVX2__
  __m256 m0 = _mm256_set1_ps(row[0]), m1 = m0, unordered = _mm256_setzero_ps();
  for (; d + 16 <= n; d += 16) {
    const __m256 v0 = _mm256_loadu_ps(row + d), v1 = _mm256_loadu_ps(row + d + 8);
    m0 = _mm256_max_ps(m0, v0);
    m1 = _mm256_max_ps(m1, v1);
    unordered = _mm256_or_ps(unordered, _mm256_cmp_ps(v0, v1, _CMP_UNORD_Q));
  }
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, _mm256_max_ps(m0, m1));
  for (float v : lanes) best = best > v ? best : v;
  nan = _mm256_movemask_ps(unordered) != 0;
#endif
  for (; d < n; ++d) {
    best = best > row[d] ? best : row[d];
    nan |= row[d] != row[d];
  }
  *has_nan = nan;
  return best;
}

// First d with row[d] == value (value is known to occur).
int64_t first_equal(const float* row, int64_t n, float value) {
  int64_t d = 0;
#ifdef __AVX2__
  const __m256 target = _mm256_set1_ps(value);
  for (; d + 8 <= n; d += 8) {
    const int mask =
        _mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(row + d), target, _CMP_EQ_OQ));
    if (mask != 0) return d + __builtin_ctz(static_cast<unsigned>(mask));
  }
#endif
  while (row[d] != value) ++d;
  return d;
}

inline bool greater_for_max(float v, float best) {
  // NaN beats every number and the first NaN stays (PyTorch's max propagates NaN).
  return v > best || (std::isnan(v) && !std::isnan(best));
}

}  // namespace

void sum_all(float* out, const float* x, int64_t n, float scale) {
  const int threads = team_size(n);
  const double s = threads > 1 ? sum_split(x, n, threads) : sum_contiguous(x, n);
  out[0] = static_cast<float>(s * scale);
}

void sum_dim(float* out, const float* x, int64_t outer, int64_t dim, int64_t inner, float scale) {
  const int64_t total = outer * dim * inner;
  const int threads = team_size(total);
  if (inner == 1) {
    if (outer >= threads) {
      parallel_for(outer, dim, [&](int64_t begin, int64_t end) {
        for (int64_t o = begin; o < end; ++o)
          out[o] = static_cast<float>(sum_contiguous(x + o * dim, dim) * scale);
      });
    } else {
      for (int64_t o = 0; o < outer; ++o)
        out[o] = static_cast<float>(sum_split(x + o * dim, dim, threads) * scale);
    }
    return;
  }
  const int64_t tiles = (inner + kColumnTile - 1) / kColumnTile;
  const int64_t tasks = outer * tiles;
  if (threads > 1 && tasks < 2 * threads && outer == 1 && dim >= 4 * threads) {
    sum_columns_split(out, x, dim, inner, scale, threads);  // e.g. a bias gradient
    return;
  }
  parallel_for(tasks, dim * std::min(inner, kColumnTile), [&](int64_t begin, int64_t end) {
    double acc[kColumnTile];
    for (int64_t task = begin; task < end; ++task) {
      const int64_t o = task / tiles, i0 = (task % tiles) * kColumnTile;
      const int64_t width = std::min(kColumnTile, inner - i0);
      std::fill(acc, acc + width, 0.0);
      add_columns(acc, x + o * dim * inner + i0, 0, dim, inner, width);
      float* dst = out + o * inner + i0;
      for (int64_t i = 0; i < width; ++i) dst[i] = static_cast<float>(acc[i] * scale);
    }
  });
}

void sum_dim_backward(float* dx, const float* gy, int64_t outer, int64_t dim, int64_t inner,
                      float scale) {
  parallel_for(outer * dim, inner, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const float* src = gy + (r / dim) * inner;
      float* dst = dx + r * inner;
#pragma omp simd
      for (int64_t i = 0; i < inner; ++i) dst[i] = src[i] * scale;
    }
  });
}

void max_dim(float* values, int64_t* index, const float* x, int64_t outer, int64_t dim,
             int64_t inner) {
  if (inner == 1) {
    parallel_for(outer, dim, [&](int64_t begin, int64_t end) {
      for (int64_t o = begin; o < end; ++o) {
        const float* row = x + o * dim;
        // Two passes over a row that stays in L1: the max and whether any NaN is present
        // (vectorized), then the first position holding the result.
        int has_nan = 0;
        float best = row_max(row, dim, &has_nan);
        int64_t arg = 0;
        if (has_nan) {
          while (!std::isnan(row[arg])) ++arg;
          best = row[arg];
        } else {
          arg = first_equal(row, dim, best);
        }
        values[o] = best;
        index[o] = arg;
      }
    });
    return;
  }
  const int64_t tiles = (inner + kColumnTile - 1) / kColumnTile;
  parallel_for(outer * tiles, dim * std::min(inner, kColumnTile), [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {
      const int64_t o = task / tiles, i0 = (task % tiles) * kColumnTile;
      const int64_t width = std::min(kColumnTile, inner - i0);
      const float* base = x + o * dim * inner + i0;
      float* val = values + o * inner + i0;
      int64_t* idx = index + o * inner + i0;
      std::memcpy(val, base, sizeof(float) * width);
      std::fill(idx, idx + width, int64_t{0});
      for (int64_t d = 1; d < dim; ++d) {
        const float* row = base + d * inner;
        for (int64_t i = 0; i < width; ++i) {
          if (greater_for_max(row[i], val[i])) {
            val[i] = row[i];
            idx[i] = d;
          }
        }
      }
    }
  });
}

void max_dim_backward(float* dx, const float* gy, const int64_t* index, int64_t outer, int64_t dim,
                      int64_t inner) {
  parallel_for(outer, dim * inner, [&](int64_t begin, int64_t end) {
    for (int64_t o = begin; o < end; ++o) {
      float* block = dx + o * dim * inner;
      std::memset(block, 0, sizeof(float) * dim * inner);
      for (int64_t i = 0; i < inner; ++i)
        block[index[o * inner + i] * inner + i] = gy[o * inner + i];
    }
  });
}

}  // namespace qilin::kernels::cpu
