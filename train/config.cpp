// Config loading: YAML text -> a source-tracked tree (every value remembers its file and
// line, so after `base:` merges and `--set` overrides an error still points where the value
// was written) -> the schema walk that fills the typed Config.
//
// The schema is ONE function, visit_config(), listing every key with its type, bounds and
// documentation. Four visitors walk it: Collector (the valid keys of each section, for
// unknown-key messages and --set paths), Parser (tree -> Config), Emitter (Config -> the
// resolved YAML, and with comments -> the reference in configs/README.md). Defaults are the
// struct initialisers of config.h, so no default is written twice.
#include "train/config.h"

#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <sstream>

#include "models/registry.h"

namespace qilin {
namespace {

namespace fs = std::filesystem;

// ---------------------------------------------------------------------------------------
// The source-tracked tree.

struct Source {
  std::string file;  // display name; "--set" for overrides
  int line = 0;      // 1-based; 0: no line
  std::string prefix() const { return line > 0 ? str_cat(file, ":", line) : file; }
};

struct Tree {
  enum class Kind { kNull, kScalar, kSeq, kMap };
  Kind kind = Kind::kNull;
  std::string scalar;
  std::vector<Tree> items;
  std::vector<std::pair<std::string, Tree>> entries;  // file order, keys unique
  Source src;

  const Tree* get(const std::string& key) const {
    for (const auto& e : entries)
      if (e.first == key) return &e.second;
    return nullptr;
  }
  Tree* get(const std::string& key) {
    return const_cast<Tree*>(static_cast<const Tree*>(this)->get(key));
  }
};

[[noreturn]] void fail_at(const Source& src, const std::string& message) {
  throw ConfigError(src.prefix() + ": " + message);
}

// A value as it appears in a message: scalars as written, lists and maps in flow style.
std::string display(const Tree& n) {
  switch (n.kind) {
    case Tree::Kind::kNull: return "null";
    case Tree::Kind::kScalar: return n.scalar.empty() ? "\"\"" : n.scalar;
    case Tree::Kind::kSeq: {
      std::string s = "[";
      for (size_t i = 0; i < n.items.size(); ++i) s += (i ? ", " : "") + display(n.items[i]);
      return s + "]";
    }
    case Tree::Kind::kMap: {
      std::string s = "{";
      for (size_t i = 0; i < n.entries.size(); ++i)
        s += (i ? ", " : "") + n.entries[i].first + ": " + display(n.entries[i].second);
      return s + "}";
    }
  }
  return "?";
}

// A config holds a few hundred values, but aliases (&a ... *a) let a few hundred bytes of
// YAML stand for billions of them ("billion laughs"): the conversion counts every value it
// makes and stops at this many.
constexpr size_t kMaxYamlValues = 100000;

Tree from_yaml(const YAML::Node& y, const Source& src, const std::string& path, size_t& budget) {
  if (budget == 0)
    fail_at(src, str_cat("invalid YAML: more than ", kMaxYamlValues, " values (aliases expanding?)"));
  --budget;
  Tree n;
  n.src = src;
  if (!y.IsDefined() || y.IsNull()) return n;
  if (y.IsScalar()) {
    n.kind = Tree::Kind::kScalar;
    n.scalar = y.Scalar();
    return n;
  }
  if (y.IsSequence()) {
    n.kind = Tree::Kind::kSeq;
    for (const auto& item : y) {
      Source s = src;
      if (!item.Mark().is_null()) s.line = src.line > 0 ? item.Mark().line + 1 : 0;
      n.items.push_back(from_yaml(item, s, path, budget));
    }
    return n;
  }
  n.kind = Tree::Kind::kMap;
  for (auto it = y.begin(); it != y.end(); ++it) {
    Source s = src;
    if (!it->first.Mark().is_null() && src.line > 0) s.line = it->first.Mark().line + 1;
    if (!it->first.IsScalar()) fail_at(s, (path.empty() ? "" : path + ": ") + "a key must be a name");
    const std::string key = it->first.Scalar();
    const std::string key_path = path.empty() ? key : path + "." + key;
    if (const Tree* first = n.get(key))
      fail_at(s, str_cat(key_path, ": duplicate key (first at line ", first->src.line, ")"));
    n.entries.emplace_back(key, from_yaml(it->second, s, key_path, budget));
  }
  return n;
}

// Parses YAML text; a syntax error names the file and line.
Tree parse_yaml(const std::string& text, const std::string& file, int first_line) {
  try {
    size_t budget = kMaxYamlValues;
    return from_yaml(YAML::Load(text), Source{file, first_line}, "", budget);
  } catch (const YAML::DeepRecursion& e) {
    // yaml-cpp's depth guard reports its message as "bad file".
    fail_at(Source{file, e.mark.is_null() || first_line == 0 ? 0 : e.mark.line + 1},
            "invalid YAML: nested too deeply");
  } catch (const YAML::Exception& e) {
    Source s{file, e.mark.is_null() || first_line == 0 ? 0 : e.mark.line + 1};
    fail_at(s, "invalid YAML: " + e.msg);
  }
}

// `over` into `base`, key by key: maps merge recursively, anything else replaces. An empty
// section (`data:` with nothing under it) adds nothing rather than erasing the base's.
void merge_into(Tree& base, const Tree& over) {
  for (const auto& [key, value] : over.entries) {
    Tree* b = base.get(key);
    if (!b) {
      base.entries.emplace_back(key, value);
    } else if (b->kind == Tree::Kind::kMap && value.kind == Tree::Kind::kMap) {
      merge_into(*b, value);
    } else if (!(b->kind == Tree::Kind::kMap && value.kind == Tree::Kind::kNull)) {
      *b = value;
    }
  }
}

// ---------------------------------------------------------------------------------------
// Number formatting: the shortest text that reads back to the same value.

std::string format_real(double v, bool single) {
  char buf[40];
  for (int precision = 1; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof buf, "%.*g", precision, v);
    const double back = std::strtod(buf, nullptr);
    if (single ? static_cast<float>(back) == static_cast<float>(v) : back == v) break;
  }
  std::string s = buf;
  // "1e-05" -> "1e-5": the way people write it (both read back identically).
  auto e = s.find("e-0");
  if (e != std::string::npos) s.erase(e + 2, 1);
  e = s.find("e+0");
  if (e != std::string::npos) s.erase(e + 2, 1);
  return s;
}

// A string as a YAML scalar: plain when it cannot be read as anything else, else quoted.
std::string format_string(const std::string& s) {
  bool plain = !s.empty() && s != "~" && s != "null" && s != "Null" && s != "NULL" &&
               s.front() != '-' && s.front() != '.';
  for (char c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || (c && std::strchr("_./+=-", c))))
      plain = false;
  if (plain) return s;
  std::string q = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') q += '\\';
    if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      q += buf;
      continue;
    }
    q += c;
  }
  return q + "\"";
}

// ---------------------------------------------------------------------------------------
// The schema.

struct Bounds {
  double lo = -std::numeric_limits<double>::infinity();
  double hi = std::numeric_limits<double>::infinity();
  bool lo_open = false, hi_open = false;
  bool contains(double v) const {
    return (lo_open ? v > lo : v >= lo) && (hi_open ? v < hi : v <= hi);
  }
  std::string text() const {
    const bool has_lo = std::isfinite(lo), has_hi = std::isfinite(hi);
    if (has_lo && has_hi)
      return str_cat(" in ", lo_open ? "(" : "[", format_real(lo, false), ", ",
                     format_real(hi, false), hi_open ? ")" : "]");
    if (has_lo) return str_cat(lo_open ? " > " : " >= ", format_real(lo, false));
    if (has_hi) return str_cat(hi_open ? " < " : " <= ", format_real(hi, false));
    return "";
  }
};
Bounds at_least(double lo) { return Bounds{lo, Bounds{}.hi, false, false}; }
Bounds above(double lo) { return Bounds{lo, Bounds{}.hi, true, false}; }
Bounds any_value() { return Bounds{}; }
Bounds in_range(double lo, double hi, bool hi_open) { return Bounds{lo, hi, false, hi_open}; }

struct Key {
  const char* name;
  const char* doc;
  bool required = false;
  // Non-null: the feature is not built yet; only the default loads, anything else is an
  // error saying this feature comes with a later issue.
  const char* later = nullptr;
};

