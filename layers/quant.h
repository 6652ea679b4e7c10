// Quantized layers (DESIGN.md §4.2) and the factory that puts them into any model by
// configuration, without editing model code:
//   ActivationQuantizer  the observer of a layer's input: β / scale from each batch
//                        (dynamic), from the running max of the batches' amax (calibrating),
//                        or fixed (frozen)
//   QuantLinear          Linear with fake-quantized input and weight (STE backward)
//   QuantConv2d          Conv2d likewise
//   QuantLayerFactory    a LayerFactory (layers/factory.h) wrapping another one (e.g. the
//                        interp factory) that makes the quantized layers for the paths not
//                        excluded
// and the model-wide helpers (modes, freezing) and the packed 8-bit checkpoint
// (DESIGN.md §5: `<path>.weight.qcodes` + `.qbias` / `.qscale`).
//
// The quantized layers keep Linear's / Conv2d's parameter names and shapes, so an fp32
// checkpoint loads strictly into the quantized model and the state dict stays the PyTorch
// model's. Quantizer state (frozen β / scales) is not in the state dict: the packed
// checkpoint carries it.
//
// Not here: the codec and parameter rules (core/qfp8.h), the fake-quant op and its STE
// (core/ops/quant.h), PTQ / QAT procedures and BN calibration (train/).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "core/qfp8.h"
#include "core/safetensors.h"
#include "layers/conv.h"
#include "layers/factory.h"
#include "layers/linear.h"

namespace qilin {

// What the `quant` config section gives the factory (train/ parses it).
struct QuantLayerOptions {
  QuantSpec weight = default_weight_spec();
  QuantSpec activation = default_activation_spec();
  bool linear = true;  // quantize Linear layers (`quant.layers: [linear, ...]`)
  bool conv = true;    // quantize Conv2d layers
  // Globs (fnmatch, '*' also crosses dots) on the layer's dotted path: those stay fp32.
  std::vector<std::string> exclude;

  // qfp8 e3m4 with `bias: mse` per output channel (axis 0) / `bias: amax` per tensor.
  static QuantSpec default_weight_spec();
  static QuantSpec default_activation_spec();
};

// How an ActivationQuantizer picks its parameters (DESIGN.md §4.2 "Activations").
enum class ActivationMode : uint8_t {
  kDynamic,      // from the current batch, every forward (training, QAT before freezing)
  kCalibrating,  // from the running max of the batches' amax so far (PTQ calibration)
  kFrozen,       // fixed: set by freeze() from the running amax, or loaded
};
const char* activation_mode_name(ActivationMode mode);  // dynamic | calibrating | frozen

// The quantizer of a layer's input, per tensor. Specs whose parameters need the data and not
// only its amax (`bias: mse`, `layout: auto`) and per-channel granularity are rejected at
// construction, naming the layer: a running amax cannot reproduce them.
class ActivationQuantizer {
 public:
  // name: what errors and summaries call it, e.g. "blocks.0.mlp.fc1 input".
  ActivationQuantizer(const QuantSpec& spec, std::string name);

  // x_q = fake_quantize(x) with this mode's parameters (STE gradient to x). Format none: x.
  Tensor operator()(const Tensor& x);

  ActivationMode mode() const { return mode_; }
  // Entering kCalibrating restarts the running max. Entering kFrozen needs parameters from
  // an earlier freeze() or set_frozen_params() (else an error naming the quantizer); they
  // are kept while the quantizer runs dynamic or calibrates.
  void set_mode(ActivationMode mode);
  // kFrozen with params_for_amax(running amax). Error, naming the quantizer, if no batch
  // was observed since calibration started.
  void freeze();
  // kFrozen with given parameters (a packed checkpoint's); checked against the spec.
  void set_frozen_params(const QuantParams& params);
  // Puts back a state saved from mode(), running_amax() and observed_batches() (a resumed
  // QAT run): frozen parameters are recomputed from the running amax, as freeze() made them.
  void restore(ActivationMode mode, float running_amax, int64_t observed_batches);

  // The running max of amax over the batches seen while calibrating (0 before any).
  float running_amax() const { return running_amax_; }
  int64_t observed_batches() const { return observed_batches_; }
  // The frozen parameters; empty optional unless frozen.
  const std::optional<QuantParams>& frozen_params() const { return frozen_; }
  // The parameters of the last forward (any mode); empty before the first.
  const std::optional<QuantParams>& last_params() const { return last_; }

  // The one place an amax becomes parameters (β or scale): equals choose_params(spec, x)
  // for an x whose amax this is. Errors name the quantizer (non-finite amax, β out of range).
  QuantParams params_for_amax(float amax) const;

