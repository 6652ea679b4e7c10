// CPU kernels of the 8-bit formats (see quant.h; DESIGN.md §4.2). Branch-free arithmetic forms
// of the scalar codec of core/qfp8.h, equal to it bit for bit:
//
// QFP8 / OCP FP8 rounding. The reference rounds a = |x| to q * s, s = 2^(e - M), e =
// max(floor(log2 a), e_min), q = rne(a / s). Here: with C = 2^(e - M + 23), fl(a + C) is
// C + rne(a / s) * s exactly (a + C lies in [C, 2C), whose float spacing is s, and the sum's
// significand parity is q's, so IEEE ties-to-even is ties-to-even on q), and subtracting C
// is exact (Sterbenz). C = 2^max(e(a), e_min) * 2^(23 - M): an integer and + max give the
// power of two, and two fused multiply-adds form fl(a + C) and fl(sum - C) (the product is
// exact, so each rounds once, as the add and the subtract do).
// a is clamped to max first (max is a grid point and rounding is monotonic, so this equals
// the reference's clamp after rounding, and keeps ±Inf out of the sum).
// C stays a normal float for every β <= 126 at the low end (C_min >= 2^-107), but overflows
// when max's exponent T exceeds 104 + M (β near its lower limit, max up to 2^128). For those
// β only, a is first scaled by 2^K, K = -T (clamped to -126), which puts max in [1, 4) and
// the smallest step at >= 2^-33: every value that can round to a nonzero code is scaled
// exactly, and the result is scaled back by 2^-K exactly (every code value is a float32).
// Values that the scaling rounds (below 2^-126 after it) are far below half the smallest
// step and round to 0 either way. OCP FP8 uses its scale instead of 2^K
// (t = x * scale, decode * scale_inv: the reference's own float operations).
// int8: round(clamp(x * inv_scale, ±127)) * scale, the rounding by adding and subtracting
// 1.5 * 2^23 (ties to even, as nearbyint, for |v| <= 2^22), which also turns -0 into the +0
// that the reference's int8_t conversion gives.
//
// Packed codes reuse the rounding: bits(fl(a + C)) - bits(C) is q and the exponent
// distance (C - C_min) >> 23 gives the code's exponent field: code = ((e - e_min) << M) + q,
// the reference's formula (on AVX-512, bits(C) and the rest come from a table by exponent,
// see CodeTables). Decode reads the code as a float16 and scales it (see HalfDecode), except
// for QFP8 e5m2, which builds normal codes from their bits (code << (23 - M) plus the exponent
// offset) and subnormal codes as f * 2^(e_min - M).
//
// amax is an integer max over |x|'s bits: for non-negative floats the integer order is the
// float order, and NaN's bits exceed Inf's, so a NaN anywhere wins (hn::Max on floats would
// drop NaN depending on the operand order).
//
// Highway compiles this file once per x86 target (AVX2, AVX-512) through foreach_target.h;
// HWY_DYNAMIC_DISPATCH picks the best one the CPU has at run time. OpenMP through
// parallel_for over all elements; a chunk crossing rows switches parameters at each row.

// clang-format off
// The build's baseline is x86-64-v3 (AVX2): targets below it would only cost compile time.
#ifndef HWY_DISABLED_TARGETS
#define HWY_DISABLED_TARGETS (HWY_SSSE3 | HWY_SSE4)
#endif
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu/quant.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
// clang-format on

#include <algorithm>
#include <cstring>
#include <limits>
#include <vector>

#include "core/error.h"
#include "hwy/highway.h"
#include "kernels/cpu/parallel.h"
#include "kernels/cpu/quant.h"