class Visitor {
 public:
  virtual ~Visitor() = default;
  virtual void section(const char* name, const char* doc, const std::function<void()>& body) = 0;
  virtual void integer(const Key& k, int64_t& v, Bounds b) = 0;
  virtual void real(const Key& k, double& v, Bounds b, bool single) = 0;
  virtual void boolean(const Key& k, bool& v) = 0;
  virtual void text(const Key& k, std::string& v, const char* allowed) = 0;
  virtual void choice(const Key& k, int& index, const std::vector<std::string>& names) = 0;
  virtual void integers(const Key& k, std::vector<int64_t>& v, Bounds each) = 0;
  virtual void texts(const Key& k, std::vector<std::string>& v, const char* allowed) = 0;
  // `length` 0: any length.
  virtual void reals(const Key& k, std::vector<double>& v, Bounds each, size_t length,
                     bool single) = 0;
  virtual void optional_real(const Key& k, std::optional<double>& v, Bounds b, bool single) = 0;
};

// Adapters from the struct's member types to the visitor's.
template <typename E>
void choice(Visitor& v, const Key& k, E& e, const std::vector<std::string>& names) {
  int i = static_cast<int>(e);
  v.choice(k, i, names);
  e = static_cast<E>(i);
}
void real_f(Visitor& v, const Key& k, float& f, Bounds b) {
  double d = f;
  v.real(k, d, b, true);
  f = static_cast<float>(d);
}
void reals_f(Visitor& v, const Key& k, std::vector<float>& f, Bounds b) {
  std::vector<double> d(f.begin(), f.end());
  v.reals(k, d, b, 0, true);
  f.assign(d.begin(), d.end());
}

const std::vector<std::string> kRunModes{"train", "ptq", "qat", "eval"};
const std::vector<std::string> kDevices{"auto", "cpu", "cuda"};
const std::vector<std::string> kDatasets{"fashion_mnist", "mnist", "cifar10", "image_folder",
                                         "synthetic"};
const std::vector<std::string> kOptimizers{"sgd", "adamw"};
const std::vector<std::string> kSchedules{"constant", "step", "cosine"};
const std::vector<std::string> kProgress{"auto", "bar", "lines"};
// In core/qfp8.h's QuantFormat order.
const std::vector<std::string> kQuantFormats{"none", "qfp8", "int8", "fp8_e4m3", "fp8_e5m2"};
const std::vector<std::string> kQfp8Layouts{"e2m5", "e3m4", "e4m3", "e5m2", "auto"};
const std::vector<std::string> kGranularities{"per_tensor", "per_channel"};

const std::vector<std::string> kInterpMethods{"uniform", "binary_search", "nonuniform", "igelu", "native"};
const std::vector<std::string> kInterpGrads{"slope", "table"};
const std::vector<std::string> kInterpOutside{"asymptote", "extrapolate"};
constexpr const char* kDistributedLater = "data parallelism comes with a later issue";

