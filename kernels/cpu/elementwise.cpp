// Broadcasting binary kernels. The innermost (merged) dim is a tight loop the compiler
// vectorizes (each operand has stride 1 or 0 there in all common cases); outer dims are
// walked with an index counter. Parallel over outer rows, or over chunks of a flat loop.
#include "kernels/cpu/elementwise.h"

#include <cstring>
#include <vector>

#include "kernels/cpu/parallel.h"

namespace qilin::kernels::cpu {
namespace {

struct Add { static float apply(float x, float y) { return x + y; } };
struct Sub { static float apply(float x, float y) { return x - y; } };
struct Mul { static float apply(float x, float y) { return x * y; } };
struct Div { static float apply(float x, float y) { return x / y; } };

// Offsets of outer row `row` (all dims but the last) in a and b.
inline void row_offsets(const BroadcastGeometry& g, int64_t row, int64_t* oa, int64_t* ob) {
  int64_t a = 0, b = 0;
  for (int d = g.ndim - 2; d >= 0; --d) {
    int64_t idx = row % g.shape[d];
    row /= g.shape[d];
    a += idx * g.stride_a[d];
    b += idx * g.stride_b[d];
  }
  *oa = a;
  *ob = b;
}

template <typename Op>
void inner_loop(float* __restrict out, const float* __restrict a, int64_t sa,
                const float* __restrict b, int64_t sb, int64_t n) {
  if (sa == 1 && sb == 1) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) out[i] = Op::apply(a[i], b[i]);
  } else if (sa == 1 && sb == 0) {
    const float y = b[0];
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) out[i] = Op::apply(a[i], y);
  } else if (sa == 0 && sb == 1) {
    const float x = a[0];
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) out[i] = Op::apply(x, b[i]);
  } else {
    for (int64_t i = 0; i < n; ++i) out[i] = Op::apply(a[i * sa], b[i * sb]);
  }
}

template <typename Op>
void binary_impl(float* out, const float* a, const float* b, const BroadcastGeometry& g) {
  if (g.ndim == 0) {
    out[0] = Op::apply(a[0], b[0]);
    return;
  }
  const int64_t inner = g.shape[g.ndim - 1];
  const int64_t sa = g.stride_a[g.ndim - 1], sb = g.stride_b[g.ndim - 1];
  const int64_t rows = g.numel / inner;
  if (rows == 1) {  // one flat loop: split it across threads
    parallel_for(inner, 1, [&](int64_t begin, int64_t end) {
      inner_loop<Op>(out + begin, a + begin * sa, sa, b + begin * sb, sb, end - begin);
    });
    return;
  }
  parallel_for(rows, inner, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      int64_t oa, ob;
      row_offsets(g, r, &oa, &ob);
      inner_loop<Op>(out + r * inner, a + oa, sa, b + ob, sb, inner);
    }
  });
}

template <typename Op>
void scalar_impl(float* out, const float* a, float s, bool scalar_first, int64_t n) {
  parallel_for(n, 1, [&](int64_t begin, int64_t end) {
    if (scalar_first) {
#pragma omp simd
      for (int64_t i = begin; i < end; ++i) out[i] = Op::apply(s, a[i]);
    } else {
#pragma omp simd
      for (int64_t i = begin; i < end; ++i) out[i] = Op::apply(a[i], s);
    }
  });
}

}  // namespace

void binary_forward(BinaryOp op, float* out, const float* a, const float* b,
                    const BroadcastGeometry& geom) {
  switch (op) {
    case BinaryOp::kAdd: return binary_impl<Add>(out, a, b, geom);
    case BinaryOp::kSub: return binary_impl<Sub>(out, a, b, geom);
    case BinaryOp::kMul: return binary_impl<Mul>(out, a, b, geom);
    case BinaryOp::kDiv: return binary_impl<Div>(out, a, b, geom);
  }
}

