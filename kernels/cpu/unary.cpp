// Elementwise math and activation kernels (see unary.h). Each function is a small struct
// whose Apply() maps one SIMD vector; map_unary / map_backward run it over the array in
// parallel chunks, with a masked load/store for each chunk's tail. Highway compiles this file
// once per x86 target (AVX2, AVX-512) through foreach_target.h; HWY_DYNAMIC_DISPATCH picks
// the best one the CPU has at run time.
//
// Not here: pow (std::pow in a parallel loop; not on any hot path), softmax (softmax.cpp).

// clang-format off
// The build's baseline is x86-64-v3 (AVX2): targets below it would only cost compile time.
#ifndef HWY_DISABLED_TARGETS
#define HWY_DISABLED_TARGETS (HWY_SSSE3 | HWY_SSE4)
#endif
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu/unary.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
// clang-format on

#include <cmath>
#include <limits>

#include "hwy/contrib/math/math-inl.h"
#include "hwy/highway.h"
#include "kernels/cpu/parallel.h"
#include "kernels/cpu/unary.h"

HWY_BEFORE_NAMESPACE();
namespace qilin::kernels::cpu {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Work per element relative to a streaming copy, for parallel_for's serial threshold.
constexpr int64_t kCheapCost = 1;
constexpr int64_t kTranscendentalCost = 8;

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
// ln(FLT_MAX): e^x overflows above it. hwy's Exp is only defined up to +104.
constexpr float kExpOverflow = 88.72283935546875f;

// e^x over the whole float range: hwy's Exp (1 ulp) maps NaN to 0 and is undefined above
// +104; keep NaN and saturate to +inf instead. Below -104 it returns 0 (true value < 1e-45).
template <class D, class V>
HWY_INLINE V exp_full(D d, V x) {
  V y = hn::Exp(d, x);
  y = hn::IfThenElse(hn::Gt(x, hn::Set(d, kExpOverflow)), hn::Set(d, kInf), y);
  return hn::IfThenElse(hn::IsNaN(x), x, y);
}

// 1 / t for t in [1, 6] (or NaN). AVX-512: rcp14 (relative error < 2^-14) and one Newton step
// (< 2^-28, then rounding): about 1 ulp, and much cheaper than vdivps on 16 lanes.
template <class D, class V>
HWY_INLINE V reciprocal(D d, V t) {
#if HWY_TARGET <= HWY_AVX3
  const V r = hn::ApproximateReciprocal(t);
  return hn::Mul(r, hn::NegMulAdd(t, r, hn::Set(d, 2.0f)));
#else
  return hn::Div(hn::Set(d, 1.0f), t);
#endif
}

// e^x * 2^64 for x in [-110, 0] (not NaN), 1 ulp. Cheaper than hwy's Exp (about 14
// instructions instead of 26: no float->int conversion with overflow fix-ups, no two-step
// scaling): n = round(x / ln 2) comes from the low mantissa bits of x / ln 2 + 1.5 * 2^23,
// e^x = 2^n e^r with r = x - n ln 2 in [-ln2/2, ln2/2] (ln 2 in two parts, so n ln2_hi is
// exact), and 2^(n + 64) is added to the exponent field as an integer. The extra 2^64 keeps
// every result normal (n >= -159); the caller folds the 2^-64 into a later multiply, so a
// result in the subnormal range is rounded once, at the end.
constexpr float kLog2e = 1.44269504088896341f;
constexpr float kLn2Hi = 0.693145751953125f;        // 12 significant bits: n * hi is exact
constexpr float kLn2Lo = 1.428606765330187045e-6f;  // ln 2 - kLn2Hi
constexpr float kRoundShifter = 12582912.0f + 64.0f;  // 1.5 * 2^23, plus the 2^64 offset
constexpr float kTwoPow64 = 18446744073709551616.0f;
constexpr float kTwoPowMinus64 = 1.0f / kTwoPow64;
// e^r - 1 - r = r^2 (k0 + k1 r + ... + k5 r^5) on |r| <= ln2/2: hwy's minimax coefficients
// (contrib/math/math-inl.h, ExpImpl<float>::ExpPoly).
constexpr float kExpPoly[6] = {0.5f, 0.166666671633720397949219f, 0.0416664853692054748535156f,
                               0.00833336077630519866943359f, 0.00139304355252534151077271f,
                               0.000198527617612853646278381f};

template <class D, class V>
HWY_INLINE V exp_nonpositive_times_2p64(D d, V x) {
  const hn::RebindToSigned<D> di;
  const V shifter = hn::Set(d, kRoundShifter);
  const V t = hn::MulAdd(x, hn::Set(d, kLog2e), shifter);
  const V n = hn::Sub(t, shifter);
  V r = hn::NegMulAdd(n, hn::Set(d, kLn2Hi), x);
  r = hn::NegMulAdd(n, hn::Set(d, kLn2Lo), r);
  V p = hn::Set(d, kExpPoly[5]);
  for (int k = 4; k >= 0; --k) p = hn::MulAdd(p, r, hn::Set(d, kExpPoly[k]));
  const V one = hn::Set(d, 1.0f);
  p = hn::MulAdd(hn::MulAdd(p, r, one), r, one);  // 1 + r + r^2 (...)
  // bits(t) = bits(1.5 * 2^23) + 64 + n, whose low 9 bits shifted up are (n + 64) << 23.
  const auto scale = hn::ShiftLeft<23>(hn::BitCast(di, t));
  return hn::BitCast(d, hn::Add(hn::BitCast(di, p), scale));
}

// ---- the standard normal CDF, for the exact GELU ----
//
// Phi(x) = erfc(-x/sqrt 2) / 2 is computed as h = exp(-x^2/2) g(|x|) / 2 with
// g(a) = erfcx(a / sqrt 2) (the scaled complementary error function): Phi = h for x < 0 and
// 1 - h for x >= 0. Neither branch cancels, so Phi (and gelu) keep their relative accuracy
// in the far negative tail (gelu(-10) = -7.6e-23), where x/2 (1 + erf(x/sqrt 2)) loses every
// digit. g is smooth and falls like sqrt(2/pi)/a; in u = 1/(1 + c a) it is a polynomial:
// degree 10, c = 0.35, fitted to scipy.special.erfcx in double on 8000 Chebyshev nodes in u
// over a in [0, 14.5], least squares weighted by 1/g and reweighted toward the worst points
// (near-minimax relative error): 2.3e-8 in double, 3.0e-7 evaluated in float32 (the rounding
// of u near a = 0 dominates). exp(-x^2/2) takes x^2 as hi + lo (FMA) so the
// rounding of x^2, amplified by x^2/2 in the exponent (1e-5 at |x| = 13), does not enter.
constexpr float kGeluErfcxC = 0.35f;
constexpr float kGeluErfcxPoly[11] = {
    1.052181779e-05f,  2.789623439e-01f, 2.829231620e-01f, 2.190937698e-01f,
    2.936654389e-01f,  -2.634276152e-01f, 6.974767447e-01f, -9.466813803e-01f,
    6.034373045e-01f,  -1.890693754e-01f, 2.360908501e-02f};
// Beyond |x| = 14.5, exp(-x^2/2) < e^-105 underflows: Phi is exactly 0 or 1 in float32.
constexpr float kGeluTail = 14.5f;
constexpr float kInvSqrt2Pi = 0.398942280401432677940f;  // 1/sqrt(2 pi)

// Phi(x) and 2^64 exp(-x^2/2) (the caller scales), both for |x| clamped to kGeluTail.
template <class D, class V>
HWY_INLINE void normal_cdf(D d, V x, V* phi, V* gauss_times_2p64) {
  const V one = hn::Set(d, 1.0f);
  const V a = hn::Min(hn::Abs(x), hn::Set(d, kGeluTail));  // NaN -> 14.5; callers keep NaN
  const V u = reciprocal(d, hn::MulAdd(hn::Set(d, kGeluErfcxC), a, one));
  // g(a) / 2 * 2^-64: the 1/2 of Phi and the 2^-64 of the exponential, folded into the
  // coefficients (exact: powers of two).
  constexpr float kScale = 0.5f * kTwoPowMinus64;
  V g = hn::Set(d, kGeluErfcxPoly[10] * kScale);
  for (int k = 9; k >= 0; --k) g = hn::MulAdd(g, u, hn::Set(d, kGeluErfcxPoly[k] * kScale));
  // -a^2/2 = hi + lo exactly (-a/2 is exact, FMA gives the product's rounding error).
  const V minus_half_a = hn::Mul(a, hn::Set(d, -0.5f));
  const V hi = hn::Mul(minus_half_a, a);
  const V lo = hn::MulSub(minus_half_a, a, hi);
  V e = exp_nonpositive_times_2p64(d, hi);
  e = hn::MulAdd(e, lo, e);  // e^lo = 1 + lo to 1e-11
  const V h = hn::Mul(e, g);  // exp(-a^2/2) g(a) / 2, rounded once if subnormal
  *phi = hn::IfThenElse(hn::Lt(x, hn::Zero(d)), h, hn::Sub(one, h));
  *gauss_times_2p64 = e;
}

// ---- forward functions: Apply(d, x) -> y ----

struct ExpFn {
  static constexpr int64_t kCost = kTranscendentalCost;
  template <class D, class V> static HWY_INLINE V apply(D d, V x) { return exp_full(d, x); }
};

struct LogFn {
  static constexpr int64_t kCost = kTranscendentalCost;
  template <class D, class V> static HWY_INLINE V apply(D d, V x) {
    // hwy's Log (4 ulp) covers (0, FLT_MAX] incl. subnormals; IEEE values elsewhere.
    V y = hn::Log(d, x);
    y = hn::IfThenElse(hn::Eq(x, hn::Zero(d)), hn::Set(d, -kInf), y);
    y = hn::IfThenElse(hn::Eq(x, hn::Set(d, kInf)), x, y);
    return hn::IfThenElse(hn::Or(hn::Lt(x, hn::Zero(d)), hn::IsNaN(x)), hn::Set(d, kNaN), y);
  }
};

struct SqrtFn {
  static constexpr int64_t kCost = kCheapCost;
  template <class D, class V> static HWY_INLINE V apply(D d, V x) { return hn::Sqrt(x); }
};

struct ReluFn {
  static constexpr int64_t kCost = kCheapCost;
  template <class D, class V> static HWY_INLINE V apply(D d, V x) {
    return hn::IfThenZeroElse(hn::Lt(x, hn::Zero(d)), x);  // NaN stays NaN, as PyTorch
  }
};

struct GeluFn {
  static constexpr int64_t kCost = kTranscendentalCost;
  template <class D, class V> static HWY_INLINE V apply(D d, V x) {
    V phi, gauss;
    normal_cdf(d, x, &phi, &gauss);
    // Below -kGeluTail phi is 0; the select makes gelu(-inf) = 0 instead of -inf * 0.
    return hn::IfThenZeroElse(hn::Lt(x, hn::Set(d, -kGeluTail)), hn::Mul(x, phi));
  }
};

// sigmoid(z) without overflow for any z: with E = e^-|z| in (0, 1] and r = 1 / (1 + E),
// sigmoid(z) = r for z >= 0 and E r for z < 0, and sigmoid(z) sigmoid(-z) = E r^2.
// -|z| is clamped at -110 (e^-110 rounds to 0); a NaN z makes E, r and the result NaN.
constexpr float kSigmoidExpFloor = -110.0f;

template <class D, class V>
HWY_INLINE V sigmoid_parts(D d, V z, V* e_out, V* r_out) {
  const V arg = hn::Max(hn::Neg(hn::Abs(z)), hn::Set(d, kSigmoidExpFloor));
  V e = hn::Mul(exp_nonpositive_times_2p64(d, arg), hn::Set(d, kTwoPowMinus64));
  e = hn::IfThenElse(hn::IsNaN(z), z, e);
  const V r = reciprocal(d, hn::Add(hn::Set(d, 1.0f), e));
  *e_out = e;
  *r_out = r;
  return hn::IfThenElse(hn::Lt(z, hn::Zero(d)), hn::Mul(e, r), r);
}

// gelu_tanh = x/2 (1 + tanh(z/2)) = x sigmoid(z), z = 2 sqrt(2/pi) (x + 0.044715 x^3).
constexpr float kGeluTanhCubic = 0.044715f;
constexpr float kTwoSqrt2OverPi = 1.595769121605730711759f;  // 2 sqrt(2/pi)
// Below -20, z < -600: gelu_tanh is 0 and its slope 0 (keeps -inf * 0 out).
constexpr float kGeluTanhTail = 20.0f;

struct GeluTanhFn {
  static constexpr int64_t kCost = kTranscendentalCost;
  template <class D, class V> static HWY_INLINE V apply(D d, V x) {
    const V x2 = hn::Mul(x, x);
    const V z = hn::Mul(hn::Mul(hn::Set(d, kTwoSqrt2OverPi), x),
                        hn::MulAdd(hn::Set(d, kGeluTanhCubic), x2, hn::Set(d, 1.0f)));
    V e, r;
    const V s = sigmoid_parts(d, z, &e, &r);
    return hn::IfThenZeroElse(hn::Lt(x, hn::Set(d, -kGeluTanhTail)), hn::Mul(x, s));
  }
};

struct SigmoidFn {
  static constexpr int64_t kCost = kTranscendentalCost;
  template <class D, class V> static HWY_INLINE V apply(D d, V x) {
    V e, r;
    return sigmoid_parts(d, x, &e, &r);
  }
};

struct TanhFn {
  static constexpr int64_t kCost = kTranscendentalCost;
  // hwy's Tanh: expm1(2|x|) / (expm1(2|x|) + 2), 1 beyond |x| = 18.7; NaN stays NaN.
  template <class D, class V> static HWY_INLINE V apply(D d, V x) { return hn::Tanh(d, x); }
};

// silu(-120) = -120 e^-120 underflows to 0: the select makes silu(-inf) = 0, not -inf * 0.
constexpr float kSiluTail = 120.0f;

struct SiluFn {
  static constexpr int64_t kCost = kTranscendentalCost;
  template <class D, class V> static HWY_INLINE V apply(D d, V x) {
    V e, r;
    const V s = sigmoid_parts(d, x, &e, &r);
    return hn::IfThenZeroElse(hn::Lt(x, hn::Set(d, -kSiluTail)), hn::Mul(x, s));
  }
};

// ---- backward functions: Apply(d, x or y, dy) -> dx ----

struct ExpGrad {  // from y: d/dx e^x = e^x
  static constexpr int64_t kCost = kCheapCost;
  template <class D, class V> static HWY_INLINE V apply(D d, V y, V dy) { return hn::Mul(dy, y); }
};

struct LogGrad {
  static constexpr int64_t kCost = kCheapCost;
  template <class D, class V> static HWY_INLINE V apply(D d, V x, V dy) { return hn::Div(dy, x); }
};

struct SqrtGrad {  // from y: 1 / (2 sqrt x)
  static constexpr int64_t kCost = kCheapCost;
  template <class D, class V> static HWY_INLINE V apply(D d, V y, V dy) {
    return hn::Div(hn::Mul(hn::Set(d, 0.5f), dy), y);
  }
};

struct ReluGrad {
  static constexpr int64_t kCost = kCheapCost;
  template <class D, class V> static HWY_INLINE V apply(D d, V x, V dy) {
    return hn::IfThenElseZero(hn::Gt(x, hn::Zero(d)), dy);
  }
};

struct GeluGrad {  // Phi(x) + x phi(x)
  static constexpr int64_t kCost = kTranscendentalCost;
  template <class D, class V> static HWY_INLINE V apply(D d, V x, V dy) {
    V phi, gauss;
    normal_cdf(d, x, &phi, &gauss);
    V slope = hn::MulAdd(hn::Mul(x, hn::Set(d, kInvSqrt2Pi * kTwoPowMinus64)), gauss, phi);
    // Beyond the tail the slope is Phi itself (0 or 1); also keeps inf * 0 out.
    slope = hn::IfThenElse(hn::Gt(hn::Abs(x), hn::Set(d, kGeluTail)), phi, slope);
    return hn::Mul(dy, slope);
  }
};

struct GeluTanhGrad {  // s + x s(1-s) z', s = sigmoid(z), z' = 2 sqrt(2/pi) (1 + 3 c x^2)
  static constexpr int64_t kCost = kTranscendentalCost;
  template <class D, class V> static HWY_INLINE V apply(D d, V x, V dy) {
    const V x2 = hn::Mul(x, x);
    const V k = hn::Set(d, kTwoSqrt2OverPi);
    const V one = hn::Set(d, 1.0f);
    const V z = hn::Mul(hn::Mul(k, x), hn::MulAdd(hn::Set(d, kGeluTanhCubic), x2, one));
    const V dz = hn::Mul(k, hn::MulAdd(hn::Set(d, 3.0f * kGeluTanhCubic), x2, one));
    V e, r;
    const V s = sigmoid_parts(d, z, &e, &r);
    const V s_ds = hn::Mul(hn::Mul(e, hn::Mul(r, r)), dz);  // s(1-s) z'
    V slope = hn::MulAdd(x, s_ds, s);
    slope = hn::IfThenElse(hn::Gt(hn::Abs(x), hn::Set(d, kGeluTanhTail)), s, slope);
    return hn::Mul(dy, slope);
  }
};

struct SigmoidGrad {  // s(1-s) = E r^2 from x: accurate where 1 - s would cancel
  static constexpr int64_t kCost = kTranscendentalCost;
  template <class D, class V> static HWY_INLINE V apply(D d, V x, V dy) {
    V e, r;
    sigmoid_parts(d, x, &e, &r);
    return hn::Mul(dy, hn::Mul(e, hn::Mul(r, r)));
  }
};

struct TanhGrad {  // sech^2 x = 4 E / (1 + E)^2 with E = e^-2|x|, from x: no 1 - y^2 cancel
  static constexpr int64_t kCost = kTranscendentalCost;
  template <class D, class V> static HWY_INLINE V apply(D d, V x, V dy) {
    V e, r;
    sigmoid_parts(d, hn::Add(x, x), &e, &r);
    return hn::Mul(hn::Mul(dy, hn::Set(d, 4.0f)), hn::Mul(e, hn::Mul(r, r)));
  }
};

struct SiluGrad {  // s + x s(1-s)
  static constexpr int64_t kCost = kTranscendentalCost;
  template <class D, class V> static HWY_INLINE V apply(D d, V x, V dy) {
    V e, r;
    const V s = sigmoid_parts(d, x, &e, &r);
    V slope = hn::MulAdd(x, hn::Mul(e, hn::Mul(r, r)), s);
    slope = hn::IfThenElse(hn::Gt(hn::Abs(x), hn::Set(d, kSiluTail)), s, slope);
    return hn::Mul(dy, slope);
  }
};

// ---- drivers ----

// The lambdas copy their pointers into locals: a vector store may alias anything, including
// the closure, so a pointer read from it would be reloaded after every store (2-8% on most
// functions, 19-26% on relu in L2; A/B in one process, 2026-11-27).
template <class Fn>
void map_unary(float* y_out, const float* x_in, int64_t n) {
  parallel_for(n, Fn::kCost, [y_out, x_in](int64_t begin, int64_t end) {
    float* y = y_out;
    const float* x = x_in;
    const hn::ScalableTag<float> d;
    const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
    int64_t i = begin;
    for (; i + lanes <= end; i += lanes) hn::StoreU(Fn::apply(d, hn::LoadU(d, x + i)), d, y + i);
    if (i < end) {
      const auto m = hn::FirstN(d, static_cast<size_t>(end - i));
      hn::BlendedStore(Fn::apply(d, hn::MaskedLoad(m, d, x + i)), m, d, y + i);
    }
  });
}

template <class Fn>
void map_backward(float* dx_out, const float* x_in, const float* dy_in, int64_t n) {
  parallel_for(n, Fn::kCost, [dx_out, x_in, dy_in](int64_t begin, int64_t end) {
    float* dx = dx_out;
    const float* x = x_in;
    const float* dy = dy_in;
    const hn::ScalableTag<float> d;
    const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
    int64_t i = begin;
    for (; i + lanes <= end; i += lanes)
      hn::StoreU(Fn::apply(d, hn::LoadU(d, x + i), hn::LoadU(d, dy + i)), d, dx + i);
    if (i < end) {
      const auto m = hn::FirstN(d, static_cast<size_t>(end - i));
      hn::BlendedStore(Fn::apply(d, hn::MaskedLoad(m, d, x + i), hn::MaskedLoad(m, d, dy + i)),
                       m, d, dx + i);
    }
  });
}

// Per-target entry points (HWY_EXPORT needs plain functions).
#define QILIN_UNARY_TARGET(name, Fwd, Bwd)                                           \
  void name##_fwd(float* y, const float* x, int64_t n) { map_unary<Fwd>(y, x, n); } \
  void name##_bwd(float* dx, const float* x, const float* dy, int64_t n) {          \
    map_backward<Bwd>(dx, x, dy, n);                                                \
  }