#ifndef QILIN_KERNELS_CPU_QUANT_ONCE
#define QILIN_KERNELS_CPU_QUANT_ONCE
namespace qilin::kernels::cpu::quant_detail {

constexpr int32_t kExponentMask = 0x7F800000;
constexpr int32_t kAbsMask = 0x7FFFFFFF;
constexpr int32_t kFloatMantissaBits = 23;

#define QILIN_ROW_FN __attribute__((always_inline))  // see for_each_run

// One channel's constants for the vector forms (see the file comment). Built per row from
// bits with integer arithmetic only: per-channel rows of 1024 values take about 250 cycles
// of vector work, so the set-up must cost little next to that (bench_quant per_channel).
struct Grid {
  float pre = 1.0f;         // multiplies x: qfp8 2^K; fp8 scale; int8 1 / scale
  float post = 1.0f;        // multiplies the grid value: qfp8 2^-K; fp8 1 / scale; int8 scale
  float max_scaled = 0.0f;  // max in the scaled domain (qfp8: max 2^K; fp8: 448 / 57344)
  int32_t emin_bits = 0;    // bits of 2^e_min in the scaled domain
  int32_t step_shift = 0;   // (23 - M) << 23: from 2^e's bits to C = 2^(e - M + 23)'s
  int32_t mantissa_bits = 0;
  bool scaled = false;      // qfp8: K != 0 (pre / post are not 1)
};

inline float float_of_bits(int32_t bits) { return qfp8_detail::bits_float(static_cast<uint32_t>(bits)); }

// A minifloat with M mantissa bits, smallest exponent e_min and max's exponent t, scaled by
// 2^k: max 2^k = (2 - 2^-M) 2^(t + k), whose bits are the exponent and M leading ones.
inline void set_minifloat(Grid* g, int32_t mantissa_bits, int32_t e_min, int32_t t, int32_t k) {
  g->mantissa_bits = mantissa_bits;
  g->emin_bits = (e_min + k + 127) << kFloatMantissaBits;
  g->step_shift = (kFloatMantissaBits - mantissa_bits) << kFloatMantissaBits;
  g->max_scaled = float_of_bits(((t + k + 127) << kFloatMantissaBits) |
                                (((1 << mantissa_bits) - 1) << (kFloatMantissaBits - mantissa_bits)));
}

HWY_INLINE Grid make_grid(const QuantChannel& c) {
  Grid g;
  switch (c.format) {
    case QuantFormat::kNone: break;
    case QuantFormat::kQfp8: {
      // Unscaled (K = 0) wherever C = 2^(e - M + 23) stays finite for e up to max's exponent
      // T; C_min is normal for every β <= 126. That covers every β a tensor of ordinary
      // range gets, and saves two multiplies per vector (bench_quant).
      const int32_t m = c.layout.mantissa_bits;
      const int32_t t = qfp8_max_exponent(c.layout, c.beta);
      const int32_t k = t + kFloatMantissaBits - m <= 127 ? 0 : std::max(-t, -126);
      g.scaled = k != 0;
      g.pre = float_of_bits((k + 127) << kFloatMantissaBits);
      g.post = float_of_bits((127 - k) << kFloatMantissaBits);
      set_minifloat(&g, m, 1 - c.beta, t, k);
      break;
    }
    case QuantFormat::kFp8E4M3:  // E4M3FN: max 448 = 1.75 * 2^8, one step below QFP8's 480
      g.pre = c.scale;
      g.post = 1.0f / c.scale;
      set_minifloat(&g, kQfp8E4M3.mantissa_bits, 1 - kFp8E4M3Bias, 8, 0);
      g.max_scaled = kFp8E4M3Max;
      break;
    case QuantFormat::kFp8E5M2:  // max 57344 = 1.75 * 2^15
      g.pre = c.scale;
      g.post = 1.0f / c.scale;
      set_minifloat(&g, kQfp8E5M2.mantissa_bits, 1 - kFp8E5M2Bias, 15, 0);
      break;
    case QuantFormat::kInt8:
      g.pre = 1.0f / c.scale;
      g.post = c.scale;
      break;
  }
  return g;
}

// Decoding a QFP8 e5m2 code: normal codes are the bits (code << (23 - M)) + offset, subnormal
// ones f * subnormal_step (2^(e_min - M), possibly a float32 subnormal: the product is exact).
struct DecodeGrid {
  int32_t mantissa_bits = 0;
  int32_t offset = 0;
  float subnormal_step = 0.0f;
};
inline DecodeGrid make_decode_grid(const QuantChannel& c) {
  if (c.format != QuantFormat::kQfp8) return {};
  const int32_t m = c.layout.mantissa_bits, e_min = 1 - c.beta;
  return {m, (e_min + 126) << kFloatMantissaBits, qfp8_detail::exp2i(e_min - m)};
}

// Decoding minifloat codes through float16 (F16C's vcvtph2ps, on AVX2 and AVX-512). A code
// with E <= 5 exponent bits and M mantissa bits, its magnitude shifted left by 10 - M and its
// sign moved to bit 15, is the float16 2^(e - 15) (1 + f / 2^M) (e > 0) or f 2^(-14 - M)
// (e = 0): the code's value times 2^(b - 15), b its bias (QFP8: β), subnormals included. One
// multiply by 2^(15 - b) (times FP8's 1 / scale) then gives the value, rounded once as the
// reference's decode(code) * (1 / scale) is. Where that factor is not a finite float
// (2^(15 - β) above 2^127; 256 / scale overflowing), two multiplies, the first exact.
// Float16's exponent 31 is Inf and NaN: E5M2's codes there are Inf and NaN too; E4M3's NaN
// code S.1111.111 would read 1.875 * 2^8 and is replaced; QFP8 e5m2's top binade is finite,
// so that layout takes the bit-building decode_vec.
struct HalfDecode {
  bool usable = false;
  int16_t multiplier = 1;  // 2^(10 - M): the shift, as an int16 multiply (AVX2 has no vpsllvw)
  int16_t mask = 0;        // bit 15 (the sign) and the magnitude's 7 bits, from bit 10 - M
  float factor = 1.0f, factor2 = 1.0f;
  bool two_steps = false;
};
inline HalfDecode make_half_decode(const QuantChannel& c) {
  HalfDecode h;
  int32_t m = 0;
  switch (c.format) {
    case QuantFormat::kQfp8: {
      m = c.layout.mantissa_bits;
      if (m == kQfp8E5M2.mantissa_bits) return h;  // its exponent-31 codes are finite
      const int32_t k = 15 - c.beta;  // in [-111, 141]
      h.two_steps = k > 127;
      h.factor = qfp8_detail::exp2i(h.two_steps ? k - 64 : k);
      h.factor2 = h.two_steps ? qfp8_detail::exp2i(64) : 1.0f;
      break;
    }
    case QuantFormat::kFp8E4M3:
    case QuantFormat::kFp8E5M2: {
      const bool e4m3 = c.format == QuantFormat::kFp8E4M3;
      m = e4m3 ? kQfp8E4M3.mantissa_bits : kQfp8E5M2.mantissa_bits;
      const float to_value = qfp8_detail::exp2i(15 - (e4m3 ? kFp8E4M3Bias : kFp8E5M2Bias));
      const float post = 1.0f / c.scale;
      h.two_steps = !(to_value * post <= std::numeric_limits<float>::max());
      h.factor = h.two_steps ? to_value : to_value * post;
      h.factor2 = h.two_steps ? post : 1.0f;
      break;
    }
    default: return h;
  }
  h.usable = true;
  h.multiplier = static_cast<int16_t>(1 << (10 - m));
  h.mask = static_cast<int16_t>(0x8000 | (0x7F << (10 - m)));
  return h;
}

// The parameter entries must fit the geometry, share one format, and be codable: QFP8 a known
// layout with β in range (the K scaling relies on it), the scales positive and finite (the
// FP8 forms take the sign from x, not from x * scale), int8's at least FLT_MIN (x is
// multiplied by its reciprocal). Returns false when there is no data
// (nothing to check or do).
inline bool check_params(const QuantChannel* params, int64_t n_params, int64_t channels,
                         int64_t inner, const char* kernel) {
  QILIN_CHECK(channels >= 0 && inner >= 0, kernel, ": bad geometry [", channels, ", ", inner, "]");
  if (channels * inner == 0) return false;
  QILIN_CHECK(params != nullptr && (n_params == 1 || n_params == channels), kernel, ": ", n_params,
              " parameter entries for ", channels, " channels (expected 1 or ", channels, ")");
  const QuantFormat format = params[0].format;
  for (int64_t i = 0; i < n_params; ++i) {
    const QuantChannel& c = params[i];
    QILIN_CHECK(c.format == format, kernel, ": entry ", i, " has format ",
                quant_format_name(c.format), ", entry 0 ", quant_format_name(format));
    if (format == QuantFormat::kQfp8) {
      const bool known = c.layout.exponent_bits >= 2 && c.layout.exponent_bits <= 5 &&
                         c.layout.exponent_bits + c.layout.mantissa_bits == 7;
      QILIN_CHECK(known && qfp8_bias_in_range(c.layout, c.beta), kernel, ": entry ", i,
                  ": QFP8 e", c.layout.exponent_bits, "m", c.layout.mantissa_bits, " bias ", c.beta,
                  " is not a valid layout and bias");
    } else if (format != QuantFormat::kNone) {
      QILIN_CHECK(c.scale > 0.0f && c.scale <= qfp8_detail::float_max(), kernel, ": entry ", i,
                  ": scale ", c.scale, " must be positive and finite");
      QILIN_CHECK(format != QuantFormat::kInt8 || c.scale >= qfp8_detail::float_min(), kernel,
                  ": entry ", i, ": int8 scale ", c.scale, " is below FLT_MIN (int8_scale_for_amax's floor)");
    }
  }
  return true;
}

}  // namespace qilin::kernels::cpu::quant_detail
#endif  // QILIN_KERNELS_CPU_QUANT_ONCE

