// The `train` program's configuration: a typed Config with one struct per top-level section
// of DESIGN.md §5, loaded from strict YAML (train/config.cpp is the only file that sees
// yaml-cpp). Strings that select behaviour are parsed here into enums, once (STYLE.md §2).
//
// Loading: `base:` chains (maps merge recursively, the later file wins), then `--set`
// overrides in order, then the schema check. Every problem throws ConfigError with ONE line:
//   vit.yaml:12: optim.lr = -1: must be a number > 0
//   vit.yaml:3: model.archh: unknown key (valid: arch, img_size, ...)
//   --set: optim.lrr: unknown key (valid: name, lr, ...)
// Defaults live in the struct initialisers below and in the schema of config.cpp; the
// reference (configs/README.md) is generated from that schema and checked by a test.
//
// Not here: what the trainer does with the values (train/), data sets (data/), models.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"
#include "core/interp.h"
#include "core/qfp8.h"
#include "models/model_spec.h"
#include "train/lr_schedule.h"
#include "train/progress.h"

namespace qilin {

// A bad config file, --set, --sweep or config name. The trainer's main exits with code 2.
class ConfigError : public Error {
 public:
  explicit ConfigError(const std::string& what) : Error(what) {}
};

enum class RunMode : uint8_t { kTrain, kPtq, kQat, kEval };  // ptq, qat: later issue
enum class DeviceChoice : uint8_t { kAuto, kCpu, kCuda };     // auto: CUDA when present
enum class DatasetKind : uint8_t { kFashionMnist, kMnist, kCifar10, kImageFolder, kSynthetic };
enum class OptimizerKind : uint8_t { kSgd, kAdamW };
enum class ResumeMode : uint8_t { kAuto, kNone, kPath };
// QuantFormat (core/qfp8.h): the `quant` section accepts only `none` until the quantized
// layers and the ptq / qat modes land.

struct RunSection {
  std::string name;  // filled with the config file's stem when not given
  RunMode mode = RunMode::kTrain;
  int64_t seed = 0;
  DeviceChoice device = DeviceChoice::kAuto;
  std::string out_dir = "runs";
};

struct TransformsSection {
  // Per-channel (or one value for all channels); empty in a file means the data set's own
  // statistics, which the loader fills in, so a loaded Config always has them.
  std::vector<float> normalize_mean;
  std::vector<float> normalize_std;
  int64_t random_crop_padding = 0;  // 0: no random crop
  bool hflip = false;               // random horizontal flip, p = 0.5
  int64_t resize = 0;               // square side; 0: keep the data set's size
  bool random_resized_crop = false; // torchvision defaults: scale (0.08, 1), ratio (3/4, 4/3)
  int64_t center_crop = 0;          // evaluation centre crop side; 0: none
  double mixup_alpha = 0.0;         // 0: off
  double cutmix_alpha = 0.0;        // 0: off
};

struct DataSection {
  DatasetKind dataset = DatasetKind::kFashionMnist;  // required in a file
  std::string root;                 // "": the data set's default location
  int64_t val_size = 5000;          // carved from the training set, seeded
  int64_t batch_size = 128;
  int64_t eval_batch_size = 500;
  int64_t workers = 2;              // loader threads; 0: load in the training thread
  int64_t prefetch = 4;             // batches queued ahead
  bool drop_last = true;
  int64_t train_subset = 0;         // use only this many training images; 0: all
  int64_t synthetic_train_size = 2048;  // data.dataset synthetic only
  int64_t synthetic_test_size = 512;
  TransformsSection transforms;
};

struct OptimSection {
  OptimizerKind name = OptimizerKind::kAdamW;  // required in a file
  double lr = 1e-3;                            // required in a file
  double weight_decay = 0.0;
  double momentum = 0.9;   // sgd
  bool nesterov = false;   // sgd
  double beta1 = 0.9;      // adamw: `betas: [beta1, beta2]`
  double beta2 = 0.999;
  double eps = 1e-8;       // adamw
  int64_t epochs = 1;      // required in a file
  LrScheduleKind schedule = LrScheduleKind::kCosine;
  double warmup_epochs = 0.0;  // at most one of warmup_epochs / warmup_steps is > 0
  int64_t warmup_steps = 0;
  double min_lr = 0.0;
  double warmup_lr = 0.0;
  int64_t step_size = 30;  // step schedule, in epochs
  double gamma = 0.1;
  double clip_grad_norm = 0.0;  // 0: off
  int64_t accum_steps = 1;
  double ema_decay = 0.0;       // 0: off
  double label_smoothing = 0.0;
};

// Sections whose features come with later issues: only their disabled defaults load now.
// Interpolated nonlinear layers (DESIGN.md §4.1): with `enabled`, every activation and
// softmax of the model whose function is listed (and enabled) under `functions` runs through
// a table (or i-GELU / native, by `method`).
struct InterpFunctionSection {
  bool enabled = true;
  std::vector<double> domain;  // [lo, hi], hi - lo a power of two
  int64_t segments = 0;        // 0: interp.segments
};
struct InterpSection {
  bool enabled = false;
  InterpMethod method = InterpMethod::kUniform;
  int64_t segments = 4096;     // pieces per table unless a function sets its own
  InterpGrad grad = InterpGrad::kSlope;
  InterpOutside outside = InterpOutside::kAsymptote;
  // Keyed by the config name: gelu, softmax (the exp inside), sigmoid, tanh, silu.
  InterpFunctionSection gelu{true, {-5.0, 3.0}, 0};
  InterpFunctionSection softmax{true, {-16.0, 0.0}, 0};
  InterpFunctionSection sigmoid{true, {-8.0, 8.0}, 0};
  InterpFunctionSection tanh{true, {-4.0, 4.0}, 0};
  InterpFunctionSection silu{true, {-16.0, 16.0}, 0};
  const InterpFunctionSection& function(InterpFn fn) const;
};
// Quantized layers (DESIGN.md §4.2). `format` accepts only none until the ptq / qat modes
// land; the other keys are in the schema already.
struct QuantTensorSection {
  std::string bias = "amax";  // amax | mse | an integer
  Granularity granularity = Granularity::kPerTensor;
};
struct QuantSection {
  QuantFormat format = QuantFormat::kNone;
  int layout = 1;  // index into e2m5, e3m4, e4m3, e5m2, auto
  QuantTensorSection weight{"mse", Granularity::kPerChannel};
  QuantTensorSection activation{"amax", Granularity::kPerTensor};
  std::vector<std::string> layers{"linear", "conv"};
  std::vector<std::string> exclude;
  bool fold_bn = false;
  int64_t freeze_bias_after = 0;  // qat, steps; 0: never
  int64_t freeze_bn_after = 0;    // qat, epochs; 0: never
  // The codec specs of the weights and of the activations (validated by the config loader).
  QuantSpec weight_spec() const;
  QuantSpec activation_spec() const;
};
// "amax", "mse" or an integer in [-126, 126] as a bias mode and fixed bias; nullopt otherwise.
std::optional<std::pair<BiasMode, int32_t>> parse_quant_bias(const std::string& text);
struct CalibrateSection {
  int64_t batches = 0;
  bool bn = false;
};

struct CheckpointSection {
  int64_t every_epochs = 1;  // 0: only last and best
  ResumeMode resume = ResumeMode::kAuto;
  std::string resume_path;   // ResumeMode::kPath only
  std::string init_from;     // a state dict to start from; "": none
  bool strict = true;
};

struct LogSection {
  int64_t every_steps = 50;
  ProgressStyle progress = ProgressStyle::kAuto;
};

struct DistributedSection {
  bool enabled = false;  // later issue
  bool sync_bn = false;
};

struct Config {
  RunSection run;
  ModelSpec model;
  DataSection data;
  OptimSection optim;
  InterpSection interp;
  QuantSection quant;
  CalibrateSection calibrate;
  CheckpointSection checkpoint;
  LogSection log;
  DistributedSection distributed;
};

// The table spec of one function under an interp section ("softmax" is InterpFn::kExp).
InterpSpec interp_spec(const InterpSection& section, InterpFn fn);
// The function's key under interp.functions: "gelu", "softmax", "sigmoid", "tanh", "silu".
const char* interp_config_name(InterpFn fn);

// Loads `path` (following `base:`), applies `overrides` ("key.path=value", each value a YAML
// scalar, list or map, typed by the schema) in order, and validates. Throws ConfigError.
Config load_config(const std::string& path, const std::vector<std::string>& overrides = {});
// The same from text; `display_name` stands for the file in messages (and gives run.name's
// default), a `base:` is resolved against `base_dir`.
Config load_config_text(const std::string& yaml_text, const std::string& display_name,
                        const std::vector<std::string>& overrides = {},
                        const std::string& base_dir = ".");

// Every key of the schema with its value (defaults filled), as YAML; loading it again gives
// an equal Config. The trainer writes it to the run directory as config.yaml.
std::string resolved_yaml(const Config& config);
// FNV-1a 64 of resolved_yaml(config), and the same as 16 hex digits (checkpoints).
uint64_t config_hash(const Config& config);
std::string config_hash_hex(const Config& config);
// Equal when every key of the schema has the same value (compares resolved_yaml).
bool operator==(const Config& a, const Config& b);
inline bool operator!=(const Config& a, const Config& b) { return !(a == b); }

// `--sweep key.path=v1,v2,...`: the key (checked against the schema) and the values as
// written (commas inside [] or {} do not split). Each value runs as `--set key.path=v`.
struct SweepSpec {
  std::string key;
  std::vector<std::string> values;
  std::string override_for(size_t i) const { return key + "=" + values.at(i); }
};
SweepSpec parse_sweep(const std::string& text);

// `train --config NAME`: NAME itself when it is an existing file; otherwise NAME or
// NAME.yaml in the shipped config directories, in this order: $QILIN_CONFIG_DIR,
// <executable dir>/../share/qilin/configs, `source_configs_dir` (the source tree's
// configs/, passed by the caller; "" to skip). Not found: ConfigError listing the shipped
// configs.
std::string find_config(const std::string& name, const std::string& source_configs_dir = "");

struct ShippedConfig {
  std::string name;     // file stem: what `train --config` takes
  std::string path;
  std::string summary;  // the file's first comment line, without '#'
};
// The shipped configs (first directory wins for a name), sorted by name, for --help.
std::vector<ShippedConfig> list_configs(const std::string& source_configs_dir = "");
// The search directories find_config uses, existing or not (for messages).
std::vector<std::string> config_search_dirs(const std::string& source_configs_dir);

// configs/README.md: the rules and the reference config (every key, its default and what it
// allows), generated from the schema. tests/test_config.cpp checks the file against it.
std::string reference_config_markdown();

// Enum <-> name as written in configs ("fashion_mnist", "adamw", ...), for logs and summaries.
const char* to_string(RunMode v);
const char* to_string(DeviceChoice v);
const char* to_string(DatasetKind v);
const char* to_string(OptimizerKind v);
const char* to_string(QuantFormat v);

}  // namespace qilin
