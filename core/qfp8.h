// QFP8 and the 8-bit comparison formats (DESIGN.md §4.2, PAPER.md §2): value types, and the
// header-only scalar codecs that the kernels of every backend include (QILIN_HOST_DEVICE, no
// tensors, no std::string in the inline functions). core/qfp8.cpp holds what is not scalar:
// names and parsing, parameter choice over data (amax, mse, auto), the reference fake-quant
// loop, error measures and the packed 8-bit path, with errors that name the tensor.
//
// QFP8: an 8-bit code s | e (E bits) | f (M bits), E + M = 7, integer exponent bias β:
//   e == 0:  value = (-1)^s * (f / 2^M) * 2^(1 - β)          (subnormals, and ±0)
//   e  > 0:  value = (-1)^s * (1 + f / 2^M) * 2^(e - β)
// All 256 codes are finite; max = (2 - 2^-M) * 2^(2^E - 1 - β). Every code value is exact in
// float32 for every β in range (at most M + 1 <= 6 significant bits, exponents >= -130).
//
// The codec is exact for every float32 input: encode works on the integer significand of
// |x| (one RNE right shift), never on a rounded log2. Subnormal float32 results (β near 126)
// are produced exactly, so a backend that flushes subnormals to zero differs there.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "core/host_device.h"

