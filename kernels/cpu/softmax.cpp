// Softmax, log-softmax and fused cross-entropy kernels (see softmax.h). Each row is handled
// by a few SIMD passes (max, exp-and-sum, scale) that stay in L1; rows are split across
// threads. Highway compiles the file for AVX2 and AVX-512 (foreach_target.h) and picks one at
// run time. Row tails use masked loads/stores, so short rows (10 classes, 50 tokens) need
// no scalar path and give the same bits as long ones.

// clang-format off
// The build's baseline is x86-64-v3 (AVX2): targets below it would only cost compile time.
#ifndef HWY_DISABLED_TARGETS
#define HWY_DISABLED_TARGETS (HWY_SSSE3 | HWY_SSE4)
#endif
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu/softmax.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
// clang-format on

#include <cmath>
#include <limits>
#include <vector>

#include "hwy/contrib/math/math-inl.h"
#include "hwy/highway.h"
#include "kernels/cpu/parallel.h"
#include "kernels/cpu/softmax.h"

HWY_BEFORE_NAMESPACE();
namespace qilin::kernels::cpu {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using D = hn::ScalableTag<float>;
using V = hn::Vec<D>;
using M = hn::Mask<D>;

constexpr float kInf = std::numeric_limits<float>::infinity();
// Elements of work per row element for parallel_for's threshold: a few passes and an exp.
constexpr int64_t kRowCost = 4;

// e^x for x <= 0 (x - max): hwy's Exp (1 ulp) maps NaN to 0; keep NaN, so a NaN in a row
// makes the whole row NaN (as PyTorch) instead of silently vanishing. Same as exp_full in
// unary.cpp without the overflow branch (the argument never exceeds 0).
HWY_INLINE V exp_nonpositive(D d, V x) { return hn::IfThenElse(hn::IsNaN(x), x, hn::Exp(d, x)); }

// Calls body(i, mask) for each vector of a row of n: mask is all-true except in the tail.
template <class Body>
HWY_INLINE void for_each_vector(D d, int64_t n, Body&& body) {
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  int64_t i = 0;
  const M all = hn::FirstN(d, hn::Lanes(d));
  for (; i + lanes <= n; i += lanes) body(i, all, true);
  if (i < n) body(i, hn::FirstN(d, static_cast<size_t>(n - i)), false);
}

HWY_INLINE V load(D d, const float* p, M m, bool full) {
  return full ? hn::LoadU(d, p) : hn::MaskedLoad(m, d, p);
}
HWY_INLINE void store(D d, V v, float* p, M m, bool full) {
  if (full) {
    hn::StoreU(v, d, p);
  } else {
    hn::BlendedStore(v, m, d, p);
  }
}

// max of a row; also its sum when `sum` is not null.
HWY_INLINE float row_max(D d, const float* x, int64_t n, float* sum = nullptr) {
  V vmax = hn::Set(d, -kInf), vsum = hn::Zero(d);
  for_each_vector(d, n, [&](int64_t i, M m, bool full) {
    const V v = load(d, x + i, m, full);  // masked-off lanes are 0
    vmax = hn::Max(vmax, hn::IfThenElse(m, v, hn::Set(d, -kInf)));
    vsum = hn::Add(vsum, v);
  });
  if (sum) *sum = hn::GetLane(hn::SumOfLanes(d, vsum));
  return hn::GetLane(hn::MaxOfLanes(d, vmax));
}

// sum of e^(x - shift) over a row; stores the terms into y when y is not null.
HWY_INLINE float row_exp_sum(D d, float* y, const float* x, int64_t n, float shift) {
  const V vshift = hn::Set(d, shift);
  V vsum = hn::Zero(d);
  for_each_vector(d, n, [&](int64_t i, M m, bool full) {
    const V e = hn::IfThenElseZero(m, exp_nonpositive(d, hn::Sub(load(d, x + i, m, full), vshift)));
    if (y) store(d, e, y + i, m, full);
    vsum = hn::Add(vsum, e);
  });
  return hn::GetLane(hn::SumOfLanes(d, vsum));
}

// sum of a[i] * b[i] (b null: sum of a).
HWY_INLINE float row_dot(D d, const float* a, const float* b, int64_t n) {
  V acc = hn::Zero(d);
  for_each_vector(d, n, [&](int64_t i, M m, bool full) {
    const V va = load(d, a + i, m, full);
    acc = b ? hn::MulAdd(va, load(d, b + i, m, full), acc) : hn::Add(acc, va);
  });
  return hn::GetLane(hn::SumOfLanes(d, acc));
}

void softmax_fwd(float* y, const float* x, int64_t rows, int64_t cols) {
  parallel_for(rows, cols * kRowCost, [&](int64_t r0, int64_t r1) {
    const D d;
    for (int64_t r = r0; r < r1; ++r) {
      const float* xr = x + r * cols;
      float* yr = y + r * cols;
      const float max = row_max(d, xr, cols);
      const V inv = hn::Set(d, 1.0f / row_exp_sum(d, yr, xr, cols, max));
      for_each_vector(d, cols, [&](int64_t i, M m, bool full) {
        store(d, hn::Mul(load(d, yr + i, m, full), inv), yr + i, m, full);
      });
    }
  });
}

void softmax_bwd(float* dx, const float* y, const float* dy, int64_t rows, int64_t cols) {
  parallel_for(rows, cols * kRowCost, [&](int64_t r0, int64_t r1) {
    const D d;
    for (int64_t r = r0; r < r1; ++r) {
      const float* yr = y + r * cols;
      const float* dyr = dy + r * cols;
      float* dxr = dx + r * cols;
      const V dot = hn::Set(d, row_dot(d, dyr, yr, cols));
      for_each_vector(d, cols, [&](int64_t i, M m, bool full) {
        const V vy = load(d, yr + i, m, full);
        store(d, hn::Mul(vy, hn::Sub(load(d, dyr + i, m, full), dot)), dxr + i, m, full);
      });
    }
  });
}

void log_softmax_fwd(float* y, const float* x, int64_t rows, int64_t cols) {
  parallel_for(rows, cols * kRowCost, [&](int64_t r0, int64_t r1) {
    const D d;
    for (int64_t r = r0; r < r1; ++r) {
      const float* xr = x + r * cols;
      float* yr = y + r * cols;
      const float max = row_max(d, xr, cols);
      const V vmax = hn::Set(d, max);
      // (x - max) - log(sum): the order PyTorch uses; x - max is exact near the max.
      const V log_sum = hn::Set(d, std::log(row_exp_sum(d, nullptr, xr, cols, max)));
      for_each_vector(d, cols, [&](int64_t i, M m, bool full) {
        store(d, hn::Sub(hn::Sub(load(d, xr + i, m, full), vmax), log_sum), yr + i, m, full);
      });
    }
  });
}

void log_softmax_bwd(float* dx, const float* y, const float* dy, int64_t rows, int64_t cols) {
  parallel_for(rows, cols * kRowCost, [&](int64_t r0, int64_t r1) {
    const D d;
    for (int64_t r = r0; r < r1; ++r) {
      const float* yr = y + r * cols;
      const float* dyr = dy + r * cols;
      float* dxr = dx + r * cols;
      const V sum = hn::Set(d, row_dot(d, dyr, nullptr, cols));
      for_each_vector(d, cols, [&](int64_t i, M m, bool full) {
        const V p = exp_nonpositive(d, load(d, yr + i, m, full));
        store(d, hn::NegMulAdd(p, sum, load(d, dyr + i, m, full)), dxr + i, m, full);
      });
    }
  });
}

// Per-row losses are kept in double and summed in row order: the mean does not depend on
// the thread count.
template <typename Target>
void cross_entropy_fwd(float* loss, float* lse, const float* logits, const Target* target,
                       int64_t rows, int64_t cols, float smoothing) {
  std::vector<double> row_loss(static_cast<size_t>(rows));
  parallel_for(rows, cols * kRowCost, [&](int64_t r0, int64_t r1) {
    const D d;
    for (int64_t r = r0; r < r1; ++r) {
      const float* xr = logits + r * cols;
      float sum_x = 0;
      const float max = row_max(d, xr, cols, &sum_x);
      const float l = max + std::log(row_exp_sum(d, nullptr, xr, cols, max));
      lse[r] = l;
      // -log p[t] = lse - x[t]; the smoothing term is s * mean_c(-log p[c]) = s (lse - mean x).
      const double nll = static_cast<double>(l) - xr[target[r]];
      const double smooth = static_cast<double>(l) - static_cast<double>(sum_x) / cols;
      row_loss[r] = (1.0 - smoothing) * nll + smoothing * smooth;
    }
  });
  double total = 0;
  for (double v : row_loss) total += v;
  loss[0] = static_cast<float>(total / static_cast<double>(rows));
}

template <typename Target>
void cross_entropy_bwd(float* dlogits, const float* logits, const float* lse,
                       const Target* target, const float* gy, int64_t rows, int64_t cols,
                       float smoothing) {
  const float scale = gy[0] / static_cast<float>(rows);
  const float uniform = smoothing / static_cast<float>(cols);
  parallel_for(rows, cols * kRowCost, [&](int64_t r0, int64_t r1) {
    const D d;
    const V vscale = hn::Set(d, scale), vuniform = hn::Set(d, uniform);
    for (int64_t r = r0; r < r1; ++r) {
      const float* xr = logits + r * cols;
      float* dr = dlogits + r * cols;
      const V vlse = hn::Set(d, lse[r]);
      for_each_vector(d, cols, [&](int64_t i, M m, bool full) {
        const V p = exp_nonpositive(d, hn::Sub(load(d, xr + i, m, full), vlse));
        store(d, hn::Mul(hn::Sub(p, vuniform), vscale), dr + i, m, full);
      });
      dr[target[r]] -= (1.0f - smoothing) * scale;
    }
  });
}

void cross_entropy_fwd_i64(float* loss, float* lse, const float* logits, const int64_t* target,
                           int64_t rows, int64_t cols, float smoothing) {
  cross_entropy_fwd(loss, lse, logits, target, rows, cols, smoothing);
}
void cross_entropy_fwd_i32(float* loss, float* lse, const float* logits, const int32_t* target,
                           int64_t rows, int64_t cols, float smoothing) {
  cross_entropy_fwd(loss, lse, logits, target, rows, cols, smoothing);
}
void cross_entropy_bwd_i64(float* dlogits, const float* logits, const float* lse,
                           const int64_t* target, const float* gy, int64_t rows, int64_t cols,
                           float smoothing) {
  cross_entropy_bwd(dlogits, logits, lse, target, gy, rows, cols, smoothing);
}
void cross_entropy_bwd_i32(float* dlogits, const float* logits, const float* lse,
                           const int32_t* target, const float* gy, int64_t rows, int64_t cols,
                           float smoothing) {
  cross_entropy_bwd(dlogits, logits, lse, target, gy, rows, cols, smoothing);
}

void cross_entropy_soft_fwd(float* loss, float* lse, const float* logits, const float* target,
                            int64_t rows, int64_t cols) {
  std::vector<double> row_loss(static_cast<size_t>(rows));
  parallel_for(rows, cols * kRowCost, [&](int64_t r0, int64_t r1) {
    const D d;
    for (int64_t r = r0; r < r1; ++r) {
      const float* xr = logits + r * cols;
      const float* tr = target + r * cols;
      const float max = row_max(d, xr, cols);
      const float l = max + std::log(row_exp_sum(d, nullptr, xr, cols, max));
      lse[r] = l;
      const V vlse = hn::Set(d, l);
      V acc = hn::Zero(d);  // sum_c t (lse - x) = sum_c t (-log p)
      for_each_vector(d, cols, [&](int64_t i, M m, bool full) {
        acc = hn::MulAdd(load(d, tr + i, m, full), hn::Sub(vlse, load(d, xr + i, m, full)), acc);
      });
      row_loss[r] = hn::GetLane(hn::SumOfLanes(d, acc));
    }
  });
  double total = 0;
  for (double v : row_loss) total += v;
  loss[0] = static_cast<float>(total / static_cast<double>(rows));
}

void cross_entropy_soft_bwd(float* dlogits, float* dtarget, const float* logits,
                            const float* lse, const float* target, const float* gy, int64_t rows,
                            int64_t cols) {
  const float scale = gy[0] / static_cast<float>(rows);
  parallel_for(rows, cols * kRowCost, [&](int64_t r0, int64_t r1) {
    const D d;
    const V vscale = hn::Set(d, scale);
    for (int64_t r = r0; r < r1; ++r) {
      const float* xr = logits + r * cols;
      const float* tr = target + r * cols;
      const V vlse = hn::Set(d, lse[r]);
      if (dlogits) {
        // d/dx of sum_c t_c (lse - x_c) = p * sum_c t_c - t (p - t when t sums to 1).
        const V t_sum = hn::Set(d, row_dot(d, tr, nullptr, cols));
        for_each_vector(d, cols, [&](int64_t i, M m, bool full) {
          const V p = exp_nonpositive(d, hn::Sub(load(d, xr + i, m, full), vlse));
          const V g = hn::MulSub(p, t_sum, load(d, tr + i, m, full));
          store(d, hn::Mul(g, vscale), dlogits + r * cols + i, m, full);
        });
      }
      if (dtarget) {
        for_each_vector(d, cols, [&](int64_t i, M m, bool full) {
          store(d, hn::Mul(hn::Sub(vlse, load(d, xr + i, m, full)), vscale),
                dtarget + r * cols + i, m, full);
        });
      }
    }
  });
}

}  // namespace HWY_NAMESPACE
}  // namespace qilin::kernels::cpu
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace qilin::kernels::cpu {

HWY_EXPORT(softmax_fwd);
HWY_EXPORT(softmax_bwd);
HWY_EXPORT(log_softmax_fwd);
HWY_EXPORT(log_softmax_bwd);
HWY_EXPORT(cross_entropy_fwd_i64);
HWY_EXPORT(cross_entropy_fwd_i32);
HWY_EXPORT(cross_entropy_bwd_i64);
HWY_EXPORT(cross_entropy_bwd_i32);
HWY_EXPORT(cross_entropy_soft_fwd);
HWY_EXPORT(cross_entropy_soft_bwd);

void softmax_forward(float* y, const float* x, int64_t rows, int64_t cols) {
  HWY_DYNAMIC_DISPATCH(softmax_fwd)(y, x, rows, cols);
}
void softmax_backward(float* dx, const float* y, const float* dy, int64_t rows, int64_t cols) {
  HWY_DYNAMIC_DISPATCH(softmax_bwd)(dx, y, dy, rows, cols);
}
void log_softmax_forward(float* y, const float* x, int64_t rows, int64_t cols) {
  HWY_DYNAMIC_DISPATCH(log_softmax_fwd)(y, x, rows, cols);
}
void log_softmax_backward(float* dx, const float* y, const float* dy, int64_t rows,
                          int64_t cols) {
  HWY_DYNAMIC_DISPATCH(log_softmax_bwd)(dx, y, dy, rows, cols);
}
void cross_entropy_forward(float* loss, float* lse, const float* logits, const int64_t* target,
                           int64_t rows, int64_t cols, float label_smoothing) {
  HWY_DYNAMIC_DISPATCH(cross_entropy_fwd_i64)(loss, lse, logits, target, rows, cols,
                                              label_smoothing);
}
void cross_entropy_forward(float* loss, float* lse, const float* logits, const int32_t* target,
                           int64_t rows, int64_t cols, float label_smoothing) {
  HWY_DYNAMIC_DISPATCH(cross_entropy_fwd_i32)(loss, lse, logits, target, rows, cols,
                                              label_smoothing);
}
void cross_entropy_backward(float* dlogits, const float* logits, const float* lse,
                            const int64_t* target, const float* gy, int64_t rows, int64_t cols,
                            float label_smoothing) {
  HWY_DYNAMIC_DISPATCH(cross_entropy_bwd_i64)(dlogits, logits, lse, target, gy, rows, cols,
                                              label_smoothing);
}
void cross_entropy_backward(float* dlogits, const float* logits, const float* lse,
                            const int32_t* target, const float* gy, int64_t rows, int64_t cols,
                            float label_smoothing) {
  HWY_DYNAMIC_DISPATCH(cross_entropy_bwd_i32)(dlogits, logits, lse, target, gy, rows, cols,
                                              label_smoothing);
}
void cross_entropy_soft_forward(float* loss, float* lse, const float* logits,
                                const float* target, int64_t rows, int64_t cols) {
  HWY_DYNAMIC_DISPATCH(cross_entropy_soft_fwd)(loss, lse, logits, target, rows, cols);
}
void cross_entropy_soft_backward(float* dlogits, float* dtarget, const float* logits,
                                 const float* lse, const float* target, const float* gy,
                                 int64_t rows, int64_t cols) {
  HWY_DYNAMIC_DISPATCH(cross_entropy_soft_bwd)(dlogits, dtarget, logits, lse, target, gy, rows,
                                               cols);
}

}  // namespace qilin::kernels::cpu
#endif  // HWY_ONCE