void visit_config(Config& c, Visitor& v) {
  v.section("run", "what this run is and where it goes", [&] {
    v.text({"name", "run directory <out_dir>/<name>/; default: the config file's name"},
           c.run.name, "letters, digits and _ . - + =");
    choice(v, {"mode", "train: from scratch or checkpoint.init_from; eval: evaluate "
                       "checkpoint.init_from; ptq: quantize checkpoint.init_from, calibrate, "
                       "evaluate, export packed; qat: train with fake quantization, then the same"},
           c.run.mode, kRunModes);
    v.integer({"seed", "initial weights, validation split, shuffling, augmentation"}, c.run.seed,
              at_least(0));
    choice(v, {"device", "auto: CUDA when a GPU is present, else CPU"}, c.run.device, kDevices);
    v.text({"out_dir", "where run directories go"}, c.run.out_dir, "a directory");
  });

  ModelSpec& m = c.model;
  std::vector<std::string> archs = model_arch_names();
  v.section("model", "the network (models/model_spec.h); unused fields are ignored by an arch",
            [&] {
    int arch = static_cast<int>(std::find(archs.begin(), archs.end(), m.arch) - archs.begin());
    v.choice({"arch", "models/registry.h", true}, arch, archs);
    m.arch = archs.at(arch);
    v.integer({"img_size", "input side in pixels"}, m.img_size, at_least(1));
    v.integer({"in_chans", "input channels"}, m.in_chans, at_least(1));
    v.integer({"num_classes", "outputs"}, m.num_classes, at_least(2));
    v.integer({"patch_size", "vit; divides img_size"}, m.patch_size, at_least(1));
    v.integer({"embed_dim", "vit; divisible by num_heads"}, m.embed_dim, at_least(1));
    v.integer({"depth", "vit: transformer blocks"}, m.depth, at_least(1));
    v.integer({"num_heads", "vit"}, m.num_heads, at_least(1));
    real_f(v, {"mlp_ratio", "vit: MLP hidden = embed_dim * mlp_ratio"}, m.mlp_ratio, above(0));
    real_f(v, {"drop_rate", "vit: dropout after pos-embed, in MLP, after attn proj"}, m.drop_rate,
           in_range(0, 1, true));
    real_f(v, {"attn_drop_rate", "vit: dropout on attention probabilities"}, m.attn_drop_rate,
           in_range(0, 1, true));
    v.integers({"widths", "CNN stage widths; []: the arch's default"}, m.widths, at_least(1));
    v.integers({"depths", "CNN blocks per stage; []: the arch's default"}, m.depths, at_least(1));
    std::optional<double> momentum;
    if (m.bn_momentum) momentum = *m.bn_momentum;
    v.optional_real({"bn_momentum", "BatchNorm; null: cumulative average"}, momentum,
                    Bounds{0, 1, true, false}, true);
    m.bn_momentum = momentum ? std::optional<float>(static_cast<float>(*momentum)) : std::nullopt;
    real_f(v, {"bn_eps", "BatchNorm"}, m.bn_eps, above(0));
    v.integer({"stem_width", "regnety"}, m.stem_width, at_least(1));
    v.integer({"group_width", "regnety: channels per group of the 3x3 conv"}, m.group_width,
              at_least(1));
    real_f(v, {"bottle_ratio", "regnety"}, m.bottle_ratio, above(0));
    real_f(v, {"se_ratio", "regnety: squeeze-excitation reduction"}, m.se_ratio,
           in_range(0, 1, false));
    v.integers({"hidden", "mlp hidden widths; []: 256, 128"}, m.hidden, at_least(1));
  });

  DataSection& d = c.data;
  v.section("data", "data set, split and loader", [&] {
    choice(v, {"dataset", "fashion_mnist reads the Debian package dataset-fashion-mnist", true},
           d.dataset, kDatasets);
    v.text({"root", "data set directory; \"\": the data set's default"}, d.root, "a directory");
    v.integer({"val_size", "validation images carved from the training set (seeded)"},
              d.val_size, at_least(0));
    v.integer({"batch_size", "training batch"}, d.batch_size, at_least(1));
    v.integer({"eval_batch_size", "evaluation batch"}, d.eval_batch_size, at_least(1));
    v.integer({"workers", "loader threads; 0: load in the training thread"}, d.workers,
              at_least(0));
    v.integer({"prefetch", "batches prepared ahead"}, d.prefetch, at_least(1));
    v.boolean({"drop_last", "drop the last partial training batch"}, d.drop_last);
    v.integer({"train_subset", "use only this many training images; 0: all"}, d.train_subset,
              at_least(0));
    v.integer({"synthetic_train_size", "synthetic: training images"}, d.synthetic_train_size,
              at_least(1));
    v.integer({"synthetic_test_size", "synthetic: test images"}, d.synthetic_test_size,
              at_least(1));
    TransformsSection& t = d.transforms;
    v.section("transforms", "augmentation (training) and normalisation (all splits)", [&] {
      v.section("normalize", "(x - mean) / std per channel, after scaling pixels to [0, 1]", [&] {
        reals_f(v, {"mean", "[]: the data set's statistics (filled in when loaded)"},
                t.normalize_mean, any_value());
        reals_f(v, {"std", "[]: the data set's statistics"}, t.normalize_std, above(0));
      });
      v.section("random_crop", "pad, then crop back to the original size at random", [&] {
        v.integer({"padding", "pixels per side; 0: off"}, t.random_crop_padding, at_least(0));
      });
      v.boolean({"hflip", "random horizontal flip, p = 0.5"}, t.hflip);
      v.integer({"resize", "square side; 0: the data set's size"}, t.resize, at_least(0));
      v.boolean({"random_resized_crop", "torchvision's, to img_size (training)"},
                t.random_resized_crop);
      v.integer({"center_crop", "evaluation centre crop side; 0: off"}, t.center_crop,
                at_least(0));
      v.real({"mixup_alpha", "Beta(alpha, alpha) mixing of images and labels; 0: off"},
             t.mixup_alpha, at_least(0), false);
      v.real({"cutmix_alpha", "CutMix; 0: off"}, t.cutmix_alpha, at_least(0), false);
    });
  });

  OptimSection& o = c.optim;
  v.section("optim", "optimizer, schedule and training-loop options", [&] {
    choice(v, {"name", "PyTorch 1.13 update rules (train/optim.h)", true}, o.name, kOptimizers);
    v.real({"lr", "peak learning rate", true}, o.lr, above(0), false);
    v.real({"weight_decay", "sgd: L2 in the gradient; adamw: decoupled"}, o.weight_decay,
           at_least(0), false);
    v.real({"momentum", "sgd"}, o.momentum, in_range(0, 1, true), false);
    v.boolean({"nesterov", "sgd"}, o.nesterov);
    std::vector<double> betas{o.beta1, o.beta2};
    v.reals({"betas", "adamw"}, betas, in_range(0, 1, true), 2, false);
    o.beta1 = betas.at(0);
    o.beta2 = betas.at(1);
    v.real({"eps", "adamw"}, o.eps, above(0), false);
    v.integer({"epochs", "passes over the training split", true}, o.epochs, at_least(1));
    choice(v, {"schedule", "cosine: linear warm-up then half a cosine to min_lr"}, o.schedule,
           kSchedules);
    v.real({"warmup_epochs", "linear warm-up length (fractions allowed)"}, o.warmup_epochs,
           at_least(0), false);
    v.integer({"warmup_steps", "or in optimizer steps (at most one of the two)"},
              o.warmup_steps, at_least(0));
    v.real({"min_lr", "cosine: final rate"}, o.min_lr, at_least(0), false);
    v.real({"warmup_lr", "rate at step 0 of the warm-up"}, o.warmup_lr, at_least(0), false);
    v.integer({"step_size", "step: epochs between decays"}, o.step_size, at_least(1));
    v.real({"gamma", "step: decay factor"}, o.gamma, Bounds{0, 1, true, false}, false);
    v.real({"clip_grad_norm", "max global gradient L2 norm; 0: off"}, o.clip_grad_norm,
           at_least(0), false);
    v.integer({"accum_steps", "micro-batches per optimizer step"}, o.accum_steps, at_least(1));
    v.real({"ema_decay", "EMA of the weights, evaluated alongside; 0: off"}, o.ema_decay,
           in_range(0, 1, true), false);
    v.real({"label_smoothing", "cross-entropy label smoothing"}, o.label_smoothing,
           in_range(0, 1, true), false);
  });

  InterpSection& ip = c.interp;
  v.section("interp", "interpolated activations and softmax (DESIGN.md §4.1)", [&] {
    v.boolean({"enabled", "replace the listed functions of every model by tables"}, ip.enabled);
    choice(v, {"method", "uniform: Algorithm 1; binary_search: the same pieces, O(log n) search; "
                         "nonuniform: PAPER.md §4.5; igelu: I-BERT (gelu only, the others native); "
                         "native: the exact functions"},
           ip.method, kInterpMethods);
    v.integer({"segments", "pieces per table: a power of two 2 .. 65536 (nonuniform: the total)"},
              ip.segments, in_range(2, 65536, false));
    choice(v, {"grad", "slope: the forward's exact derivative; table: a second table of f'"}, ip.grad,
           kInterpGrads);
    choice(v, {"outside", "asymptote: the function's limits outside the domain; extrapolate: the "
                          "end pieces' lines"},
           ip.outside, kInterpOutside);
    v.section("functions", "per function: domain [lo, hi] (hi - lo a power of two), own segments", [&] {
      const auto function = [&](const char* name, const char* doc, InterpFunctionSection& f) {
        v.section(name, doc, [&] {
          v.boolean({"enabled", "replace this function"}, f.enabled);
          v.reals({"domain", "[lo, hi]; hi - lo a power of two"}, f.domain, any_value(), 2, true);
          v.integer({"segments", "0: interp.segments"}, f.segments, in_range(0, 65536, false));
        });
      };
      function("gelu", "GELU (erf form)", ip.gelu);
      function("softmax", "the exp inside softmax, on x - max <= 0", ip.softmax);
      function("sigmoid", "sigmoid (squeeze-excitation gates)", ip.sigmoid);
      function("tanh", "tanh", ip.tanh);
      function("silu", "SiLU = x sigmoid(x)", ip.silu);
    });
  });
  QuantSection& q = c.quant;
  v.section("quant", "8-bit quantized Linear / Conv2d layers (DESIGN.md §4.2)", [&] {
    choice(v, {"format", "none: fp32 layers; the others quantize every Linear / Conv2d not excluded "
                         "(run.mode ptq or qat, or eval of a packed checkpoint)"},
           q.format, kQuantFormats);
    choice(v, {"layout", "qfp8 only: the exponent/mantissa split; auto: per weight tensor (or "
                         "channel) the layout and bias with least squared error, activations e3m4"},
           q.layout, kQfp8Layouts);
    const auto tensor = [&](const char* name, const char* doc, QuantTensorSection& t) {
      v.section(name, doc, [&] {
        v.text({"bias", "qfp8 exponent bias: amax (largest with max >= amax), mse (least squared "
                        "error of amax .. amax + 3) or a fixed integer"},
               t.bias, "amax | mse | an integer in [-126, 126]");
        choice(v, {"granularity", "per_channel: one bias (or scale) per output channel"},
               t.granularity, kGranularities);
      });
    };
    tensor("weight", "the layers' weights (fp32 master copies are kept)", q.weight);
    tensor("activation", "the layers' inputs: from each batch in training, frozen after calibration",
           q.activation);
    v.texts({"layers", "which layer kinds are quantized"}, q.layers, "linear, conv");
    v.texts({"exclude", "layers kept in fp32, by dotted path glob, e.g. head, patch_embed.*"}, q.exclude,
            "fnmatch globs");
    v.boolean({"fold_bn", "fold each BatchNorm into its conv before weight quantization (ptq and "
                          "eval of its packed checkpoint; calibrate.bn false)"},
              q.fold_bn);
    v.integer({"freeze_bias_after", "qat: from this step on, the activation biases are calibrated "
                                    "on the next calibrate.batches training batches, then frozen; 0: from "
                                    "each batch until the end"},
              q.freeze_bias_after, at_least(0));
    v.integer({"freeze_bn_after", "qat: BatchNorm statistics frozen after this many epochs; 0: never"},
              q.freeze_bn_after, at_least(0));
  });
  v.section("calibrate", "activation-bias and BatchNorm calibration (DESIGN.md §4.3)", [&] {
    v.integer({"batches", "ptq, qat: training batches run through the quantized model to calibrate"},
              c.calibrate.batches, at_least(0));
    v.boolean({"bn", "ptq: re-estimate BatchNorm statistics on those batches, then the "
                     "activation biases again"},
              c.calibrate.bn);
  });

  CheckpointSection& k = c.checkpoint;
  v.section("checkpoint", "ckpt_<tag>.safetensors + ckpt_<tag>.trainer.safetensors", [&] {
    v.integer({"every_epochs", "keep a checkpoint every N epochs; 0: only last and best"},
              k.every_epochs, at_least(0));
    std::string resume = k.resume == ResumeMode::kAuto   ? "auto"
                         : k.resume == ResumeMode::kNone ? "none"
                                                         : k.resume_path;
    v.text({"resume", "auto: continue this run's last checkpoint if there is one"}, resume,
           "auto | none | <checkpoint path>");
    k.resume = resume == "auto" ? ResumeMode::kAuto
               : resume == "none" ? ResumeMode::kNone
                                  : ResumeMode::kPath;
    k.resume_path = k.resume == ResumeMode::kPath ? resume : "";
    v.text({"init_from", "state dict to start from (timm/torchvision names); \"\": none"},
           k.init_from, "a .safetensors path");
    v.boolean({"strict", "init_from: every key must match"}, k.strict);
  });

  v.section("log", "progress and metrics", [&] {
    v.integer({"every_steps", "a log line / metrics.jsonl entry every N steps"},
              c.log.every_steps, at_least(1));
    choice(v, {"progress", "auto: a bar on a terminal, lines otherwise"}, c.log.progress,
           kProgress);
  });

  v.section("distributed", "data parallelism over NCCL/MPI: later issue", [&] {
    v.boolean({"enabled", "", false, kDistributedLater}, c.distributed.enabled);
    v.boolean({"sync_bn", "BatchNorm statistics across ranks"}, c.distributed.sync_bn);
  });
}

