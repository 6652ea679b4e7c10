// `qilin qfp8` (see qfp8_tool.h).
#include "train/qfp8_tool.h"

#include <cmath>
#include <cstdio>
#include <vector>

#include "core/safetensors.h"
#include "train/config.h"

namespace qilin {
namespace {

std::string hex2(uint32_t v) {
  char s[8];
  std::snprintf(s, sizeof s, "0x%02X", v);
  return s;
}

std::string sig(double v, int digits) {
  char s[40];
  std::snprintf(s, sizeof s, "%.*g", digits, v);
  return s;
}

struct Candidate {
  std::string name;
  QuantSpec spec;
};

std::vector<Candidate> candidates(Granularity granularity) {
  std::vector<Candidate> c;
  const auto qfp8 = [&](std::optional<Qfp8Layout> layout) {
    QuantSpec s;
    s.format = QuantFormat::kQfp8;
    s.layout = layout;
    s.bias = BiasMode::kMse;
    s.granularity = granularity;
    return s;
  };
  for (Qfp8Layout l : kQfp8Layouts) c.push_back({std::string("qfp8_") + qfp8_layout_name(l), qfp8(l)});
  c.push_back({"qfp8_auto", qfp8(std::nullopt)});
  for (QuantFormat f : {QuantFormat::kInt8, QuantFormat::kFp8E4M3, QuantFormat::kFp8E5M2}) {
    QuantSpec s;
    s.format = f;
    s.granularity = granularity;
    c.push_back({quant_format_name(f), s});
  }
  return c;
}

// Appends each format's SQNR (dB) of a signal with the given noise energies, then the name
// of the best format.
void add_sqnr_cells(const std::vector<Candidate>& formats, double signal, const std::vector<double>& noise,
                    std::vector<std::string>* row) {
  double best = -INFINITY;
  std::string best_name;
  for (size_t i = 0; i < formats.size(); ++i) {
    const double db = noise[i] > 0 ? 10.0 * std::log10(signal / noise[i]) : INFINITY;
    row->push_back(sig(db, 4));
    if (db > best) {
      best = db;
      best_name = formats[i].name;
    }
  }
  row->push_back(best_name);
}

}  // namespace

Table qfp8_code_table(Qfp8Layout layout, int32_t beta) {
  if (!qfp8_bias_in_range(layout, beta)) {
    throw ConfigError(str_cat("--bias ", beta, ": out of range for ", qfp8_layout_name(layout),
                              " (an integer in [-126, 126] that keeps max and the smallest subnormal finite and nonzero)"));
  }
  Table t({"code", "sign", "exponent", "mantissa", "value"});
  const int32_t m = layout.mantissa_bits;
  for (uint32_t code = 0; code < 256; ++code) {
    t.add({hex2(code), std::to_string(code >> 7), std::to_string((code >> m) & ((1u << layout.exponent_bits) - 1)),
           std::to_string(code & ((1u << m) - 1)), sig(qfp8_decode(static_cast<uint8_t>(code), layout, beta), 9)});
  }
  return t;
}

Table qfp8_sqnr_table(const std::string& checkpoint, Granularity granularity) {
  const SafetensorsContents contents = load_safetensors(checkpoint);
  const std::vector<Candidate> formats = candidates(granularity);
  std::vector<std::string> header{"tensor", "shape", "elements"};
  for (const Candidate& c : formats) header.push_back(c.name);
  header.push_back("best");
  Table t(header);
  std::vector<double> total_noise(formats.size(), 0.0);
  double total_signal = 0.0;
  int64_t total_elements = 0;
  for (const auto& [name, tensor] : contents.tensors) {
    if (tensor.dtype() != DType::kFloat32 || tensor.dim() < 2 || tensor.numel() == 0) continue;
    const std::vector<float> x = tensor.to_vector();
    const int64_t channels = granularity == Granularity::kPerChannel ? tensor.size(0) : 1;
    const int64_t inner = tensor.numel() / channels;
    double signal = 0.0;
    for (float v : x) signal += static_cast<double>(v) * v;
    std::string shape = "[";
    for (int64_t d = 0; d < tensor.dim(); ++d) shape += (d ? ", " : "") + std::to_string(tensor.size(d));
    std::vector<std::string> row{name, shape + "]", std::to_string(tensor.numel())};
    std::vector<double> noise(formats.size());
    for (size_t i = 0; i < formats.size(); ++i) {
      const QuantParams p = choose_quant_params(formats[i].spec, x.data(), channels, inner, name);
      noise[i] = quant_squared_error(p, x.data(), channels, inner);
      total_noise[i] += noise[i];
    }
    add_sqnr_cells(formats, signal, noise, &row);
    t.add(row);
    total_signal += signal;
    total_elements += tensor.numel();
  }
  QILIN_CHECK(total_elements > 0, checkpoint, ": no float32 tensor with 2 or more dims (no weights to quantize)");
  std::vector<std::string> row{"(all weights)", "-", std::to_string(total_elements)};
  add_sqnr_cells(formats, total_signal, total_noise, &row);
  t.add(row);
  return t;
}

}  // namespace qilin
