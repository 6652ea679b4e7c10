// The host side of core/qfp8.h: names and parsing, the choice of β / layout / scale over data
// (DESIGN.md §4.2: amax, mse, fixed, layout auto), the scalar reference fake-quant loop, error
// measures and the packed 8-bit path. Errors name the tensor. The scalar codecs themselves
// live in the header (shared with the kernels).
#include "core/qfp8.h"

#include <cmath>
#include <cstring>
#include <iterator>
#include <limits>

#include "core/error.h"

namespace qilin {
namespace {

struct NamedFormat {
  QuantFormat format;
  const char* name;
};
constexpr NamedFormat kFormatNames[] = {{QuantFormat::kNone, "none"},
                                        {QuantFormat::kQfp8, "qfp8"},
                                        {QuantFormat::kInt8, "int8"},
                                        {QuantFormat::kFp8E4M3, "fp8_e4m3"},
                                        {QuantFormat::kFp8E5M2, "fp8_e5m2"}};
constexpr const char* kLayoutNames[] = {"e2m5", "e3m4", "e4m3", "e5m2"};  // kQfp8Layouts order

// Rejects sizes no tensor has and parameter counts that fit neither per-tensor nor
// per-channel.
void check_geometry(const QuantParams& params, const float* x, int64_t channels, int64_t inner,
                    const char* what) {
  QILIN_CHECK(channels >= 0 && inner >= 0, what, ": bad geometry [", channels, ", ", inner, "]");
  QILIN_CHECK(x != nullptr || channels * inner == 0, what, ": null data");
  if (params.format == QuantFormat::kNone) return;
  const int64_t size = params.size();
  QILIN_CHECK(size == 1 || size == channels, what, ": ", size, " parameter entries for ",
              channels, " channels (expected 1 or ", channels, ")");
}

// The parameters of channel c: entry c, or the only one.
QuantChannel channel_of(const QuantParams& params, int64_t c) {
  return params.channel(params.size() == 1 ? 0 : c);
}

// Σ (x_i - x'_i)² in double, x'_i = quantized(i), in one fixed order: element i goes into
// partial sum i mod 8, and the eight are added pairwise at the end. The scalar codec and the
// vector kernel's rows (below) sum the same way, so they choose the same β. Eight independent
// chains of adds, where one sequential sum was a chain of dependent adds: bias mse's search
// over the weights was 3.5 ms of a ResNet-20 QAT step, most of it that chain.
template <typename Quantized>
double sum_squared_error(const float* x, int64_t n, Quantized quantized) {
  constexpr int kLanes = 8;
  double partial[kLanes] = {};
  auto add = [&](int64_t i, int lane) {
    const double d = static_cast<double>(x[i]) - static_cast<double>(quantized(i));
    partial[lane] += d * d;
  };
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int lane = 0; lane < kLanes; ++lane) add(i + lane, lane);
  for (int lane = 0; i < n; ++i, ++lane) add(i, lane);
  return ((partial[0] + partial[1]) + (partial[2] + partial[3])) +
         ((partial[4] + partial[5]) + (partial[6] + partial[7]));
}

double squared_error(const QuantChannel& q, const float* x, int64_t n) {
  return sum_squared_error(x, n, [&](int64_t i) { return quant_fake(q, x[i]); });
}

// The same sum with x' from a row function (choose_quant_params's fake_row) into `scratch`.
double squared_error(const QuantChannel& q, const float* x, int64_t n, QuantFakeRowFn fake_row,
                     std::vector<float>* scratch) {
  if (fake_row == nullptr) return squared_error(q, x, n);
  scratch->resize(static_cast<size_t>(n));
  fake_row(q, x, scratch->data(), n);
  const float* quantized = scratch->data();
  return sum_squared_error(x, n, [quantized](int64_t i) { return quantized[i]; });
}

struct Qfp8Choice {
  Qfp8Layout layout;
  int32_t beta;
  double error;
};

// β for one layout on one group of n values with max |x| = amax, by the spec's bias mode.
// Only `bias: mse` needs the squared error; the others report it only when `want_error`
// (layout auto compares layouts by it).
Qfp8Choice choose_bias(const QuantSpec& spec, Qfp8Layout layout, const float* x, int64_t n,
                       float amax, bool want_error, const std::string& tensor_name,
                       QuantFakeRowFn fake_row, std::vector<float>* scratch) {
  Qfp8Choice best{layout, 0, 0.0};
  auto error_of = [&](int32_t beta) {
    return squared_error(QuantChannel{QuantFormat::kQfp8, layout, beta, 1.0f}, x, n, fake_row, scratch);
  };
  switch (spec.bias) {
    case BiasMode::kFixed:
      check_qfp8_bias(layout, spec.fixed_bias, tensor_name);
      best.beta = spec.fixed_bias;
      break;
    case BiasMode::kAmax: best.beta = bias_for_amax(amax, layout, tensor_name); break;
    case BiasMode::kMse: {
      // DESIGN.md §4.2: β_amax .. β_amax + 3, ties -> the smaller β (no extra clipping).
      // Larger β halves max each step: clipping the outliers buys a finer grid for the rest.
      constexpr int32_t kMseExtraBiases = 3;
      const int32_t beta_amax = bias_for_amax(amax, layout, tensor_name);
      best.beta = beta_amax;
      best.error = error_of(beta_amax);
      for (int32_t beta = beta_amax + 1; beta <= beta_amax + kMseExtraBiases; ++beta) {
        if (!qfp8_bias_in_range(layout, beta)) break;
        const double error = error_of(beta);
        if (error < best.error) {
          best.beta = beta;
          best.error = error;
        }
      }
      return best;
    }
  }
  if (want_error) best.error = error_of(best.beta);
  return best;
}

}  // namespace