// ---------------------------------------------------------------------------------------
// Collector: the keys of every section, found by walking the schema once.

struct Schema {
  std::map<std::string, std::vector<std::string>> keys;  // section path ("" = top) -> keys
  std::set<std::string> sections;                        // section paths
};

class Collector : public Visitor {
 public:
  explicit Collector(Schema& s) : s_(s) { s_.sections.insert(""); }
  void section(const char* name, const char*, const std::function<void()>& body) override {
    const std::string path = add(name);
    s_.sections.insert(path);
    prefix_.push_back(path);
    body();
    prefix_.pop_back();
  }
  void integer(const Key& k, int64_t&, Bounds) override { add(k.name); }
  void real(const Key& k, double&, Bounds, bool) override { add(k.name); }
  void boolean(const Key& k, bool&) override { add(k.name); }
  void text(const Key& k, std::string&, const char*) override { add(k.name); }
  void choice(const Key& k, int&, const std::vector<std::string>&) override { add(k.name); }
  void integers(const Key& k, std::vector<int64_t>&, Bounds) override { add(k.name); }
  void texts(const Key& k, std::vector<std::string>&, const char*) override { add(k.name); }
  void reals(const Key& k, std::vector<double>&, Bounds, size_t, bool) override { add(k.name); }
  void optional_real(const Key& k, std::optional<double>&, Bounds, bool) override {
    add(k.name);
  }

 private:
  std::string add(const char* name) {
    const std::string parent = prefix_.empty() ? "" : prefix_.back();
    s_.keys[parent].push_back(name);
    return parent.empty() ? name : parent + "." + name;
  }
  Schema& s_;
  std::vector<std::string> prefix_;
};

const Schema& schema() {
  static const Schema s = [] {
    Schema result;
    Config c;
    Collector collector(result);
    visit_config(c, collector);
    return result;
  }();
  return s;
}

std::string join(const std::vector<std::string>& names, const char* sep) {
  std::string s;
  for (const auto& n : names) s += (s.empty() ? "" : sep) + n;
  return s;
}

std::string join_path(const std::string& parent, const std::string& key) {
  return parent.empty() ? key : parent + "." + key;
}

std::string unknown_key_message(const std::string& parent, const std::string& key) {
  return str_cat(join_path(parent, key), ": unknown key (valid: ",
                 join(schema().keys.at(parent), ", "), ")");
}

// What a key allows, as shown in errors and in the reference.
std::string allowed_integer(Bounds b) { return "an integer" + b.text(); }
std::string allowed_real(Bounds b) { return "a number" + b.text(); }

// ---------------------------------------------------------------------------------------
// Parser: tree -> Config, recording where each given key was written.

class Parser : public Visitor {
 public:
  Parser(const Tree& root, std::map<std::string, Source>& where) : where_(where) {
    frames_.push_back(Frame{&root, "", root.src});
    check_unknown_keys(root, "");
  }

  void section(const char* name, const char*, const std::function<void()>& body) override {
    const Tree* n = find(name);
    const std::string path = path_of(name);
    if (n && n->kind != Tree::Kind::kMap && n->kind != Tree::Kind::kNull)
      fail_at(n->src, str_cat(path, " = ", display(*n), ": must be a section with keys ",
                              join(schema().keys.at(path), ", ")));
    if (n) where_[path] = n->src;
    const Tree* map = n && n->kind == Tree::Kind::kMap ? n : nullptr;
    if (map) check_unknown_keys(*map, path);
    frames_.push_back(Frame{map, path, n ? n->src : frames_.back().src});
    body();
    frames_.pop_back();
  }

  void integer(const Key& k, int64_t& v, Bounds b) override {
    const Tree* n = given(k, allowed_integer(b));
    if (!n) return;
    int64_t x = 0;
    if (!parse_int(*n, x) || !b.contains(static_cast<double>(x)))
      fail(k, *n, "must be " + allowed_integer(b));
    check_later(k, *n, x == v, std::to_string(v));
    v = x;
  }
  void real(const Key& k, double& v, Bounds b, bool) override {
    const Tree* n = given(k, allowed_real(b));
    if (!n) return;
    double x = 0;
    if (!parse_real(*n, x) || !b.contains(x)) fail(k, *n, "must be " + allowed_real(b));
    v = x;
  }
  void boolean(const Key& k, bool& v) override {
    const Tree* n = given(k, "true or false");
    if (!n) return;
    bool x = false;
    if (!parse_bool(*n, x)) fail(k, *n, "must be true or false");
    check_later(k, *n, x == v, v ? "true" : "false");
    v = x;
  }
  void text(const Key& k, std::string& v, const char* allowed) override {
    const Tree* n = given(k, allowed);
    if (!n) return;
    if (n->kind == Tree::Kind::kNull) {
      v.clear();
      return;
    }
    if (n->kind != Tree::Kind::kScalar) fail(k, *n, str_cat("must be a string (", allowed, ")"));
    v = n->scalar;
  }
  void choice(const Key& k, int& index, const std::vector<std::string>& names) override {
    const Tree* n = given(k, "one of " + join(names, ", "));
    if (!n) return;
    if (n->kind == Tree::Kind::kScalar) check_later(k, *n, n->scalar == names.at(index), names.at(index));
    auto it = n->kind == Tree::Kind::kScalar ? std::find(names.begin(), names.end(), n->scalar)
                                             : names.end();
    if (it == names.end()) fail(k, *n, "must be one of " + join(names, ", "));
    index = static_cast<int>(it - names.begin());
  }
  void integers(const Key& k, std::vector<int64_t>& v, Bounds each) override {
    const std::string allowed = "a list of integers" + each.text();
    const Tree* n = given(k, allowed);
    if (!n) return;
    if (n->kind != Tree::Kind::kSeq) fail(k, *n, "must be " + allowed);
    std::vector<int64_t> out;
    for (const Tree& item : n->items) {
      int64_t x = 0;
      if (!parse_int(item, x) || !each.contains(static_cast<double>(x)))
        fail(k, *n, "must be " + allowed);
      out.push_back(x);
    }
    v = out;
  }
  void texts(const Key& k, std::vector<std::string>& v, const char* allowed_each) override {
    const std::string allowed = str_cat("a list of strings (", allowed_each, ")");
    const Tree* n = given(k, allowed);
    if (!n) return;
    if (n->kind != Tree::Kind::kSeq) fail(k, *n, "must be " + allowed);
    std::vector<std::string> out;
    for (const Tree& item : n->items) {
      if (item.kind != Tree::Kind::kScalar) fail(k, *n, "must be " + allowed);
      out.push_back(item.scalar);
    }
    v = out;
  }
  void reals(const Key& k, std::vector<double>& v, Bounds each, size_t length, bool) override {
    const std::string allowed =
        length ? str_cat("a list of ", length, " numbers", each.text()) : "a list of numbers" + each.text();
    const Tree* n = given(k, allowed);
    if (!n) return;
    if (n->kind != Tree::Kind::kSeq || (length && n->items.size() != length))
      fail(k, *n, "must be " + allowed);
    std::vector<double> out;
    for (const Tree& item : n->items) {
      double x = 0;
      if (!parse_real(item, x) || !each.contains(x)) fail(k, *n, "must be " + allowed);
      out.push_back(x);
    }
    v = out;
  }
  void optional_real(const Key& k, std::optional<double>& v, Bounds b, bool) override {
    const Tree* n = given(k, allowed_real(b) + " or null");
    if (!n) return;
    if (n->kind == Tree::Kind::kNull) {
      v.reset();
      return;
    }
    double x = 0;
    if (!parse_real(*n, x) || !b.contains(x)) fail(k, *n, "must be " + allowed_real(b) + " or null");
    v = x;
  }

 private:
  struct Frame {
    const Tree* map;  // null: the section is absent or empty
    std::string path;
    Source src;       // the section's key, or the enclosing one's when absent
  };

  const Tree* find(const std::string& key) const {
    return frames_.back().map ? frames_.back().map->get(key) : nullptr;
  }
  std::string path_of(const std::string& key) const { return join_path(frames_.back().path, key); }

  // The node given for `k`, or null when absent (an error when the key is required).
  const Tree* given(const Key& k, const std::string& allowed) {
    const Tree* n = find(k.name);
    if (!n) {
      if (k.required)
        fail_at(frames_.back().src, str_cat(path_of(k.name), ": missing required key (",
                                            allowed, ")"));
      return nullptr;
    }
    where_[path_of(k.name)] = n->src;
    return n;
  }