  // SQNR metering, for reports: while on, each forward adds sum x^2 and sum (x - x_q)^2 over
  // its input (float32 tensor sums, accumulated in double across forwards). Turning it on
  // restarts the sums.
  void set_metering(bool on);
  // 10 log10(sum x^2 / sum (x - x_q)^2) over the metered forwards: +Inf where nothing was
  // lost, NaN before any metered forward.
  double metered_sqnr_db() const;

  const QuantSpec& spec() const { return spec_; }
  const std::string& name() const { return name_; }
  // "qfp8 e3m4 per_tensor amax (dynamic)", "... (calibrating, 12 batches)",
  // "... (frozen: beta 5)", "int8 per_tensor (frozen: scale 0.0123)", "none".
  std::string describe() const;

 private:
  // The amax every rank agrees on. Data-parallel runs all-reduce (max) it across ranks here
  // (DESIGN.md §4.2), so every rank picks the same β; single process: the local amax.
  float reduce_amax(float local_amax) const { return local_amax; }

  QuantSpec spec_;
  std::string name_;
  ActivationMode mode_ = ActivationMode::kDynamic;
  float running_amax_ = 0.0f;
  int64_t observed_batches_ = 0;
  std::optional<QuantParams> frozen_;
  std::optional<QuantParams> last_;
  bool metering_ = false;
  int64_t metered_batches_ = 0;
  double metered_signal_ = 0.0, metered_noise_ = 0.0;
};

// What QuantLinear and QuantConv2d share: the model-wide helpers and the packed checkpoint
// work through it.
class QuantLayer {
 public:
  virtual ~QuantLayer() = default;
  virtual ActivationQuantizer& activation_quantizer() = 0;
  virtual const ActivationQuantizer& activation_quantizer() const = 0;
  virtual const QuantSpec& weight_spec() const = 0;
  // The fp32 master weight ([out, ...]; channels along axis 0).
  virtual const Tensor& quant_weight() const = 0;

  // Caches the weight parameters of the current weights (PTQ / eval / export): later
  // forwards reuse them. Until then (training, QAT) every forward recomputes them. The
  // cache is not refreshed by load_state_dict or an optimizer step: freeze again after
  // changing the weights, or unfreeze_weights() before training them (QAT from a packed
  // checkpoint).
  void freeze_weights();
  void unfreeze_weights() { frozen_weight_params_.reset(); }
  // Fixes the weight parameters to given ones (a packed checkpoint's), checked against the
  // spec and the weight's channels.
  void set_frozen_weight_params(const QuantParams& params);
  bool weights_frozen() const { return frozen_weight_params_.has_value(); }
  // The parameters the next forward uses: the cached ones, or chosen from the weight now.
  QuantParams weight_params() const;
  // "weight qfp8 e3m4 per_channel mse, input qfp8 e3m4 per_tensor amax (dynamic)".
  std::string describe_quant() const;

 protected:
  // name: the layer's dotted path (errors name "<path>.weight").
  explicit QuantLayer(std::string name) : name_(std::move(name)) {}
  // fake_quantize(weight) with weight_params(), per output channel (STE gradient to the
  // fp32 master weight).
  Tensor quantized_weight() const;
  const std::string& layer_name() const { return name_; }

 private:
  std::string name_;
  std::optional<QuantParams> frozen_weight_params_;
};

class QuantLinear : public Linear, public QuantLayer {
 public:
  // path: the layer's dotted name, for errors and summaries.
  QuantLinear(int64_t in_features, int64_t out_features, bool bias, const QuantSpec& weight,
              const QuantSpec& activation, const std::string& path);
  // linear(act_quantizer(x), fake_quantize(weight, per channel), bias)
  Tensor forward(const Tensor& x) override;
  // "QuantLinear(64 -> 256, bias) weight qfp8 e3m4 per_channel mse, input qfp8 e3m4
  // per_tensor amax (dynamic)"
  std::string describe() const override;

  ActivationQuantizer& activation_quantizer() override { return act_; }
  const ActivationQuantizer& activation_quantizer() const override { return act_; }
  const QuantSpec& weight_spec() const override { return weight_spec_; }
  const Tensor& quant_weight() const override { return weight(); }

 private:
  QuantSpec weight_spec_;
  ActivationQuantizer act_;
};

class QuantConv2d : public Conv2d, public QuantLayer {
 public:
  QuantConv2d(const Conv2dSpec& spec, const QuantSpec& weight, const QuantSpec& activation,
              const std::string& path);
  Tensor forward(const Tensor& x) override;
  // "QuantConv2d(16 -> 32, 3x3, stride 2, pad 1, groups 1, no bias) weight ..., input ..."
  std::string describe() const override;

  ActivationQuantizer& activation_quantizer() override { return act_; }
  const ActivationQuantizer& activation_quantizer() const override { return act_; }
  const QuantSpec& weight_spec() const override { return weight_spec_; }
  const Tensor& quant_weight() const override { return weight(); }

