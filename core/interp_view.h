// The value types a piecewise-linear interpolation kernel needs (DESIGN.md §4.1, PAPER.md §1),
// and their scalar reference evaluation. Header-only, no tensors: kernels of every backend
// include it; core/interp.h builds the tables these views point into.
//
// A table of P pieces holds, interleaved, the chord of each piece: kb[2 i] = k_i (slope),
// kb[2 i + 1] = b_i (intercept), so a lookup loads one 8-byte (k, b) pair and computes
// y = fma(x, k_i, b_i) on the input x itself (the paper's L_i(x) = k_i x + b_i).
//
// Kinds (how x finds its piece i):
//   kUniform       Algorithm 1: P = 2^n equal pieces on [a, a + 2^m); i from the bit
//                  fields of d = fl32(x - a) (uniform_index below).
//   kBinarySearch  the same P pieces found by binary search over the P - 1 inner breakpoints
//                  (the DianNao/NVDLA way, O(log P)).
//   kNonuniform    a few segments of unequal length, each a uniform table; binary search
//                  over the segment starts, then Algorithm 1 inside (PAPER.md §1, §4.5).
//
// Inside is lo <= x <= hi (hi = a + 2^m for a uniform table: the last chord is exact at the
// end point, and x just below hi whose d rounds up to 2^m takes the last piece). Outside,
// x < lo uses the line `below`, x > hi the line `above` (±Inf included): for
// `outside: asymptote` the function's limit (sigmoid 0 / 1, gelu 0 / x, ...), for
// `extrapolate` the end pieces' chords. A line with k == 0 returns b exactly (so ±Inf gives
// the limit, not 0 * Inf = NaN). NaN in gives NaN out, in the value and in the slope.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "core/host_device.h"