  void check_unknown_keys(const Tree& map, const std::string& path) {
    const auto& valid = schema().keys.at(path);
    for (const auto& [key, value] : map.entries)
      if (std::find(valid.begin(), valid.end(), key) == valid.end())
        fail_at(value.src, unknown_key_message(path, key));
  }

  void check_later(const Key& k, const Tree& n, bool is_default, const std::string& default_text) {
    if (!k.later || is_default) return;
    fail(k, n, str_cat("only ", default_text, " is accepted for now; ", k.later));
  }

  [[noreturn]] void fail(const Key& k, const Tree& n, const std::string& what) {
    fail_at(n.src, str_cat(path_of(k.name), " = ", display(n), ": ", what));
  }

  static bool parse_int(const Tree& n, int64_t& out) {
    if (n.kind != Tree::Kind::kScalar || n.scalar.empty()) return false;
    const char* s = n.scalar.c_str();
    char* end = nullptr;
    errno = 0;
    const long long v = std::strtoll(s, &end, 10);
    if (errno || *end != '\0' || std::isspace(static_cast<unsigned char>(*s))) return false;
    out = v;
    return true;
  }
  static bool parse_real(const Tree& n, double& out) {
    if (n.kind != Tree::Kind::kScalar || n.scalar.empty()) return false;
    const char* s = n.scalar.c_str();
    char* end = nullptr;
    const double v = std::strtod(s, &end);
    if (*end != '\0' || std::isspace(static_cast<unsigned char>(*s)) || !std::isfinite(v))
      return false;
    // strtod also reads hex floats; a config has no business with them.
    if (n.scalar.find_first_of("xX") != std::string::npos) return false;
    out = v;
    return true;
  }
  static bool parse_bool(const Tree& n, bool& out) {
    if (n.kind != Tree::Kind::kScalar) return false;
    const std::string& s = n.scalar;
    if (s == "true" || s == "True" || s == "TRUE") out = true;
    else if (s == "false" || s == "False" || s == "FALSE") out = false;
    else return false;
    return true;
  }

  std::vector<Frame> frames_;
  std::map<std::string, Source>& where_;
};

// ---------------------------------------------------------------------------------------
// Emitter: Config -> YAML; with `comments`, each line says what the key allows.

class Emitter : public Visitor {
 public:
  explicit Emitter(bool comments) : comments_(comments) {}

  void section(const char* name, const char* doc, const std::function<void()>& body) override {
    row(std::string(name) + ":", doc);
    ++depth_;
    body();
    --depth_;
  }
  void integer(const Key& k, int64_t& v, Bounds b) override {
    field(k, std::to_string(v), allowed_integer(b));
  }
  void real(const Key& k, double& v, Bounds b, bool single) override {
    field(k, format_real(v, single), allowed_real(b));
  }
  void boolean(const Key& k, bool& v) override { field(k, v ? "true" : "false", "true | false"); }
  void text(const Key& k, std::string& v, const char* allowed) override {
    field(k, format_string(v), allowed);
  }
  void choice(const Key& k, int& index, const std::vector<std::string>& names) override {
    field(k, names.at(index), join(names, " | "));
  }
  void integers(const Key& k, std::vector<int64_t>& v, Bounds each) override {
    std::vector<std::string> items;
    for (int64_t x : v) items.push_back(std::to_string(x));
    field(k, "[" + join(items, ", ") + "]", "list of integers" + each.text());
  }
  void texts(const Key& k, std::vector<std::string>& v, const char* allowed) override {
    std::vector<std::string> items;
    for (const std::string& x : v) items.push_back(format_string(x));
    field(k, "[" + join(items, ", ") + "]", str_cat("list of strings (", allowed, ")"));
  }
  void reals(const Key& k, std::vector<double>& v, Bounds each, size_t length,
             bool single) override {
    std::vector<std::string> items;
    for (double x : v) items.push_back(format_real(x, single));
    field(k, "[" + join(items, ", ") + "]",
          (length ? str_cat("list of ", length, " numbers") : std::string("list of numbers")) +
              each.text());
  }
  void optional_real(const Key& k, std::optional<double>& v, Bounds b, bool single) override {
    field(k, v ? format_real(*v, single) : "null", allowed_real(b) + " | null");
  }

  std::string yaml() const {
    size_t width = 0;
    for (const auto& r : rows_) width = std::max(width, r.first.size());
    std::string out;
    for (const auto& [code, comment] : rows_) {
      out += code;
      if (comments_ && !comment.empty()) out += std::string(width + 2 - code.size(), ' ') + "# " + comment;
      out += "\n";
    }
    return out;
  }

 private:
  void row(std::string code, std::string comment) {
    rows_.emplace_back(std::string(2 * depth_, ' ') + code, std::move(comment));
  }
  void field(const Key& k, const std::string& value, const std::string& allowed) {
    std::string comment;
    std::string shown = value;
    if (k.later) {
      comment = str_cat("only ", value, " for now; ", k.later);
    } else if (k.required) {
      if (comments_) shown.clear();  // the reference shows no default for a required key
      comment = "REQUIRED; " + allowed;
    } else {
      comment = allowed;
    }
    if (k.doc && *k.doc && !k.later) comment += ". " + std::string(k.doc);
    row(std::string(k.name) + ":" + (shown.empty() ? "" : " " + shown), comment);
  }
  bool comments_;
  int depth_ = 0;
  std::vector<std::pair<std::string, std::string>> rows_;
};

// ---------------------------------------------------------------------------------------
// After the schema walk: defaults that depend on other keys, and checks across keys.

struct DatasetFacts {
  int64_t img_size, in_chans, num_classes, train_images;  // 0: varies
  std::vector<float> mean, std;
};

DatasetFacts dataset_facts(const Config& c) {
  switch (c.data.dataset) {
    // Training-set statistics of pixel / 255: Fashion-MNIST as in train/demo_main.cpp,
    // MNIST and CIFAR-10 as torchvision's references use them.
    case DatasetKind::kFashionMnist: return {28, 1, 10, 60000, {0.2860f}, {0.3530f}};
    case DatasetKind::kMnist: return {28, 1, 10, 60000, {0.1307f}, {0.3081f}};
    case DatasetKind::kCifar10:
      return {32, 3, 10, 50000, {0.4914f, 0.4822f, 0.4465f}, {0.2470f, 0.2435f, 0.2616f}};
    case DatasetKind::kImageFolder:
      // ImageNet's statistics for colour folders; grey ones are centred on 0.5.
      if (c.model.in_chans == 3) return {0, 0, 0, 0, {0.485f, 0.456f, 0.406f}, {0.229f, 0.224f, 0.225f}};
      return {0, 0, 0, 0, {0.5f}, {0.5f}};
    case DatasetKind::kSynthetic:
      return {0, 0, 0, c.data.synthetic_train_size, {0.0f}, {1.0f}};  // already standardised
  }
  return {};
}

class Checker {
 public:
  Checker(const Config& c, const std::map<std::string, Source>& where, const std::string& top)
      : c_(c), where_(where), top_(top) {}

  // Where `path` was written; a key left at its default points at the top file.
  Source at(const std::string& path) const {
    auto it = where_.find(path);
    return it != where_.end() ? it->second : Source{top_, 0};
  }
  // The first of `paths` that was written, for a rule between several keys.
  std::string given_of(std::initializer_list<const char*> paths) const {
    for (const char* p : paths)
      if (where_.count(p)) return p;
    return *paths.begin();
  }
  static std::string list(const std::vector<int64_t>& v) {
    std::vector<std::string> items;
    for (int64_t x : v) items.push_back(std::to_string(x));
    return "[" + join(items, ", ") + "]";
  }
  static std::string list(const std::vector<float>& v) {
    std::vector<std::string> items;
    for (float x : v) items.push_back(format_real(x, true));
    return "[" + join(items, ", ") + "]";
  }
  [[noreturn]] void fail(const std::string& path, const std::string& value,
                         const std::string& what) const {
    fail_at(at(path), str_cat(path, " = ", value, ": ", what));
  }

