// The fake-quant kernels (kernels/cpu/quant.h) against the scalar codec of core/qfp8.h, bit
// for bit, on every SIMD target this CPU has (AVX2, AVX-512): every QFP8 layout at both ends
// of its β range and between, int8 and OCP FP8 at extreme scales, per tensor and per channel
// (mixed layouts and β per row), sizes 1 .. 2^16 with odd tails, and inputs at every code
// value, every midpoint between neighbouring codes and one ulp either side, ±0, ±Inf, NaN,
// float32 subnormals, values beyond max and random bit patterns. Then the straight-through
// estimator's exact semantics, amax, the fake_quantize autograd op, choose_params against
// choose_quant_params, and the error messages.
//
// No tolerances: every comparison is exact (NaN equals any NaN), because the contract is bit
// equality with the scalar codec. The STE is checked by its definition, not by finite
// differences: fake quantization is piecewise constant, its true derivative is 0 almost
// everywhere, and the STE is a chosen surrogate (DESIGN.md §4.2).
#include <gtest/gtest.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "core/autograd.h"
#include "core/error.h"
#include "core/ops/quant.h"
#include "core/qfp8.h"
#include "hwy/targets.h"
#include "kernels/cpu/quant.h"
#include "tests/testing.h"

namespace qilin {
namespace {

using testing::bits_of;
using testing::from_bits;
using testing::same_bits;

namespace kc = kernels::cpu;

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();


template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

// ---- targets ----

void for_each_simd_target(const std::function<void(const std::string&)>& body) {
  hwy::SetSupportedTargetsForTest(0);
  std::vector<int64_t> targets;
  for (int64_t t : {HWY_AVX3, HWY_AVX2})
    if (hwy::SupportedTargets() & t) targets.push_back(t);
  ASSERT_FALSE(targets.empty()) << "no AVX2 / AVX-512 target on this CPU";
  for (int64_t t : targets) {
    hwy::SetSupportedTargetsForTest(t);
    body(hwy::TargetName(t));
  }
  hwy::SetSupportedTargetsForTest(0);
}

// ---- parameter sets ----

QuantChannel qfp8(Qfp8Layout layout, int32_t beta) { return {QuantFormat::kQfp8, layout, beta, 1.0f}; }
QuantChannel scaled(QuantFormat format, float scale) { return {format, {}, 0, scale}; }

// Both ends of the layout's β range (max finite, smallest subnormal nonzero), the standard
// bias and a spread between.
std::vector<int32_t> test_biases(Qfp8Layout l) {
  std::vector<int32_t> in_range;
  for (int32_t b = kQfp8MinBias; b <= kQfp8MaxBias; ++b)
    if (qfp8_bias_in_range(l, b)) in_range.push_back(b);
  const int32_t lo = in_range.front(), hi = in_range.back(), std_bias = qfp8_standard_bias(l);
  return {lo, lo + 1, -40, 0, std_bias, std_bias + 3, 60, hi - 1, hi};
}

std::vector<QuantChannel> all_qfp8_channels() {
  std::vector<QuantChannel> out;
  for (Qfp8Layout l : kQfp8Layouts)
    for (int32_t b : test_biases(l)) out.push_back(qfp8(l, b));
  return out;
}

// Scales from ordinary, tiny and huge amax, and the clamped extremes (FLT_MIN for int8,
// FLT_MAX for FP8). FP8 also takes scales no amax gives but a loaded checkpoint may hold:
// 1e-37, where 2^8 / scale (E4M3's decode factor) overflows, and a subnormal, whose
// 1 / scale is Inf.
std::vector<QuantChannel> scaled_channels(QuantFormat format) {
  std::vector<float> amaxes = {1.0f, 3.7e-3f, 6.5e4f, 1e-30f, 3e38f};
  std::vector<QuantChannel> out;
  for (float amax : amaxes) {
    const float scale = format == QuantFormat::kInt8 ? int8_scale_for_amax(amax)
                        : format == QuantFormat::kFp8E4M3 ? fp8_scale_for_amax(kFp8E4M3Max, amax)
                                                          : fp8_scale_for_amax(kFp8E5M2Max, amax);
    out.push_back(scaled(format, scale));
  }
  out.push_back(scaled(format, format == QuantFormat::kInt8 ? FLT_MIN : FLT_MAX));
  if (format != QuantFormat::kInt8) {
    out.push_back(scaled(format, 1e-37f));
    out.push_back(scaled(format, 1e-40f));
  }
  return out;
}

// ---- inputs ----

// Values that hit every branch of the codec for channel c: ±0, ±Inf, NaNs, float32
// subnormals and extremes, each code value, each midpoint between neighbouring code values
// and one ulp either side of it, max and one ulp beyond, far beyond; in x's units (codes of
// scaled formats are divided by the scale, so their midpoints are near-ties).
std::vector<float> edge_values(const QuantChannel& c) {
  std::vector<float> v = {0.0f, -0.0f, kInf, -kInf, kNaN, -kNaN, from_bits(0x7F800001u),
                          std::numeric_limits<float>::denorm_min(), -std::numeric_limits<float>::denorm_min(),
                          from_bits(0x00400000u), FLT_MIN, -FLT_MIN, FLT_MAX, -FLT_MAX};
  const float clip = quant_clip_max(c);
  for (float m : {clip, std::nextafter(clip, kInf), std::nextafter(clip, 0.0f), clip * 1.5f, clip * 1e10f})
    for (float s : {1.0f, -1.0f}) v.push_back(s * m);
  std::vector<float> codes;
  for (int code = 0; code < 128; ++code) {
    const float value = quant_decode(c, static_cast<uint8_t>(code));
    if (std::isfinite(value)) codes.push_back(value);
  }
  std::sort(codes.begin(), codes.end());
  for (size_t i = 0; i < codes.size(); ++i) {
    std::vector<float> near = {codes[i]};
    if (i + 1 < codes.size()) {
      const float mid = static_cast<float>((static_cast<double>(codes[i]) + codes[i + 1]) / 2);
      near.insert(near.end(), {mid, std::nextafter(mid, kInf), std::nextafter(mid, 0.0f)});
    }
    for (float m : near) {
      v.push_back(m);
      v.push_back(-m);
    }
  }
  return v;
}

// n inputs for channel c: the edge values (cycled), then uniform values over ±1.3 max, then
// log-uniform magnitudes from a quarter of the smallest step to twice max, then random bits.
std::vector<float> inputs_for(const QuantChannel& c, int64_t n, uint32_t seed) {
  std::vector<float> edges = edge_values(c);
  std::mt19937 gen(seed);
  const double clip = std::min<double>(quant_clip_max(c), FLT_MAX);
  const double smallest = std::max<double>(std::fabs(quant_decode(c, 0x01)), 1e-45);
  std::uniform_real_distribution<double> uniform(-1.3 * clip, 1.3 * clip);
  std::uniform_real_distribution<double> log_mag(std::log(smallest / 4), std::log(clip * 2));
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const int64_t kind = i < static_cast<int64_t>(edges.size()) ? -1 : (i % 3);
    switch (kind) {
      case -1: v[i] = edges[i]; break;
      case 0: v[i] = static_cast<float>(uniform(gen)); break;
      case 1: v[i] = static_cast<float>((gen() & 1 ? 1 : -1) * std::exp(log_mag(gen))); break;
      default: v[i] = from_bits(static_cast<uint32_t>(gen())); break;
    }
  }
  // Short runs see edge values too: rotate by the seed so sizes 1, 7, ... start elsewhere.
  if (n < static_cast<int64_t>(edges.size()))
    for (int64_t i = 0; i < n; ++i) v[i] = edges[(i + seed) % edges.size()];
  return v;
}

// ---- the kernel checks ----

// Runs every kernel on x: [channels, inner] with `params` (1 or `channels` entries) and
// compares each element with the scalar codec: forward (also in place), backward = and +=,
// encode and decode. Stops at the first mismatch of each kernel, naming it.
void check_kernels(const std::vector<QuantChannel>& params, const std::vector<float>& x,
                   int64_t channels, int64_t inner, const std::string& what) {
  const int64_t n = channels * inner;
  ASSERT_EQ(static_cast<int64_t>(x.size()), n);
  const int64_t np = static_cast<int64_t>(params.size());
  auto entry = [&](int64_t i) -> const QuantChannel& { return params[np == 1 ? 0 : i / inner]; };
  auto describe = [&](int64_t i) {
    return str_cat(what, " element ", i, " x = ", x[i], " (bits 0x", std::hex, bits_of(x[i]), std::dec,
                   ") entry: ", quant_format_name(entry(i).format), " e", entry(i).layout.exponent_bits,
                   "m", entry(i).layout.mantissa_bits, " beta ", entry(i).beta, " scale ", entry(i).scale);
  };

  std::vector<float> y(n);
  kc::fake_quant_forward(params.data(), np, x.data(), y.data(), channels, inner);
  for (int64_t i = 0; i < n; ++i) {
    const float expected = quant_fake(entry(i), x[i]);
    if (!same_bits(y[i], expected)) {
      ADD_FAILURE() << "forward: " << describe(i) << ": got " << y[i] << ", expected " << expected;
      break;
    }
  }
  std::vector<float> in_place = x;
  kc::fake_quant_forward(params.data(), np, in_place.data(), in_place.data(), channels, inner);
  for (int64_t i = 0; i < n; ++i) {
    if (!same_bits(in_place[i], y[i])) {
      ADD_FAILURE() << "forward in place: " << describe(i);
      break;
    }
  }

  // dy and the old dx: values whose sum is exact or not, either way compared bit for bit.
  std::vector<float> dy(n), dx_old(n);
  std::mt19937 gen(static_cast<uint32_t>(n));
  std::uniform_real_distribution<float> dist(-2.0f, 2.0f);
  for (int64_t i = 0; i < n; ++i) {
    dy[i] = dist(gen);
    dx_old[i] = dist(gen);
  }
  for (bool accumulate : {false, true}) {
    std::vector<float> dx = dx_old;
    kc::fake_quant_backward(params.data(), np, x.data(), dy.data(), dx.data(), channels, inner,
                            accumulate);
    for (int64_t i = 0; i < n; ++i) {
      const bool pass = entry(i).format == QuantFormat::kNone || std::fabs(x[i]) <= quant_clip_max(entry(i));
      const float expected = accumulate ? (pass ? dx_old[i] + dy[i] : dx_old[i]) : (pass ? dy[i] : 0.0f);
      if (!same_bits(dx[i], expected)) {
        ADD_FAILURE() << "backward" << (accumulate ? " +=: " : ": ") << describe(i) << ": got "
                      << dx[i] << ", expected " << expected;
        break;
      }
    }
  }

  if (params[0].format == QuantFormat::kNone) return;
  std::vector<uint8_t> codes(n);
  kc::quant_encode_packed(params.data(), np, x.data(), codes.data(), channels, inner);
  for (int64_t i = 0; i < n; ++i) {
    const uint8_t expected = quant_encode(entry(i), x[i]);
    if (codes[i] != expected) {
      ADD_FAILURE() << "encode: " << describe(i) << ": got 0x" << std::hex << int{codes[i]}
                    << ", expected 0x" << int{expected};
      break;
    }
  }
  // Decode every byte value (cycled), not only the ones encode produced.
  for (int64_t i = 0; i < n; ++i) codes[i] = static_cast<uint8_t>((i * 37 + 11) & 0xFF);
  std::vector<float> decoded(n);
  kc::quant_decode_packed(params.data(), np, codes.data(), decoded.data(), channels, inner);
  for (int64_t i = 0; i < n; ++i) {
    const float expected = quant_decode(entry(i), codes[i]);
    if (!same_bits(decoded[i], expected)) {
      ADD_FAILURE() << "decode: " << what << " element " << i << " code 0x" << std::hex
                    << int{codes[i]} << std::dec << ": got " << decoded[i] << ", expected " << expected;
      break;
    }
  }
}

// Per tensor: sizes 1 .. 2^16 with odd tails around both vector widths.
const std::vector<int64_t> kSizes = {1, 2, 7, 8, 15, 16, 17, 31, 33, 100, 1000, 4099, 65536 + 3};

void check_per_tensor(const QuantChannel& c, const std::string& target) {
  uint32_t seed = 1;
  for (int64_t n : kSizes) {
    const std::vector<float> x = inputs_for(c, n, seed++);
    check_kernels({c}, x, 1, n, str_cat(target, " n = ", n));
  }
}

TEST(QuantKernels, Qfp8MatchesTheScalarCodecForEveryLayoutAndBiasEdge) {
  for_each_simd_target([](const std::string& target) {
    for (const QuantChannel& c : all_qfp8_channels())
      check_per_tensor(c, str_cat(target, " qfp8 ", qfp8_layout_name(c.layout), " beta ", c.beta));
  });
}

TEST(QuantKernels, Int8AndFp8MatchTheScalarCodecAtExtremeScales) {
  for_each_simd_target([](const std::string& target) {
    for (QuantFormat f : {QuantFormat::kInt8, QuantFormat::kFp8E4M3, QuantFormat::kFp8E5M2})
      for (const QuantChannel& c : scaled_channels(f))
        check_per_tensor(c, str_cat(target, " ", quant_format_name(f), " scale ", c.scale));
  });
}

TEST(QuantKernels, FormatNoneIsTheIdentityAndPassesEveryGradient) {
  for_each_simd_target([](const std::string& target) {
    const QuantChannel none{};
    check_per_tensor(none, str_cat(target, " none"));
  });
}

// Random float32 bit patterns (every exponent, NaN payloads, subnormals) plus a strided
// sweep of all 2^32 patterns.
TEST(QuantKernels, RandomBitPatternsMatchTheScalarCodec) {
  constexpr int64_t kCount = 1 << 18;
  std::vector<float> x(kCount);
  std::mt19937 gen(7);
  for (int64_t i = 0; i < kCount; ++i)
    x[i] = from_bits(i % 2 ? static_cast<uint32_t>(gen()) : static_cast<uint32_t>(i) * 16411u);
  std::vector<QuantChannel> channels;
  for (Qfp8Layout l : kQfp8Layouts) {
    const std::vector<int32_t> b = test_biases(l);
    for (int32_t beta : {b.front(), qfp8_standard_bias(l), b.back()}) channels.push_back(qfp8(l, beta));
  }
  for (QuantFormat f : {QuantFormat::kInt8, QuantFormat::kFp8E4M3, QuantFormat::kFp8E5M2})
    channels.push_back(scaled_channels(f).front());
  for_each_simd_target([&](const std::string& target) {
    for (const QuantChannel& c : channels)
      check_kernels({c}, x, 1, kCount, str_cat(target, " random bits ", quant_format_name(c.format),
                                               " e", c.layout.exponent_bits, " beta ", c.beta));
  });
}

// Per channel: each row its own layout and β (layout auto per channel) or scale; rows of
// every length class (1, shorter than a vector, odd, long); and one entry for many rows.
TEST(QuantKernels, PerChannelUsesEachRowsParameters) {
  struct Geometry {
    int64_t channels, inner;
  };
  const std::vector<Geometry> geometries = {{1, 4099}, {3, 17}, {8, 33}, {64, 1}, {5, 4099}, {256, 256}};
  const std::vector<QuantChannel> qfp8_pool = all_qfp8_channels();
  for_each_simd_target([&](const std::string& target) {
    for (QuantFormat f : {QuantFormat::kQfp8, QuantFormat::kInt8, QuantFormat::kFp8E4M3, QuantFormat::kFp8E5M2}) {
      const std::vector<QuantChannel> pool = f == QuantFormat::kQfp8 ? qfp8_pool : scaled_channels(f);
      for (const Geometry& g : geometries) {
        std::vector<QuantChannel> params;
        std::vector<float> x;
        for (int64_t c = 0; c < g.channels; ++c) {
          params.push_back(pool[(c * 7 + 3) % pool.size()]);
          const std::vector<float> row = inputs_for(params.back(), g.inner, static_cast<uint32_t>(c + 1));
          x.insert(x.end(), row.begin(), row.end());
        }
        const std::string what = str_cat(target, " ", quant_format_name(f), " [", g.channels, ", ", g.inner, "]");
        check_kernels(params, x, g.channels, g.inner, what + " per channel");
        check_kernels({params[0]}, x, g.channels, g.inner, what + " one entry");
      }
    }
  });
}

// ---- the straight-through estimator, by value ----

TEST(QuantSte, GradientPassesInsideAndAtMaxAndIsZeroWhereClippedOrNan) {
  // e3m4 with β = 3: max = (2 - 2^-4) 2^(7 - 3) = 31.
  const QuantChannel c = qfp8(kQfp8E3M4, 3);
  ASSERT_EQ(quant_clip_max(c), 31.0f);
  const std::vector<float> x = {0.0f, -0.0f, 1.3f, -30.9f, 31.0f, -31.0f, std::nextafter(31.0f, kInf),
                                -32.0f, 1e30f, kInf, -kInf, kNaN, 1e-45f};
  const std::vector<bool> passes = {true, true, true, true, true, true, false,
                                    false, false, false, false, false, true};
  const int64_t n = static_cast<int64_t>(x.size());
  const std::vector<float> dy(n, 2.5f);
  for_each_simd_target([&](const std::string& target) {
    std::vector<float> dx(n, 7.0f);
    kc::fake_quant_backward(&c, 1, x.data(), dy.data(), dx.data(), 1, n, false);
    for (int64_t i = 0; i < n; ++i)
      EXPECT_EQ(dx[i], passes[i] ? 2.5f : 0.0f) << target << " x = " << x[i];
    std::vector<float> acc(n, 1.0f);
    kc::fake_quant_backward(&c, 1, x.data(), dy.data(), acc.data(), 1, n, true);
    for (int64_t i = 0; i < n; ++i)
      EXPECT_EQ(acc[i], passes[i] ? 3.5f : 1.0f) << target << " += at x = " << x[i];
  });
}

TEST(QuantSte, ScaledFormatsClipAtTheirMaxInXUnits) {
  // int8 scale 0.5: max 63.5; fp8 e4m3 scale 2: max 224; fp8 e5m2 scale 0.25: max 229376.
  struct Case {
    QuantChannel c;
    float max;
  };
  for (const Case& k : {Case{scaled(QuantFormat::kInt8, 0.5f), 63.5f},
                        Case{scaled(QuantFormat::kFp8E4M3, 2.0f), 224.0f},
                        Case{scaled(QuantFormat::kFp8E5M2, 0.25f), 229376.0f}}) {
    const std::vector<float> x = {k.max, -k.max, std::nextafter(k.max, kInf), k.max / 3};
    const std::vector<float> dy = {1.0f, 2.0f, 3.0f, 4.0f};
    std::vector<float> dx(4);
    kc::fake_quant_backward(&k.c, 1, x.data(), dy.data(), dx.data(), 1, 4, false);
    EXPECT_EQ(dx, (std::vector<float>{1.0f, 2.0f, 0.0f, 4.0f})) << quant_format_name(k.c.format);
  }
}

// ---- amax ----

TEST(QuantAmax, MaxAbsOverEveryLengthAndNanAnywhereGivesNan) {
  for_each_simd_target([](const std::string& target) {
    for (int64_t n : {int64_t{1}, int64_t{7}, int64_t{16}, int64_t{33}, int64_t{65536 * 3 + 5}}) {
      std::vector<float> x = testing::uniform({n}, static_cast<uint32_t>(n)).to_vector();
      float expected = 0.0f;
      for (float v : x) expected = std::max(expected, std::fabs(v));
      EXPECT_EQ(kc::amax_forward(x.data(), n), expected) << target << " n = " << n;
      x[n - 1] = -3.0f * (expected + 1.0f);  // the largest magnitude in the tail, negative
      EXPECT_EQ(kc::amax_forward(x.data(), n), 3.0f * (expected + 1.0f)) << target << " n = " << n;
      for (int64_t at : {int64_t{0}, n / 2, n - 1}) {
        std::vector<float> y = x;
        y[at] = -kNaN;
        EXPECT_TRUE(std::isnan(kc::amax_forward(y.data(), n))) << target << " NaN at " << at;
        y[at] = -kInf;
        EXPECT_EQ(kc::amax_forward(y.data(), n), kInf) << target << " -Inf at " << at;
      }
    }
    const float zeros[3] = {-0.0f, 0.0f, -0.0f};
    EXPECT_TRUE(same_bits(kc::amax_forward(zeros, 3), 0.0f)) << target << ": |-0| is +0";
    EXPECT_EQ(kc::amax_forward(nullptr, 0), 0.0f) << target;
  });
}

TEST(QuantAmax, PerChannelIsTheMaxOfEachRow) {
  for_each_simd_target([](const std::string& target) {
    for (int64_t inner : {int64_t{1}, int64_t{5}, int64_t{1027}}) {
      const int64_t channels = 9;
      std::vector<float> x = testing::uniform({channels, inner}, 3).to_vector();
      x[4 * inner + inner / 2] = kNaN;
      x[6 * inner] = -kInf;
      std::vector<float> out(channels);
      kc::amax_per_channel(x.data(), channels, inner, out.data());
      for (int64_t c = 0; c < channels; ++c) {
        float expected = 0.0f;
        for (int64_t i = 0; i < inner; ++i) expected = std::max(expected, std::fabs(x[c * inner + i]));
        if (c == 4) EXPECT_TRUE(std::isnan(out[c])) << target << " inner " << inner;
        else EXPECT_EQ(out[c], expected) << target << " row " << c << " inner " << inner;
      }
    }
  });
}

// ---- the op ----

TEST(FakeQuantize, PerChannelAlongAxisZeroEqualsTheReferenceLoop) {
  Tensor w = testing::uniform({6, 5, 3}, 11, -2.0f, 2.0f);
  QuantSpec spec;
  spec.format = QuantFormat::kQfp8;
  spec.layout = std::nullopt;  // layout auto: layouts differ per channel
  spec.bias = BiasMode::kMse;
  spec.granularity = Granularity::kPerChannel;
  const QuantParams p = choose_params(spec, w, "w");
  ASSERT_EQ(p.size(), 6);
  std::vector<float> expected(w.numel());
  fake_quantize_reference(p, w.data<float>(), expected.data(), 6, 15);
  const std::vector<float> y = fake_quantize(w, p, 0).to_vector();
  for (size_t i = 0; i < y.size(); ++i) ASSERT_TRUE(same_bits(y[i], expected[i])) << "element " << i;
}

TEST(FakeQuantize, PerChannelAlongAnInnerAxisAndPerTensorWithAnyAxis) {
  Tensor x = testing::uniform({2, 4, 3}, 12, -5.0f, 5.0f);
  QuantParams p;
  p.format = QuantFormat::kInt8;
  p.scales = {0.01f, 0.02f, 0.05f, 0.1f};
  const std::vector<float> xv = x.to_vector(), y = fake_quantize(x, p, 1).to_vector();
  for (int64_t i = 0; i < x.numel(); ++i) {
    const int64_t c = (i / 3) % 4;
    ASSERT_TRUE(same_bits(y[i], int8_fake_quant(xv[i], p.scales[c]))) << "element " << i;
  }
  QuantParams one;
  one.format = QuantFormat::kFp8E4M3;
  one.scales = {3.0f};
  for (int64_t axis : {int64_t{-1}, int64_t{0}, int64_t{2}}) {
    const std::vector<float> z = fake_quantize(x, one, axis).to_vector();
    for (int64_t i = 0; i < x.numel(); ++i)
      ASSERT_TRUE(same_bits(z[i], fp8_e4m3_fake_quant(xv[i], 3.0f))) << "axis " << axis << " element " << i;
  }
  QuantParams none;
  EXPECT_TRUE(fake_quantize(x, none, -1).same(x)) << "format none returns x itself";
}

TEST(FakeQuantize, BackwardThroughAutogradIsTheStraightThroughEstimator) {
  QuantParams p;
  p.format = QuantFormat::kQfp8;
  p.layouts = {kQfp8E4M3, kQfp8E2M5};
  p.betas = {7, 1};  // max 480 and (2 - 2^-5) 2^2 = 7.875
  Tensor x = Tensor::from_vector({100.0f, -480.0f, 481.0f, 0.3f, 7.875f, -7.9f, 8.0f, kNaN}, {2, 4});
  x.set_requires_grad(true);
  Tensor gy = Tensor::from_vector({1, 2, 3, 4, 5, 6, 7, 8}, {2, 4});
  fake_quantize(x, p, 0).backward(gy);
  EXPECT_EQ(x.grad().to_vector(), (std::vector<float>{1, 2, 0, 4, 5, 0, 0, 0}));
  // The gradient accumulates across uses, as any op's: twice through the op gives 2x.
  x.zero_grad();
  Tensor y = fake_quantize(x, p, 0);
  Tensor two = add(y, fake_quantize(x, p, 0));
  two.backward(gy);
  EXPECT_EQ(x.grad().to_vector(), (std::vector<float>{2, 4, 0, 8, 10, 0, 0, 0}));
}

// With the input's amax given, the backward skips the mask pass only when no channel clips
// below that amax; the gradient equals the masked one either way.
TEST(FakeQuantize, KnownAmaxGivesTheSameGradientAndKeepsTheMaskWhereClipped) {
  Tensor x = testing::uniform({4, 1000}, 21, -3.0f, 3.0f);
  x.set_requires_grad(true);
  const float amax = tensor_amax(x);
  Tensor gy = testing::uniform({4, 1000}, 22, -1.0f, 1.0f);
  auto grad_of = [&](const QuantParams& p, std::optional<float> hint) {
    x.zero_grad();
    fake_quantize(x, p, 0, hint).backward(gy);
    return x.grad().to_vector();
  };
  QuantParams from_amax;  // β from this amax: max >= amax, nothing clipped
  from_amax.format = QuantFormat::kQfp8;
  from_amax.layouts = {kQfp8E3M4};
  from_amax.betas = {bias_for_amax(amax, kQfp8E3M4, "x")};
  ASSERT_GE(quant_clip_max(from_amax.channel(0)), amax);
  EXPECT_EQ(grad_of(from_amax, amax), gy.to_vector());
  EXPECT_EQ(grad_of(from_amax, amax), grad_of(from_amax, std::nullopt));
  QuantParams clipping = from_amax;  // one β more halves max: the largest values clip
  clipping.betas = {from_amax.betas[0] + 1};
  const std::vector<float> masked = grad_of(clipping, std::nullopt);
  EXPECT_EQ(grad_of(clipping, amax), masked);
  EXPECT_TRUE(std::count(masked.begin(), masked.end(), 0.0f) > 0) << "some elements clip";
  QuantParams per_channel;  // one channel of four clips: the mask stays
  per_channel.format = QuantFormat::kInt8;
  per_channel.scales = {int8_scale_for_amax(amax), int8_scale_for_amax(amax), int8_scale_for_amax(amax / 2),
                        int8_scale_for_amax(amax)};
  EXPECT_EQ(grad_of(per_channel, amax), grad_of(per_channel, std::nullopt));
  EXPECT_NE(grad_of(per_channel, amax), gy.to_vector());
}

// Where no element is clipped, the STE is the identity's gradient: finite differences of the
// composite sum(w * (x - fake_quant(x).detach() + fake_quant(x))) would hide it; instead the
// format-none op (identity) is checked by finite differences, and the quantized one above.
TEST(FakeQuantize, FormatNoneBackwardMatchesFiniteDifferences) {
  QuantParams none;
  testing::check_gradients(
      [&](const std::vector<Tensor>& in) { return mul(fake_quantize(in[0], none, -1), in[0]); },
      {testing::uniform({3, 4}, 5)});
}

TEST(FakeQuantize, MismatchedChannelsNameTheOpCountsAndShape) {
  Tensor w = testing::uniform({4, 3}, 1);
  QuantParams p;
  p.format = QuantFormat::kInt8;
  p.scales = {1.0f, 1.0f, 1.0f, 1.0f, 1.0f};
  const std::string m = error_of([&] { fake_quantize(w, p, 0); });
  EXPECT_NE(m.find("fake_quantize"), std::string::npos) << m;
  EXPECT_NE(m.find("5 parameter entries"), std::string::npos) << m;
  EXPECT_NE(m.find("4 channels along axis 0"), std::string::npos) << m;
  EXPECT_NE(m.find("[4, 3]"), std::string::npos) << m;
  p.scales = {1.0f, 1.0f, 1.0f};
  EXPECT_NE(error_of([&] { fake_quantize(w, p, 0); }).find("3 parameter entries"), std::string::npos);
  EXPECT_NE(error_of([&] { fake_quantize(w, p, -1); }).find("no channel axis"), std::string::npos);
  EXPECT_NE(error_of([&] { fake_quantize(w, p, 2); }).find("channel axis 2"), std::string::npos);
  QuantParams bad;
  bad.format = QuantFormat::kQfp8;
  bad.layouts = {kQfp8E5M2};
  bad.betas = {-120};  // max 2^151: not a float32
  EXPECT_NE(error_of([&] { fake_quantize(w, bad, -1); }).find("bias -120"), std::string::npos);
  const QuantChannel c = qfp8(kQfp8E3M4, 3);
  float v[4] = {};
  EXPECT_NE(error_of([&] { kc::fake_quant_forward(&c, 3, v, v, 2, 2); }).find("3 parameter entries for 2 channels"),
            std::string::npos);
}

// ---- amax and parameter front-ends ----

TEST(QuantFrontEnds, TensorAndChannelAmax) {
  Tensor w = Tensor::from_vector({1, -5, 2, 0, -0.5f, 0.25f}, {2, 3});
  EXPECT_EQ(tensor_amax(w), 5.0f);
  EXPECT_EQ(channel_amax(w).to_vector(), (std::vector<float>{5.0f, 0.5f}));
  EXPECT_EQ(channel_amax(w).shape(), (Shape{2}));
}

TEST(QuantFrontEnds, ChooseParamsEqualsChooseQuantParamsForEverySpec) {
  Tensor act = testing::uniform({7, 33}, 21, -3.0f, 3.0f);
  std::vector<QuantSpec> specs;
  for (QuantFormat f : {QuantFormat::kNone, QuantFormat::kInt8, QuantFormat::kFp8E4M3, QuantFormat::kFp8E5M2,
                        QuantFormat::kQfp8}) {
    for (Granularity g : {Granularity::kPerTensor, Granularity::kPerChannel}) {
      for (BiasMode b : {BiasMode::kAmax, BiasMode::kMse, BiasMode::kFixed}) {
        for (std::optional<Qfp8Layout> l : {std::optional<Qfp8Layout>(kQfp8E3M4),
                                            std::optional<Qfp8Layout>(kQfp8E5M2), std::optional<Qfp8Layout>()}) {
          QuantSpec s;
          s.format = f;
          s.granularity = g;
          s.bias = b;
          s.fixed_bias = 5;
          s.layout = l;
          specs.push_back(s);
        }
      }
    }
  }
  for (const QuantSpec& s : specs) {
    const QuantParams fast = choose_params(s, act, "act");
    const QuantParams ref = choose_quant_params(s, act.data<float>(), s.granularity == Granularity::kPerChannel ? 7 : 1,
                                                s.granularity == Granularity::kPerChannel ? 33 : 7 * 33, "act");
    EXPECT_EQ(fast.format, ref.format) << quant_spec_summary(s);
    EXPECT_EQ(fast.layouts, ref.layouts) << quant_spec_summary(s);
    EXPECT_EQ(fast.betas, ref.betas) << quant_spec_summary(s);
    EXPECT_EQ(fast.scales, ref.scales) << quant_spec_summary(s);
  }
}

TEST(QuantFrontEnds, ChooseParamsReportsNonFiniteDataAsChooseQuantParamsDoes) {
  QuantSpec s;
  s.format = QuantFormat::kQfp8;
  s.bias = BiasMode::kAmax;
  for (Granularity g : {Granularity::kPerTensor, Granularity::kPerChannel}) {
    s.granularity = g;
    for (float bad : {kNaN, -kInf}) {
      Tensor x = testing::uniform({4, 5}, 2);
      x.data<float>()[13] = bad;
      const int64_t channels = g == Granularity::kPerChannel ? 4 : 1;
      const std::string fast = error_of([&] { choose_params(s, x, "blocks.0.fc1 input"); });
      const std::string ref = error_of([&] {
        choose_quant_params(s, x.data<float>(), channels, 20 / channels, "blocks.0.fc1 input");
      });
      EXPECT_EQ(fast, ref);
      EXPECT_NE(fast.find("blocks.0.fc1 input"), std::string::npos) << fast;
    }
  }
  // An amax whose β would overflow max: bias_for_amax's error, as in choose_quant_params.
  Tensor huge = Tensor::from_vector({FLT_MAX, 1.0f}, {2});
  s.granularity = Granularity::kPerTensor;
  s.layout = kQfp8E2M5;
  EXPECT_EQ(error_of([&] { choose_params(s, huge, "h"); }),
            error_of([&] { choose_quant_params(s, huge.data<float>(), 1, 2, "h"); }));
}

}  // namespace
}  // namespace qilin
