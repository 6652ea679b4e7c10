// QFP8 and the 8-bit comparison codecs (core/qfp8.h, core/qfp8.cpp; DESIGN.md §4.2): every
// code of every layout against the definition and back, ties to even (also subnormal),
// saturation, ±Inf, NaN, -0, the β edges, the bias choices (amax, mse, fixed, layout auto) on
// tensors whose answer is certain, the SQNR figures of DESIGN.md §4.2 on Gaussian data,
// per-channel against per-tensor, fake-quant against decode(encode) over a sweep of float32
// bit patterns, OCP E4M3/E5M2 and int8 known values, and the packed path.
#include <gtest/gtest.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/qfp8.h"
#include "tests/testing.h"

namespace qilin {
namespace {

using testing::bits_of;
using testing::from_bits;
using testing::same_bits;

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNan = std::numeric_limits<float>::quiet_NaN();
constexpr float kFltMax = std::numeric_limits<float>::max();
#if defined(__SANITIZE_ADDRESS__)
constexpr uint64_t kSanitizerStrideScale = 8;
#else
constexpr uint64_t kSanitizerStrideScale = 1;
#endif


// The lowest β whose max is finite in float32 (2^E - 1 - β <= 127), or -126.
int32_t lowest_bias(Qfp8Layout l) { return std::max(kQfp8MinBias, (1 << l.exponent_bits) - 128); }

// Biases the exhaustive tests visit: both edges, the standard bias and a spread between.
std::vector<int32_t> test_biases(Qfp8Layout l) {
  const int32_t std_bias = qfp8_standard_bias(l);
  return {lowest_bias(l), lowest_bias(l) + 1, -40, 0, std_bias, std_bias + 3, 60, 125, 126};
}

// DESIGN.md §4.2's definition, evaluated in double independently of the codec.
double definition_value(uint8_t code, Qfp8Layout l, int32_t beta) {
  const int m = l.mantissa_bits;
  const int e = (code & 0x7F) >> m;
  const int f = code & ((1 << m) - 1);
  const double frac = static_cast<double>(f) / (1 << m);
  const double magnitude =
      e == 0 ? std::ldexp(frac, 1 - beta) : std::ldexp(1.0 + frac, e - beta);
  return (code & 0x80) ? -magnitude : magnitude;
}

// Independent encoder: the nearest of the 128 non-negative code values by binary search in
// double, ties to the even code, beyond max to 0x7F; the sign bit copied from x.
struct ReferenceEncoder {
  std::vector<double> values;  // values[c] for c = 0 .. 0x7F, ascending
  explicit ReferenceEncoder(Qfp8Layout l, int32_t beta) {
    for (int c = 0; c < 128; ++c) values.push_back(definition_value(static_cast<uint8_t>(c), l, beta));
  }
  uint8_t encode(float x) const {
    const double a = std::fabs(static_cast<double>(x));
    const uint8_t sign = std::signbit(x) ? 0x80 : 0x00;
    if (a >= values.back()) return sign | 0x7F;
    const size_t hi = std::upper_bound(values.begin(), values.end(), a) - values.begin();
    const size_t lo = hi - 1;  // values[lo] <= a < values[hi]
    const double d_lo = a - values[lo], d_hi = values[hi] - a;
    const size_t c = d_lo < d_hi ? lo : (d_hi < d_lo ? hi : (lo % 2 == 0 ? lo : hi));
    return static_cast<uint8_t>(sign | c);
  }
};

// Drawn in double and rounded: libstdc++'s normal_distribution<float> (polar method on
// 24-bit uniforms) gave visibly heavier tails (1e6-sample amax 5.3-5.7 sigma on 4 of 8 seeds).
std::vector<float> gaussian(int64_t n, uint32_t seed, float sigma = 1.0f) {
  std::mt19937 gen(seed);
  std::normal_distribution<double> dist(0.0, sigma);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = static_cast<float>(dist(gen));
  return v;
}

QuantSpec qfp8_spec(std::optional<Qfp8Layout> layout, BiasMode bias,
                    Granularity g = Granularity::kPerTensor, int32_t fixed_bias = 0) {
  QuantSpec s;
  s.format = QuantFormat::kQfp8;
  s.layout = layout;
  s.bias = bias;
  s.fixed_bias = fixed_bias;
  s.granularity = g;
  return s;
}

template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

// ---- names ----

TEST(Qfp8Names, RoundTripAndRejectUnknownNames) {
  for (QuantFormat f : {QuantFormat::kNone, QuantFormat::kQfp8, QuantFormat::kInt8,
                        QuantFormat::kFp8E4M3, QuantFormat::kFp8E5M2}) {
    EXPECT_EQ(parse_quant_format(quant_format_name(f)), f);
  }
  for (Qfp8Layout l : kQfp8Layouts) {
    EXPECT_EQ(parse_qfp8_layout(qfp8_layout_name(l)), l);
    EXPECT_EQ(parse_qfp8_layout_or_auto(qfp8_layout_name(l)), std::optional<Qfp8Layout>(l));
  }
  EXPECT_EQ(std::string(qfp8_layout_name(kQfp8E4M3)), "e4m3");
  const auto automatic = parse_qfp8_layout_or_auto("auto");
  ASSERT_TRUE(automatic.has_value());
  EXPECT_FALSE(automatic->has_value());
  EXPECT_FALSE(parse_qfp8_layout("auto").has_value());
  EXPECT_FALSE(parse_qfp8_layout_or_auto("e6m1").has_value());
  EXPECT_FALSE(parse_quant_format("fp8").has_value());
  EXPECT_EQ(parse_bias_mode("mse"), BiasMode::kMse);
  EXPECT_FALSE(parse_bias_mode("7").has_value());
  EXPECT_EQ(parse_granularity("per_channel"), Granularity::kPerChannel);
  EXPECT_FALSE(parse_granularity("channel").has_value());
}

TEST(Qfp8Names, SpecSummaryReadsAsTheConfig) {
  EXPECT_EQ(quant_spec_summary(qfp8_spec(kQfp8E3M4, BiasMode::kMse, Granularity::kPerChannel)),
            "qfp8 e3m4 per_channel mse");
  EXPECT_EQ(quant_spec_summary(qfp8_spec(std::nullopt, BiasMode::kFixed, Granularity::kPerTensor, 7)),
            "qfp8 auto per_tensor bias=7");
  QuantSpec int8;
  int8.format = QuantFormat::kInt8;
  int8.granularity = Granularity::kPerChannel;
  EXPECT_EQ(quant_spec_summary(int8), "int8 per_channel");
  EXPECT_EQ(quant_spec_summary(QuantSpec{}), "none");
}

// ---- codes ----

TEST(Qfp8Codec, EveryCodeDecodesToTheDefinitionAndReencodesToItself) {
  for (Qfp8Layout l : kQfp8Layouts) {
    for (int32_t beta : test_biases(l)) {
      ASSERT_TRUE(qfp8_bias_in_range(l, beta)) << qfp8_layout_name(l) << " " << beta;
      for (int code = 0; code < 256; ++code) {
        const uint8_t c = static_cast<uint8_t>(code);
        const float v = qfp8_decode(c, l, beta);
        // Exact: every code value is a float32 (<= 6 significant bits, exponent >= -130).
        ASSERT_EQ(static_cast<double>(v), definition_value(c, l, beta))
            << qfp8_layout_name(l) << " beta " << beta << " code " << code;
        ASSERT_TRUE(std::isfinite(v));
        ASSERT_EQ(qfp8_encode(v, l, beta), c)
            << qfp8_layout_name(l) << " beta " << beta << " code " << code;
        ASSERT_TRUE(same_bits(qfp8_fake_quant(v, l, beta), v));
      }
    }
  }
}

TEST(Qfp8Codec, MaxAndMinSubnormalFormulasEqualTheExtremeCodes) {
  for (Qfp8Layout l : kQfp8Layouts) {
    for (int32_t beta = lowest_bias(l); beta <= kQfp8MaxBias; ++beta) {
      const int m = l.mantissa_bits;
      const double max = (2.0 - std::ldexp(1.0, -m)) * std::ldexp(1.0, (1 << l.exponent_bits) - 1 - beta);
      EXPECT_EQ(static_cast<double>(qfp8_max(l, beta)), max);
      EXPECT_EQ(qfp8_max(l, beta), qfp8_decode(0x7F, l, beta));
      EXPECT_EQ(static_cast<double>(qfp8_min_subnormal(l, beta)), std::ldexp(1.0, 1 - beta - m));
      EXPECT_EQ(qfp8_min_subnormal(l, beta), qfp8_decode(0x01, l, beta));
    }
  }
  EXPECT_EQ(qfp8_max(kQfp8E4M3, 7), 480.0f);  // OCP's NaN code S.1111.111 is ±480 in QFP8
  EXPECT_EQ(qfp8_max(kQfp8E5M2, 15), 114688.0f);
  EXPECT_EQ(qfp8_standard_bias(kQfp8E2M5), 1);
  EXPECT_EQ(qfp8_standard_bias(kQfp8E3M4), 3);
  EXPECT_EQ(qfp8_standard_bias(kQfp8E4M3), 7);
  EXPECT_EQ(qfp8_standard_bias(kQfp8E5M2), 15);
}

TEST(Qfp8Codec, MidpointsRoundToTheEvenCodeIncludingSubnormals) {
  for (Qfp8Layout l : kQfp8Layouts) {
    for (int32_t beta : test_biases(l)) {
      for (int c = 0; c < 0x7F; ++c) {
        const float lo = qfp8_decode(static_cast<uint8_t>(c), l, beta);
        const float hi = qfp8_decode(static_cast<uint8_t>(c + 1), l, beta);
        // Exact: one more bit, still >= 2^-131 (lo + hi itself may overflow at the lowest β).
        const float mid = lo + (hi - lo) / 2;
        ASSERT_EQ(static_cast<double>(mid), (static_cast<double>(lo) + hi) / 2);
        const uint8_t even = static_cast<uint8_t>(c % 2 == 0 ? c : c + 1);
        ASSERT_EQ(qfp8_encode(mid, l, beta), even) << qfp8_layout_name(l) << " beta " << beta << " code " << c;
        ASSERT_EQ(qfp8_encode(-mid, l, beta), 0x80 | even);
        ASSERT_EQ(qfp8_encode(std::nextafter(mid, 0.0f), l, beta), c);
        ASSERT_EQ(qfp8_encode(std::nextafter(mid, kInf), l, beta), c + 1);
        ASSERT_TRUE(same_bits(qfp8_fake_quant(mid, l, beta), qfp8_decode(even, l, beta)));
      }
    }
  }
}

TEST(Qfp8Codec, SaturatesAtMaxIncludingInfinities) {
  for (Qfp8Layout l : kQfp8Layouts) {
    for (int32_t beta : test_biases(l)) {
      const float max = qfp8_max(l, beta);
      // Just below where rounding would pass max if the grid went on, and far beyond.
      const float beyond_half_step = max + std::ldexp(max, -l.mantissa_bits - 2);
      for (float x : {max, beyond_half_step, std::nextafter(max, kInf), 2 * max, kFltMax, kInf}) {
        EXPECT_EQ(qfp8_encode(x, l, beta), 0x7F) << qfp8_layout_name(l) << " " << beta << " " << x;
        EXPECT_EQ(qfp8_encode(-x, l, beta), 0xFF);
        EXPECT_EQ(qfp8_fake_quant(x, l, beta), max);
        EXPECT_EQ(qfp8_fake_quant(-x, l, beta), -max);
      }
    }
  }
}

TEST(Qfp8Codec, NanFakeQuantizesToNanAndEncodesToSignedMax) {
  for (Qfp8Layout l : kQfp8Layouts) {
    EXPECT_TRUE(std::isnan(qfp8_fake_quant(kNan, l, 3)));
    EXPECT_TRUE(std::isnan(qfp8_fake_quant(-kNan, l, 3)));
    EXPECT_TRUE(std::isnan(qfp8_fake_quant(from_bits(0x7F800001u), l, 3)));  // signalling
    EXPECT_EQ(qfp8_encode(kNan, l, 3), 0x7F);  // documented: no NaN code
    EXPECT_EQ(qfp8_encode(-kNan, l, 3), 0xFF);
  }
}

TEST(Qfp8Codec, NegativeZeroIsCode0x80AndDecodesToNegativeZero) {
  for (Qfp8Layout l : kQfp8Layouts) {
    EXPECT_EQ(qfp8_encode(0.0f, l, 5), 0x00);
    EXPECT_EQ(qfp8_encode(-0.0f, l, 5), 0x80);
    EXPECT_TRUE(same_bits(qfp8_decode(0x80, l, 5), -0.0f));
    EXPECT_TRUE(same_bits(qfp8_decode(0x00, l, 5), 0.0f));
    EXPECT_TRUE(same_bits(qfp8_fake_quant(-0.0f, l, 5), -0.0f));
    // A negative value that rounds to zero keeps its sign (-0, as decode(0x80) gives).
    const float tiny = qfp8_min_subnormal(l, 5) / 4;
    EXPECT_EQ(qfp8_encode(-tiny, l, 5), 0x80);
    EXPECT_TRUE(same_bits(qfp8_fake_quant(-tiny, l, 5), -0.0f));
  }
}

TEST(Qfp8Codec, SubnormalCodesAndFloat32SubnormalInputsAreExact) {
  // β = 126: e2m5's smallest subnormal is 2^-130, itself a float32 subnormal.
  const Qfp8Layout l = kQfp8E2M5;
  const int32_t beta = 126;
  const float min_sub = qfp8_min_subnormal(l, beta);
  EXPECT_EQ(static_cast<double>(min_sub), std::ldexp(1.0, -130));
  EXPECT_LT(min_sub, std::numeric_limits<float>::min());
  EXPECT_EQ(qfp8_encode(min_sub / 2, l, beta), 0x00);      // tie with 0: even
  EXPECT_EQ(qfp8_encode(min_sub * 1.5f, l, beta), 0x02);   // tie between 1 and 2: even
  EXPECT_EQ(qfp8_encode(min_sub * 2.5f, l, beta), 0x02);
  EXPECT_EQ(qfp8_encode(min_sub * 0.75f, l, beta), 0x01);
  EXPECT_EQ(qfp8_encode(std::numeric_limits<float>::denorm_min(), l, beta), 0x00);
  EXPECT_EQ(qfp8_encode(31 * min_sub, l, beta), 0x1F);     // the largest subnormal code
  EXPECT_EQ(qfp8_encode(32 * min_sub, l, beta), 0x20);     // the smallest normal code
  EXPECT_EQ(qfp8_decode(0x1F, l, beta), 31 * min_sub);
  // Float32 subnormal inputs against the reference encoder, every 101st pattern.
  const ReferenceEncoder ref(l, beta);
  for (uint32_t b = 1; b < 0x00800000u; b += 101) {
    const float x = from_bits(b);
    ASSERT_EQ(qfp8_encode(x, l, beta), ref.encode(x)) << b;
    ASSERT_EQ(qfp8_encode(-x, l, beta), ref.encode(-x)) << b;
  }
}

// Every 97th float32 bit pattern (both signs, NaN and Inf included) for every layout at the
// standard bias and the β edges: encode against the independent reference encoder, and
// fake_quant == decode(encode) (NaN -> NaN).
TEST(Qfp8Codec, FakeQuantEqualsDecodeOfEncodeOverAFloat32Sweep) {
  for (Qfp8Layout l : kQfp8Layouts) {
    for (int32_t beta : {lowest_bias(l), qfp8_standard_bias(l), kQfp8MaxBias}) {
      const ReferenceEncoder ref(l, beta);
      uint64_t mismatches = 0;
      uint32_t first = 0;
      // Stride 97 at the standard bias, 997 at the edges: ~70M values in all (~2 s in
      // Release); 8x sparser under AddressSanitizer, which makes each value ~25x slower.
      const uint64_t stride = (beta == qfp8_standard_bias(l) ? 97 : 997) * kSanitizerStrideScale;
      for (uint64_t b = 0; b <= 0xFFFFFFFFull; b += stride) {
        const float x = from_bits(static_cast<uint32_t>(b));
        const uint8_t code = qfp8_encode(x, l, beta);
        const float y = qfp8_fake_quant(x, l, beta);
        const bool ok = std::isnan(x) ? std::isnan(y) : same_bits(y, qfp8_decode(code, l, beta));
        if (!ok && mismatches++ == 0) first = static_cast<uint32_t>(b);
      }
      EXPECT_EQ(mismatches, 0u) << qfp8_layout_name(l) << " beta " << beta << " first 0x"
                                << std::hex << first;
      // The reference encoder is slower: every 9973rd pattern, non-NaN.
      for (uint64_t b = 0; b <= 0xFFFFFFFFull; b += 9973) {
        const float x = from_bits(static_cast<uint32_t>(b));
        if (std::isnan(x)) continue;
        ASSERT_EQ(qfp8_encode(x, l, beta), ref.encode(x))
            << qfp8_layout_name(l) << " beta " << beta << " x " << x;
      }
      // All floats within 8 ulps of every code value and every midpoint.
      for (int c = 0; c < 0x7F; ++c) {
        const float lo = qfp8_decode(static_cast<uint8_t>(c), l, beta);
        const float mid = lo + (qfp8_decode(static_cast<uint8_t>(c + 1), l, beta) - lo) / 2;
        for (float center : {lo, mid}) {
          const uint32_t cb = bits_of(center);
          for (int d = -8; d <= 8; ++d) {
            if (cb == 0 && d < 0) continue;
            for (float x : {from_bits(cb + d), -from_bits(cb + d)}) {
              if (std::isnan(x)) continue;
              ASSERT_EQ(qfp8_encode(x, l, beta), ref.encode(x)) << qfp8_layout_name(l) << " " << x;
              ASSERT_TRUE(same_bits(qfp8_fake_quant(x, l, beta), qfp8_decode(qfp8_encode(x, l, beta), l, beta)));
            }
          }
        }
      }
    }
  }
}

// ---- β ----

TEST(Qfp8Bias, RangeChecksBothEndsAndNamesTheTensor) {
  for (Qfp8Layout l : kQfp8Layouts) {
    EXPECT_TRUE(qfp8_bias_in_range(l, kQfp8MaxBias));
    EXPECT_FALSE(qfp8_bias_in_range(l, kQfp8MaxBias + 1));
    EXPECT_TRUE(qfp8_bias_in_range(l, lowest_bias(l)));
    EXPECT_FALSE(qfp8_bias_in_range(l, lowest_bias(l) - 1));  // max would be beyond FLT_MAX
    EXPECT_TRUE(std::isfinite(qfp8_max(l, lowest_bias(l))));
    EXPECT_GT(qfp8_min_subnormal(l, kQfp8MaxBias), 0.0f);
  }
  EXPECT_EQ(lowest_bias(kQfp8E5M2), -96);
  EXPECT_FALSE(qfp8_bias_in_range(kQfp8E2M5, -127));
  const std::string msg = error_of([] { check_qfp8_bias(kQfp8E4M3, 127, "blocks.0.fc1.weight"); });
  EXPECT_NE(msg.find("blocks.0.fc1.weight"), std::string::npos) << msg;
  EXPECT_NE(msg.find("127"), std::string::npos) << msg;
  // A fixed bias out of range in a config is an error naming the tensor.
  const std::vector<float> x = {1.0f, -2.0f};
  const std::string fixed = error_of([&] {
    choose_quant_params(qfp8_spec(kQfp8E5M2, BiasMode::kFixed, Granularity::kPerTensor, -97),
                        x.data(), 1, 2, "head.weight");
  });
  EXPECT_NE(fixed.find("head.weight"), std::string::npos) << fixed;
  const QuantParams ok = choose_quant_params(
      qfp8_spec(kQfp8E5M2, BiasMode::kFixed, Granularity::kPerTensor, -96), x.data(), 1, 2, "w");
  EXPECT_EQ(ok.betas, std::vector<int32_t>{-96});
}

TEST(Qfp8Bias, AmaxGivesTheLargestBiasWhoseMaxCoversIt) {
  EXPECT_EQ(bias_for_amax(1.875f, kQfp8E4M3, "w"), 15);  // DESIGN.md §4.2's example
  EXPECT_EQ(bias_for_amax(std::nextafter(1.875f, kInf), kQfp8E4M3, "w"), 14);
  EXPECT_EQ(bias_for_amax(1.0f, kQfp8E4M3, "w"), 15);  // max 1.875; β 16 gives 0.9375
  EXPECT_EQ(bias_for_amax(448.0f, kQfp8E4M3, "w"), 7);
  EXPECT_EQ(bias_for_amax(480.0f, kQfp8E4M3, "w"), 7);
  EXPECT_EQ(bias_for_amax(481.0f, kQfp8E4M3, "w"), 6);
  for (Qfp8Layout l : kQfp8Layouts) {
    EXPECT_EQ(bias_for_amax(0.0f, l, "w"), qfp8_standard_bias(l));
    // Tiny amax: clamped to 126 (max(126) still covers it).
    EXPECT_EQ(bias_for_amax(std::numeric_limits<float>::denorm_min(), l, "w"), kQfp8MaxBias);
    // The definition, on exact powers of two, the code values of several β and their
    // float32 neighbours, and random values over the whole range.
    std::vector<float> amaxes;
    for (int k = -140; k <= 127; ++k) amaxes.push_back(std::ldexp(1.0f, k));
    for (int32_t beta : test_biases(l)) {
      for (int c = 0x70; c <= 0x7F; ++c) {
        const float v = qfp8_decode(static_cast<uint8_t>(c), l, beta);
        amaxes.insert(amaxes.end(), {v, std::nextafter(v, 0.0f), std::nextafter(v, kInf)});
      }
    }
    std::mt19937 gen(7);
    std::uniform_real_distribution<float> exponent(-140.0f, 120.0f);
    for (int i = 0; i < 2000; ++i) amaxes.push_back(std::exp2(exponent(gen)));
    for (float amax : amaxes) {
      if (!(amax > 0.0f) || std::isinf(amax)) continue;
      const int32_t beta = qfp8_bias_for_amax_unchecked(amax, l);
      if (!qfp8_bias_in_range(l, beta)) {  // only an amax near FLT_MAX asks for that
        EXPECT_GT(amax, std::ldexp(1.0f, 126)) << amax;
        continue;
      }
      EXPECT_EQ(bias_for_amax(amax, l, "w"), beta);
      EXPECT_GE(qfp8_max(l, beta), amax) << qfp8_layout_name(l) << " amax " << amax;
      if (beta < kQfp8MaxBias) {
        EXPECT_LT(qfp8_max(l, beta + 1), amax) << amax;
      }
    }
  }
}

TEST(Qfp8Bias, NonFiniteOrHugeAmaxIsAnErrorNamingTheTensor) {
  for (float amax : {kNan, kInf, -1.0f}) {
    const std::string msg = error_of([&] { bias_for_amax(amax, kQfp8E3M4, "stem.conv.weight"); });
    EXPECT_NE(msg.find("stem.conv.weight"), std::string::npos) << msg;
  }
  for (Qfp8Layout l : kQfp8Layouts) {  // FLT_MAX would need max beyond float32
    const std::string msg = error_of([&] { bias_for_amax(kFltMax, l, "act.x"); });
    EXPECT_NE(msg.find("act.x"), std::string::npos) << msg;
  }
  const std::vector<float> x = {1.0f, kInf, 2.0f};
  const std::string msg = error_of([&] {
    choose_quant_params(qfp8_spec(kQfp8E4M3, BiasMode::kAmax), x.data(), 1, 3, "fc.weight");
  });
  EXPECT_NE(msg.find("fc.weight"), std::string::npos) << msg;
  QuantSpec int8;
  int8.format = QuantFormat::kInt8;
  const std::vector<float> y = {kNan};
  EXPECT_NE(error_of([&] { choose_quant_params(int8, y.data(), 1, 1, "fc.bias"); }).find("fc.bias"),
            std::string::npos);
}

// One outlier 241 and many small values (2j + 1) 2^-10 < 2^-6: subnormal at β = 7 (step
// 2^-9, so each is a midpoint, error 2^-20) but exact at β = 8 (subnormal step 2^-10, and
// the binade [2^-7, 2^-6) has step 2^-10 too). amax 241 = 0.94140625 * 2^8 needs max 480
// (β = 7); at β = 8 (max 240) the outlier clips to 240 -- the value β = 7 rounds it to (step
// 16 there) -- so only the small values differ; β = 9 clips it to 120. mse must pick 8.
TEST(Qfp8Bias, MsePicksALargerBiasWhenClippingOneOutlierRefinesTheRest) {
  std::vector<float> x = {241.0f};
  for (int j = 0; j < 64; ++j) x.push_back(static_cast<float>(2 * (j % 8) + 1) * std::ldexp(1.0f, -10));
  const int64_t n = static_cast<int64_t>(x.size());
  const QuantParams amax = choose_quant_params(qfp8_spec(kQfp8E4M3, BiasMode::kAmax), x.data(), 1, n, "w");
  const QuantParams mse = choose_quant_params(qfp8_spec(kQfp8E4M3, BiasMode::kMse), x.data(), 1, n, "w");
  EXPECT_EQ(amax.betas, std::vector<int32_t>{7});
  EXPECT_EQ(mse.betas, std::vector<int32_t>{8});
  EXPECT_EQ(quant_squared_error(mse, x.data(), 1, n), 1.0);  // only (241 - 240)^2 left
  EXPECT_GT(quant_squared_error(amax, x.data(), 1, n), 1.0);
  // Ties go to the smaller β: an all-zero tensor has zero error everywhere.
  const std::vector<float> zeros(16, 0.0f);
  const QuantParams tie = choose_quant_params(qfp8_spec(kQfp8E3M4, BiasMode::kMse), zeros.data(), 1, 16, "w");
  EXPECT_EQ(tie.betas, std::vector<int32_t>{qfp8_standard_bias(kQfp8E3M4)});
}

TEST(Qfp8Bias, AutoPicksManyMantissaBitsOnGaussianWeightsAndRangeOnPowersOfTwo) {
  const int64_t channels = 256, inner = 256;
  std::vector<float> w = gaussian(channels * inner, 11);
  for (int64_t c = 0; c < channels; ++c)  // channels of different scales, as trained weights
    for (int64_t i = 0; i < inner; ++i) w[c * inner + i] *= std::exp2(static_cast<float>(c % 9) - 4);
  for (BiasMode bias : {BiasMode::kAmax, BiasMode::kMse}) {
    const QuantParams p = choose_quant_params(
        qfp8_spec(std::nullopt, bias, Granularity::kPerChannel), w.data(), channels, inner, "w");
    ASSERT_EQ(p.size(), channels);
    for (int64_t c = 0; c < channels; ++c) {
      EXPECT_TRUE(p.layouts[c] == kQfp8E2M5 || p.layouts[c] == kQfp8E3M4)
          << "channel " << c << ": " << qfp8_layout_name(p.layouts[c]);
    }
    // Auto's error is the least of the fixed layouts' errors, per channel, so in total.
    const double auto_error = quant_squared_error(p, w.data(), channels, inner);
    for (Qfp8Layout l : kQfp8Layouts) {
      const QuantParams fixed = choose_quant_params(qfp8_spec(l, bias, Granularity::kPerChannel),
                                                    w.data(), channels, inner, "w");
      EXPECT_LE(auto_error, quant_squared_error(fixed, w.data(), channels, inner)) << qfp8_layout_name(l);
    }
  }
  // 2^0 .. 2^-30: only e5m2 (31 binades at β = 31) holds them all exactly.
  std::vector<float> powers;
  for (int k = 0; k <= 30; ++k) powers.push_back(std::ldexp(1.0f, -k));
  const QuantParams p = choose_quant_params(qfp8_spec(std::nullopt, BiasMode::kAmax), powers.data(),
                                            1, static_cast<int64_t>(powers.size()), "w");
  EXPECT_EQ(p.layouts, std::vector<Qfp8Layout>{kQfp8E5M2});
  EXPECT_EQ(p.betas, std::vector<int32_t>{31});
  EXPECT_EQ(quant_squared_error(p, powers.data(), 1, static_cast<int64_t>(powers.size())), 0.0);
}

// DESIGN.md §4.2: on Gaussian weights, per tensor, SQNR is about 31.5 dB for e4m3, 37.6 for
// e3m4, 42.4 for e2m5, 39.4 for int8. Measured here with `bias: mse` on 1e6 seeded samples
// (the QFP8 figures are mse's: with `bias: amax`, e2m5 gives ~40.3 dB, its β_amax leaving a
// binade unused); over 8 seeds e4m3 and e3m4 moved by < 0.05 dB and e2m5 stayed in
// 42.05-42.54 dB, so ±0.5 dB holds them. int8 is not a constant: its step is amax / 127, and
// the amax of 1e6 samples varies (4.6-5.4 sigma over those 8 seeds: 38.3-39.6 dB). DESIGN's 39.4 is the uniform-noise model
// 10 log10(12 127^2 E[x^2] / amax^2) at amax ~4.7 sigma; the test checks the model at this
// sample's amax instead (±0.1 dB), and prints the figures.
TEST(Qfp8Sqnr, GaussianPerTensorMatchesTheDesignFigures) {
  const int64_t n = 1000000;
  const std::vector<float> x = gaussian(n, 2024);
  auto sqnr = [&](const QuantSpec& spec) {
    return sqnr_db(choose_quant_params(spec, x.data(), 1, n, "w"), x.data(), 1, n);
  };
  const double e4m3 = sqnr(qfp8_spec(kQfp8E4M3, BiasMode::kMse));
  const double e3m4 = sqnr(qfp8_spec(kQfp8E3M4, BiasMode::kMse));
  const double e2m5 = sqnr(qfp8_spec(kQfp8E2M5, BiasMode::kMse));
  const double best = sqnr(qfp8_spec(std::nullopt, BiasMode::kMse));
  QuantSpec spec;
  spec.format = QuantFormat::kInt8;
  const double int8 = sqnr(spec);
  spec.format = QuantFormat::kFp8E4M3;
  const double fp8_e4m3 = sqnr(spec);
  spec.format = QuantFormat::kFp8E5M2;
  const double fp8_e5m2 = sqnr(spec);
  EXPECT_NEAR(e4m3, 31.5, 0.5);
  EXPECT_NEAR(e3m4, 37.6, 0.5);
  EXPECT_NEAR(e2m5, 42.4, 0.5);
  double mean_square = 0.0;
  for (float v : x) mean_square += static_cast<double>(v) * v / static_cast<double>(n);
  const double amax = finite_amax(x.data(), n, "x");
  const double int8_model = 10.0 * std::log10(12.0 * kInt8MaxCode * kInt8MaxCode * mean_square / (amax * amax));
  EXPECT_NEAR(int8, int8_model, 0.1);
  // The thesis claim on Gaussian data: QFP8 (auto) beats every other 8-bit format.
  EXPECT_EQ(best, e2m5);
  EXPECT_GT(best, int8);
  EXPECT_GT(best, fp8_e4m3);
  EXPECT_GT(best, fp8_e5m2);
  std::printf("SQNR dB (1e6 Gaussian, per tensor, qfp8 bias mse): e4m3 %.2f e3m4 %.2f e2m5 %.2f"
              " | int8 %.2f (amax %.3f sigma) fp8_e4m3 %.2f fp8_e5m2 %.2f\n",
              e4m3, e3m4, e2m5, int8, amax / std::sqrt(mean_square), fp8_e4m3, fp8_e5m2);
}

// ---- granularity and the reference loops ----

TEST(QuantParams, PerChannelEqualsPerTensorAppliedToEachChannel) {
  const int64_t channels = 6, inner = 200;
  std::vector<float> x = gaussian(channels * inner, 5);
  for (int64_t c = 0; c < channels; ++c)
    for (int64_t i = 0; i < inner; ++i) x[c * inner + i] *= std::exp2(static_cast<float>(3 * c) - 8);
  x[2 * inner + 17] = -0.0f;
  x[3 * inner + 5] = 0.0f;
  std::vector<QuantSpec> specs;
  for (std::optional<Qfp8Layout> l : {std::optional<Qfp8Layout>(kQfp8E3M4), std::optional<Qfp8Layout>()})
    for (BiasMode b : {BiasMode::kAmax, BiasMode::kMse, BiasMode::kFixed})
      specs.push_back(qfp8_spec(l, b, Granularity::kPerChannel, 4));
  for (QuantFormat f : {QuantFormat::kInt8, QuantFormat::kFp8E4M3, QuantFormat::kFp8E5M2, QuantFormat::kNone}) {
    QuantSpec s;
    s.format = f;
    s.granularity = Granularity::kPerChannel;
    specs.push_back(s);
  }
  for (const QuantSpec& spec : specs) {
    const QuantParams all = choose_quant_params(spec, x.data(), channels, inner, "w");
    std::vector<float> y(x.size()), y_channel(inner);
    fake_quantize_reference(all, x.data(), y.data(), channels, inner);
    QuantSpec per_tensor = spec;
    per_tensor.granularity = Granularity::kPerTensor;
    for (int64_t c = 0; c < channels; ++c) {
      const float* xc = x.data() + c * inner;
      const QuantParams one = choose_quant_params(per_tensor, xc, 1, inner, "w");
      if (spec.format != QuantFormat::kNone) {
        ASSERT_EQ(one.size(), 1);
      }
      const QuantChannel a = all.channel(c), b = one.channel(0);
      EXPECT_TRUE(a.layout == b.layout && a.beta == b.beta && a.scale == b.scale)
          << quant_spec_summary(spec) << " channel " << c;
      fake_quantize_reference(one, xc, y_channel.data(), 1, inner);
      for (int64_t i = 0; i < inner; ++i)
        ASSERT_TRUE(same_bits(y[c * inner + i], y_channel[i])) << quant_spec_summary(spec) << " " << c << "," << i;
    }
  }
}

TEST(QuantParams, ParameterCountMustFitTheChannels) {
  QuantParams p;
  p.format = QuantFormat::kQfp8;
  p.layouts = {kQfp8E3M4, kQfp8E3M4};
  p.betas = {3, 3};
  std::vector<float> x(12, 1.0f), y(12);
  EXPECT_THROW(fake_quantize_reference(p, x.data(), y.data(), 3, 4), Error);
  EXPECT_NO_THROW(fake_quantize_reference(p, x.data(), y.data(), 2, 6));
  p.betas = {3};
  EXPECT_THROW(p.size(), Error);
}

// ---- OCP FP8 and int8 ----

TEST(Fp8Codec, E4M3MatchesTheOcpTable) {
  EXPECT_EQ(fp8_e4m3_encode(448.0f), 0x7E);
  EXPECT_EQ(fp8_e4m3_decode(0x7E), 448.0f);
  EXPECT_EQ(fp8_e4m3_decode(0xFE), -448.0f);
  EXPECT_TRUE(std::isnan(fp8_e4m3_decode(0x7F)));
  EXPECT_TRUE(std::isnan(fp8_e4m3_decode(0xFF)));
  EXPECT_EQ(fp8_e4m3_decode(0x38), 1.0f);
  EXPECT_EQ(fp8_e4m3_decode(0x40), 2.0f);
  EXPECT_EQ(fp8_e4m3_decode(0x08), std::ldexp(1.0f, -6));  // smallest normal
  EXPECT_EQ(fp8_e4m3_decode(0x01), std::ldexp(1.0f, -9));  // smallest subnormal
  EXPECT_EQ(fp8_e4m3_decode(0x07), 7 * std::ldexp(1.0f, -9));
  EXPECT_TRUE(same_bits(fp8_e4m3_decode(0x80), -0.0f));
  EXPECT_EQ(fp8_e4m3_encode(17.0f), 0x58);  // 16 (0x58) / 18 (0x59) tie: even
  EXPECT_EQ(fp8_e4m3_encode(464.0f), 0x7E);
  EXPECT_EQ(fp8_e4m3_encode(1000.0f), 0x7E);  // saturating
  EXPECT_EQ(fp8_e4m3_encode(kInf), 0x7E);
  EXPECT_EQ(fp8_e4m3_encode(-kInf), 0xFE);
  EXPECT_EQ(fp8_e4m3_encode(kNan), 0x7F);
  EXPECT_EQ(fp8_e4m3_encode(-0.0f), 0x80);
  // Every non-NaN code against the OCP definition (bias 7) and back.
  for (int code = 0; code < 256; ++code) {
    if ((code & 0x7F) == 0x7F) continue;
    const float v = fp8_e4m3_decode(static_cast<uint8_t>(code));
    EXPECT_EQ(static_cast<double>(v), definition_value(static_cast<uint8_t>(code), kQfp8E4M3, 7));
    EXPECT_EQ(fp8_e4m3_encode(v), code);
  }
}

TEST(Fp8Codec, E5M2MatchesTheOcpTable) {
  EXPECT_EQ(fp8_e5m2_encode(57344.0f), 0x7B);
  EXPECT_EQ(fp8_e5m2_decode(0x7B), 57344.0f);
  EXPECT_EQ(fp8_e5m2_decode(0x7C), kInf);
  EXPECT_EQ(fp8_e5m2_decode(0xFC), -kInf);
  for (uint8_t code : {0x7D, 0x7E, 0x7F, 0xFD, 0xFE, 0xFF}) EXPECT_TRUE(std::isnan(fp8_e5m2_decode(code)));
  EXPECT_EQ(fp8_e5m2_decode(0x3C), 1.0f);
  EXPECT_EQ(fp8_e5m2_decode(0x04), std::ldexp(1.0f, -14));  // smallest normal
  EXPECT_EQ(fp8_e5m2_decode(0x01), std::ldexp(1.0f, -16));  // smallest subnormal
  EXPECT_EQ(fp8_e5m2_encode(1e6f), 0x7B);  // saturating (Transformer Engine's cast)
  EXPECT_EQ(fp8_e5m2_encode(kInf), 0x7B);
  EXPECT_EQ(fp8_e5m2_encode(-kInf), 0xFB);
  EXPECT_EQ(fp8_e5m2_encode(kNan), 0x7F);
  EXPECT_EQ(fp8_e5m2_encode(1.125f), 0x3C);  // 1 (0x3C) / 1.25 (0x3D) tie: even
  EXPECT_EQ(fp8_e5m2_encode(1.375f), 0x3E);  // 1.25 (0x3D) / 1.5 (0x3E) tie: even
  for (int code = 0; code < 256; ++code) {
    if ((code & 0x7F) >= 0x7C) continue;
    const float v = fp8_e5m2_decode(static_cast<uint8_t>(code));
    EXPECT_EQ(static_cast<double>(v), definition_value(static_cast<uint8_t>(code), kQfp8E5M2, 15));
    EXPECT_EQ(fp8_e5m2_encode(v), code);
  }
}

TEST(Fp8Codec, CurrentScalingMapsAmaxToTheFormatMax) {
  EXPECT_EQ(fp8_scale_for_amax(kFp8E4M3Max, 2.0f), 224.0f);
  EXPECT_EQ(fp8_scale_for_amax(kFp8E4M3Max, 0.0f), 1.0f);
  EXPECT_EQ(fp8_scale_for_amax(kFp8E5M2Max, std::numeric_limits<float>::denorm_min()), kFltMax);
  EXPECT_EQ(fp8_e4m3_fake_quant(2.0f, 224.0f), 2.0f);
  EXPECT_EQ(fp8_e4m3_fake_quant(-2.0f, 224.0f), -2.0f);
  EXPECT_EQ(fp8_e4m3_fake_quant(3.0f, 224.0f), 2.0f);  // beyond amax: saturates
  EXPECT_EQ(fp8_e5m2_fake_quant(1.0f, 4.0f), 1.0f);
  EXPECT_TRUE(std::isnan(fp8_e5m2_fake_quant(kNan, 4.0f)));
  // 0.3 * 224 = 67.2 lies between 64 and 72 (step 8): 64, so 64 / 224.
  EXPECT_EQ(fp8_e4m3_fake_quant(0.3f, 224.0f), 64.0f * (1.0f / 224.0f));
}

TEST(Int8Codec, SymmetricRoundToEvenAndClamp) {
  const float scale = int8_scale_for_amax(2.54f);
  EXPECT_EQ(scale, 2.54f / 127.0f);
  EXPECT_EQ(int8_scale_for_amax(0.0f), 1.0f);
  EXPECT_EQ(int8_encode(2.54f, scale), 127);
  EXPECT_EQ(int8_encode(-100.0f, scale), -127);  // -128 is never used
  EXPECT_EQ(int8_encode(-kInf, scale), -127);
  EXPECT_EQ(int8_encode(kInf, scale), 127);
  // x times fl(1 / scale), as PyTorch's fake_quantize_per_tensor_affine, not x / scale: here
  // x / scale rounds to -125 and x * (1 / scale) to -126.
  const float near_tie_scale = int8_scale_for_amax(1.00001001f);
  EXPECT_EQ(int8_encode(-0.988198876f, near_tie_scale), -126);
  EXPECT_EQ(int8_scale_for_amax(1e-40f), FLT_MIN);  // the floor keeps 1 / scale finite
  EXPECT_EQ(int8_encode(2.5f, 1.0f), 2);   // ties to even
  EXPECT_EQ(int8_encode(3.5f, 1.0f), 4);
  EXPECT_EQ(int8_encode(-2.5f, 1.0f), -2);
  EXPECT_EQ(int8_encode(kNan, 1.0f), 0);  // documented: no NaN code
  EXPECT_TRUE(std::isnan(int8_fake_quant(kNan, scale)));
  EXPECT_EQ(int8_fake_quant(0.7f, 0.5f), 0.5f);
  EXPECT_EQ(int8_fake_quant(0.75f, 0.5f), 1.0f);  // 1.5 -> 2
  EXPECT_EQ(int8_decode(-127, 0.5f), -63.5f);
}

// ---- packed codes ----

TEST(PackedCodes, DecodeOfEncodeEqualsFakeQuantForEveryFormat) {
  const int64_t channels = 4, inner = 300;
  std::vector<float> x = gaussian(channels * inner, 9, 3.0f);
  x[0] = -0.0f;
  x[1] = 1e30f;  // large: sets channel 0's amax, so nothing saturates there but is covered
  x[inner + 3] = -1e-40f;  // subnormal
  std::vector<QuantSpec> specs;
  for (Granularity g : {Granularity::kPerTensor, Granularity::kPerChannel}) {
    specs.push_back(qfp8_spec(std::nullopt, BiasMode::kMse, g));
    specs.push_back(qfp8_spec(kQfp8E4M3, BiasMode::kFixed, g, 9));  // saturates the 1e30
    for (QuantFormat f : {QuantFormat::kInt8, QuantFormat::kFp8E4M3, QuantFormat::kFp8E5M2}) {
      QuantSpec s;
      s.format = f;
      s.granularity = g;
      specs.push_back(s);
    }
  }
  for (const QuantSpec& spec : specs) {
    const QuantParams p = choose_quant_params(spec, x.data(), channels, inner, "w");
    const std::vector<uint8_t> codes = encode_packed(p, x.data(), channels, inner, "w");
    ASSERT_EQ(codes.size(), x.size());
    std::vector<float> decoded(x.size()), fake(x.size());
    decode_packed(p, codes.data(), decoded.data(), channels, inner);
    fake_quantize_reference(p, x.data(), fake.data(), channels, inner);
    for (size_t i = 0; i < x.size(); ++i)
      ASSERT_TRUE(same_bits(decoded[i], fake[i])) << quant_spec_summary(spec) << " element " << i;
  }
}

TEST(PackedCodes, NanIsRejectedNamingTheTensor) {
  const std::vector<float> x = {1.0f, kNan, 2.0f};
  QuantParams p;
  p.format = QuantFormat::kQfp8;
  p.layouts = {kQfp8E3M4};
  p.betas = {3};
  const std::string msg = error_of([&] { encode_packed(p, x.data(), 1, 3, "blocks.1.attn.qkv.weight"); });
  EXPECT_NE(msg.find("blocks.1.attn.qkv.weight"), std::string::npos) << msg;
  EXPECT_NE(msg.find("NaN"), std::string::npos) << msg;
  QuantParams none;
  EXPECT_THROW(encode_packed(none, x.data(), 1, 1, "w"), Error);
}

}  // namespace
}  // namespace qilin