  void check_quant() const {
    const QuantSection& q = c_.quant;
    for (const auto& [path, t] : {std::pair<const char*, const QuantTensorSection*>{"quant.weight.bias", &q.weight},
                                  {"quant.activation.bias", &q.activation}}) {
      if (!parse_quant_bias(t->bias))
        fail(path, format_string(t->bias), "must be amax, mse or an integer in [-126, 126]");
    }
    if (q.activation.bias == "mse")
      fail("quant.activation.bias", "mse",
           "activations take amax or a fixed integer (calibration observes a running amax, not the data)");
    for (const std::string& kind : q.layers)
      if (kind != "linear" && kind != "conv")
        fail("quant.layers", format_string(kind), "each entry must be linear or conv");
    if (q.fold_bn && c_.calibrate.bn)
      fail("quant.fold_bn", "true", "folds every BatchNorm away, so calibrate.bn must be false (DESIGN.md §4.3)");
    const RunMode mode = c_.run.mode;
    if (q.fold_bn && mode == RunMode::kQat)
      fail("quant.fold_bn", "true",
           "folds BatchNorm for run.mode ptq (and eval of its packed checkpoint); qat with folded "
           "BatchNorm is a different recipe (batch statistics folded every step) that is not built");
    if (q.fold_bn && mode == RunMode::kTrain)
      fail("quant.fold_bn", "true", "needs run.mode ptq (or eval of a packed checkpoint a ptq run with it wrote)");
    if (q.fold_bn && q.format == QuantFormat::kNone)
      fail("quant.fold_bn", "true", "folds BatchNorm before weight quantization: needs quant.format "
           "(qfp8, int8, fp8_e4m3 or fp8_e5m2)");
    if (mode == RunMode::kPtq || mode == RunMode::kQat) {
      const char* m = mode == RunMode::kPtq ? "ptq" : "qat";
      if (q.format == QuantFormat::kNone)
        fail("run.mode", m, "needs quant.format (qfp8, int8, fp8_e4m3 or fp8_e5m2)");
      if (mode == RunMode::kPtq && c_.checkpoint.init_from.empty())
        fail("run.mode", m, "needs checkpoint.init_from (the fp32 weights to quantize)");
      if (c_.calibrate.batches < 1)
        fail("calibrate.batches", "0",
             str_cat(m, " needs at least one calibration batch (the activation biases are frozen from them)"));
      if (mode == RunMode::kQat && c_.calibrate.bn)
        fail("calibrate.bn", "true", "re-estimates BatchNorm after ptq; qat trains it (quant.freeze_bn_after freezes it)");
    } else if (q.format != QuantFormat::kNone && mode != RunMode::kEval) {
      fail("quant.format", kQuantFormats.at(static_cast<size_t>(q.format)),
           "needs run.mode ptq or qat (or eval of a packed checkpoint)");
    }
  }

  void check() const {
    const Config& c = c_;
    bool name_ok = !c.run.name.empty() && c.run.name != "." && c.run.name != "..";
    for (char ch : c.run.name)
      if (!(std::isalnum(static_cast<unsigned char>(ch)) || std::strchr("_.-+=", ch))) name_ok = false;
    if (!name_ok)
      fail("run.name", format_string(c.run.name),
           "must be a directory name of letters, digits and _ . - + =");
    check_quant();
    if (c.run.mode == RunMode::kEval && c.checkpoint.init_from.empty())
      fail("run.mode", "eval", "needs checkpoint.init_from (the weights to evaluate)");
    if (c.checkpoint.resume == ResumeMode::kPath && c.checkpoint.resume_path.empty())
      fail("checkpoint.resume", "\"\"", "must be auto, none or a checkpoint path");

    const ModelSpec& m = c.model;
    if (m.arch == "vit") {
      if (m.img_size % m.patch_size != 0) {
        const std::string p = given_of({"model.patch_size", "model.img_size"});
        fail(p, std::to_string(p == "model.patch_size" ? m.patch_size : m.img_size),
             str_cat("model.patch_size ", m.patch_size, " must divide model.img_size ",
                     m.img_size));
      }
      if (m.embed_dim % m.num_heads != 0) {
        const std::string p = given_of({"model.num_heads", "model.embed_dim"});
        fail(p, std::to_string(p == "model.num_heads" ? m.num_heads : m.embed_dim),
             str_cat("model.num_heads ", m.num_heads, " must divide model.embed_dim ",
                     m.embed_dim));
      }
    }
    if (!m.widths.empty() && !m.depths.empty() && m.widths.size() != m.depths.size())
      fail("model.depths", list(m.depths),
           str_cat("model.widths and model.depths need the same number of stages (",
                   m.widths.size(), " and ", m.depths.size(), ")"));

    const DatasetFacts facts = dataset_facts(c);
    const std::string dataset = to_string(c.data.dataset);
    auto must_match = [&](const char* key, int64_t value, int64_t expected, const char* why) {
      if (expected == 0 || value == expected) return;
      const std::string p = where_.count(key) ? key : "data.dataset";
      fail(p, p == key ? std::to_string(value) : dataset,
           str_cat(key, " must be ", expected, " for data.dataset ", dataset, why));
    };
    must_match("model.in_chans", m.in_chans, facts.in_chans, "");
    must_match("model.num_classes", m.num_classes, facts.num_classes, "");
    const TransformsSection& t = c.data.transforms;
    if (!t.random_resized_crop && t.center_crop == 0)
      must_match("model.img_size", m.img_size, t.resize ? t.resize : facts.img_size,
                 t.resize ? " with data.transforms.resize" : "");

    auto channels_ok = [&](size_t n) { return n == 1 || n == static_cast<size_t>(m.in_chans); };
    const std::string channels = str_cat("must have 1 or model.in_chans (", m.in_chans, ") values");
    if (!channels_ok(t.normalize_mean.size()))
      fail("data.transforms.normalize.mean", list(t.normalize_mean), channels);
    if (!channels_ok(t.normalize_std.size()))
      fail("data.transforms.normalize.std", list(t.normalize_std), channels);
    if (t.normalize_mean.size() != t.normalize_std.size())
      fail(given_of({"data.transforms.normalize.std", "data.transforms.normalize.mean"}),
           where_.count("data.transforms.normalize.std") ? list(t.normalize_std)
                                                         : list(t.normalize_mean),
           "data.transforms.normalize.mean and .std need the same number of values");
    if (facts.train_images && c.data.val_size >= facts.train_images)
      fail("data.val_size", std::to_string(c.data.val_size),
           str_cat("must be < ", facts.train_images, ", the training images of ", dataset));

    // Every table the run would build, built now (and cached for the run): a bad domain or
    // piece count is a config error at its key.
    if (c.interp.enabled) {
      for (InterpFn fn : {InterpFn::kGelu, InterpFn::kExp, InterpFn::kSigmoid, InterpFn::kTanh, InterpFn::kSilu}) {
        const InterpFunctionSection& f = c.interp.function(fn);
        if (!f.enabled) continue;
        const std::string key = str_cat("interp.functions.", interp_config_name(fn));
        const std::string domain = list(std::vector<float>(f.domain.begin(), f.domain.end()));
        try {
          make_domain(f.domain.at(0), f.domain.at(1), key + ".domain");
        } catch (const std::exception&) {
          fail(key + ".domain", domain, "must be [lo, hi] with hi - lo a power of two (2^-24 .. 2^24) "
                                        "and both ends exact in float32");
        }
        const bool own = f.segments > 0;
        const std::string pieces_key = own ? key + ".segments" : "interp.segments";
        const int64_t pieces = own ? f.segments : c.interp.segments;
        const bool uniform_grid = c.interp.method == InterpMethod::kUniform || c.interp.method == InterpMethod::kBinarySearch;
        if (uniform_grid && (pieces & (pieces - 1)) != 0)
          fail(pieces_key, std::to_string(pieces), "must be a power of two 2 .. 65536");
        try {
          InterpTable::get(interp_spec(c.interp, fn));
        } catch (const Error& e) {
          fail(pieces_key, std::to_string(pieces), e.what());
        }
      }
    }

    const OptimSection& o = c.optim;
    if (o.warmup_epochs > 0 && o.warmup_steps > 0)
      fail("optim.warmup_steps", std::to_string(o.warmup_steps),
           "give optim.warmup_epochs or optim.warmup_steps, not both");
    if (o.warmup_epochs >= static_cast<double>(o.epochs))
      fail("optim.warmup_epochs", format_real(o.warmup_epochs, false),
           str_cat("must be < optim.epochs (", o.epochs, ")"));
  }

 private:
  const Config& c_;
  const std::map<std::string, Source>& where_;
  std::string top_;
};

// ---------------------------------------------------------------------------------------
// Files, `base:` and `--set`.