namespace qilin {

enum class InterpKind : uint8_t { kUniform, kBinarySearch, kNonuniform };

// y = k x + b outside the domain.
struct InterpLine {
  float k = 0.0f, b = 0.0f;
};

// One uniform segment of a non-uniform table: 2^n pieces on [a, a + 2^m), its (k, b) pairs
// at kb[2 * first], ...
struct InterpSegment {
  float a = 0.0f;
  int32_t m = 0, n = 0;
  int32_t first = 0;  // index of its first piece in the table
};

// Per-row values of an interpolated softmax forward that its backward reuses, each `rows`
// long: the row's maximum, the sum of its table exps, and the first index of the maximum (-1
// when no entry equals it: a NaN row). Saving them spares the backward a max pass and a
// table-exp pass over every row. (Pointers into the op's saved tensors, on the kernel's device.)
struct InterpSoftmaxRowStats {
  float* max = nullptr;
  float* sum = nullptr;
  int32_t* argmax = nullptr;
};

struct InterpTableView {
  InterpKind kind = InterpKind::kUniform;
  const float* kb = nullptr;  // 2 * pieces floats: k_0, b_0, k_1, b_1, ...
  // Optional: the slopes alone, k_0 .. k_{pieces-1} (= kb[2 i]), contiguous. The CPU slope
  // backward gathers from it when set: half the cache lines of kb's stride-8 slopes, so the
  // hot middle of a 16 Ki-piece table stays in L1 (bench_interp).
  const float* k = nullptr;
  int32_t pieces = 0;
  float lo = 0.0f, hi = 0.0f;  // the domain [lo, hi]
  // kUniform: lo == a, hi == a + 2^m, pieces == 2^n, 1 <= n <= 16, -24 <= m <= 24.
  int32_t m = 0, n = 0;
  // kBinarySearch: breaks[0 .. pieces - 2], ascending; piece i covers [breaks[i - 1],
  // breaks[i]) with breaks[-1] = lo and breaks[pieces - 1] = hi (x == hi: the last piece).
  const float* breaks = nullptr;
  // kNonuniform: segments in ascending order, segments[0].a == lo, contiguous, the last
  // ending at hi.
  const InterpSegment* segments = nullptr;
  int32_t num_segments = 0;
  InterpLine below, above;
};

// Algorithm 1 (PAPER.md §1) with its guards: the piece of x in a uniform table of 2^n pieces
// on [a, a + 2^m). d = x - a is computed in float32 as the algorithm does; the result equals
// clamp(floor(d * 2^(n - m)), 0, 2^n - 1) for that d, for every float32 x (x < a gives 0,
// d >= 2^m gives 2^n - 1, NaN gives 2^n - 1: callers select NaN/outside results anyway).
// d's bits: e = biased exponent - 127, mantissa with the hidden 1 restored, so
// d = mant * 2^(e - 23) and floor(d * 2^(n - m)) = mant >> (m - e + 23 - n). The shift is
// clamped to [0, 31] (>= 32 would be undefined; mant < 2^24 so >> 31 is 0 anyway) and
// the result to 2^n - 1 (shift <= 23 - n: d >= 2^m). A zero or subnormal d has e = -127,
// so its shift exceeds 31 for every allowed (m, n): index 0, as floor gives.
QILIN_HOST_DEVICE inline int32_t uniform_index(float x, float a, int32_t m, int32_t n) {
  const float d = x - a;
  uint32_t bits;
  std::memcpy(&bits, &d, sizeof bits);
  if (bits >> 31) return 0;  // d < 0 (or -0): below the domain, or its first point
  const int32_t e = static_cast<int32_t>((bits >> 23) & 0xFFu) - 127;
  const uint32_t mant = (bits & 0x007FFFFFu) | 0x00800000u;
  int32_t shift = m - e + 23 - n;
  shift = shift < 0 ? 0 : (shift > 31 ? 31 : shift);
  const uint32_t index = mant >> shift;
  const uint32_t last = (1u << n) - 1u;
  return static_cast<int32_t>(index < last ? index : last);
}

// The piece of x (lo <= x <= hi) for any kind.
QILIN_HOST_DEVICE inline int32_t interp_index(const InterpTableView& t, float x) {
  switch (t.kind) {
    case InterpKind::kUniform: return uniform_index(x, t.lo, t.m, t.n);
    case InterpKind::kBinarySearch: {
      // The number of inner breakpoints <= x: upper_bound over breaks[0 .. pieces - 2].
      int32_t lo = 0, count = t.pieces - 1;
      while (count > 0) {
        const int32_t half = count / 2;
        if (t.breaks[lo + half] <= x) {
          lo += half + 1;
          count -= half + 1;
        } else {
          count = half;
        }
      }
      return lo;
    }
    case InterpKind::kNonuniform: {
      // The last segment whose start is <= x (binary search), then Algorithm 1 inside it.
      int32_t lo = 0, count = t.num_segments - 1;
      while (count > 0) {
        const int32_t half = count / 2;
        if (t.segments[lo + 1 + half].a <= x) {
          lo += half + 1;
          count -= half + 1;
        } else {
          count = half;
        }
      }
      const InterpSegment& s = t.segments[lo];
      return s.first + uniform_index(x, s.a, s.m, s.n);
    }
  }
  return 0;
}

QILIN_HOST_DEVICE inline float interp_line(const InterpLine& line, float x) {
  return line.k == 0.0f ? line.b : std::fma(line.k, x, line.b);
}

// The interpolated value: the reference every kernel must match bit for bit.
QILIN_HOST_DEVICE inline float interp_eval(const InterpTableView& t, float x) {
  if (std::isnan(x)) return x;
  if (x < t.lo) return interp_line(t.below, x);
  if (x > t.hi) return interp_line(t.above, x);
  const int32_t i = interp_index(t, x);
  return std::fma(x, t.kb[2 * i], t.kb[2 * i + 1]);
}

// d(interp_eval)/dx: the piece's slope k_i inside, the outside line's slope outside
// (`grad: slope`, DESIGN.md §4.1). NaN in gives NaN.
QILIN_HOST_DEVICE inline float interp_slope(const InterpTableView& t, float x) {
  if (std::isnan(x)) return x;
  if (x < t.lo) return t.below.k;
  if (x > t.hi) return t.above.k;
  return t.kb[2 * interp_index(t, x)];
}

}  // namespace qilin