QILIN_UNARY_TARGET(exp, ExpFn, ExpGrad)
QILIN_UNARY_TARGET(log, LogFn, LogGrad)
QILIN_UNARY_TARGET(sqrt, SqrtFn, SqrtGrad)
QILIN_UNARY_TARGET(relu, ReluFn, ReluGrad)
QILIN_UNARY_TARGET(gelu, GeluFn, GeluGrad)
QILIN_UNARY_TARGET(gelu_tanh, GeluTanhFn, GeluTanhGrad)
QILIN_UNARY_TARGET(sigmoid, SigmoidFn, SigmoidGrad)
QILIN_UNARY_TARGET(tanh, TanhFn, TanhGrad)
QILIN_UNARY_TARGET(silu, SiluFn, SiluGrad)
#undef QILIN_UNARY_TARGET

}  // namespace HWY_NAMESPACE
}  // namespace qilin::kernels::cpu
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace qilin::kernels::cpu {

#define QILIN_UNARY_EXPORT(name)                                                 \
  HWY_EXPORT(name##_fwd);                                                        \
  HWY_EXPORT(name##_bwd);                                                        \
  void name##_forward(float* y, const float* x, int64_t n) {                     \
    HWY_DYNAMIC_DISPATCH(name##_fwd)(y, x, n);                                   \
  }                                                                              \
  void name##_backward(float* dx, const float* x, const float* dy, int64_t n) {  \
    HWY_DYNAMIC_DISPATCH(name##_bwd)(dx, x, dy, n);                              \
  }
QILIN_UNARY_EXPORT(exp)
QILIN_UNARY_EXPORT(log)
QILIN_UNARY_EXPORT(sqrt)
QILIN_UNARY_EXPORT(relu)
QILIN_UNARY_EXPORT(gelu)
QILIN_UNARY_EXPORT(gelu_tanh)
QILIN_UNARY_EXPORT(sigmoid)
QILIN_UNARY_EXPORT(tanh)
QILIN_UNARY_EXPORT(silu)
#undef QILIN_UNARY_EXPORT

void pow_forward(float* y, const float* x, float exponent, int64_t n) {
  parallel_for(n, exponent == 2.0f ? 1 : 8, [&](int64_t begin, int64_t end) {
    if (exponent == 2.0f) {  // the common case (squares in losses and norms): exact either way
#pragma omp simd
      for (int64_t i = begin; i < end; ++i) y[i] = x[i] * x[i];
    } else {
      for (int64_t i = begin; i < end; ++i) y[i] = std::pow(x[i], exponent);
    }
  });
}

void pow_backward(float* dx, const float* x, const float* dy, float exponent, int64_t n) {
  parallel_for(n, 8, [&](int64_t begin, int64_t end) {
    if (exponent == 0.0f) {
      for (int64_t i = begin; i < end; ++i) dx[i] = 0.0f;
    } else if (exponent == 2.0f) {
#pragma omp simd
      for (int64_t i = begin; i < end; ++i) dx[i] = dy[i] * 2.0f * x[i];
    } else {
      for (int64_t i = begin; i < end; ++i)
        dx[i] = dy[i] * exponent * std::pow(x[i], exponent - 1.0f);
    }
  });
}

}  // namespace qilin::kernels::cpu
#endif  // HWY_ONCE