 private:
  QuantSpec weight_spec_;
  ActivationQuantizer act_;
};

// True where `path` matches the glob (fnmatch without FNM_PATHNAME: '*' crosses dots).
bool quant_path_matches(const std::string& glob, const std::string& path);

class QuantLayerFactory : public LayerFactory {
 public:
  // inner: makes everything this factory does not quantize (activations, softmax, excluded
  // Linear / Conv2d); it must outlive this factory. The specs are checked here (an
  // activation spec with bias mse or layout auto is an error).
  QuantLayerFactory(LayerFactory& inner, QuantLayerOptions options);
  std::shared_ptr<Layer> activation(ActivationKind kind, const std::string& path) override;
  std::shared_ptr<Layer> softmax(const std::string& path) override;
  std::shared_ptr<Layer> linear(int64_t in_features, int64_t out_features, bool bias,
                                const std::string& path) override;
  std::shared_ptr<Layer> conv2d(const Conv2dSpec& spec, const std::string& path) override;

  // The paths made quantized, in creation order.
  const std::vector<std::string>& quantized_paths() const { return quantized_; }
  // The exclude globs that matched no Linear / Conv2d path (a typo: the trainer logs them).
  std::vector<std::string> unused_excludes() const;
  const QuantLayerOptions& options() const { return options_; }

 private:
  bool excluded(const std::string& path);
  LayerFactory& inner_;
  QuantLayerOptions options_;
  std::vector<std::string> quantized_;
  std::set<std::string> used_excludes_;
};

// ---- model-wide helpers (over named_modules(), pre-order) ----

std::vector<std::pair<std::string, QuantLayer*>> quant_layers(Module& model);
std::vector<std::pair<std::string, const QuantLayer*>> quant_layers(const Module& model);
void set_activation_mode(Module& model, ActivationMode mode);
// Every quantizer kCalibrating -> kFrozen from its running amax; a quantizer in another
// mode is an error naming it (calibration did not run).
void freeze_activations(Module& model);
void freeze_weights(Module& model);

// The quantizers' state, for a resumable QAT checkpoint (the trainer's file: it is not part
// of the model's state dict): per quantized layer `quant.<path>.input.mode` (int32: 0
// dynamic, 1 calibrating, 2 frozen), `.running_amax` (float32) and `.observed_batches`
// (int64), each of shape [1]. load_activation_state restores every layer's entries; a
// missing or malformed one is an error naming its key.
NamedTensors activation_state_dict(const Module& model);
void load_activation_state(Module& model, const NamedTensors& state);

// Signal-to-quantization-noise of each quantized layer (reports; issue 5's per-layer SQNR):
// the weight's, 10 log10(sum w^2 / sum (w - q(w))^2) with the parameters the next forward
// uses, and the input's over the forwards metered since set_activation_metering(model, true)
// (NaN if none ran).
struct QuantLayerSqnr {
  std::string path;
  double weight_db = 0;
  double input_db = 0;
};
void set_activation_metering(Module& model, bool on);
std::vector<QuantLayerSqnr> quant_sqnr(const Module& model);

// ---- packed checkpoints (DESIGN.md §5) ----
// Every quantized layer's weight (format not none) becomes
//   <path>.weight.qcodes   uint8, the weight's shape (int8: two's complement)
//   <path>.weight.qbias    int32 [entries]  (qfp8: β per channel, or [1] per tensor)
//   <path>.weight.qscale   float32 [entries] (int8, fp8_*: the scales) instead of qbias
//   <path>.weight.qlayout  uint8 [entries], qfp8 `layout: auto` only: each entry's
//                          exponent bits E (mantissa 7 - E)
// and a frozen input quantizer's parameters <path>.input.qbias int32 [1] (or .qscale
// float32 [1]). Every other tensor is stored as in state_dict(). Metadata (`__metadata__`):
//   "qilin.packed": "1"
//   "<path>.weight.qformat": "qfp8 e3m4" | "qfp8 auto" | "int8" | "fp8_e4m3" | "fp8_e5m2"
//   "<path>.input.qformat":  the same for the input, plus " frozen" / " dynamic" /
//                            " calibrating" (the mode when exported)
// Weights whose parameters are not frozen are exported with the parameters chosen now (the
// ones the next forward uses). A NaN weight is an error naming the tensor.
NamedTensors packed_state_dict(const Module& model, std::map<std::string, std::string>* metadata);

// Decodes the codes into the fp32 master weights (so they equal the fake-quantized weights),
// loads every other tensor strictly, and freezes each layer's weight parameters, and its
// input parameters where the file has them (else the input quantizer becomes dynamic), to
// the stored ones: the logits equal the exported model's bit for bit. The file's formats
// must match the layers' specs (errors name the layer); a missing or unexpected tensor is an
// error as in a strict load_state_dict.
void load_packed_state_dict(Module& model, const SafetensorsContents& contents);

}  // namespace qilin