HWY_BEFORE_NAMESPACE();
namespace qilin::kernels::cpu {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;
using quant_detail::Grid;

using DF = hn::ScalableTag<float>;
using DI = hn::RebindToSigned<DF>;
using VF = hn::Vec<DF>;
using VI = hn::Vec<DI>;

// Calls fn(begin, end, entry) over [0, channels * inner) in parallel, each call inside one
// row (or anywhere with a single entry). `cost`: work per element relative to a copy. Compiled
// per target (inside HWY_NAMESPACE), so that fn, which carries the target's attributes, can be
// inlined into the row loop: a baseline-compiled loop called it out of line once per row.
// The row functions are marked QILIN_ROW_FN (always inline), which GCC otherwise declines for
// them (each holds two runs: scaled and not). Their loops read the pointers from locals or
// from a run function's parameters: a vector store may alias anything, the closure included,
// so a pointer read from a capture is reloaded after each store. Together, against the
// previous code (A/B in one process, a 1 MB weight in L2, 2026-11-27): per-channel forward
// and encode 1-5% faster, decode 13-20%, backward 8-19%.
template <typename Fn>
void for_each_run(const QuantChannel* params, int64_t n_params, int64_t channels, int64_t inner,
                  int64_t cost, Fn&& fn) {
  const int64_t n = channels * inner;
  const int64_t row = n_params == 1 ? n : inner;  // one entry: the whole tensor is one run
  parallel_for(n, cost, [&](int64_t begin, int64_t end) {
    int64_t c = begin / row, row_end = (c + 1) * row;
    for (int64_t i = begin; i < end; i = row_end, ++c, row_end += row)
      fn(i, std::min(end, row_end), params[c]);
  });
}

// A Grid broadcast into registers.
struct VGrid {
  VF pre, post, max_scaled;
  VF c_over_e;  // 2^(23 - M): C = 2^e * c_over_e, exact
  VI emin_bits, step_shift;
  VI code_shift;  // 23 - M, per lane: vpsravd / vpsllvd are one uop, a shift by xmm count two
  explicit VGrid(const Grid& g)
      : pre(hn::Set(DF(), g.pre)),
        post(hn::Set(DF(), g.post)),
        max_scaled(hn::Set(DF(), g.max_scaled)),
        c_over_e(hn::BitCast(DF(), hn::Set(DI(), g.step_shift + (127 << quant_detail::kFloatMantissaBits)))),
        emin_bits(hn::Set(DI(), g.emin_bits)),
        step_shift(hn::Set(DI(), g.step_shift)),
        code_shift(hn::Set(DI(), quant_detail::kFloatMantissaBits - g.mantissa_bits)) {}
};

// ---- forward: one vector ----

// NaN needs no select: every clamp is written hn::Min(limit, v) / hn::Max(-limit, v), and
// x86's minps / maxps return the second operand when either is NaN, so a NaN flows through
// the clamp and every later float operation (the integer ops on its bits only build 2^e, and
// a fused multiply-add of NaN is NaN whatever 2^e is). The tests check NaN in -> NaN out on
// every target.
template <QuantFormat F, bool kScaled>
HWY_INLINE VF fake_quant_vec(VF x, const VGrid& g) {
  const DF d;
  if constexpr (F == QuantFormat::kNone) {
    return x;
  } else if constexpr (F == QuantFormat::kInt8) {
    const VF limit = hn::Set(d, static_cast<float>(kInt8MaxCode));
    const VF v = hn::Min(limit, hn::Max(hn::Neg(limit), hn::Mul(x, g.pre)));
    // Ties to even for |v| <= 127 by the add of 1.5 * 2^23 (one uop where vrndscaleps is
    // two), and the result is +0 where v rounds to zero, as the int8_t code.
    const VF magic = hn::Set(d, 12582912.0f);
    return hn::Mul(hn::Sub(hn::Add(v, magic), magic), g.post);
  } else {
    VF a = F == QuantFormat::kQfp8 ? hn::Abs(x) : hn::Abs(hn::Mul(x, g.pre));
    if (F == QuantFormat::kQfp8 && kScaled) a = hn::Mul(a, g.pre);
    const DI di;
    const VF t = hn::Min(g.max_scaled, a);  // NaN a stays NaN
    const VF e = hn::BitCast(d, hn::Max(hn::And(hn::BitCast(di, t), hn::Set(di, quant_detail::kExponentMask)),
                                        g.emin_bits));  // 2^max(e(t), e_min)
    const VF sum = hn::MulAdd(e, g.c_over_e, t);
    VF y = hn::CopySignToAbs(hn::NegMulAdd(e, g.c_over_e, sum), x);
    if (F == QuantFormat::kQfp8 && kScaled) y = hn::Mul(y, g.post);
    return F == QuantFormat::kQfp8 ? y : hn::Mul(y, g.post);
  }
}

// Work per element relative to a copy: the division of int8 / FP8 costs more than the rest.
template <QuantFormat F>
constexpr int64_t kForwardCost = F == QuantFormat::kQfp8 || F == QuantFormat::kNone ? 1 : 2;

template <QuantFormat F, bool kScaled>
HWY_INLINE void forward_run(const float* x, float* y, int64_t begin, int64_t end,
                            const VGrid& g) {
  const DF d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  int64_t i = begin;
  // Eight vectors per iteration, all loaded before any is stored (x and y may be the same
  // array): 18-26% faster than one at a time on a 1 MB weight in L2, where the rounding's
  // arithmetic, not memory, bounds it (A/B in one process, 2026-11-27).
  for (; i + 8 * lanes <= end; i += 8 * lanes) {
    VF v[8];
    for (int j = 0; j < 8; ++j) v[j] = hn::LoadU(d, x + i + j * lanes);
    for (int j = 0; j < 8; ++j) hn::StoreU(fake_quant_vec<F, kScaled>(v[j], g), d, y + i + j * lanes);
  }
  for (; i + lanes <= end; i += lanes)
    hn::StoreU(fake_quant_vec<F, kScaled>(hn::LoadU(d, x + i), g), d, y + i);
  if (i < end) {
    const auto m = hn::FirstN(d, static_cast<size_t>(end - i));
    hn::BlendedStore(fake_quant_vec<F, kScaled>(hn::MaskedLoad(m, d, x + i), g), m, d, y + i);
  }
}

template <QuantFormat F>
void forward_format(const QuantChannel* params, int64_t n_params, const float* x, float* y,
                    int64_t channels, int64_t inner) {
  for_each_run(params, n_params, channels, inner, kForwardCost<F>,
               [x, y](int64_t begin, int64_t end, const QuantChannel& c) QILIN_ROW_FN {
    const quant_detail::Grid grid = quant_detail::make_grid(c);
    if (grid.scaled) forward_run<F, true>(x, y, begin, end, VGrid(grid));
    else forward_run<F, false>(x, y, begin, end, VGrid(grid));
  });
}

void forward_target(const QuantChannel* params, int64_t n_params, const float* x, float* y,
                    int64_t channels, int64_t inner) {
  switch (params[0].format) {
    case QuantFormat::kNone:
      forward_format<QuantFormat::kNone>(params, n_params, x, y, channels, inner);
      break;
    case QuantFormat::kQfp8:
      forward_format<QuantFormat::kQfp8>(params, n_params, x, y, channels, inner);
      break;
    case QuantFormat::kInt8:
      forward_format<QuantFormat::kInt8>(params, n_params, x, y, channels, inner);
      break;
    case QuantFormat::kFp8E4M3:
      forward_format<QuantFormat::kFp8E4M3>(params, n_params, x, y, channels, inner);
      break;
    case QuantFormat::kFp8E5M2:
      forward_format<QuantFormat::kFp8E5M2>(params, n_params, x, y, channels, inner);
      break;
  }
}

// ---- STE backward ----

template <bool kPassAll, bool kAccumulate>
HWY_INLINE VF ste_vec(VF x, VF dy, VF dx, VF clip) {
  if constexpr (kPassAll) {
    return kAccumulate ? hn::Add(dx, dy) : dy;
  } else {
    const auto pass = hn::Le(hn::Abs(x), clip);  // false for NaN
    return kAccumulate ? hn::IfThenElse(pass, hn::Add(dx, dy), dx) : hn::IfThenElseZero(pass, dy);
  }
}

template <bool kPassAll, bool kAccumulate>
void backward_mode(const QuantChannel* params, int64_t n_params, const float* x, const float* dy,
                   float* dx, int64_t channels, int64_t inner) {
  for_each_run(params, n_params, channels, inner, 1,
               [x_in = x, dy_in = dy, dx_out = dx](int64_t begin, int64_t end,
                                                    const QuantChannel& c) QILIN_ROW_FN {
    const float* x = x_in;  // locals, not the closure's copies (see for_each_run)
    const float* dy = dy_in;
    float* dx = dx_out;
    const DF d;
    const VF clip = hn::Set(d, quant_clip_max(c));
    const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
    int64_t i = begin;
    for (; i + 8 * lanes <= end; i += 8 * lanes) {  // unrolled as forward_run (6-20% in L2)
      VF xs[8], dys[8], olds[8];
      for (int j = 0; j < 8; ++j) {
        xs[j] = hn::LoadU(d, x + i + j * lanes);
        dys[j] = hn::LoadU(d, dy + i + j * lanes);
        olds[j] = kAccumulate ? hn::LoadU(d, dx + i + j * lanes) : hn::Zero(d);
      }
      for (int j = 0; j < 8; ++j)
        hn::StoreU(ste_vec<kPassAll, kAccumulate>(xs[j], dys[j], olds[j], clip), d, dx + i + j * lanes);
    }
    for (; i + lanes <= end; i += lanes) {
      const VF old = kAccumulate ? hn::LoadU(d, dx + i) : hn::Zero(d);
      hn::StoreU(ste_vec<kPassAll, kAccumulate>(hn::LoadU(d, x + i), hn::LoadU(d, dy + i), old, clip),
                 d, dx + i);
    }
    if (i < end) {
      const auto m = hn::FirstN(d, static_cast<size_t>(end - i));
      const VF old = kAccumulate ? hn::MaskedLoad(m, d, dx + i) : hn::Zero(d);
      hn::BlendedStore(ste_vec<kPassAll, kAccumulate>(hn::MaskedLoad(m, d, x + i),
                                                      hn::MaskedLoad(m, d, dy + i), old, clip),
                       m, d, dx + i);
    }
  });
}

void backward_target(const QuantChannel* params, int64_t n_params, const float* x, const float* dy,
                     float* dx, int64_t channels, int64_t inner, bool accumulate) {
  const bool pass_all = params[0].format == QuantFormat::kNone;
  if (pass_all) {
    if (accumulate) backward_mode<true, true>(params, n_params, x, dy, dx, channels, inner);
    else backward_mode<true, false>(params, n_params, x, dy, dx, channels, inner);
  } else {
    if (accumulate) backward_mode<false, true>(params, n_params, x, dy, dx, channels, inner);
    else backward_mode<false, false>(params, n_params, x, dy, dx, channels, inner);
  }
}

// ---- amax ----

// max over |x|'s bits (int32: non-negative floats order as integers, NaN above Inf).
int32_t amax_bits(const float* x, int64_t n) {
  const DF d;
  const DI di;
  const VI abs_mask = hn::Set(di, quant_detail::kAbsMask);
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  VI acc0 = hn::Zero(di), acc1 = hn::Zero(di);
  int64_t i = 0;
  for (; i + 2 * lanes <= n; i += 2 * lanes) {
    acc0 = hn::Max(acc0, hn::And(hn::BitCast(di, hn::LoadU(d, x + i)), abs_mask));
    acc1 = hn::Max(acc1, hn::And(hn::BitCast(di, hn::LoadU(d, x + i + lanes)), abs_mask));
  }
  for (; i < n; i += lanes) {
    const auto m = hn::FirstN(d, static_cast<size_t>(std::min(lanes, n - i)));
    acc0 = hn::Max(acc0, hn::And(hn::BitCast(di, hn::MaskedLoad(m, d, x + i)), abs_mask));
  }
  return hn::GetLane(hn::MaxOfLanes(di, hn::Max(acc0, acc1)));
}

float amax_target(const float* x, int64_t n) {
  // Fixed blocks (not one per thread): the partial maxima do not depend on the thread count.
  constexpr int64_t kBlock = int64_t{1} << 16;
  const int64_t blocks = (n + kBlock - 1) / kBlock;
  if (blocks <= 1) return qfp8_detail::bits_float(static_cast<uint32_t>(amax_bits(x, n)));
  std::vector<int32_t> partial(static_cast<size_t>(blocks));
  parallel_for(blocks, kBlock, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t begin = b * kBlock;
      partial[b] = amax_bits(x + begin, std::min(kBlock, n - begin));
    }
  });
  return qfp8_detail::bits_float(
      static_cast<uint32_t>(*std::max_element(partial.begin(), partial.end())));
}