std::string read_file(const std::string& path, const std::string& display_name) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError(str_cat(display_name, ": cannot read the config file (",
                                     std::strerror(errno), ")"));
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Loads text (display name `display`, directory `dir` for relative bases) and everything it
// extends. `chain`: the files being loaded, outermost first, for cycle messages.
Tree load_tree(const std::string& text, const std::string& file, const fs::path& dir,
               std::vector<std::pair<fs::path, std::string>>& chain) {
  Tree root = parse_yaml(text, file, 1);
  root.src.line = 0;  // a missing section is reported against the file, not its line 1
  if (root.kind == Tree::Kind::kNull) {
    root.kind = Tree::Kind::kMap;  // an empty file
  } else if (root.kind != Tree::Kind::kMap) {
    fail_at(Source{file, 1}, "a config is a map of sections (" +
                                   join(schema().keys.at(""), ", ") + ", base)");
  }
  auto base_it = std::find_if(root.entries.begin(), root.entries.end(),
                              [](const auto& e) { return e.first == "base"; });
  if (base_it == root.entries.end()) return root;

  const Tree base_value = base_it->second;
  root.entries.erase(base_it);
  if (base_value.kind != Tree::Kind::kScalar || base_value.scalar.empty())
    fail_at(base_value.src, str_cat("base = ", display(base_value),
                                    ": must be the path of another config file"));
  const fs::path base_path = (dir / base_value.scalar).lexically_normal();
  const std::string base_display = base_path.string();
  std::error_code ec;
  if (!fs::is_regular_file(base_path, ec))
    fail_at(base_value.src, str_cat("base = ", base_value.scalar, ": no such file (",
                                    base_display, ")"));
  const fs::path canonical = fs::weakly_canonical(base_path, ec);
  for (const auto& link : chain) {
    if (link.first == canonical) {
      std::string cycle;
      for (const auto& [loaded, shown] : chain) cycle += shown + " -> ";
      fail_at(base_value.src, str_cat("base = ", base_value.scalar, ": cycle ", cycle,
                                      base_display));
    }
  }
  chain.emplace_back(canonical, base_display);
  Tree merged = load_tree(read_file(base_path.string(), base_display), base_display,
                          base_path.parent_path(), chain);
  chain.pop_back();
  merge_into(merged, root);
  merged.src = root.src;
  return merged;
}

void apply_override(Tree& root, const std::string& text) {
  const size_t eq = text.find('=');
  if (eq == std::string::npos || eq == 0)
    throw ConfigError(str_cat("--set ", text, ": expected key.path=value"));
  const std::string key = text.substr(0, eq);
  const std::string value_text = text.substr(eq + 1);

  std::vector<std::string> parts;
  std::stringstream ss(key);
  for (std::string part; std::getline(ss, part, '.');) parts.push_back(part);
  std::string parent;
  for (size_t i = 0; i < parts.size(); ++i) {
    const auto& valid = schema().keys.at(parent);
    if (std::find(valid.begin(), valid.end(), parts[i]) == valid.end())
      throw ConfigError("--set: " + unknown_key_message(parent, parts[i]));
    const std::string path = join_path(parent, parts[i]);
    if (i + 1 < parts.size() && !schema().sections.count(path))
      throw ConfigError(str_cat("--set: ", key, ": unknown key (", path, " is a value, not a section)"));
    parent = path;
  }
  if (key.back() == '.' || parts.empty())
    throw ConfigError(str_cat("--set ", text, ": expected key.path=value"));

  Tree value;
  try {
    value = parse_yaml(value_text, "--set", 0);
  } catch (const ConfigError&) {
    throw ConfigError(str_cat("--set: ", key, " = ", value_text, ": not a valid YAML value"));
  }
  Tree* node = &root;
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    Tree* child = node->get(parts[i]);
    if (!child) {
      node->entries.emplace_back(parts[i], Tree{});
      child = &node->entries.back().second;
    }
    if (child->kind != Tree::Kind::kMap) {
      *child = Tree{};
      child->kind = Tree::Kind::kMap;
      child->src = Source{"--set", 0};
    }
    node = child;
  }
  // Like a later file: a map merges into the section, anything else replaces.
  Tree* existing = node->get(parts.back());
  if (!existing) node->entries.emplace_back(parts.back(), value);
  else if (existing->kind == Tree::Kind::kMap && value.kind == Tree::Kind::kMap)
    merge_into(*existing, value);
  else *existing = value;
}

Config build_config(const Tree& root, const std::string& display) {
  Config c;
  std::map<std::string, Source> where;
  Parser parser(root, where);
  visit_config(c, parser);

  if (c.run.name.empty()) c.run.name = fs::path(display).stem().string();
  const DatasetFacts facts = dataset_facts(c);
  TransformsSection& t = c.data.transforms;
  if (t.normalize_mean.empty()) t.normalize_mean = facts.mean;
  if (t.normalize_std.empty()) t.normalize_std = facts.std;
  Checker(c, where, display).check();
  return c;
}

Config load(const std::string& text, const std::string& display, const fs::path& dir,
            const std::vector<std::string>& overrides) {
  std::vector<std::pair<fs::path, std::string>> chain;
  std::error_code ec;
  chain.emplace_back(fs::weakly_canonical(dir / fs::path(display).filename(), ec), display);
  Tree root = load_tree(text, display, dir, chain);
  for (const auto& o : overrides) apply_override(root, o);
  return build_config(root, display);
}

std::string executable_dir() {
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  return ec ? std::string() : exe.parent_path().string();
}

}  // namespace

// ---------------------------------------------------------------------------------------
// Public API.

Config load_config(const std::string& path, const std::vector<std::string>& overrides) {
  const std::string text = read_file(path, path);
  fs::path dir = fs::path(path).parent_path();
  if (dir.empty()) dir = ".";
  return load(text, path, dir, overrides);
}

Config load_config_text(const std::string& yaml_text, const std::string& display_name,
                        const std::vector<std::string>& overrides, const std::string& base_dir) {
  return load(yaml_text, display_name, base_dir.empty() ? "." : base_dir, overrides);
}

std::string resolved_yaml(const Config& config) {
  Config copy = config;
  Emitter emitter(false);
  visit_config(copy, emitter);
  return "# qilin resolved config: every key, defaults filled\n" + emitter.yaml();
}

uint64_t config_hash(const Config& config) {
  // FNV-1a, 64-bit (http://www.isthe.com/chongo/tech/comp/fnv/).
  constexpr uint64_t kOffsetBasis = 14695981039346656037ull;
  constexpr uint64_t kPrime = 1099511628211ull;
  uint64_t h = kOffsetBasis;
  for (unsigned char ch : resolved_yaml(config)) {
    h ^= ch;
    h *= kPrime;
  }
  return h;
}

std::string config_hash_hex(const Config& config) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(config_hash(config)));
  return buf;
}

bool operator==(const Config& a, const Config& b) { return resolved_yaml(a) == resolved_yaml(b); }

SweepSpec parse_sweep(const std::string& text) {
  const size_t eq = text.find('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == text.size())
    throw ConfigError(str_cat("--sweep ", text, ": expected key.path=v1,v2,..."));
  SweepSpec spec;
  spec.key = text.substr(0, eq);
  // Check the key against the schema the way --set does (a dry run on an empty tree).
  Tree scratch;
  scratch.kind = Tree::Kind::kMap;
  try {
    apply_override(scratch, spec.key + "=0");
  } catch (const ConfigError& e) {
    std::string msg = e.what();
    if (msg.rfind("--set", 0) == 0) msg = "--sweep" + msg.substr(5);
    throw ConfigError(msg);
  }
  int nesting = 0;
  std::string current;
  for (size_t i = eq + 1; i <= text.size(); ++i) {
    const char ch = i < text.size() ? text[i] : ',';
    if (ch == '[' || ch == '{') ++nesting;
    if (ch == ']' || ch == '}') --nesting;
    if (nesting < 0) throw ConfigError(str_cat("--sweep ", text, ": unbalanced brackets"));
    if (ch == ',' && nesting == 0) {
      if (current.empty())
        throw ConfigError(str_cat("--sweep ", text, ": empty value in the list"));
      spec.values.push_back(current);
      current.clear();
    } else {
      current += ch;
    }
  }
  // An unclosed [ or { swallows the list's final comma: no values at all.
  if (nesting != 0) throw ConfigError(str_cat("--sweep ", text, ": unbalanced brackets"));
  return spec;
}

std::vector<std::string> config_search_dirs(const std::string& source_configs_dir) {
  std::vector<std::string> dirs;
  if (const char* env = std::getenv("QILIN_CONFIG_DIR"); env && *env) dirs.push_back(env);
  const std::string exe_dir = executable_dir();
  if (!exe_dir.empty())
    dirs.push_back((fs::path(exe_dir) / ".." / "share" / "qilin" / "configs").lexically_normal());
  if (!source_configs_dir.empty()) dirs.push_back(source_configs_dir);
  return dirs;
}

std::vector<ShippedConfig> list_configs(const std::string& source_configs_dir) {
  std::map<std::string, ShippedConfig> found;
  for (const auto& dir : config_search_dirs(source_configs_dir)) {
    std::error_code ec;
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
      const fs::path p = it->path();
      if (p.extension() != ".yaml" || !it->is_regular_file(ec)) continue;
      const std::string name = p.stem().string();
      if (found.count(name)) continue;
      ShippedConfig info{name, p.string(), ""};
      std::ifstream in(p);
      for (std::string line; std::getline(in, line);) {
        if (line.rfind('#', 0) != 0) break;
        const size_t start = line.find_first_not_of("# ");
        if (start != std::string::npos) {
          info.summary = line.substr(start);
          break;
        }
      }
      found.emplace(name, info);
    }
  }
  std::vector<ShippedConfig> out;
  for (auto& [name, info] : found) out.push_back(info);
  return out;
}