namespace qilin {

enum class QuantFormat : uint8_t { kNone, kQfp8, kInt8, kFp8E4M3, kFp8E5M2 };

// How β (QFP8) is chosen: from the amax, by least squared error over β_amax .. β_amax + 3,
// or fixed by the config.
enum class BiasMode : uint8_t { kAmax, kMse, kFixed };

// One set of parameters for the whole tensor, or one per output channel (the leading dim).
enum class Granularity : uint8_t { kPerTensor, kPerChannel };

struct Qfp8Layout {
  int32_t exponent_bits = 3, mantissa_bits = 4;  // E + M == 7
};
QILIN_HOST_DEVICE constexpr bool operator==(Qfp8Layout a, Qfp8Layout b) {
  return a.exponent_bits == b.exponent_bits && a.mantissa_bits == b.mantissa_bits;
}
QILIN_HOST_DEVICE constexpr bool operator!=(Qfp8Layout a, Qfp8Layout b) { return !(a == b); }

constexpr Qfp8Layout kQfp8E2M5{2, 5};
constexpr Qfp8Layout kQfp8E3M4{3, 4};
constexpr Qfp8Layout kQfp8E4M3{4, 3};
constexpr Qfp8Layout kQfp8E5M2{5, 2};
// The order `layout: auto` tries them in (and breaks ties by): most mantissa bits first.
constexpr Qfp8Layout kQfp8Layouts[] = {kQfp8E2M5, kQfp8E3M4, kQfp8E4M3, kQfp8E5M2};

// DESIGN.md §4.2: β is an int32 in [-126, 126].
constexpr int32_t kQfp8MinBias = -126;
constexpr int32_t kQfp8MaxBias = 126;

// OCP 8-bit floating point (OCP FP8 spec v1.0): E4M3FN (bias 7, no Inf, NaN = S.1111.111,
// max 448 = 0x7E) and E5M2 (bias 15, IEEE-style Inf 0x7C and NaN 0x7D..0x7F, max 57344 = 0x7B).
constexpr float kFp8E4M3Max = 448.0f;
constexpr float kFp8E5M2Max = 57344.0f;
constexpr int32_t kFp8E4M3Bias = 7;
constexpr int32_t kFp8E5M2Bias = 15;
constexpr uint8_t kFp8E4M3MaxCode = 0x7E;
constexpr uint8_t kFp8E5M2MaxCode = 0x7B;
constexpr uint8_t kFp8E5M2InfCode = 0x7C;
constexpr uint8_t kFp8NanCode = 0x7F;  // what encode writes for NaN (sign bit kept)
// Symmetric int8: codes -127 .. 127 (-128 unused, so the grid is symmetric).
constexpr int32_t kInt8MaxCode = 127;

// ---- bit helpers ----

namespace qfp8_detail {

QILIN_HOST_DEVICE inline uint32_t float_bits(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  return bits;
}
QILIN_HOST_DEVICE inline float bits_float(uint32_t bits) {
  float x;
  std::memcpy(&x, &bits, sizeof x);
  return x;
}
// Special float32 values by their bits: std::numeric_limits is not callable from CUDA device
// code without --expt-relaxed-constexpr.
QILIN_HOST_DEVICE inline float infinity() { return bits_float(0x7F800000u); }
QILIN_HOST_DEVICE inline float quiet_nan() { return bits_float(0x7FC00000u); }
QILIN_HOST_DEVICE inline float float_max() { return bits_float(0x7F7FFFFFu); }
QILIN_HOST_DEVICE inline float denorm_min() { return bits_float(0x00000001u); }
QILIN_HOST_DEVICE inline float float_min() { return bits_float(0x00800000u); }  // 2^-126

// 2^k exactly, for -149 <= k <= 127 (float32 subnormal powers included).
QILIN_HOST_DEVICE inline float exp2i(int32_t k) {
  return bits_float(k >= -126 ? static_cast<uint32_t>(k + 127) << 23
                              : 1u << static_cast<uint32_t>(k + 149));
}

// The rounding step shared by encode and fake_quant. For a = |x| (abs_bits: x's bits without
// the sign), the exponent of a's grid is e = max(floor(log2 a), e_min) with e_min = 1 - β
// (the subnormal codes share the first binade's step), the step is 2^(e - M), and
// q = rne(a / step) in [0, 2^(M + 1)]. a = sig * 2^(max(ef, 1) - 150) (ef: a's biased float
// exponent, sig its 24-bit significand), so a / step = sig >> shift with
// shift = e - M + 150 - max(ef, 1) >= 18: one integer right shift with round-half-even.
// A float32 subnormal has ef = 0, floor(log2 a) < -126 < e_min (β <= 126), so e = e_min.
// Inf and NaN come out with e = 128, far above any max (callers saturate).
struct Rounded {
  int32_t e;  // the grid exponent
  uint32_t q; // rne(a / 2^(e - M))
};
QILIN_HOST_DEVICE inline Rounded round_magnitude(uint32_t abs_bits, int32_t mantissa_bits,
                                                 int32_t beta) {
  const int32_t ef = static_cast<int32_t>(abs_bits >> 23);
  const uint64_t sig = (abs_bits & 0x007FFFFFu) | (ef != 0 ? 0x00800000u : 0u);
  const int32_t e_min = 1 - beta;
  const int32_t e = ef - 127 > e_min ? ef - 127 : e_min;
  int32_t shift = e - mantissa_bits + 150 - (ef > 1 ? ef : 1);
  // sig < 2^24: for shift >= 25 the quotient is 0 and the remainder below half; cap the
  // shift where that still holds and the 64-bit shifts below stay defined.
  shift = shift < 40 ? shift : 40;
  const uint64_t half = uint64_t{1} << (shift - 1);
  const uint64_t rem = sig & ((half << 1) - 1);
  uint64_t q = sig >> shift;
  q += (rem > half || (rem == half && (q & 1u))) ? 1u : 0u;  // ties to even
  return {e, static_cast<uint32_t>(q)};
}

}  // namespace qfp8_detail

// ---- QFP8 scalar codec ----

// 2^(E - 1) - 1: the IEEE-style bias of the layout (e2m5: 1, e3m4: 3, e4m3: 7, e5m2: 15).
QILIN_HOST_DEVICE constexpr int32_t qfp8_standard_bias(Qfp8Layout layout) {
  return (1 << (layout.exponent_bits - 1)) - 1;
}

// The exponent of max: 2^E - 1 - β.
QILIN_HOST_DEVICE constexpr int32_t qfp8_max_exponent(Qfp8Layout layout, int32_t beta) {
  return (1 << layout.exponent_bits) - 1 - beta;
}

// True where β is in [-126, 126] and both max and the smallest subnormal are finite and
// nonzero in float32 (DESIGN.md §4.2: check both ends). max = (2 - 2^-M) 2^T is finite iff
// T <= 127; the smallest subnormal 2^(1 - β - M) is nonzero iff 1 - β - M >= -149.
QILIN_HOST_DEVICE constexpr bool qfp8_bias_in_range(Qfp8Layout layout, int32_t beta) {
  return beta >= kQfp8MinBias && beta <= kQfp8MaxBias &&
         qfp8_max_exponent(layout, beta) <= 127 && 1 - beta - layout.mantissa_bits >= -149;
}

// The largest finite value, (2 - 2^-M) * 2^(2^E - 1 - β) (the code 0x7F). β must be in range.
QILIN_HOST_DEVICE inline float qfp8_max(Qfp8Layout layout, int32_t beta) {
  const int32_t m = layout.mantissa_bits;
  return static_cast<float>((2 << m) - 1) * qfp8_detail::exp2i(qfp8_max_exponent(layout, beta) - m);
}

// The smallest positive value, 2^(1 - β - M) (the code 0x01). β must be in range.
QILIN_HOST_DEVICE inline float qfp8_min_subnormal(Qfp8Layout layout, int32_t beta) {
  return qfp8_detail::exp2i(1 - beta - layout.mantissa_bits);
}

// The value of a code (exact). 0x80 is -0.0.
QILIN_HOST_DEVICE inline float qfp8_decode(uint8_t code, Qfp8Layout layout, int32_t beta) {
  const int32_t m = layout.mantissa_bits;
  const uint32_t e = (code & 0x7Fu) >> m;
  const uint32_t f = code & ((1u << m) - 1u);
  const uint32_t sig = e == 0 ? f : (f | (1u << m));
  const int32_t exponent = (e == 0 ? 1 : static_cast<int32_t>(e)) - beta - m;
  // sig * 2^exponent is representable, so the product is exact (also when subnormal).
  const float magnitude = static_cast<float>(sig) * qfp8_detail::exp2i(exponent);
  return (code & 0x80u) ? -magnitude : magnitude;
}

// The code nearest x, ties to the even code; |x| >= max (±Inf too) saturates to ±max (0x7F /
// 0xFF). The sign bit is x's, so -0.0 and negatives that round to zero give 0x80.
// NaN has no code: it encodes to (sign bit) | 0x7F, ±max. Callers that must not lose a NaN
// check first: qfp8_fake_quant returns NaN, the packed path (qfp8.cpp) rejects it.
QILIN_HOST_DEVICE inline uint8_t qfp8_encode(float x, Qfp8Layout layout, int32_t beta) {
  const uint32_t bits = qfp8_detail::float_bits(x);
  const qfp8_detail::Rounded r =
      qfp8_detail::round_magnitude(bits & 0x7FFFFFFFu, layout.mantissa_bits, beta);
  // Code magnitude (biased exponent - 1) * 2^M + q: the significand's leading 1 carries
  // into the exponent field, and q == 2^(M + 1) (rounded up to the next binade) is the next
  // binade's first code. 2^M is even, so the code's parity is q's: ties-to-even on q is
  // ties-to-even on the code.
  const int32_t magnitude =
      ((r.e - (1 - beta)) << layout.mantissa_bits) + static_cast<int32_t>(r.q);
  const uint32_t saturated = magnitude < 0x7F ? static_cast<uint32_t>(magnitude) : 0x7Fu;
  return static_cast<uint8_t>(((bits >> 24) & 0x80u) | saturated);
}

// decode(encode(x)) for every non-NaN x; NaN gives NaN (so divergence stays visible,
// DESIGN.md §4.2). Computes the value as q * 2^(e - M) clamped to max, without building the
// code: the form the vector kernels use (this is the reference they are tested against).
QILIN_HOST_DEVICE inline float qfp8_fake_quant(float x, Qfp8Layout layout, int32_t beta) {
  const uint32_t bits = qfp8_detail::float_bits(x);
  const qfp8_detail::Rounded r =
      qfp8_detail::round_magnitude(bits & 0x7FFFFFFFu, layout.mantissa_bits, beta);
  // e <= 128 and e - M >= 1 - β - M >= -130, inside exp2i's range; q <= 2^(M + 1), so the
  // product is exact or overflows to Inf (only beyond max, which the clamp removes).
  const float rounded =
      static_cast<float>(r.q) * qfp8_detail::exp2i(r.e - layout.mantissa_bits);
  const float max = qfp8_max(layout, beta);
  const float magnitude = rounded < max ? rounded : max;
  const float y = qfp8_detail::bits_float(qfp8_detail::float_bits(magnitude) | (bits & 0x80000000u));
  return x != x ? x : y;
}

// The largest β with max(β) >= amax (no clipping, finest grid), from amax's exact binary
// exponent (frexp, not a rounded log2), clamped to [-126, 126]; amax == 0 gives the standard
// bias. With amax = m 2^k (m in [0.5, 1)), the smallest max exponent T with
// (2 - 2^-M) 2^T >= amax is k - 1 if 2m <= 2 - 2^-M, else k; β = 2^E - 1 - T.
// Example (DESIGN.md §4.2): e4m3, amax 1.875 = 0.9375 * 2^1 -> T = 0, β = 15.
// No checks: amax must be finite and >= 0, and the result must still pass
// qfp8_bias_in_range (a huge amax can ask for a max beyond float32); qfp8.cpp's
// bias_for_amax checks both and names the tensor.
QILIN_HOST_DEVICE inline int32_t qfp8_bias_for_amax_unchecked(float amax, Qfp8Layout layout) {
  if (!(amax > 0.0f)) return qfp8_standard_bias(layout);
  int k = 0;
  const float m = std::frexp(amax, &k);
  const float m_limit = 1.0f - qfp8_detail::exp2i(-(layout.mantissa_bits + 1));  // exact
  const int32_t t = (m <= m_limit) ? k - 1 : k;
  const int32_t beta = (1 << layout.exponent_bits) - 1 - t;
  return beta < kQfp8MinBias ? kQfp8MinBias : (beta > kQfp8MaxBias ? kQfp8MaxBias : beta);
}

// ---- OCP FP8 (E4M3FN, E5M2) ----
// Both are QFP8 layouts with the standard bias, except for the codes OCP spends on
// Inf/NaN: E4M3FN's S.1111.111 (QFP8: ±480) is NaN; E5M2's exponent field 31 is Inf (f == 0)
// or NaN. Encoding is RNE and saturating (Transformer Engine's cast with saturation,
// CUDA's __NV_SATFINITE): finite values and ±Inf beyond max give ±max; NaN gives the NaN
// code 0x7F with x's sign bit.

QILIN_HOST_DEVICE inline uint8_t fp8_e4m3_encode(float x) {
  const uint32_t bits = qfp8_detail::float_bits(x);
  const uint32_t sign = (bits >> 24) & 0x80u;
  if ((bits & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint8_t>(sign | kFp8NanCode);
  const uint32_t magnitude = qfp8_encode(x, kQfp8E4M3, kFp8E4M3Bias) & 0x7Fu;
  return static_cast<uint8_t>(sign | (magnitude < kFp8E4M3MaxCode ? magnitude : kFp8E4M3MaxCode));
}
QILIN_HOST_DEVICE inline float fp8_e4m3_decode(uint8_t code) {
  if ((code & 0x7Fu) == kFp8NanCode) return qfp8_detail::quiet_nan();
  return qfp8_decode(code, kQfp8E4M3, kFp8E4M3Bias);
}

QILIN_HOST_DEVICE inline uint8_t fp8_e5m2_encode(float x) {
  const uint32_t bits = qfp8_detail::float_bits(x);
  const uint32_t sign = (bits >> 24) & 0x80u;
  if ((bits & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint8_t>(sign | kFp8NanCode);
  const uint32_t magnitude = qfp8_encode(x, kQfp8E5M2, kFp8E5M2Bias) & 0x7Fu;
  return static_cast<uint8_t>(sign | (magnitude < kFp8E5M2MaxCode ? magnitude : kFp8E5M2MaxCode));
}
QILIN_HOST_DEVICE inline float fp8_e5m2_decode(uint8_t code) {
  const uint32_t magnitude = code & 0x7Fu;
  if (magnitude == kFp8E5M2InfCode) {
    const float inf = qfp8_detail::infinity();
    return (code & 0x80u) ? -inf : inf;
  }
  if (magnitude > kFp8E5M2InfCode) return qfp8_detail::quiet_nan();
  return qfp8_decode(code, kQfp8E5M2, kFp8E5M2Bias);
}

// Transformer Engine's current scaling: scale = fmt_max / amax, so amax maps to the format's
// max; amax == 0 gives 1, and a scale that overflows (amax tiny) gives FLT_MAX, as TE's
// compute_scale_from_amax does. amax must be finite and >= 0.
QILIN_HOST_DEVICE inline float fp8_scale_for_amax(float fmt_max, float amax) {
  if (!(amax > 0.0f)) return 1.0f;
  const float scale = fmt_max / amax;
  return scale <= qfp8_detail::float_max() ? scale : qfp8_detail::float_max();
}

// x' = decode(encode(x * scale)) * scale_inv, scale_inv = fl(1 / scale): Transformer Engine's
// scale / scale_inv pair, products in float32 as the kernels compute them. NaN in gives NaN out.
QILIN_HOST_DEVICE inline float fp8_e4m3_fake_quant(float x, float scale) {
  return fp8_e4m3_decode(fp8_e4m3_encode(x * scale)) * (1.0f / scale);
}
QILIN_HOST_DEVICE inline float fp8_e5m2_fake_quant(float x, float scale) {
  return fp8_e5m2_decode(fp8_e5m2_encode(x * scale)) * (1.0f / scale);
}

// ---- symmetric int8 ----
// scale = amax / 127 (amax == 0: 1; an amax so small that amax / 127 falls below FLT_MIN
// gets FLT_MIN = 2^-126, whose reciprocal is still finite); code = clamp(rne(x * inv_scale), -127,
// 127) with inv_scale = fl(1 / scale), as PyTorch's fake_quantize_per_tensor_affine computes
// it; x' = code * scale.

QILIN_HOST_DEVICE inline float int8_scale_for_amax(float amax) {
  if (!(amax > 0.0f)) return 1.0f;
  const float scale = amax / static_cast<float>(kInt8MaxCode);
  return scale >= qfp8_detail::float_min() ? scale : qfp8_detail::float_min();
}

// NaN encodes to 0 (int8 has no NaN; the packed path rejects NaN, fake_quant returns it).
QILIN_HOST_DEVICE inline int8_t int8_encode(float x, float scale) {
  const float v = x * (1.0f / scale);
  if (v != v) return 0;
  const float limit = static_cast<float>(kInt8MaxCode);
  const float clamped = v < -limit ? -limit : (v > limit ? limit : v);
  return static_cast<int8_t>(std::nearbyint(clamped));  // default rounding mode: ties to even
}
QILIN_HOST_DEVICE inline float int8_decode(int8_t code, float scale) {
  return static_cast<float>(code) * scale;
}
QILIN_HOST_DEVICE inline float int8_fake_quant(float x, float scale) {
  return x != x ? x : int8_decode(int8_encode(x, scale), scale);
}

// ---- one channel's parameters, any format ----

// What one tensor (or one channel) is quantized with: layout and β for QFP8, scale for the
// others (kNone: identity). QuantParams::channel(i) in qfp8.cpp builds it.
struct QuantChannel {
  QuantFormat format = QuantFormat::kNone;
  Qfp8Layout layout{};
  int32_t beta = 0;
  float scale = 1.0f;
};

QILIN_HOST_DEVICE inline float quant_fake(const QuantChannel& c, float x) {
  switch (c.format) {
    case QuantFormat::kNone: return x;
    case QuantFormat::kQfp8: return qfp8_fake_quant(x, c.layout, c.beta);
    case QuantFormat::kInt8: return int8_fake_quant(x, c.scale);
    case QuantFormat::kFp8E4M3: return fp8_e4m3_fake_quant(x, c.scale);
    case QuantFormat::kFp8E5M2: return fp8_e5m2_fake_quant(x, c.scale);
  }
  return x;
}

// The 8-bit code (int8: two's complement). kNone has no code (returns 0).
QILIN_HOST_DEVICE inline uint8_t quant_encode(const QuantChannel& c, float x) {
  switch (c.format) {
    case QuantFormat::kNone: return 0;
    case QuantFormat::kQfp8: return qfp8_encode(x, c.layout, c.beta);
    case QuantFormat::kInt8: return static_cast<uint8_t>(int8_encode(x, c.scale));
    case QuantFormat::kFp8E4M3: return fp8_e4m3_encode(x * c.scale);
    case QuantFormat::kFp8E5M2: return fp8_e5m2_encode(x * c.scale);
  }
  return 0;
}
QILIN_HOST_DEVICE inline float quant_decode(const QuantChannel& c, uint8_t code) {
  switch (c.format) {
    case QuantFormat::kNone: return 0.0f;
    case QuantFormat::kQfp8: return qfp8_decode(code, c.layout, c.beta);
    case QuantFormat::kInt8: return int8_decode(static_cast<int8_t>(code), c.scale);
    case QuantFormat::kFp8E4M3: return fp8_e4m3_decode(code) * (1.0f / c.scale);
    case QuantFormat::kFp8E5M2: return fp8_e5m2_decode(code) * (1.0f / c.scale);
  }
  return 0.0f;
}

// The largest magnitude the channel represents, in x's units: the straight-through
// estimator passes the gradient where |x| <= this and zeroes it where clipped (DESIGN.md
// §4.2). kNone: +Inf.
QILIN_HOST_DEVICE inline float quant_clip_max(const QuantChannel& c) {
  switch (c.format) {
    case QuantFormat::kNone: return qfp8_detail::infinity();
    case QuantFormat::kQfp8: return qfp8_max(c.layout, c.beta);
    case QuantFormat::kInt8: return static_cast<float>(kInt8MaxCode) * c.scale;
    case QuantFormat::kFp8E4M3: return kFp8E4M3Max * (1.0f / c.scale);
    case QuantFormat::kFp8E5M2: return kFp8E5M2Max * (1.0f / c.scale);
  }
  return qfp8_detail::infinity();
}

// ---- host API (core/qfp8.cpp) ----
// Data is laid out as [channels, inner], contiguous; per-tensor treats it as one channel of
// channels * inner elements. Errors throw qilin::Error naming the tensor.

// Names, as configs and summary.json spell them. parse_* return nullopt for an unknown name
// (the config parser reports it with the *_names() list).
const char* quant_format_name(QuantFormat format);  // none | qfp8 | int8 | fp8_e4m3 | fp8_e5m2
std::optional<QuantFormat> parse_quant_format(const std::string& name);
const char* quant_format_names();  // "none | qfp8 | int8 | fp8_e4m3 | fp8_e5m2"

const char* qfp8_layout_name(Qfp8Layout layout);  // e2m5 | e3m4 | e4m3 | e5m2 (else "invalid")
std::optional<Qfp8Layout> parse_qfp8_layout(const std::string& name);  // no "auto"
// With "auto": the outer optional is empty for an unknown name; the inner is QuantSpec::layout
// (nullopt = auto).
std::optional<std::optional<Qfp8Layout>> parse_qfp8_layout_or_auto(const std::string& name);
const char* qfp8_layout_or_auto_name(const std::optional<Qfp8Layout>& layout);
const char* qfp8_layout_names();  // "e2m5 | e3m4 | e4m3 | e5m2 | auto"

const char* bias_mode_name(BiasMode mode);  // amax | mse | fixed
std::optional<BiasMode> parse_bias_mode(const std::string& name);  // amax | mse (fixed: an int)

const char* granularity_name(Granularity granularity);  // per_tensor | per_channel
std::optional<Granularity> parse_granularity(const std::string& name);

// What a config asks for (DESIGN.md §4.2).
struct QuantSpec {
  QuantFormat format = QuantFormat::kNone;
  std::optional<Qfp8Layout> layout = kQfp8E3M4;  // qfp8 only; nullopt = `layout: auto`
  BiasMode bias = BiasMode::kAmax;               // qfp8 only
  int32_t fixed_bias = 0;                        // bias == kFixed only
  Granularity granularity = Granularity::kPerTensor;
};

// One line for summary.json and logs: "qfp8 e3m4 per_channel mse", "qfp8 auto per_tensor
// bias=7", "int8 per_channel", "fp8_e4m3 per_tensor", "none".
std::string quant_spec_summary(const QuantSpec& spec);

// What was chosen from the data: one entry per channel, or one for the whole tensor.
//   kQfp8:              layouts and betas (same size), scales empty
//   kInt8, kFp8E4M3/E5M2: scales, layouts and betas empty
//   kNone:              all empty (identity)
struct QuantParams {
  QuantFormat format = QuantFormat::kNone;
  std::vector<Qfp8Layout> layouts;
  std::vector<int32_t> betas;
  std::vector<float> scales;

  // Entries: 1 (per tensor) or channels; 0 for kNone.
  int64_t size() const;
  // Entry i's parameters for the scalar codecs (kNone: an identity channel for any i).
  QuantChannel channel(int64_t i) const;
};

// β for `bias: amax`: qfp8_bias_for_amax_unchecked, with errors naming the tensor for a
// non-finite or negative amax and for a β that cannot keep max and the smallest subnormal
// finite and nonzero (an amax near FLT_MAX).
int32_t bias_for_amax(float amax, Qfp8Layout layout, const std::string& tensor_name);
// Throws (naming the tensor, layout and β) unless qfp8_bias_in_range(layout, beta).
void check_qfp8_bias(Qfp8Layout layout, int32_t beta, const std::string& tensor_name);

// max |x| over n values; throws naming the tensor if any is NaN or ±Inf.
float finite_amax(const float* x, int64_t n, const std::string& tensor_name);

// Chooses the parameters of x: [channels, inner] for the spec (DESIGN.md §4.2):
//   bias amax:  the largest β with max >= amax;
//   bias mse:   β_amax .. β_amax + 3 (those in range), least squared error, ties -> smaller β;
//   fixed:      spec.fixed_bias (checked for every layout used);
//   layout auto: each layout of kQfp8Layouts with the spec's bias mode, least squared error
//               per tensor/channel, ties -> the earlier layout (more mantissa bits);
//   int8 / fp8_*: the scale from amax (bias and layout are ignored).
// A NaN or Inf in x is an error naming the tensor (its amax is not finite).
// Squared errors are sum (x - x')^2 in double, in element order; x' comes from `fake_row`
// when given (y[0..n) = fake_quant(c, x[0..n)): a vector kernel, equal to quant_fake bit for
// bit, so the choice is the same), else from quant_fake element by element.
using QuantFakeRowFn = void (*)(const QuantChannel& c, const float* x, float* y, int64_t n);
QuantParams choose_quant_params(const QuantSpec& spec, const float* x, int64_t channels,
                                int64_t inner, const std::string& tensor_name,
                                QuantFakeRowFn fake_row = nullptr);

// y = fake_quant(x) with the params (y = x may alias). The scalar reference for the vector
// kernels.
void fake_quantize_reference(const QuantParams& params, const float* x, float* y,
                             int64_t channels, int64_t inner);

// sum (x - fake_quant(x))^2 in double.
double quant_squared_error(const QuantParams& params, const float* x, int64_t channels,
                           int64_t inner);
// 10 log10(sum x^2 / sum (x - x')^2) in dB, sums in double; +Inf where the error is zero.
double sqnr_db(const float* x, const float* x_quant, int64_t n);
double sqnr_db(const QuantParams& params, const float* x, int64_t channels, int64_t inner);

// The packed 8-bit path (quantized checkpoints: uint8 codes plus the per-channel β or
// scales): one code per element, int8 as two's complement. NaN is rejected with an error
// naming the tensor (an 8-bit QFP8 code has no NaN); kNone is an error.
// decode_packed(encode_packed(x)) equals fake_quantize_reference(x) bit for bit.
std::vector<uint8_t> encode_packed(const QuantParams& params, const float* x, int64_t channels,
                                   int64_t inner, const std::string& tensor_name);
void decode_packed(const QuantParams& params, const uint8_t* codes, float* y, int64_t channels,
                   int64_t inner);

}  // namespace qilin