void amax_per_channel_target(const float* x, int64_t channels, int64_t inner, float* out) {
  parallel_for(channels, inner, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c)
      out[c] = qfp8_detail::bits_float(static_cast<uint32_t>(amax_bits(x + c * inner, inner)));
  });
}

// ---- packed codes ----

// The code of each lane, in 0..255 (int8: its two's-complement byte). The magnitude needs no
// clamp to the largest code: a is clamped to max (a grid point) before rounding, and rounding is
// monotonic. hn::Min(a, max) (not (max, a)) turns NaN into max: QFP8 encodes NaN as its sign
// and 0x7F, which is max's code; the FP8 formats overwrite it with their NaN code.
template <QuantFormat F, bool kScaled>
HWY_INLINE VI encode_vec(VF x, const VGrid& g) {
  const DF d;
  const DI di;
  if constexpr (F == QuantFormat::kInt8) {
    const VF limit = hn::Set(d, static_cast<float>(kInt8MaxCode));
    const VF v = hn::Min(limit, hn::Max(hn::Neg(limit), hn::Mul(x, g.pre)));
    const VI code = hn::IfThenZeroElse(hn::RebindMask(di, hn::IsNaN(x)), hn::NearestInt(v));
    return hn::And(code, hn::Set(di, 0xFF));  // two's complement byte
  } else {
    VF a = hn::Abs(x);
    if (F != QuantFormat::kQfp8 || kScaled) a = hn::Mul(a, g.pre);  // pre > 0
    const VF t = hn::Min(a, g.max_scaled);
    const VI e_bits =
        hn::Max(hn::And(hn::BitCast(di, t), hn::Set(di, quant_detail::kExponentMask)), g.emin_bits);
    const VI c_bits = hn::Add(e_bits, g.step_shift);
    const VF sum = hn::Add(t, hn::BitCast(d, c_bits));
    // ((e - e_min) << M) + q: the exponent distance from e_min, shifted into the code's
    // exponent field, plus q = bits(sum) - bits(C).
    const VI exponent_field = hn::Shr(hn::Sub(e_bits, g.emin_bits), g.code_shift);
    VI magnitude = hn::Add(exponent_field, hn::Sub(hn::BitCast(di, sum), c_bits));
    if constexpr (F != QuantFormat::kQfp8)
      magnitude = hn::IfThenElse(hn::RebindMask(di, hn::IsNaN(x)), hn::Set(di, kFp8NanCode), magnitude);
    const hn::RebindToUnsigned<DF> du;
    const VI sign = hn::BitCast(di, hn::ShiftRight<24>(hn::BitCast(du, x)));  // 0x80 | exponent bits
    return hn::OrAnd(magnitude, sign, hn::Set(di, 0x80));
  }
}