void binary_scalar_forward(BinaryOp op, float* out, const float* a, float scalar,
                           bool scalar_first, int64_t n) {
  switch (op) {
    case BinaryOp::kAdd: return scalar_impl<Add>(out, a, scalar, scalar_first, n);
    case BinaryOp::kSub: return scalar_impl<Sub>(out, a, scalar, scalar_first, n);
    case BinaryOp::kMul: return scalar_impl<Mul>(out, a, scalar, scalar_first, n);
    case BinaryOp::kDiv: return scalar_impl<Div>(out, a, scalar, scalar_first, n);
  }
}

void reduce_to_forward(float* out, const float* in, const BroadcastGeometry& g) {
  // Output element count: product of the dims that are kept (stride_a != 0).
  int64_t out_numel = 1;
  for (int d = 0; d < g.ndim; ++d)
    if (g.stride_a[d] != 0) out_numel *= g.shape[d];
  if (g.ndim == 0) {
    out[0] = in[0];
    return;
  }
  const int last = g.ndim - 1;
  const int64_t inner = g.shape[last];
  const int64_t rows = g.numel / inner;
  if (g.stride_a[last] == 1) {
    // Inner dim kept: each input row adds into one output row.
    auto add_rows = [&](float* dst, int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
      for (int64_t r = r0; r < r1; ++r) {
        int64_t oa, ob;
        row_offsets(g, r, &oa, &ob);
        const float* src = in + r * inner;
        float* o = dst + oa;
#pragma omp simd
        for (int64_t c = c0; c < c1; ++c) o[c] += src[c];
      }
    };
    const int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
    if (threads > 1 && out_numel <= (1 << 16) && g.numel >= kMinParallelWork) {
      // Few outputs (e.g. a bias gradient): per-thread partial sums over row ranges, added
      // in thread order, so the result does not depend on timing.
      std::vector<float> partial(static_cast<size_t>(threads) * out_numel, 0.0f);
#pragma omp parallel num_threads(threads)
      {
        const int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
        const int64_t chunk = (rows + nt - 1) / nt;
        const int64_t r0 = std::min(rows, t * chunk), r1 = std::min(rows, r0 + chunk);
        add_rows(partial.data() + t * out_numel, r0, r1, 0, inner);
      }
      std::memcpy(out, partial.data(), sizeof(float) * out_numel);
      for (int t = 1; t < threads; ++t) {
        const float* p = partial.data() + static_cast<int64_t>(t) * out_numel;
#pragma omp simd
        for (int64_t i = 0; i < out_numel; ++i) out[i] += p[i];
      }
      return;
    }
    // Many outputs: parallel over column blocks; each thread owns its columns.
    std::memset(out, 0, sizeof(float) * out_numel);
    const int64_t kBlock = 512;
    const int64_t blocks = (inner + kBlock - 1) / kBlock;
    parallel_for(blocks, rows * std::min(inner, kBlock), [&](int64_t begin, int64_t end) {
      for (int64_t blk = begin; blk < end; ++blk)
        add_rows(out, 0, rows, blk * kBlock, std::min(inner, (blk + 1) * kBlock));
    });
    return;
  }
  // Inner dim reduced: every input row sums into one output element per row.
  std::vector<float> row_sums(rows);
  parallel_for(rows, inner, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const float* src = in + r * inner;
      double s = 0;
      for (int64_t c = 0; c < inner; ++c) s += src[c];
      row_sums[r] = static_cast<float>(s);
    }
  });
  std::memset(out, 0, sizeof(float) * out_numel);
  for (int64_t r = 0; r < rows; ++r) {
    int64_t oa, ob;
    row_offsets(g, r, &oa, &ob);
    out[oa] += row_sums[r];
  }
}

void axpby(float* a, const float* b, float alpha, float beta, int64_t n) {
  parallel_for(n, 1, [&](int64_t begin, int64_t end) {
#pragma omp simd
    for (int64_t i = begin; i < end; ++i) a[i] = a[i] * alpha + b[i] * beta;
  });
}

}  // namespace qilin::kernels::cpu