// ---- names ----

const char* quant_format_name(QuantFormat format) {
  for (const NamedFormat& f : kFormatNames)
    if (f.format == format) return f.name;
  return "invalid";
}
std::optional<QuantFormat> parse_quant_format(const std::string& name) {
  for (const NamedFormat& f : kFormatNames)
    if (name == f.name) return f.format;
  return std::nullopt;
}
const char* quant_format_names() { return "none | qfp8 | int8 | fp8_e4m3 | fp8_e5m2"; }

const char* qfp8_layout_name(Qfp8Layout layout) {
  for (size_t i = 0; i < std::size(kQfp8Layouts); ++i)
    if (kQfp8Layouts[i] == layout) return kLayoutNames[i];
  return "invalid";
}
std::optional<Qfp8Layout> parse_qfp8_layout(const std::string& name) {
  for (size_t i = 0; i < std::size(kQfp8Layouts); ++i)
    if (name == kLayoutNames[i]) return kQfp8Layouts[i];
  return std::nullopt;
}
std::optional<std::optional<Qfp8Layout>> parse_qfp8_layout_or_auto(const std::string& name) {
  if (name == "auto") return std::optional<Qfp8Layout>();
  if (std::optional<Qfp8Layout> layout = parse_qfp8_layout(name)) return layout;
  return std::nullopt;
}
const char* qfp8_layout_or_auto_name(const std::optional<Qfp8Layout>& layout) {
  return layout ? qfp8_layout_name(*layout) : "auto";
}
const char* qfp8_layout_names() { return "e2m5 | e3m4 | e4m3 | e5m2 | auto"; }

const char* bias_mode_name(BiasMode mode) {
  switch (mode) {
    case BiasMode::kAmax: return "amax";
    case BiasMode::kMse: return "mse";
    case BiasMode::kFixed: return "fixed";
  }
  return "invalid";
}
std::optional<BiasMode> parse_bias_mode(const std::string& name) {
  if (name == "amax") return BiasMode::kAmax;
  if (name == "mse") return BiasMode::kMse;
  return std::nullopt;
}

const char* granularity_name(Granularity granularity) {
  switch (granularity) {
    case Granularity::kPerTensor: return "per_tensor";
    case Granularity::kPerChannel: return "per_channel";
  }
  return "invalid";
}
std::optional<Granularity> parse_granularity(const std::string& name) {
  if (name == "per_tensor") return Granularity::kPerTensor;
  if (name == "per_channel") return Granularity::kPerChannel;
  return std::nullopt;
}