// int8, and QFP8 e5m2 (the other minifloats decode through float16: decode_half_vec).
template <QuantFormat F>
HWY_INLINE VF decode_vec(VI code, const VGrid& g, const quant_detail::DecodeGrid& grid) {
  static_assert(F == QuantFormat::kInt8 || F == QuantFormat::kQfp8);
  const DF d;
  const DI di;
  if constexpr (F == QuantFormat::kInt8) {
    // Sign-extend the byte: (code << 24) >> 24, arithmetic.
    const VI value = hn::ShiftRight<24>(hn::ShiftLeft<24>(code));
    return hn::Mul(hn::ConvertTo(d, value), g.post);
  } else {
    const VI magnitude = hn::And(code, hn::Set(di, 0x7F));
    const VF normal = hn::BitCast(d, hn::Add(hn::Shl(magnitude, g.code_shift), hn::Set(di, grid.offset)));
    const VF subnormal = hn::Mul(hn::ConvertTo(d, magnitude), hn::Set(d, grid.subnormal_step));
    const VF y = hn::IfThenElse(hn::RebindMask(d, hn::Lt(magnitude, hn::Set(di, 1 << grid.mantissa_bits))),
                                subnormal, normal);
    return hn::Or(y, hn::BitCast(d, hn::ShiftLeft<24>(hn::And(code, hn::Set(di, 0x80)))));
  }
}