std::string find_config(const std::string& name, const std::string& source_configs_dir) {
  std::error_code ec;
  if (fs::is_regular_file(name, ec)) return name;
  const std::vector<std::string> dirs = config_search_dirs(source_configs_dir);
  for (const auto& dir : dirs)
    for (const std::string& candidate : {name, name + ".yaml"}) {
      const fs::path p = fs::path(dir) / candidate;
      if (fs::is_regular_file(p, ec)) return p.string();
    }
  std::vector<std::string> names;
  for (const auto& c : list_configs(source_configs_dir)) names.push_back(c.name);
  throw ConfigError(str_cat(
      "--config ", name, ": no such file, and not a shipped config (",
      names.empty() ? std::string("none found") : "shipped: " + join(names, ", "),
      "; searched ", dirs.empty() ? std::string("no directories") : join(dirs, ", "), ")"));
}

std::string reference_config_markdown() {
  Config defaults;
  Emitter emitter(true);
  visit_config(defaults, emitter);
  return R"(# Configs

<!-- Generated from the schema in train/config.cpp (reference_config_markdown()); do not edit.
     tests/test_config.cpp fails when this file and the schema differ. Regenerate with:
     QILIN_UPDATE_CONFIG_REFERENCE=1 build/bin/test_config --gtest_filter='ConfigReference.*' -->

A run is described by one YAML file: `train --config configs/vit_fp32.yaml`. A `--config` value
that is not an existing file is looked up among the shipped configs (`train --config vit_fp32`;
`train --help` lists them): in `$QILIN_CONFIG_DIR`, then the installed
`<prefix>/share/qilin/configs`, then this directory of the source tree.

- **Strict.** An unknown key, a wrong type, a value out of range, a bad choice or a missing
  required key stops the run before any work, with one line naming the file, the line, the
  key path, the value and what is allowed (exit code 2), e.g.
  `vit.yaml:12: optim.lr = -1: must be a number > 0`.
- **`base: other.yaml`** (a path relative to the file) extends another config: maps merge key by
  key and the extending file wins; a chain of bases may not loop.
- **`--set key.path=value`** (repeatable, applied after all files, in order) overrides one key;
  the value is YAML typed by the schema: `--set optim.lr=3e-4`,
  `--set data.transforms.normalize.mean=[0.5]`. Errors name `--set` instead of a file line.
- **`--sweep key.path=v1,v2,...`** runs once per value, each with the same seed.
- **`interp`** (DESIGN.md §4.1) swaps every activation and softmax whose function is listed under
  `interp.functions` (and enabled there) for a table, in any model: `--set interp.enabled=true`
  runs the 4096-piece defaults; `--sweep interp.segments=16,64,256,1024,4096` is the paper's
  ablation (a function with its own `segments` keeps it). Functions the model does not use are
  listed once in the run log; summary.json names each layer's table.
- `distributed.enabled` is in the schema already and is refused, naming what is missing,
  until the issue that builds it.
- **`quant.fold_bn: true`** (run.mode ptq) folds each BatchNorm into its convolution before
  the weights are quantized (DESIGN.md §4.3), so `calibrate.bn` must be false; summary.json's
  `ptq.fold_bn` counts the folded layers. Evaluate its packed checkpoint with the same quant
  section (`run.mode: eval`, `quant.fold_bn: true`).
- The run directory gets the resolved config (every key below, defaults filled) as
  `config.yaml`: loading it gives the same configuration, and its hash is stored in checkpoints.

## Reference

Every key with its default. The comment says what it allows, then what it does; keys marked
REQUIRED have no default.

```yaml
)" + emitter.yaml() +
         "```\n";
}

const char* to_string(RunMode v) { return kRunModes.at(static_cast<size_t>(v)).c_str(); }
const char* to_string(DeviceChoice v) { return kDevices.at(static_cast<size_t>(v)).c_str(); }
const char* to_string(DatasetKind v) { return kDatasets.at(static_cast<size_t>(v)).c_str(); }
const char* to_string(OptimizerKind v) { return kOptimizers.at(static_cast<size_t>(v)).c_str(); }
const char* to_string(QuantFormat v) { return kQuantFormats.at(static_cast<size_t>(v)).c_str(); }

std::optional<std::pair<BiasMode, int32_t>> parse_quant_bias(const std::string& text) {
  if (text == "amax") return std::make_pair(BiasMode::kAmax, 0);
  if (text == "mse") return std::make_pair(BiasMode::kMse, 0);
  char* end = nullptr;
  const long v = std::strtol(text.c_str(), &end, 10);
  if (text.empty() || end != text.c_str() + text.size() || v < kQfp8MinBias || v > kQfp8MaxBias)
    return std::nullopt;
  return std::make_pair(BiasMode::kFixed, static_cast<int32_t>(v));
}

namespace {
QuantSpec quant_spec(const QuantSection& q, const QuantTensorSection& t, bool activation) {
  QuantSpec spec;
  spec.format = q.format;
  // layout auto: weights choose per tensor (or channel); activations, which are only observed
  // through their amax, use e3m4.
  const auto layout = parse_qfp8_layout(kQfp8Layouts.at(static_cast<size_t>(q.layout)));
  spec.layout = layout ? layout : (activation ? std::optional<Qfp8Layout>(kQfp8E3M4) : std::nullopt);
  const auto bias = parse_quant_bias(t.bias);
  QILIN_CHECK(bias.has_value(), "quant bias ", t.bias, " was not validated");
  spec.bias = bias->first;
  spec.fixed_bias = bias->second;
  spec.granularity = t.granularity;
  return spec;
}
}  // namespace

QuantSpec QuantSection::weight_spec() const { return quant_spec(*this, weight, false); }
QuantSpec QuantSection::activation_spec() const { return quant_spec(*this, activation, true); }

const InterpFunctionSection& InterpSection::function(InterpFn fn) const {
  switch (fn) {
    case InterpFn::kGelu: return gelu;
    case InterpFn::kExp: return softmax;
    case InterpFn::kSigmoid: return sigmoid;
    case InterpFn::kTanh: return tanh;
    case InterpFn::kSilu: return silu;
  }
  QILIN_FAIL("interp: unknown function ", static_cast<int>(fn));
}

const char* interp_config_name(InterpFn fn) { return fn == InterpFn::kExp ? "softmax" : to_string(fn); }

InterpSpec interp_spec(const InterpSection& section, InterpFn fn) {
  const InterpFunctionSection& f = section.function(fn);
  InterpSpec spec;
  spec.fn = fn;
  spec.method = section.method;
  // i-GELU exists for GELU only: with method igelu the other functions stay native.
  if (spec.method == InterpMethod::kIgelu && fn != InterpFn::kGelu) spec.method = InterpMethod::kNative;
  spec.pieces = f.segments > 0 ? f.segments : section.segments;
  QILIN_CHECK(f.domain.size() == 2, "interp.functions.", interp_config_name(fn), ".domain: expected [lo, hi]");
  spec.domain = make_domain(f.domain[0], f.domain[1], str_cat("interp.functions.", interp_config_name(fn), ".domain"));
  spec.outside = section.outside;
  spec.grad = section.grad;
  return spec;
}

}  // namespace qilin