std::string quant_spec_summary(const QuantSpec& spec) {
  switch (spec.format) {
    case QuantFormat::kNone: return "none";
    case QuantFormat::kQfp8: {
      const std::string bias = spec.bias == BiasMode::kFixed
                                   ? str_cat("bias=", spec.fixed_bias)
                                   : std::string(bias_mode_name(spec.bias));
      return str_cat("qfp8 ", qfp8_layout_or_auto_name(spec.layout), " ",
                     granularity_name(spec.granularity), " ", bias);
    }
    default: return str_cat(quant_format_name(spec.format), " ", granularity_name(spec.granularity));
  }
}

// ---- QuantParams ----

int64_t QuantParams::size() const {
  switch (format) {
    case QuantFormat::kNone: return 0;
    case QuantFormat::kQfp8:
      QILIN_CHECK(layouts.size() == betas.size(), "QuantParams: ", layouts.size(), " layouts but ",
                  betas.size(), " biases");
      return static_cast<int64_t>(betas.size());
    default: return static_cast<int64_t>(scales.size());
  }
}

QuantChannel QuantParams::channel(int64_t i) const {
  QuantChannel c;
  c.format = format;
  if (format == QuantFormat::kNone) return c;
  QILIN_CHECK(i >= 0 && i < size(), "QuantParams: entry ", i, " of ", size());
  if (format == QuantFormat::kQfp8) {
    c.layout = layouts[i];
    c.beta = betas[i];
  } else {
    c.scale = scales[i];
  }
  return c;
}

// ---- choosing parameters ----

void check_qfp8_bias(Qfp8Layout layout, int32_t beta, const std::string& tensor_name) {
  if (!parse_qfp8_layout(qfp8_layout_name(layout))) {
    QILIN_FAIL(tensor_name, ": unknown QFP8 layout e", layout.exponent_bits, "m",
               layout.mantissa_bits);
  }
  if (!qfp8_bias_in_range(layout, beta)) {
    QILIN_FAIL(tensor_name, ": QFP8 ", qfp8_layout_name(layout), " bias ", beta,
               " is out of range: it must be in [", kQfp8MinBias, ", ", kQfp8MaxBias,
               "] and keep max = (2 - 2^-M) 2^(2^E - 1 - bias) and the smallest subnormal "
               "finite and nonzero in float32");
  }
}

int32_t bias_for_amax(float amax, Qfp8Layout layout, const std::string& tensor_name) {
  if (!(amax >= 0.0f && amax <= std::numeric_limits<float>::max())) {
    QILIN_FAIL(tensor_name, ": amax = ", amax, " is not finite (NaN or Inf in the tensor)");
  }
  const int32_t beta = qfp8_bias_for_amax_unchecked(amax, layout);
  if (!qfp8_bias_in_range(layout, beta)) {
    QILIN_FAIL(tensor_name, ": amax = ", amax, " needs QFP8 ", qfp8_layout_name(layout),
               " bias ", beta, ", whose max is not finite in float32");
  }
  return beta;
}

float finite_amax(const float* x, int64_t n, const std::string& tensor_name) {
  float amax = 0.0f;
  bool finite = true;
  for (int64_t i = 0; i < n; ++i) {
    const float a = std::fabs(x[i]);
    finite &= a <= std::numeric_limits<float>::max();  // false for NaN and Inf
    amax = a > amax ? a : amax;
  }
  if (!finite) {
    for (int64_t i = 0; i < n; ++i)
      if (!std::isfinite(x[i]))
        QILIN_FAIL(tensor_name, ": element ", i, " is ", x[i], ": amax is not finite");
  }
  return amax;
}