#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
// encode_vec's minifloat path in fewer operations, by table (12 vector ops for FP8 where
// encode_vec takes 15, 10 for QFP8 where it takes 12). The row's exponents run from e_min to
// max's, at most 32 binades (e5m2), so the biased exponent mod 32 indexes a two-register
// vpermt2d table of bits(C) and of ((e - e_min) << M) - bits(C), and the code's magnitude is
// bits(fl(t + C)) plus that entry. Exponents below e_min take e_min's entry (the max before
// the lookup).
// FP8 NaN: t = min(max, a) keeps it (where encode_vec's min(a, max) gives max), so it indexes
// entry 255 mod 32 and its sum is t's quiet NaN, at least 0x7FC00000; minus bits(C) of any
// entry, which is at most 0x52000000 (e5m2's e_min + 31 + 23 - M), the magnitude is at least
// 0x2DC00000, and the unsigned min with 0x7F makes it the NaN code. Finite magnitudes are at
// most the largest finite code already (t <= max).
struct CodeTables {
  VI emin_exponent;  // e_min's biased exponent, the lowest index
  VI c_lo, c_hi, offset_lo, offset_hi;
  explicit CodeTables(const quant_detail::Grid& g) {
    const DI di;
    const int32_t emin_exponent_scalar = g.emin_bits >> quant_detail::kFloatMantissaBits;
    emin_exponent = hn::Set(di, emin_exponent_scalar);
    auto fill = [&](VI index, VI* c, VI* offset) {
      const VI distance = hn::And(hn::Sub(index, emin_exponent), hn::Set(di, 31));  // e - e_min
      *c = hn::Add(hn::ShiftLeft<quant_detail::kFloatMantissaBits>(distance),
                   hn::Set(di, g.emin_bits + g.step_shift));
      *offset = hn::Sub(hn::Shl(distance, hn::Set(di, g.mantissa_bits)), *c);
    };
    const VI iota = hn::Iota(di, 0);
    fill(iota, &c_lo, &offset_lo);
    fill(hn::Add(iota, hn::Set(di, 16)), &c_hi, &offset_hi);
  }
};

template <QuantFormat F, bool kScaled>
HWY_INLINE VI encode_vec_table(VF x, const VGrid& g, const CodeTables& tables) {
  static_assert(F != QuantFormat::kInt8 && F != QuantFormat::kNone);
  const DF d;
  const DI di;
  const hn::RebindToUnsigned<DF> du;
  VF a = hn::Abs(x);
  if (F != QuantFormat::kQfp8 || kScaled) a = hn::Mul(a, g.pre);  // pre > 0
  const VF t = F == QuantFormat::kQfp8 ? hn::Min(a, g.max_scaled) : hn::Min(g.max_scaled, a);
  const VI index = hn::Max(hn::ShiftRight<quant_detail::kFloatMantissaBits>(hn::BitCast(di, t)),
                           tables.emin_exponent);
  const VI c_bits{_mm512_permutex2var_epi32(tables.c_lo.raw, index.raw, tables.c_hi.raw)};
  const VI offset{_mm512_permutex2var_epi32(tables.offset_lo.raw, index.raw, tables.offset_hi.raw)};
  VI magnitude = hn::Add(hn::BitCast(di, hn::Add(t, hn::BitCast(d, c_bits))), offset);
  if constexpr (F != QuantFormat::kQfp8)
    magnitude = hn::BitCast(di, hn::Min(hn::BitCast(du, magnitude), hn::Set(du, kFp8NanCode)));
  const VI sign = hn::BitCast(di, hn::ShiftRight<24>(hn::BitCast(du, x)));  // 0x80 | exponent bits
  return hn::OrAnd(magnitude, sign, hn::Set(di, 0x80));
}
#endif

// Codes are 0..255 in int32 lanes. One vector goes to bytes by truncation (two shuffles on
// AVX-512). On AVX-512, four at a time take one shuffle each: two saturating 32 -> 16 packs
// and one 16 -> 8 pack (exact for 0..255), which interleave the 128-bit blocks (block b of
// the result holds block b of each source in turn), then one dword permute into order.
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
// Encode reads x with more arithmetic per byte than any other kernel here, and the hardware
// prefetcher falls behind on memory-resident tensors: prefetching x 2 KiB ahead took encode
// 10-25% faster on 20 MB and left it within 2% on a 1 MB weight in L2 (1 KiB ahead gained
// about half as much, 4 KiB a little less; A/B in one process, 2026-11-27).
constexpr int64_t kEncodePrefetchDistance = 512;

