// Quantized layers, their factory, the model-wide helpers and the packed checkpoint
// (see quant.h).
#include "layers/quant.h"

#include <fnmatch.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>

#include "core/autograd.h"
#include "core/ops/conv.h"
#include "core/ops/elementwise.h"
#include "core/ops/matmul.h"
#include "core/ops/quant.h"
#include "core/ops/reduce.h"

namespace qilin {
namespace {

bool finite(float v) { return std::isfinite(v); }

// "qfp8 e3m4", "qfp8 auto", "int8", ...: the format part of a spec, as packed metadata
// names it (granularity is in the tensors' sizes, the bias mode does not matter to a reader).
std::string format_tag(const QuantSpec& spec) {
  if (spec.format == QuantFormat::kQfp8)
    return str_cat("qfp8 ", qfp8_layout_or_auto_name(spec.layout));
  return quant_format_name(spec.format);
}

// "beta 5", "betas 3..6", "e3m4 x40 e2m5 x24, betas 3..7", "scale 0.0123", "scales 1e-3..4e-3".
std::string params_summary(const QuantParams& params, bool show_layouts) {
  if (params.format == QuantFormat::kNone || params.size() == 0) return "identity";
  std::string out;
  if (params.format == QuantFormat::kQfp8) {
    if (show_layouts) {
      for (Qfp8Layout layout : kQfp8Layouts) {
        const auto n = std::count(params.layouts.begin(), params.layouts.end(), layout);
        if (n > 0) out += str_cat(out.empty() ? "" : " ", qfp8_layout_name(layout), " x", n);
      }
      out += ", ";
    }
    const auto [lo, hi] = std::minmax_element(params.betas.begin(), params.betas.end());
    if (params.betas.size() == 1) return out + str_cat("beta ", *lo);
    return out + (*lo == *hi ? str_cat("betas ", *lo) : str_cat("betas ", *lo, "..", *hi));
  }
  const auto [lo, hi] = std::minmax_element(params.scales.begin(), params.scales.end());
  if (params.scales.size() == 1) return str_cat("scale ", *lo);
  return *lo == *hi ? str_cat("scales ", *lo) : str_cat("scales ", *lo, "..", *hi);
}

// DESIGN.md §4.2: activations are quantized per tensor from an amax (a running max of them
// while calibrating), so only the rules that need nothing but the amax apply.
void check_activation_spec(const QuantSpec& spec, const std::string& name) {
  if (spec.format == QuantFormat::kNone) return;
  QILIN_CHECK(spec.granularity == Granularity::kPerTensor, name,
              ": activations are quantized per tensor; granularity per_channel is for weights");
  if (spec.format != QuantFormat::kQfp8) return;
  QILIN_CHECK(spec.layout.has_value(), name,
              ": activation layout auto is not supported: it compares squared errors over the "
              "data, and calibration keeps only a running amax; choose e2m5, e3m4, e4m3 or e5m2");
  QILIN_CHECK(spec.bias != BiasMode::kMse, name,
              ": activation bias mse is not supported: it compares squared errors over the data, "
              "and calibration keeps only a running amax; use bias amax or a fixed integer");
  if (spec.bias == BiasMode::kFixed) check_qfp8_bias(*spec.layout, spec.fixed_bias, name);
}

// Parameters (a packed checkpoint's, or set by hand) fit the spec: same format, `entries`
// entries, layouts as the spec fixes them, β in range, scales finite and positive.
void check_params(const QuantSpec& spec, const QuantParams& params, int64_t entries,
                  const std::string& name) {
  QILIN_CHECK(params.format == spec.format, name, ": parameters are ",
              quant_format_name(params.format), " but the layer quantizes with ",
              quant_spec_summary(spec));
  if (spec.format == QuantFormat::kNone) return;
  QILIN_CHECK(params.size() == entries, name, ": ", params.size(), " parameter entries, expected ",
              entries, " (", granularity_name(spec.granularity), ")");
  if (spec.format == QuantFormat::kQfp8) {
    for (int64_t i = 0; i < entries; ++i) {
      QILIN_CHECK(!spec.layout || params.layouts[i] == *spec.layout, name, ": entry ", i,
                  " has layout ", qfp8_layout_name(params.layouts[i]), ", the layer's is ",
                  qfp8_layout_or_auto_name(spec.layout));
      check_qfp8_bias(params.layouts[i], params.betas[i], name);
    }
  } else {
    for (float s : params.scales) {
      QILIN_CHECK(finite(s) && s > 0.0f, name, ": scale ", s, " must be finite and positive");
      QILIN_CHECK(spec.format != QuantFormat::kInt8 || s >= qfp8_detail::float_min(), name, ": int8 scale ",
                  s, " is below FLT_MIN (the kernels multiply by its reciprocal; int8_scale_for_amax never "
                  "chooses one)");
    }
  }
}

// What a code that an export never writes decodes to ("NaN", "Inf", "-128"), or nullptr for
// a code of the format: QFP8 has no such codes, int8's range is -127..127 (encode clamps),
// and the FP8 formats' NaN and Inf codes come only from NaN or Inf weights, which export
// refuses.
const char* unwritten_code(QuantFormat format, uint8_t code) {
  const uint8_t magnitude = code & 0x7F;
  switch (format) {
    case QuantFormat::kInt8: return code == 0x80 ? "-128" : nullptr;
    case QuantFormat::kFp8E4M3: return magnitude == kFp8NanCode ? "NaN" : nullptr;
    case QuantFormat::kFp8E5M2:
      if (magnitude == kFp8E5M2InfCode) return "Inf";
      return magnitude > kFp8E5M2InfCode ? "NaN" : nullptr;
    case QuantFormat::kQfp8:
    case QuantFormat::kNone: return nullptr;
  }
  return nullptr;
}

std::string hex_byte(uint8_t b) {
  char hex[8];
  std::snprintf(hex, sizeof(hex), "0x%02X", static_cast<unsigned>(b));
  return hex;
}

// Every exported weight decodes to a finite value; a scale that makes a code overflow (an
// fp8 scale far below any amax's, an int8 scale far above) is not one an export chose.
void check_decoded(const std::string& weight_name, const QuantParams& params, const Tensor& codes,
                   const Tensor& decoded, int64_t inner) {
  const float* y = decoded.data<float>();
  for (int64_t i = 0; i < decoded.numel(); ++i) {
    if (finite(y[i])) continue;
    // Only a scale can do this: every QFP8 code is finite for every β in range.
    const int64_t entry = params.size() == 1 || inner == 0 ? 0 : i / inner;
    const float scale = params.scales.empty() ? 0.0f : params.scales[entry];
    QILIN_FAIL("load_packed_state_dict: ", weight_name, ".qcodes[", i, "] = ",
               hex_byte(codes.data<uint8_t>()[i]), " decodes to ", y[i], " with ", weight_name, ".qscale[",
               entry, "] = ", scale, ": no exported weight decodes to a non-finite value (a corrupt file)");
  }
}

void check_codes(const std::string& name, QuantFormat format, const Tensor& codes) {
  const uint8_t* c = codes.data<uint8_t>();
  for (int64_t i = 0; i < codes.numel(); ++i) {
    const char* value = unwritten_code(format, c[i]);
    if (value == nullptr) continue;
    QILIN_FAIL("load_packed_state_dict: ", name, "[", i, "] = ", hex_byte(c[i]), " is ", value, " in ",
               quant_format_name(format), ", a code that an export never writes (a corrupt file)");
  }
}

int64_t weight_entries(const QuantSpec& spec, const Tensor& weight) {
  if (spec.format == QuantFormat::kNone) return 0;
  return spec.granularity == Granularity::kPerChannel ? weight.size(0) : 1;
}

}  // namespace

// ---- options ----

QuantSpec QuantLayerOptions::default_weight_spec() {
  QuantSpec s;
  s.format = QuantFormat::kQfp8;
  s.layout = kQfp8E3M4;
  s.bias = BiasMode::kMse;
  s.granularity = Granularity::kPerChannel;
  return s;
}

QuantSpec QuantLayerOptions::default_activation_spec() {
  QuantSpec s;
  s.format = QuantFormat::kQfp8;
  s.layout = kQfp8E3M4;
  s.bias = BiasMode::kAmax;
  s.granularity = Granularity::kPerTensor;
  return s;
}

const char* activation_mode_name(ActivationMode mode) {
  switch (mode) {
    case ActivationMode::kDynamic: return "dynamic";
    case ActivationMode::kCalibrating: return "calibrating";
    case ActivationMode::kFrozen: return "frozen";
  }
  return "?";
}

// ---- SQNR ----

namespace {

// sum x^2 and sum (a - b)^2 as float32 tensor sums (device-neutral ops), without gradient.
double squared_norm(const Tensor& x) {
  NoGradGuard no_grad;
  const Tensor d = x.detach();
  return sum(mul(d, d)).item();
}
double squared_distance(const Tensor& a, const Tensor& b) {
  NoGradGuard no_grad;
  const Tensor e = sub(a.detach(), b.detach());
  return sum(mul(e, e)).item();
}
double sqnr_of_sums(double signal, double noise) {
  if (noise == 0.0) return std::numeric_limits<double>::infinity();
  return 10.0 * std::log10(signal / noise);
}

}  // namespace

// ---- ActivationQuantizer ----

ActivationQuantizer::ActivationQuantizer(const QuantSpec& spec, std::string name)
    : spec_(spec), name_(std::move(name)) {
  check_activation_spec(spec_, name_);
}

QuantParams ActivationQuantizer::params_for_amax(float amax) const {
  QuantParams params;
  params.format = spec_.format;
  if (spec_.format == QuantFormat::kNone) return params;
  QILIN_CHECK(finite(amax) && amax >= 0.0f, name_, ": amax ", amax,
              " is not finite (a NaN or Inf reached the layer's input)");
  // The same derivations as choose_params's amax path (core/ops/quant.cpp), so a dynamic
  // quantizer equals choose_params(spec, x) exactly.
  switch (spec_.format) {
    case QuantFormat::kNone: break;
    case QuantFormat::kQfp8:
      params.layouts.push_back(*spec_.layout);
      params.betas.push_back(spec_.bias == BiasMode::kFixed
                                 ? spec_.fixed_bias
                                 : bias_for_amax(amax, *spec_.layout, name_));
      break;
    case QuantFormat::kInt8: params.scales.push_back(int8_scale_for_amax(amax)); break;
    case QuantFormat::kFp8E4M3: params.scales.push_back(fp8_scale_for_amax(kFp8E4M3Max, amax)); break;
    case QuantFormat::kFp8E5M2: params.scales.push_back(fp8_scale_for_amax(kFp8E5M2Max, amax)); break;
  }
  return params;
}

Tensor ActivationQuantizer::operator()(const Tensor& x) {
  if (spec_.format == QuantFormat::kNone) return x;
  QuantParams params;
  std::optional<float> amax;  // this batch's, when measured: the STE passes all of x below it
  switch (mode_) {
    case ActivationMode::kDynamic:
      amax = reduce_amax(tensor_amax(x));
      params = params_for_amax(*amax);
      break;
    case ActivationMode::kCalibrating: {
      amax = reduce_amax(tensor_amax(x));
      QILIN_CHECK(finite(*amax), name_, ": amax ", *amax, " while calibrating (a NaN or Inf in the input)");
      running_amax_ = std::max(running_amax_, *amax);
      ++observed_batches_;
      params = params_for_amax(running_amax_);
      break;
    }
    case ActivationMode::kFrozen: params = *frozen_; break;
  }
  Tensor y = fake_quantize(x, params, -1, amax);
  last_ = std::move(params);
  if (metering_) {
    metered_signal_ += squared_norm(x);
    metered_noise_ += squared_distance(x, y);
    ++metered_batches_;
  }
  return y;
}

void ActivationQuantizer::set_metering(bool on) {
  metering_ = on;
  if (on) {
    metered_batches_ = 0;
    metered_signal_ = metered_noise_ = 0.0;
  }
}

double ActivationQuantizer::metered_sqnr_db() const {
  if (metered_batches_ == 0) return std::numeric_limits<double>::quiet_NaN();
  return sqnr_of_sums(metered_signal_, metered_noise_);
}

void ActivationQuantizer::set_mode(ActivationMode mode) {
  if (mode == ActivationMode::kFrozen && spec_.format != QuantFormat::kNone) {
    QILIN_CHECK(frozen_.has_value(), name_,
                ": cannot freeze without parameters: calibrate and freeze(), or load them");
  }
  if (mode == ActivationMode::kCalibrating) {
    running_amax_ = 0.0f;
    observed_batches_ = 0;
  }
  mode_ = mode;
}

void ActivationQuantizer::freeze() {
  if (spec_.format != QuantFormat::kNone) {
    QILIN_CHECK(mode_ == ActivationMode::kCalibrating && observed_batches_ > 0, name_,
                ": freeze needs calibration batches (mode ", activation_mode_name(mode_), ", ",
                observed_batches_, " batches observed)");
    frozen_ = params_for_amax(running_amax_);
  }
  mode_ = ActivationMode::kFrozen;
}

void ActivationQuantizer::set_frozen_params(const QuantParams& params) {
  check_params(spec_, params, spec_.format == QuantFormat::kNone ? 0 : 1, name_);
  if (spec_.format != QuantFormat::kNone) frozen_ = params;
  mode_ = ActivationMode::kFrozen;
}

void ActivationQuantizer::restore(ActivationMode mode, float running_amax, int64_t observed_batches) {
  QILIN_CHECK(observed_batches >= 0 && running_amax >= 0.0f && finite(running_amax), name_,
              ": cannot restore a running amax of ", running_amax, " over ", observed_batches, " batches");
  running_amax_ = running_amax;
  observed_batches_ = observed_batches;
  if (mode == ActivationMode::kFrozen && spec_.format != QuantFormat::kNone) {
    QILIN_CHECK(observed_batches > 0, name_, ": cannot restore a frozen state without calibration batches");
    frozen_ = params_for_amax(running_amax);
  }
  mode_ = mode;
}

std::string ActivationQuantizer::describe() const {
  const std::string spec = quant_spec_summary(spec_);
  if (spec_.format == QuantFormat::kNone) return spec;
  switch (mode_) {
    case ActivationMode::kDynamic: return spec + " (dynamic)";
    case ActivationMode::kCalibrating:
      return str_cat(spec, " (calibrating, ", observed_batches_, " batches, amax ", running_amax_, ")");
    case ActivationMode::kFrozen: return str_cat(spec, " (frozen: ", params_summary(*frozen_, false), ")");
  }
  return spec;
}

// ---- QuantLayer ----

QuantParams QuantLayer::weight_params() const {
  if (frozen_weight_params_) return *frozen_weight_params_;
  const QuantSpec& spec = weight_spec();
  if (spec.format == QuantFormat::kNone) return QuantParams{};
  // With bias mse or layout auto this scans the weight every step (QAT): choose_quant_params
  // tries up to 4 β (x 4 layouts for auto) per channel, each a vector fake-quant of the row.
  return choose_params(spec, quant_weight(), join_path(name_, "weight"));
}

void QuantLayer::freeze_weights() { frozen_weight_params_ = weight_params(); }

void QuantLayer::set_frozen_weight_params(const QuantParams& params) {
  check_params(weight_spec(), params, weight_entries(weight_spec(), quant_weight()),
               join_path(name_, "weight"));
  frozen_weight_params_ = params;
}

Tensor QuantLayer::quantized_weight() const {
  if (weight_spec().format == QuantFormat::kNone) return quant_weight();
  // Axis 0 = output channel; one entry (per tensor) applies to the whole weight.
  return fake_quantize(quant_weight(), weight_params(), 0);
}

std::string QuantLayer::describe_quant() const {
  const QuantSpec& spec = weight_spec();
  std::string weight = quant_spec_summary(spec);
  if (frozen_weight_params_ && spec.format != QuantFormat::kNone)
    weight += str_cat(" (frozen: ", params_summary(*frozen_weight_params_, !spec.layout.has_value() &&
                                                                               spec.format == QuantFormat::kQfp8), ")");
  return str_cat("weight ", weight, ", input ", activation_quantizer().describe());
}

// ---- QuantLinear, QuantConv2d ----

QuantLinear::QuantLinear(int64_t in_features, int64_t out_features, bool bias,
                         const QuantSpec& weight, const QuantSpec& activation, const std::string& path)
    : Linear(in_features, out_features, bias),
      QuantLayer(path),
      weight_spec_(weight),
      act_(activation, join_path(path, "input")) {}

Tensor QuantLinear::forward(const Tensor& x) {
  Tensor x_q = act_(x);
  return linear(x_q, quantized_weight(), bias());
}

std::string QuantLinear::describe() const {
  return str_cat("Quant", Linear::describe(), " ", describe_quant());
}

QuantConv2d::QuantConv2d(const Conv2dSpec& spec, const QuantSpec& weight,
                         const QuantSpec& activation, const std::string& path)
    : Conv2d(spec), QuantLayer(path), weight_spec_(weight), act_(activation, join_path(path, "input")) {}

Tensor QuantConv2d::forward(const Tensor& x) {
  Conv2dParams p;
  p.stride_h = p.stride_w = spec().stride;
  p.pad_h = p.pad_w = spec().padding;
  p.groups = spec().groups;
  Tensor x_q = act_(x);
  return conv2d(x_q, quantized_weight(), bias(), p);
}

std::string QuantConv2d::describe() const {
  return str_cat("Quant", Conv2d::describe(), " ", describe_quant());
}

// ---- the factory ----

bool quant_path_matches(const std::string& glob, const std::string& path) {
  return fnmatch(glob.c_str(), path.c_str(), 0) == 0;
}

QuantLayerFactory::QuantLayerFactory(LayerFactory& inner, QuantLayerOptions options)
    : inner_(inner), options_(std::move(options)) {
  check_activation_spec(options_.activation, "quant.activation");
}

bool QuantLayerFactory::excluded(const std::string& path) {
  bool any = false;
  for (const std::string& glob : options_.exclude) {
    if (quant_path_matches(glob, path)) {
      used_excludes_.insert(glob);
      any = true;
    }
  }
  return any;
}

std::shared_ptr<Layer> QuantLayerFactory::activation(ActivationKind kind, const std::string& path) {
  return inner_.activation(kind, path);
}

std::shared_ptr<Layer> QuantLayerFactory::softmax(const std::string& path) {
  return inner_.softmax(path);
}

std::shared_ptr<Layer> QuantLayerFactory::linear(int64_t in_features, int64_t out_features, bool bias,
                                                 const std::string& path) {
  const bool skip = excluded(path);  // first, so every matching glob counts as used
  if (skip || !options_.linear) return inner_.linear(in_features, out_features, bias, path);
  quantized_.push_back(path);
  return std::make_shared<QuantLinear>(in_features, out_features, bias, options_.weight,
                                       options_.activation, path);
}

std::shared_ptr<Layer> QuantLayerFactory::conv2d(const Conv2dSpec& spec, const std::string& path) {
  const bool skip = excluded(path);
  if (skip || !options_.conv) return inner_.conv2d(spec, path);
  quantized_.push_back(path);
  return std::make_shared<QuantConv2d>(spec, options_.weight, options_.activation, path);
}

std::vector<std::string> QuantLayerFactory::unused_excludes() const {
  std::vector<std::string> out;
  for (const std::string& glob : options_.exclude)
    if (!used_excludes_.count(glob)) out.push_back(glob);
  return out;
}

// ---- model-wide helpers ----

std::vector<std::pair<std::string, QuantLayer*>> quant_layers(Module& model) {
  std::vector<std::pair<std::string, QuantLayer*>> out;
  for (const auto& [name, module] : model.named_modules())
    if (auto* q = dynamic_cast<QuantLayer*>(module)) out.emplace_back(name, q);
  return out;
}

std::vector<std::pair<std::string, const QuantLayer*>> quant_layers(const Module& model) {
  std::vector<std::pair<std::string, const QuantLayer*>> out;
  for (const auto& [name, module] : model.named_modules())
    if (auto* q = dynamic_cast<const QuantLayer*>(module)) out.emplace_back(name, q);
  return out;
}

void set_activation_mode(Module& model, ActivationMode mode) {
  for (auto& [name, q] : quant_layers(model)) q->activation_quantizer().set_mode(mode);
}

void freeze_activations(Module& model) {
  for (auto& [name, q] : quant_layers(model)) {
    ActivationQuantizer& act = q->activation_quantizer();
    if (act.spec().format == QuantFormat::kNone) continue;
    act.freeze();  // errors, naming the layer, unless it calibrated
  }
}

void freeze_weights(Module& model) {
  for (auto& [name, q] : quant_layers(model)) q->freeze_weights();
}

NamedTensors activation_state_dict(const Module& model) {
  NamedTensors out;
  for (const auto& [path, q] : quant_layers(model)) {
    const ActivationQuantizer& act = q->activation_quantizer();
    const std::string key = "quant." + path + ".input.";
    Tensor mode = Tensor::empty({1}, DType::kInt32);
    mode.data<int32_t>()[0] = static_cast<int32_t>(act.mode());
    Tensor observed = Tensor::empty({1}, DType::kInt64);
    observed.data<int64_t>()[0] = act.observed_batches();
    out.emplace_back(key + "mode", mode);
    out.emplace_back(key + "running_amax", Tensor::from_vector({act.running_amax()}, {1}));
    out.emplace_back(key + "observed_batches", observed);
  }
  return out;
}

void load_activation_state(Module& model, const NamedTensors& state) {
  std::map<std::string, Tensor> by_name(state.begin(), state.end());
  const auto entry = [&](const std::string& key, DType dtype) -> const Tensor& {
    const auto it = by_name.find(key);
    if (it == by_name.end()) throw Error(str_cat("quantizer state: missing ", key));
    if (it->second.dtype() != dtype || it->second.numel() != 1)
      throw Error(str_cat("quantizer state: ", key, " is ", it->second.str(), ", expected one ",
                          dtype_name(dtype)));
    return it->second;
  };
  for (auto& [path, q] : quant_layers(model)) {
    const std::string key = "quant." + path + ".input.";
    const int32_t mode = entry(key + "mode", DType::kInt32).data<int32_t>()[0];
    if (mode < 0 || mode > static_cast<int32_t>(ActivationMode::kFrozen))
      throw Error(str_cat("quantizer state: ", key, "mode = ", mode, ", expected 0, 1 or 2"));
    q->activation_quantizer().restore(static_cast<ActivationMode>(mode),
                                      entry(key + "running_amax", DType::kFloat32).data<float>()[0],
                                      entry(key + "observed_batches", DType::kInt64).data<int64_t>()[0]);
  }
}

void set_activation_metering(Module& model, bool on) {
  for (auto& [name, q] : quant_layers(model)) q->activation_quantizer().set_metering(on);
}

std::vector<QuantLayerSqnr> quant_sqnr(const Module& model) {
  std::vector<QuantLayerSqnr> out;
  for (auto& [name, q] : quant_layers(model)) {
    QuantLayerSqnr r;
    r.path = name;
    const Tensor& w = q->quant_weight();
    const Tensor wq = q->weight_spec().format == QuantFormat::kNone
                          ? w
                          : fake_quantize(w.detach(), q->weight_params(), 0);
    r.weight_db = sqnr_of_sums(squared_norm(w), squared_distance(w, wq));
    r.input_db = q->activation_quantizer().metered_sqnr_db();
    out.push_back(std::move(r));
  }
  return out;
}

// ---- packed checkpoints ----

namespace {

constexpr const char* kPackedKey = "qilin.packed";

Tensor int32_tensor(const std::vector<int32_t>& v) {
  return Tensor::from_vector_i32(v, {static_cast<int64_t>(v.size())});
}

// The parameter tensors of `params` under `prefix` ("<path>.weight" or "<path>.input").
void append_param_tensors(const std::string& prefix, const QuantParams& params, bool layouts,
                          NamedTensors* out) {
  if (params.format == QuantFormat::kQfp8) {
    out->emplace_back(prefix + ".qbias", int32_tensor(params.betas));
    if (layouts) {
      Tensor codes = Tensor::empty({params.size()}, DType::kUInt8);
      for (int64_t i = 0; i < params.size(); ++i)
        codes.data<uint8_t>()[i] = static_cast<uint8_t>(params.layouts[i].exponent_bits);
      out->emplace_back(prefix + ".qlayout", codes);
    }
  } else {
    out->emplace_back(prefix + ".qscale",
                      Tensor::from_vector(params.scales, {static_cast<int64_t>(params.scales.size())}));
  }
}

// Reads the parameter tensors under `prefix` for `spec` with `entries` entries (checked);
// records the names read in `consumed`.
QuantParams read_param_tensors(const SafetensorsContents& c, const std::string& prefix,
                               const QuantSpec& spec, int64_t entries, std::set<std::string>* consumed) {
  QuantParams params;
  params.format = spec.format;
  auto tensor = [&](const std::string& suffix, DType dtype) {
    const std::string name = prefix + suffix;
    Tensor t = c.find(name);
    QILIN_CHECK(t.defined(), "load_packed_state_dict: ", name, " is missing (", prefix,
                " is quantized with ", quant_spec_summary(spec), ")");
    QILIN_CHECK(t.dtype() == dtype && t.dim() == 1 && t.numel() == entries, "load_packed_state_dict: ",
                name, " is ", t.str(), ", expected ", dtype_name(dtype), "[", entries, "]");
    consumed->insert(name);
    return t;
  };
  if (spec.format == QuantFormat::kQfp8) {
    Tensor betas = tensor(".qbias", DType::kInt32);
    params.betas.assign(betas.data<int32_t>(), betas.data<int32_t>() + entries);
    if (spec.layout) {
      params.layouts.assign(static_cast<size_t>(entries), *spec.layout);
    } else {
      Tensor codes = tensor(".qlayout", DType::kUInt8);
      for (int64_t i = 0; i < entries; ++i) {
        const int32_t e = codes.data<uint8_t>()[i];
        QILIN_CHECK(e >= 2 && e <= 5, "load_packed_state_dict: ", prefix, ".qlayout[", i, "] = ", e,
                    ": expected exponent bits 2..5");
        params.layouts.push_back(Qfp8Layout{e, 7 - e});
      }
    }
  } else {
    Tensor scales = tensor(".qscale", DType::kFloat32);
    params.scales.assign(scales.data<float>(), scales.data<float>() + entries);
  }
  check_params(spec, params, entries, prefix);
  return params;
}

void check_format_tag(const SafetensorsContents& c, const std::string& key, const QuantSpec& spec) {
  auto it = c.metadata.find(key);
  QILIN_CHECK(it != c.metadata.end(), "load_packed_state_dict: metadata ", key,
              " is missing (the layer quantizes with ", quant_spec_summary(spec), ")");
  const std::string tag = format_tag(spec);
  // The weight's tag is exactly the format; the input's adds the mode it was exported in.
  QILIN_CHECK(it->second == tag || it->second.rfind(tag + " ", 0) == 0, "load_packed_state_dict: ",
              key, " is \"", it->second, "\" but the layer quantizes with ", quant_spec_summary(spec));
}

}  // namespace

NamedTensors packed_state_dict(const Module& model, std::map<std::string, std::string>* metadata) {
  // "<path>.weight" -> its layer: the state dict lists each weight once, under that name.
  std::map<std::string, std::pair<std::string, const QuantLayer*>> by_weight;
  for (const auto& [path, q] : quant_layers(model)) by_weight[join_path(path, "weight")] = {path, q};
  std::map<std::string, std::string> meta;
  meta[kPackedKey] = "1";
  NamedTensors out;
  for (const auto& [name, tensor] : model.state_dict()) {
    auto it = by_weight.find(name);
    if (it == by_weight.end()) {
      out.emplace_back(name, tensor);
      continue;
    }
    const auto& [path, q] = it->second;
    const QuantSpec& spec = q->weight_spec();
    if (spec.format == QuantFormat::kNone) {
      out.emplace_back(name, tensor);
    } else {
      const QuantParams params = q->weight_params();
      const int64_t channels = params.size() == 1 ? 1 : tensor.size(0);
      const int64_t inner = channels == 0 ? 0 : tensor.numel() / channels;
      const std::vector<uint8_t> codes = encode_packed(params, tensor.data<float>(), channels, inner, name);
      Tensor packed = Tensor::empty(tensor.shape(), DType::kUInt8);
      if (!codes.empty()) std::memcpy(packed.data<uint8_t>(), codes.data(), codes.size());
      out.emplace_back(name + ".qcodes", packed);
      append_param_tensors(name, params, spec.format == QuantFormat::kQfp8 && !spec.layout, &out);
      meta[name + ".qformat"] = format_tag(spec);
    }
    const ActivationQuantizer& act = q->activation_quantizer();
    if (act.spec().format != QuantFormat::kNone) {
      const std::string input = join_path(path, "input");
      meta[input + ".qformat"] = str_cat(format_tag(act.spec()), " ", activation_mode_name(act.mode()));
      if (act.mode() == ActivationMode::kFrozen) append_param_tensors(input, *act.frozen_params(), false, &out);
    }
  }
  if (metadata) *metadata = std::move(meta);
  return out;
}

void load_packed_state_dict(Module& model, const SafetensorsContents& contents) {
  auto packed = contents.metadata.find(kPackedKey);
  QILIN_CHECK(packed != contents.metadata.end() && packed->second == "1",
              "load_packed_state_dict: not a packed checkpoint (no \"", kPackedKey,
              "\": \"1\" in its metadata); load an fp32 one with load_state_dict");
  struct Pending {
    QuantLayer* layer;
    std::optional<QuantParams> weight, input;
  };
  std::vector<Pending> pending;
  std::set<std::string> consumed;
  NamedTensors state;
  // Everything is read and checked before any tensor of the model changes.
  for (auto& [path, q] : quant_layers(model)) {
    Pending p{q, std::nullopt, std::nullopt};
    const std::string weight_name = join_path(path, "weight");
    const QuantSpec& spec = q->weight_spec();
    if (spec.format != QuantFormat::kNone) {
      check_format_tag(contents, weight_name + ".qformat", spec);
      const Tensor& weight = q->quant_weight();
      Tensor codes = contents.find(weight_name + ".qcodes");
      QILIN_CHECK(codes.defined(), "load_packed_state_dict: ", weight_name, ".qcodes is missing");
      QILIN_CHECK(codes.dtype() == DType::kUInt8 && codes.shape() == weight.shape(),
                  "load_packed_state_dict: ", weight_name, ".qcodes is ", codes.str(), ", expected U8 of ",
                  weight.str());
      check_codes(weight_name + ".qcodes", spec.format, codes);
      consumed.insert(weight_name + ".qcodes");
      const int64_t entries = weight_entries(spec, weight);
      QuantParams params = read_param_tensors(contents, weight_name, spec, entries, &consumed);
      const int64_t channels = entries == 1 ? 1 : weight.size(0);
      const int64_t inner = channels == 0 ? 0 : weight.numel() / channels;
      Tensor decoded = Tensor::empty(weight.shape());
      decode_packed(params, codes.data<uint8_t>(), decoded.data<float>(), channels, inner);
      check_decoded(weight_name, params, codes, decoded, inner);
      state.emplace_back(weight_name, decoded);
      p.weight = std::move(params);
    }
    const QuantSpec& input_spec = q->activation_quantizer().spec();
    if (input_spec.format != QuantFormat::kNone) {
      const std::string input = join_path(path, "input");
      check_format_tag(contents, input + ".qformat", input_spec);
      const char* suffix = input_spec.format == QuantFormat::kQfp8 ? ".qbias" : ".qscale";
      if (contents.find(input + suffix).defined())
        p.input = read_param_tensors(contents, input, input_spec, 1, &consumed);
    }
    pending.push_back(std::move(p));
  }
  for (const auto& [name, tensor] : contents.tensors)
    if (!consumed.count(name)) state.emplace_back(name, tensor);
  model.load_state_dict(state, /*strict=*/true);  // one error listing every problem
  for (Pending& p : pending) {
    if (p.weight) p.layer->set_frozen_weight_params(*p.weight);
    ActivationQuantizer& act = p.layer->activation_quantizer();
    if (p.input) act.set_frozen_params(*p.input);
    else act.set_mode(ActivationMode::kDynamic);
  }
}

}  // namespace qilin