QuantParams choose_quant_params(const QuantSpec& spec, const float* x, int64_t channels,
                                int64_t inner, const std::string& tensor_name, QuantFakeRowFn fake_row) {
  QuantParams params;
  params.format = spec.format;
  check_geometry(QuantParams{}, x, channels, inner, tensor_name.c_str());
  if (spec.format == QuantFormat::kNone) return params;

  const bool per_channel = spec.granularity == Granularity::kPerChannel;
  const int64_t groups = per_channel ? channels : 1;
  const int64_t group_size = per_channel ? inner : channels * inner;
  std::vector<float> scratch;
  for (int64_t g = 0; g < groups; ++g) {
    const float* xg = x + g * group_size;
    const std::string group_name =
        per_channel ? str_cat(tensor_name, " (channel ", g, ")") : tensor_name;
    const float amax = finite_amax(xg, group_size, group_name);
    switch (spec.format) {
      case QuantFormat::kNone: break;
      case QuantFormat::kQfp8: {
        Qfp8Choice best{};
        if (spec.layout) {
          best = choose_bias(spec, *spec.layout, xg, group_size, amax, false, group_name, fake_row, &scratch);
        } else {
          bool first = true;
          for (Qfp8Layout layout : kQfp8Layouts) {
            const Qfp8Choice c =
                choose_bias(spec, layout, xg, group_size, amax, true, group_name, fake_row, &scratch);
            if (first || c.error < best.error) best = c;  // ties: the earlier layout
            first = false;
          }
        }
        params.layouts.push_back(best.layout);
        params.betas.push_back(best.beta);
        break;
      }
      case QuantFormat::kInt8: params.scales.push_back(int8_scale_for_amax(amax)); break;
      case QuantFormat::kFp8E4M3:
        params.scales.push_back(fp8_scale_for_amax(kFp8E4M3Max, amax));
        break;
      case QuantFormat::kFp8E5M2:
        params.scales.push_back(fp8_scale_for_amax(kFp8E5M2Max, amax));
        break;
    }
  }
  return params;
}

// ---- reference fake-quant and error measures ----

void fake_quantize_reference(const QuantParams& params, const float* x, float* y,
                             int64_t channels, int64_t inner) {
  check_geometry(params, x, channels, inner, "fake_quantize_reference");
  for (int64_t c = 0; c < channels; ++c) {
    const QuantChannel q = channel_of(params, c);
    for (int64_t i = c * inner; i < (c + 1) * inner; ++i) y[i] = quant_fake(q, x[i]);
  }
}

double quant_squared_error(const QuantParams& params, const float* x, int64_t channels,
                           int64_t inner) {
  check_geometry(params, x, channels, inner, "quant_squared_error");
  double sum = 0.0;
  for (int64_t c = 0; c < channels; ++c) sum += squared_error(channel_of(params, c), x + c * inner, inner);
  return sum;
}

double sqnr_db(const float* x, const float* x_quant, int64_t n) {
  double signal = 0.0, noise = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    const double d = static_cast<double>(x[i]) - static_cast<double>(x_quant[i]);
    signal += static_cast<double>(x[i]) * x[i];
    noise += d * d;
  }
  return 10.0 * std::log10(signal / noise);
}

double sqnr_db(const QuantParams& params, const float* x, int64_t channels, int64_t inner) {
  double signal = 0.0;
  for (int64_t i = 0; i < channels * inner; ++i) signal += static_cast<double>(x[i]) * x[i];
  return 10.0 * std::log10(signal / quant_squared_error(params, x, channels, inner));
}

// ---- packed 8-bit codes ----

std::vector<uint8_t> encode_packed(const QuantParams& params, const float* x, int64_t channels,
                                   int64_t inner, const std::string& tensor_name) {
  check_geometry(params, x, channels, inner, tensor_name.c_str());
  if (params.format == QuantFormat::kNone)
    QILIN_FAIL(tensor_name, ": format none has no packed codes");
  std::vector<uint8_t> codes(static_cast<size_t>(channels * inner));
  for (int64_t c = 0; c < channels; ++c) {
    const QuantChannel q = channel_of(params, c);
    for (int64_t i = c * inner; i < (c + 1) * inner; ++i) {
      if (std::isnan(x[i]))
        QILIN_FAIL(tensor_name, ": element ", i, " is NaN, which has no 8-bit ",
                   quant_format_name(params.format), " code");
      codes[i] = quant_encode(q, x[i]);
    }
  }
  return codes;
}

void decode_packed(const QuantParams& params, const uint8_t* codes, float* y, int64_t channels,
                   int64_t inner) {
  QILIN_CHECK(channels >= 0 && inner >= 0, "decode_packed: bad geometry [", channels, ", ",
              inner, "]");
  QILIN_CHECK(params.format != QuantFormat::kNone, "decode_packed: format none has no codes");
  const int64_t size = params.size();
  QILIN_CHECK(size == 1 || size == channels, "decode_packed: ", size, " parameter entries for ",
              channels, " channels");
  for (int64_t c = 0; c < channels; ++c) {
    const QuantChannel q = channel_of(params, c);
    for (int64_t i = c * inner; i < (c + 1) * inner; ++i) y[i] = quant_decode(q, codes[i]);
  }
}

}  // namespace qilin