template <typename CodeFn>
HWY_INLINE int64_t encode_blocks_of_4(const float* x, uint8_t* codes, int64_t begin, int64_t end,
                                      int64_t n, const CodeFn& code) {
  const DF d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  const __m512i order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
  int64_t i = begin;
  for (; i + 4 * lanes <= end; i += 4 * lanes) {
    if (i + kEncodePrefetchDistance + 4 * lanes <= n) {  // n, not end: on into the next row
      for (int j = 0; j < 4; ++j) __builtin_prefetch(x + i + kEncodePrefetchDistance + j * lanes);
    }
    const __m512i c0 = code(hn::LoadU(d, x + i)).raw, c1 = code(hn::LoadU(d, x + i + lanes)).raw;
    const __m512i c2 = code(hn::LoadU(d, x + i + 2 * lanes)).raw;
    const __m512i c3 = code(hn::LoadU(d, x + i + 3 * lanes)).raw;
    const __m512i bytes = _mm512_packus_epi16(_mm512_packus_epi32(c0, c1), _mm512_packus_epi32(c2, c3));
    _mm512_storeu_si512(codes + i, _mm512_permutexvar_epi32(order, bytes));
  }
  return i;
}
#endif

template <QuantFormat F, bool kScaled>
HWY_INLINE void encode_run(const float* x, uint8_t* codes, int64_t begin, int64_t end, int64_t n,
                           const quant_detail::Grid& grid, const QuantChannel& c) {
  const VGrid g(grid);
  const DF d;
  const hn::RebindToUnsigned<DF> du;
  const hn::Rebind<uint8_t, DF> d8;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  int64_t i = begin;
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
  if constexpr (F == QuantFormat::kInt8) {
    i = encode_blocks_of_4(x, codes, begin, end, n,
                           [&](VF v) HWY_ATTR { return encode_vec<F, kScaled>(v, g); });
  } else {
    const CodeTables tables(grid);
    i = encode_blocks_of_4(x, codes, begin, end, n,
                           [&](VF v) HWY_ATTR { return encode_vec_table<F, kScaled>(v, g, tables); });
  }
#endif
  for (; i + lanes <= end; i += lanes) {
    const VI code = encode_vec<F, kScaled>(hn::LoadU(d, x + i), g);
    hn::StoreU(hn::TruncateTo(d8, hn::BitCast(du, code)), d8, codes + i);
  }
  for (; i < end; ++i) codes[i] = qilin::quant_encode(c, x[i]);  // the tail: the reference
}

template <QuantFormat F>
void encode_format(const QuantChannel* params, int64_t n_params, const float* x, uint8_t* codes,
                   int64_t channels, int64_t inner) {
  const int64_t n = channels * inner;
  for_each_run(params, n_params, channels, inner, 2,
               [x, codes, n](int64_t begin, int64_t end, const QuantChannel& c) QILIN_ROW_FN {
    const quant_detail::Grid grid = quant_detail::make_grid(c);
    if (grid.scaled) encode_run<F, true>(x, codes, begin, end, n, grid, c);
    else encode_run<F, false>(x, codes, begin, end, n, grid, c);
  });
}

// 16-bit lanes for the float16 path: codes sign-extended, so (code * 2^(10 - M)) & mask puts
// the sign at bit 15 and the magnitude under it (see HalfDecode).
using D16 = hn::Rebind<int16_t, DF>;
using V16 = hn::Vec<D16>;

template <QuantFormat F, bool kTwoSteps>
HWY_INLINE VF decode_half_vec(V16 code, const V16 multiplier, const V16 mask, const VF factor,
                              const VF factor2) {
  const DF d;
  const D16 d16;
  V16 half = hn::And(hn::Mul(code, multiplier), mask);
  if constexpr (F == QuantFormat::kFp8E4M3) {  // S.1111.111: code | 0xFF80 is all ones
    const auto nan = hn::Eq(hn::Or(code, hn::Set(d16, static_cast<int16_t>(0xFF80))), hn::Set(d16, -1));
    half = hn::IfThenElse(nan, hn::Set(d16, 0x7E00), half);
  }
  const VF value = hn::Mul(hn::PromoteTo(d, hn::BitCast(hn::Rebind<hwy::float16_t, DF>(), half)), factor);
  return kTwoSteps ? hn::Mul(value, factor2) : value;
}

template <QuantFormat F, bool kTwoSteps>
HWY_INLINE int64_t decode_half_run(const uint8_t* codes, float* y, int64_t begin, int64_t end,
                                   const quant_detail::HalfDecode& h) {
  const DF d;
  const D16 d16;
  const hn::Rebind<int8_t, DF> d8;
  const V16 multiplier = hn::Set(d16, h.multiplier), mask = hn::Set(d16, h.mask);
  const VF factor = hn::Set(d, h.factor), factor2 = hn::Set(d, h.factor2);
  const auto* signed_codes = reinterpret_cast<const int8_t*>(codes);
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  int64_t i = begin;
  for (; i + 4 * lanes <= end; i += 4 * lanes) {  // all loads before the stores, as forward_run
    V16 v[4];
    for (int j = 0; j < 4; ++j) v[j] = hn::PromoteTo(d16, hn::LoadU(d8, signed_codes + i + j * lanes));
    for (int j = 0; j < 4; ++j)
      hn::StoreU(decode_half_vec<F, kTwoSteps>(v[j], multiplier, mask, factor, factor2), d, y + i + j * lanes);
  }
  for (; i + lanes <= end; i += lanes) {
    const V16 v = hn::PromoteTo(d16, hn::LoadU(d8, signed_codes + i));
    hn::StoreU(decode_half_vec<F, kTwoSteps>(v, multiplier, mask, factor, factor2), d, y + i);
  }
  return i;
}

// decode_vec over [begin, end) in whole vectors: int8, and QFP8 e5m2.
template <QuantFormat F>
HWY_INLINE int64_t decode_bits_run(const uint8_t* codes, float* y, int64_t begin, int64_t end,
                                   const QuantChannel& c) {
  const DF d;
  const DI di;
  const hn::Rebind<uint8_t, DF> d8;
  const VGrid g(quant_detail::make_grid(c));
  const quant_detail::DecodeGrid grid = quant_detail::make_decode_grid(c);
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  int64_t i = begin;
  for (; i + lanes <= end; i += lanes)
    hn::StoreU(decode_vec<F>(hn::PromoteTo(di, hn::LoadU(d8, codes + i)), g, grid), d, y + i);
  return i;
}

template <QuantFormat F>
void decode_format(const QuantChannel* params, int64_t n_params, const uint8_t* codes, float* y,
                   int64_t channels, int64_t inner) {
  for_each_run(params, n_params, channels, inner, 2,
               [codes_in = codes, y_out = y](int64_t begin, int64_t end,
                                             const QuantChannel& c) QILIN_ROW_FN {
    const uint8_t* codes = codes_in;  // locals, not the closure's copies (see for_each_run)
    float* y = y_out;
    int64_t i = begin;
    if constexpr (F == QuantFormat::kInt8) {
      i = decode_bits_run<F>(codes, y, begin, end, c);
    } else {
      // Through float16: FP8 always, QFP8 unless e5m2 (h.usable).
      const quant_detail::HalfDecode h = quant_detail::make_half_decode(c);
      if (F != QuantFormat::kQfp8 || h.usable) {
        i = h.two_steps ? decode_half_run<F, true>(codes, y, begin, end, h)
                        : decode_half_run<F, false>(codes, y, begin, end, h);
      } else if constexpr (F == QuantFormat::kQfp8) {
        i = decode_bits_run<F>(codes, y, begin, end, c);
      }
    }
    for (; i < end; ++i) y[i] = qilin::quant_decode(c, codes[i]);  // the tail: the reference
  });
}

#define QILIN_QUANT_BY_FORMAT(fn, ...)                                               \
  switch (params[0].format) {                                                        \
    case QuantFormat::kQfp8: fn<QuantFormat::kQfp8>(__VA_ARGS__); break;             \
    case QuantFormat::kInt8: fn<QuantFormat::kInt8>(__VA_ARGS__); break;             \
    case QuantFormat::kFp8E4M3: fn<QuantFormat::kFp8E4M3>(__VA_ARGS__); break;       \
    case QuantFormat::kFp8E5M2: fn<QuantFormat::kFp8E5M2>(__VA_ARGS__); break;       \
    case QuantFormat::kNone: break; /* rejected by the caller */                     \
  }

void encode_target(const QuantChannel* params, int64_t n_params, const float* x, uint8_t* codes,
                   int64_t channels, int64_t inner) {
  QILIN_QUANT_BY_FORMAT(encode_format, params, n_params, x, codes, channels, inner)
}

void decode_target(const QuantChannel* params, int64_t n_params, const uint8_t* codes, float* y,
                   int64_t channels, int64_t inner) {
  QILIN_QUANT_BY_FORMAT(decode_format, params, n_params, codes, y, channels, inner)
}
#undef QILIN_QUANT_BY_FORMAT

}  // namespace HWY_NAMESPACE
}  // namespace qilin::kernels::cpu
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace qilin::kernels::cpu {

HWY_EXPORT(amax_target);
HWY_EXPORT(amax_per_channel_target);
HWY_EXPORT(forward_target);
HWY_EXPORT(backward_target);
HWY_EXPORT(encode_target);
HWY_EXPORT(decode_target);

float amax_forward(const float* x, int64_t n) {
  QILIN_CHECK(n >= 0 && (x != nullptr || n == 0), "amax_forward: bad input (", n, " values)");
  if (n == 0) return 0.0f;
  return HWY_DYNAMIC_DISPATCH(amax_target)(x, n);
}

void amax_per_channel(const float* x, int64_t channels, int64_t inner, float* out) {
  QILIN_CHECK(channels >= 0 && inner >= 0, "amax_per_channel: bad geometry [", channels, ", ",
              inner, "]");
  if (inner == 0) {
    std::fill(out, out + channels, 0.0f);
    return;
  }
  HWY_DYNAMIC_DISPATCH(amax_per_channel_target)(x, channels, inner, out);
}

void fake_quant_forward(const QuantChannel* params, int64_t n_params, const float* x, float* y,
                        int64_t channels, int64_t inner) {
  if (!quant_detail::check_params(params, n_params, channels, inner, "fake_quant_forward")) return;
  HWY_DYNAMIC_DISPATCH(forward_target)(params, n_params, x, y, channels, inner);
}

void fake_quant_backward(const QuantChannel* params, int64_t n_params, const float* x,
                         const float* dy, float* dx, int64_t channels, int64_t inner,
                         bool accumulate) {
  if (!quant_detail::check_params(params, n_params, channels, inner, "fake_quant_backward")) return;
  HWY_DYNAMIC_DISPATCH(backward_target)(params, n_params, x, dy, dx, channels, inner, accumulate);
}

void quant_encode_packed(const QuantChannel* params, int64_t n_params, const float* x,
                         uint8_t* codes, int64_t channels, int64_t inner) {
  if (!quant_detail::check_params(params, n_params, channels, inner, "quant_encode_packed")) return;
  QILIN_CHECK(params[0].format != QuantFormat::kNone, "quant_encode_packed: format none has no codes");
  HWY_DYNAMIC_DISPATCH(encode_target)(params, n_params, x, codes, channels, inner);
}

void quant_decode_packed(const QuantChannel* params, int64_t n_params, const uint8_t* codes,
                         float* y, int64_t channels, int64_t inner) {
  if (!quant_detail::check_params(params, n_params, channels, inner, "quant_decode_packed")) return;
  QILIN_CHECK(params[0].format != QuantFormat::kNone, "quant_decode_packed: format none has no codes");
  HWY_DYNAMIC_DISPATCH(decode_target)(params, n_params, codes, y, channels, inner);
}

}  // namespace qilin::kernels::cpu
#endif  // HWY_ONCE
