// The strict config layer (train/config.h): every error kind with its exact one-line message
// (file, line, key path, value, what is allowed), `base:` merges and cycles, `--set` typing,
// the resolved-YAML round trip, config lookup, every shipped config, and the reference in
// configs/README.md kept in sync with the schema.
#include "train/config.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>

namespace qilin {
namespace {

namespace fs = std::filesystem;

std::string source_dir() {
  const char* dir = std::getenv("QILIN_SOURCE_DIR");
  // Run outside ctest: the source tree this file is in.
  return dir ? dir : fs::path(__FILE__).parent_path().parent_path().string();
}

// A fresh directory per test for config files.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "qilin_config_XXXXXX").string();
    path_ = mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string write(const std::string& name, const std::string& text) const {
    const fs::path p = path_ / name;
    fs::create_directories(p.parent_path());
    std::ofstream(p) << text;
    return p.string();
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// The required keys; tests append what they probe.
const char* kMinimal = R"(model:
  arch: vit
data:
  dataset: fashion_mnist
optim:
  name: adamw
  lr: 1.0e-3
  epochs: 2
)";

// The ConfigError message `f` throws (a test failure when it throws none). Every message is
// one line.
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const ConfigError& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.find('\n'), std::string::npos) << "not one line: " << msg;
    return msg;
  }
  ADD_FAILURE() << "no ConfigError thrown";
  return "";
}

std::string text_error(const std::string& yaml, const std::vector<std::string>& sets = {}) {
  return error_of([&] { load_config_text(yaml, "t.yaml", sets); });
}

// A probe file holds what it probes under a first line `base: required.yaml` that gives the
// required keys, so its own lines count from 2.
std::string probe_error(const std::string& yaml, const std::vector<std::string>& sets = {}) {
  TempDir dir;
  dir.write("required.yaml", kMinimal);
  return error_of([&] {
    load_config_text("base: required.yaml\n" + yaml, "t.yaml", sets, dir.path().string());
  });
}

bool starts_with(const std::string& s, const std::string& prefix) {
  return s.rfind(prefix, 0) == 0;
}

// ---------------------------------------------------------------------------------------

TEST(ConfigLoad, MinimalConfigGetsEveryDefault) {
  const Config c = load_config_text(kMinimal, "my_run.yaml");
  EXPECT_EQ(c.run.name, "my_run");  // the file's stem
  EXPECT_EQ(c.run.mode, RunMode::kTrain);
  EXPECT_EQ(c.run.device, DeviceChoice::kAuto);
  EXPECT_EQ(c.run.out_dir, "runs");
  EXPECT_EQ(c.model.arch, "vit");
  EXPECT_EQ(c.data.dataset, DatasetKind::kFashionMnist);
  EXPECT_EQ(c.data.val_size, 5000);
  EXPECT_EQ(c.optim.name, OptimizerKind::kAdamW);
  EXPECT_DOUBLE_EQ(c.optim.lr, 1e-3);
  EXPECT_EQ(c.optim.epochs, 2);
  EXPECT_EQ(c.optim.schedule, LrScheduleKind::kCosine);
  EXPECT_EQ(c.checkpoint.resume, ResumeMode::kAuto);
  EXPECT_TRUE(c.checkpoint.strict);
  EXPECT_EQ(c.log.progress, ProgressStyle::kAuto);
  EXPECT_DOUBLE_EQ(c.data.transforms.mixup_alpha, 0.0);
  // Normalisation defaults to the data set's statistics, filled in at load.
  EXPECT_EQ(c.data.transforms.normalize_mean, std::vector<float>{0.2860f});
  EXPECT_EQ(c.data.transforms.normalize_std, std::vector<float>{0.3530f});
}

TEST(ConfigLoad, ValuesReachTheTypedStruct) {
  const Config c = load_config_text(std::string(kMinimal) + R"(run:
  mode: train
  device: cpu
  seed: 7
checkpoint:
  resume: runs/x/ckpt_last.safetensors
  strict: false
log:
  progress: lines
)",
                                    "t.yaml",
                                    {"optim.name=sgd", "optim.schedule=step", "model.bn_momentum=null",
                                     "model.widths=[8, 16]", "optim.betas=[0.8, 0.99]"});
  EXPECT_EQ(c.run.device, DeviceChoice::kCpu);
  EXPECT_EQ(c.run.seed, 7);
  EXPECT_EQ(c.checkpoint.resume, ResumeMode::kPath);
  EXPECT_EQ(c.checkpoint.resume_path, "runs/x/ckpt_last.safetensors");
  EXPECT_FALSE(c.checkpoint.strict);
  EXPECT_EQ(c.log.progress, ProgressStyle::kLines);
  EXPECT_EQ(c.optim.name, OptimizerKind::kSgd);
  EXPECT_EQ(c.optim.schedule, LrScheduleKind::kStep);
  EXPECT_FALSE(c.model.bn_momentum.has_value());
  EXPECT_EQ(c.model.widths, (std::vector<int64_t>{8, 16}));
  EXPECT_DOUBLE_EQ(c.optim.beta1, 0.8);
  EXPECT_DOUBLE_EQ(c.optim.beta2, 0.99);
}

// ---------------------------------------------------------------------------------------
// Every error kind: file, line (1-based), key path, value, what is allowed.

TEST(ConfigErrors, UnknownKeyNamesFileLineAndTheValidKeys) {
  const std::string msg = text_error("model:\n  arch: vit\n  archh: vit\n");
  EXPECT_TRUE(starts_with(msg, "t.yaml:3: model.archh: unknown key (valid: arch, img_size, "))
      << msg;
  EXPECT_NE(msg.find("hidden)"), std::string::npos) << msg;
  EXPECT_EQ(probe_error("optm:\n  lr: 1\n"),
            "t.yaml:2: optm: unknown key (valid: run, model, data, optim, interp, quant, "
            "calibrate, checkpoint, log, distributed)");
  EXPECT_EQ(probe_error("data:\n  transforms:\n    flip: true\n"),
            "t.yaml:4: data.transforms.flip: unknown key (valid: normalize, random_crop, hflip, "
            "resize, random_resized_crop, center_crop, mixup_alpha, cutmix_alpha)");
}

TEST(ConfigErrors, WrongTypeNamesTheValueAndTheType) {
  EXPECT_EQ(probe_error("data:\n  batch_size: abc\n"),
            "t.yaml:3: data.batch_size = abc: must be an integer >= 1");
  EXPECT_EQ(probe_error("data:\n  batch_size: 1.5\n"),
            "t.yaml:3: data.batch_size = 1.5: must be an integer >= 1");
  EXPECT_EQ(probe_error("data:\n  drop_last: yes\n"),
            "t.yaml:3: data.drop_last = yes: must be true or false");
  EXPECT_EQ(probe_error("run:\n  name: [a, b]\n"),
            "t.yaml:3: run.name = [a, b]: must be a string (letters, digits and _ . - + =)");
  EXPECT_EQ(probe_error("log: 3\n"),
            "t.yaml:2: log = 3: must be a section with keys every_steps, progress");
  EXPECT_EQ(probe_error("model:\n  widths: 16\n"),
            "t.yaml:3: model.widths = 16: must be a list of integers >= 1");
}

TEST(ConfigErrors, OutOfRangeSaysWhatIsAllowed) {
  EXPECT_EQ(probe_error("optim:\n  lr: -1\n"),
            "t.yaml:3: optim.lr = -1: must be a number > 0");
  EXPECT_EQ(probe_error("optim:\n  label_smoothing: 1\n"),
            "t.yaml:3: optim.label_smoothing = 1: must be a number in [0, 1)");
  EXPECT_EQ(probe_error("optim:\n  betas: [0.9]\n"),
            "t.yaml:3: optim.betas = [0.9]: must be a list of 2 numbers in [0, 1)");
  EXPECT_EQ(probe_error("optim:\n  lr: .nan\n"),
            "t.yaml:3: optim.lr = .nan: must be a number > 0");
  EXPECT_EQ(probe_error("model:\n  bn_momentum: 0\n"),
            "t.yaml:3: model.bn_momentum = 0: must be a number in (0, 1] or null");
}

TEST(ConfigErrors, BadChoiceListsTheChoices) {
  EXPECT_EQ(probe_error("optim:\n  name: adam\n"),
            "t.yaml:3: optim.name = adam: must be one of sgd, adamw");
  EXPECT_EQ(probe_error("model:\n  arch: vit_tiny\n"),
            "t.yaml:3: model.arch = vit_tiny: must be one of vit, resnet18, resnet34, resnet20, "
            "regnety, mlp");
  EXPECT_EQ(probe_error("run:\n  device: gpu\n"),
            "t.yaml:3: run.device = gpu: must be one of auto, cpu, cuda");
}

TEST(ConfigErrors, MissingRequiredKeyNamesTheSectionLine) {
  EXPECT_EQ(text_error("model:\n  arch: vit\ndata:\n  dataset: mnist\noptim:\n  name: sgd\n"
                       "  epochs: 1\n"),
            "t.yaml:5: optim.lr: missing required key (a number > 0)");
  // A whole section missing: the file, no line.
  EXPECT_EQ(text_error("data:\n  dataset: mnist\n"),
            "t.yaml: model.arch: missing required key (one of vit, resnet18, resnet34, resnet20, "
            "regnety, mlp)");
  EXPECT_EQ(text_error(""), "t.yaml: model.arch: missing required key (one of vit, resnet18, "
                            "resnet34, resnet20, regnety, mlp)");
}

TEST(ConfigErrors, InvalidYamlNamesTheLine) {
  const std::string msg = text_error("model:\n  arch: vit\n  img_size: [28\ndata:\n");
  EXPECT_TRUE(starts_with(msg, "t.yaml:")) << msg;
  EXPECT_NE(msg.find(": invalid YAML: "), std::string::npos) << msg;
  EXPECT_EQ(text_error("- a\n- b\n"),
            "t.yaml:1: a config is a map of sections (run, model, data, optim, interp, quant, "
            "calibrate, checkpoint, log, distributed, base)");
  EXPECT_EQ(text_error("model:\n  arch: vit\n  arch: mlp\n"),
            "t.yaml:3: model.arch: duplicate key (first at line 2)");
  // yaml-cpp's depth guard, not a stack overflow.
  EXPECT_EQ(text_error("model:\n  widths: " + std::string(5000, '[') + std::string(5000, ']')),
            "t.yaml:2: invalid YAML: nested too deeply");
}

TEST(ConfigErrors, TheQuantSectionValidatesItsKeysAlready) {
  EXPECT_EQ(probe_error("quant:\n  weight:\n    bias: 300\n"),
            "t.yaml:4: quant.weight.bias = 300: must be amax, mse or an integer in [-126, 126]");
  EXPECT_EQ(probe_error("quant:\n  activation:\n    bias: mse\n"),
            "t.yaml:4: quant.activation.bias = mse: activations take amax or a fixed integer "
            "(calibration observes a running amax, not the data)");
  EXPECT_EQ(probe_error("quant:\n  layers: [linear, attention]\n"),
            "t.yaml:3: quant.layers = attention: each entry must be linear or conv");
  EXPECT_EQ(probe_error("quant:\n  layout: e6m1\n"),
            "t.yaml:3: quant.layout = e6m1: must be one of e2m5, e3m4, e4m3, e5m2, auto");
  EXPECT_EQ(probe_error("quant:\n  exclude: head\n"),
            "t.yaml:3: quant.exclude = head: must be a list of strings (fnmatch globs)");
  // Valid settings load (inert while quant.format is none) and give the codec specs.
  const Config c = load_config_text(std::string(kMinimal) +
                                        "quant:\n  layout: e4m3\n  weight: {bias: 7, granularity: per_tensor}\n"
                                        "  activation: {bias: amax}\n  exclude: [head, \"patch_embed.*\"]\n",
                                    "t.yaml");
  const QuantSpec w = c.quant.weight_spec(), a = c.quant.activation_spec();
  EXPECT_EQ(w.bias, BiasMode::kFixed);
  EXPECT_EQ(w.fixed_bias, 7);
  EXPECT_EQ(w.granularity, Granularity::kPerTensor);
  EXPECT_EQ(*w.layout, kQfp8E4M3);
  EXPECT_EQ(a.bias, BiasMode::kAmax);
  EXPECT_EQ(a.granularity, Granularity::kPerTensor);
  EXPECT_EQ(c.quant.exclude, (std::vector<std::string>{"head", "patch_embed.*"}));
  const Config d = load_config_text(std::string(kMinimal) + "quant:\n  layout: auto\n", "t.yaml");
  EXPECT_FALSE(d.quant.weight_spec().layout.has_value());  // auto: chosen per weight tensor
  EXPECT_EQ(*d.quant.activation_spec().layout, kQfp8E3M4);
  EXPECT_EQ(d.quant.weight_spec().bias, BiasMode::kMse);  // the defaults: weight mse per channel
  EXPECT_EQ(d.quant.weight_spec().granularity, Granularity::kPerChannel);
}

TEST(ConfigErrors, LaterFeaturesAndQuantModesNameWhatIsMissing) {
  EXPECT_EQ(probe_error("quant:\n  format: qfp8\n"),
            "t.yaml:3: quant.format = qfp8: needs run.mode ptq or qat (or eval of a packed checkpoint)");
  EXPECT_EQ(probe_error("run:\n  mode: ptq\n"),
            "t.yaml:3: run.mode = ptq: needs quant.format (qfp8, int8, fp8_e4m3 or fp8_e5m2)");
  EXPECT_EQ(probe_error("run:\n  mode: ptq\nquant:\n  format: int8\n"),
            "t.yaml:3: run.mode = ptq: needs checkpoint.init_from (the fp32 weights to quantize)");
  EXPECT_EQ(probe_error("run:\n  mode: ptq\nquant:\n  format: int8\ncheckpoint:\n  init_from: w.safetensors\n"),
            "t.yaml: calibrate.batches = 0: ptq needs at least one calibration batch (the activation "
            "biases are frozen from them)");
  EXPECT_EQ(probe_error("run:\n  mode: qat\n"),
            "t.yaml:3: run.mode = qat: needs quant.format (qfp8, int8, fp8_e4m3 or fp8_e5m2)");
  // quant.fold_bn: ptq (and eval of the packed checkpoint it wrote) only, with a format.
  EXPECT_EQ(probe_error("quant:\n  fold_bn: true\n"),
            "t.yaml:3: quant.fold_bn = true: needs run.mode ptq (or eval of a packed checkpoint a ptq "
            "run with it wrote)");
  EXPECT_EQ(probe_error("run:\n  mode: qat\nquant:\n  format: qfp8\n  fold_bn: true\n"),
            "t.yaml:6: quant.fold_bn = true: folds BatchNorm for run.mode ptq (and eval of its packed "
            "checkpoint); qat with folded BatchNorm is a different recipe (batch statistics folded every "
            "step) that is not built");
  EXPECT_EQ(probe_error("run:\n  mode: eval\nquant:\n  fold_bn: true\ncheckpoint:\n  init_from: q.safetensors\n"),
            "t.yaml:5: quant.fold_bn = true: folds BatchNorm before weight quantization: needs "
            "quant.format (qfp8, int8, fp8_e4m3 or fp8_e5m2)");
  EXPECT_EQ(probe_error("quant:\n  fold_bn: true\ncalibrate:\n  bn: true\n"),
            "t.yaml:3: quant.fold_bn = true: folds every BatchNorm away, so calibrate.bn must be false "
            "(DESIGN.md §4.3)");
  EXPECT_EQ(probe_error("distributed:\n  enabled: true\n"),
            "t.yaml:3: distributed.enabled = true: only false is accepted for now; data "
            "parallelism comes with a later issue");
  // The disabled defaults, and a complete ptq section, load.
  EXPECT_NO_THROW(load_config_text(std::string(kMinimal) +
                                       "interp:\n  enabled: false\nquant:\n  format: none\n"
                                       "calibrate:\n  batches: 0\n  bn: false\n"
                                       "distributed:\n  enabled: false\n  sync_bn: true\n",
                                   "t.yaml"));
  EXPECT_NO_THROW(load_config_text(std::string(kMinimal) +
                                       "run:\n  mode: ptq\nquant:\n  format: qfp8\n  layout: auto\n"
                                       "calibrate:\n  batches: 32\n  bn: true\n"
                                       "checkpoint:\n  init_from: w.safetensors\n",
                                   "t.yaml"));
  for (const char* mode : {"ptq", "eval"})
    EXPECT_NO_THROW(load_config_text(std::string(kMinimal) + "run:\n  mode: " + mode +
                                         "\nquant:\n  format: qfp8\n  fold_bn: true\n"
                                         "calibrate:\n  batches: 8\n  bn: false\n"
                                         "checkpoint:\n  init_from: w.safetensors\n",
                                     "t.yaml"))
        << mode;
}

TEST(ConfigErrors, RulesAcrossKeysPointAtTheKeyGiven) {
  EXPECT_EQ(probe_error("model:\n  patch_size: 5\n"),
            "t.yaml:3: model.patch_size = 5: model.patch_size 5 must divide model.img_size 28");
  EXPECT_EQ(probe_error("model:\n  num_heads: 3\n"),
            "t.yaml:3: model.num_heads = 3: model.num_heads 3 must divide model.embed_dim 64");
  EXPECT_EQ(probe_error("", {"data.dataset=cifar10"}),
            "--set: data.dataset = cifar10: model.in_chans must be 3 for data.dataset cifar10");
  EXPECT_EQ(probe_error("model:\n  in_chans: 3\n", {"data.dataset=cifar10"}),
            "--set: data.dataset = cifar10: model.img_size must be 32 for data.dataset cifar10");
  EXPECT_EQ(probe_error("model:\n  in_chans: 3\n  img_size: 36\n", {"data.dataset=cifar10"}),
            "t.yaml:4: model.img_size = 36: model.img_size must be 32 for data.dataset cifar10");
  EXPECT_NO_THROW(load_config_text(kMinimal, "t.yaml",
                                   {"data.dataset=cifar10", "model.in_chans=3", "model.img_size=32"}));
  EXPECT_EQ(probe_error("data:\n  val_size: 60000\n"),
            "t.yaml:3: data.val_size = 60000: must be < 60000, the training images of "
            "fashion_mnist");
  EXPECT_EQ(probe_error("optim:\n  warmup_epochs: 1\n  warmup_steps: 10\n"),
            "t.yaml:4: optim.warmup_steps = 10: give optim.warmup_epochs or optim.warmup_steps, "
            "not both");
  EXPECT_EQ(probe_error("run:\n  mode: eval\n"),
            "t.yaml:3: run.mode = eval: needs checkpoint.init_from (the weights to evaluate)");
  EXPECT_EQ(probe_error("data:\n  transforms:\n    normalize:\n      mean: [0.1, 0.2]\n"
                              "      std: [0.3, 0.4]\n"),
            "t.yaml:5: data.transforms.normalize.mean = [0.1, 0.2]: must have 1 or "
            "model.in_chans (1) values");
  EXPECT_EQ(probe_error("data:\n  transforms:\n    normalize:\n      mean: [0.1, 0.2, 0.3]\n"
                        "      std: [0.3, 0.4]\n",
                        {"model.in_chans=3", "data.dataset=synthetic", "data.val_size=0"}),
            "t.yaml:6: data.transforms.normalize.std = [0.3, 0.4]: must have 1 or "
            "model.in_chans (3) values");
  EXPECT_EQ(probe_error("data:\n  transforms:\n    normalize:\n      mean: [0.1, 0.2, 0.3]\n",
                        {"model.in_chans=3", "data.dataset=synthetic", "data.val_size=0"}),
            "t.yaml:5: data.transforms.normalize.mean = [0.1, 0.2, 0.3]: "
            "data.transforms.normalize.mean and .std need the same number of values");
  EXPECT_EQ(probe_error("model:\n  arch: resnet20\n  widths: [8, 16]\n  depths: [1]\n"),
            "t.yaml:5: model.depths = [1]: model.widths and model.depths need the same number "
            "of stages (2 and 1)");
}

// ---------------------------------------------------------------------------------------
// base: merges, cycles, and lines in the file a value came from.

TEST(ConfigBase, LaterFileWinsAndMapsMergeRecursively) {
  TempDir dir;
  dir.write("base.yaml", "model:\n  arch: vit\noptim:\n  name: adamw\n  lr: 1.0e-3\n"
                         "  epochs: 2\ndata:\n  dataset: fashion_mnist\n  batch_size: 64\n"
                         "  transforms:\n    hflip: true\n");
  const std::string child = dir.write("sub/child.yaml", R"(base: ../base.yaml
optim:
  lr: 3.0e-4
data:
  transforms:
    random_crop:
      padding: 2
)");
  const Config c = load_config(child);
  EXPECT_EQ(c.run.name, "child");
  EXPECT_DOUBLE_EQ(c.optim.lr, 3e-4);            // child wins
  EXPECT_EQ(c.optim.name, OptimizerKind::kAdamW);  // kept from base
  EXPECT_EQ(c.data.batch_size, 64);
  EXPECT_TRUE(c.data.transforms.hflip);          // nested map merged, not replaced
  EXPECT_EQ(c.data.transforms.random_crop_padding, 2);
}

TEST(ConfigBase, ErrorsPointIntoTheFileTheValueCameFrom) {
  TempDir dir;
  dir.write("base.yaml", std::string(kMinimal) + "log:\n  every_steps: -1\n");
  const std::string child = dir.write("child.yaml", "base: base.yaml\nrun:\n  seed: 3\n");
  const std::string base_path = (dir.path() / "base.yaml").string();
  EXPECT_EQ(error_of([&] { load_config(child); }),
            base_path + ":10: log.every_steps = -1: must be an integer >= 1");
  // The child's own value replaces the base's bad one; its errors name the child.
  const std::string child2 =
      dir.write("child2.yaml", "base: base.yaml\nlog:\n  every_steps: 5\n  progress: tty\n");
  EXPECT_EQ(error_of([&] { load_config(child2); }),
            child2 + ":4: log.progress = tty: must be one of auto, bar, lines");
}

TEST(ConfigBase, CycleIsAnErrorNamingTheChain) {
  TempDir dir;
  const std::string a = dir.write("a.yaml", "base: b.yaml\n");
  dir.write("b.yaml", "run:\n  seed: 1\nbase: a.yaml\n");
  const std::string b = (dir.path() / "b.yaml").string();
  EXPECT_EQ(error_of([&] { load_config(a); }),
            b + ":3: base = a.yaml: cycle " + a + " -> " + b + " -> " + a);
  const std::string self = dir.write("self.yaml", "base: self.yaml\n");
  EXPECT_EQ(error_of([&] { load_config(self); }),
            self + ":1: base = self.yaml: cycle " + self + " -> " + self);
}

TEST(ConfigBase, MissingOrMalformedBaseIsAnError) {
  TempDir dir;
  const std::string a = dir.write("a.yaml", "base: nothere.yaml\n");
  EXPECT_EQ(error_of([&] { load_config(a); }),
            a + ":1: base = nothere.yaml: no such file (" + (dir.path() / "nothere.yaml").string() +
                ")");
  const std::string b = dir.write("b.yaml", "base: [x.yaml]\n");
  EXPECT_EQ(error_of([&] { load_config(b); }),
            b + ":1: base = [x.yaml]: must be the path of another config file");
  EXPECT_EQ(error_of([&] { load_config((dir.path() / "none.yaml").string()); }),
            (dir.path() / "none.yaml").string() +
                ": cannot read the config file (No such file or directory)");
}

// ---------------------------------------------------------------------------------------
// --set

TEST(ConfigOverrides, ValuesAreTypedByTheSchemaAndAppliedInOrder) {
  const Config c = load_config_text(
      kMinimal, "t.yaml",
      {"optim.lr=3e-4", "run.name=seg1024", "data.transforms.normalize.mean=[0.5]",
       "data.transforms.normalize.std=[0.25]", "data.batch_size=32", "data.batch_size=64",
       "checkpoint.init_from=", "data.transforms={hflip: true}"});
  EXPECT_DOUBLE_EQ(c.optim.lr, 3e-4);
  EXPECT_EQ(c.run.name, "seg1024");
  // A map merges into the section as a later file would: the normalisation set before stays.
  EXPECT_TRUE(c.data.transforms.hflip);
  EXPECT_EQ(c.data.transforms.normalize_mean, std::vector<float>{0.5f});
  EXPECT_EQ(c.data.transforms.normalize_std, std::vector<float>{0.25f});
  EXPECT_EQ(c.data.batch_size, 64);
  EXPECT_EQ(c.checkpoint.init_from, "");
}

TEST(ConfigOverrides, ErrorsNameSetAndTheKeyPath) {
  EXPECT_EQ(text_error(kMinimal, {"optim.lrr=1"}),
            "--set: optim.lrr: unknown key (valid: name, lr, weight_decay, momentum, nesterov, "
            "betas, eps, epochs, schedule, warmup_epochs, warmup_steps, min_lr, warmup_lr, "
            "step_size, gamma, clip_grad_norm, accum_steps, ema_decay, label_smoothing)");
  EXPECT_EQ(text_error(kMinimal, {"interp.segmentz=1024"}),
            "--set: interp.segmentz: unknown key (valid: enabled, method, segments, grad, outside, "
            "functions)");
  EXPECT_EQ(text_error(kMinimal, {"run.name.x=1"}),
            "--set: run.name.x: unknown key (run.name is a value, not a section)");
  EXPECT_EQ(text_error(kMinimal, {"optim.lr"}), "--set optim.lr: expected key.path=value");
  EXPECT_EQ(text_error(kMinimal, {"optim.lr=abc"}), "--set: optim.lr = abc: must be a number > 0");
  EXPECT_EQ(text_error(kMinimal, {"optim.lr=[1"}), "--set: optim.lr = [1: not a valid YAML value");
  EXPECT_EQ(text_error(kMinimal, {"quant.format=int8"}),
            "--set: quant.format = int8: needs run.mode ptq or qat (or eval of a packed checkpoint)");
}

TEST(ConfigOverrides, SweepSplitsValuesAndChecksTheKey) {
  const SweepSpec s = parse_sweep("optim.lr=1e-3,3e-4,1e-4");
  EXPECT_EQ(s.key, "optim.lr");
  EXPECT_EQ(s.values, (std::vector<std::string>{"1e-3", "3e-4", "1e-4"}));
  EXPECT_EQ(s.override_for(1), "optim.lr=3e-4");
  const SweepSpec lists = parse_sweep("model.widths=[8,16],[16,32]");
  EXPECT_EQ(lists.values, (std::vector<std::string>{"[8,16]", "[16,32]"}));
  EXPECT_EQ(error_of([] { parse_sweep("interp.segmentz=16,64"); }),
            "--sweep: interp.segmentz: unknown key (valid: enabled, method, segments, grad, outside, "
            "functions)");
  EXPECT_EQ(error_of([] { parse_sweep("optim.lr"); }),
            "--sweep optim.lr: expected key.path=v1,v2,...");
  EXPECT_EQ(error_of([] { parse_sweep("optim.lr=1,,2"); }),
            "--sweep optim.lr=1,,2: empty value in the list");
}

// ---------------------------------------------------------------------------------------
// Resolved YAML, hash, equality.

TEST(ConfigResolved, LoadingTheResolvedYamlGivesAnEqualConfig) {
  const Config c = load_config_text(
      R"(model:
  arch: vit
  mlp_ratio: 2.5
  drop_rate: 0.1
  bn_momentum: null
  widths: [8, 16]
  depths: [1, 2]
data:
  dataset: fashion_mnist
  root: "/data/my set"
  transforms:
    normalize:
      mean: [0.3]
      std: [0.7]
    mixup_alpha: 0.2
optim:
  name: adamw
  lr: 1.0e-3
  epochs: 2
  warmup_epochs: 0.3
  betas: [0.85, 0.995]
checkpoint:
  resume: none
  init_from: "weights: v2.safetensors"
)",
      "t.yaml");
  const std::string yaml = resolved_yaml(c);
  const Config back = load_config_text(yaml, "config.yaml");
  EXPECT_EQ(resolved_yaml(back), yaml);
  EXPECT_TRUE(back == c);
  EXPECT_EQ(back.model.mlp_ratio, 2.5f);
  EXPECT_EQ(back.model.drop_rate, 0.1f);
  EXPECT_FALSE(back.model.bn_momentum.has_value());
  EXPECT_EQ(back.data.root, "/data/my set");
  EXPECT_EQ(back.checkpoint.init_from, "weights: v2.safetensors");
  EXPECT_EQ(back.checkpoint.resume, ResumeMode::kNone);
  EXPECT_EQ(back.data.transforms.normalize_std, std::vector<float>{0.7f});
  EXPECT_EQ(back.run.name, "t");
  // Floats print as written, not as their double expansion.
  EXPECT_NE(yaml.find("  drop_rate: 0.1\n"), std::string::npos) << yaml;
  EXPECT_NE(yaml.find("  betas: [0.85, 0.995]\n"), std::string::npos) << yaml;
}

TEST(ConfigResolved, ResolvedYamlHasEveryKeyOfTheReference) {
  const std::string yaml = resolved_yaml(load_config_text(kMinimal, "t.yaml"));
  std::istringstream ref(reference_config_markdown());
  bool in_block = false;
  int keys = 0;
  for (std::string line; std::getline(ref, line);) {
    if (line == "```yaml") in_block = true;
    else if (line == "```") in_block = false;
    else if (in_block) {
      const std::string key = line.substr(0, line.find(':') + 1);
      EXPECT_NE(yaml.find(key), std::string::npos) << key;
      ++keys;
    }
  }
  EXPECT_GT(keys, 80);
}

TEST(ConfigResolved, HashIsStableAndFollowsEveryValue) {
  const Config a = load_config_text(kMinimal, "t.yaml");
  const Config b = load_config_text(kMinimal, "t.yaml");
  const Config c = load_config_text(kMinimal, "t.yaml", {"optim.lr=1.1e-3"});
  EXPECT_EQ(config_hash(a), config_hash(b));
  EXPECT_NE(config_hash(a), config_hash(c));
  EXPECT_FALSE(a == c);
  const std::string hex = config_hash_hex(a);
  EXPECT_EQ(hex.size(), 16u);
  EXPECT_EQ(std::stoull(hex, nullptr, 16), config_hash(a));
}

// A guard: a field added to ModelSpec must be added to the schema (visit_config in
// train/config.cpp), then this size updated.
TEST(ConfigSchema, ModelSpecHasNoFieldTheSchemaMisses) {
  EXPECT_EQ(sizeof(ModelSpec), 216u)
      << "models/model_spec.h changed: add the new field to visit_config() in "
         "train/config.cpp, regenerate configs/README.md, then update this size";
}

// ---------------------------------------------------------------------------------------
// Shipped configs, lookup, the reference.

std::vector<fs::path> shipped_files() {
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(fs::path(source_dir()) / "configs"))
    if (e.path().extension() == ".yaml") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  return files;
}

TEST(ConfigShipped, EveryFileInConfigsLoadsAndRoundTrips) {
  const auto files = shipped_files();
  ASSERT_GE(files.size(), 4u);
  for (const auto& f : files) {
    SCOPED_TRACE(f.string());
    const Config c = load_config(f.string());
    EXPECT_EQ(c.run.name, f.stem().string());
    EXPECT_TRUE(load_config_text(resolved_yaml(c), "config.yaml") == c);
  }
}

TEST(ConfigShipped, QuickstartIsTheSmallVitRecipe) {
  const Config c = load_config(find_config("quickstart", source_dir() + "/configs"));
  EXPECT_EQ(c.model.arch, "vit");
  EXPECT_EQ(c.model.img_size, 28);
  EXPECT_EQ(c.model.patch_size, 4);
  EXPECT_EQ(c.model.embed_dim, 64);
  EXPECT_EQ(c.model.depth, 4);
  EXPECT_EQ(c.model.num_heads, 4);
  EXPECT_EQ(c.data.dataset, DatasetKind::kFashionMnist);
  EXPECT_EQ(c.optim.name, OptimizerKind::kAdamW);
  EXPECT_EQ(c.optim.schedule, LrScheduleKind::kCosine);
  EXPECT_GT(c.optim.warmup_epochs, 0.0);
  // Step budget: ~2000 steps of batch 128 fit in 5 minutes on 2 cores.
  const int64_t steps = (60000 - c.data.val_size) / c.data.batch_size * c.optim.epochs;
  EXPECT_LE(steps, 2000);

  const Config v = load_config(find_config("vit_fp32", source_dir() + "/configs"));
  EXPECT_EQ(v.optim.epochs, 5);
  EXPECT_EQ(v.data.batch_size, 128);
  EXPECT_DOUBLE_EQ(v.optim.lr, 1e-3);
  EXPECT_DOUBLE_EQ(v.optim.weight_decay, 0.05);
  EXPECT_FALSE(v.interp.enabled);
}

TEST(ConfigLookup, FindsFilesNamesAndSaysWhatShips) {
  TempDir dir;
  const std::string configs = source_dir() + "/configs";
  const std::string own = dir.write("mine.yaml", kMinimal);
  EXPECT_EQ(find_config(own, configs), own);
  EXPECT_EQ(find_config("quickstart", configs), (fs::path(configs) / "quickstart.yaml").string());
  EXPECT_EQ(find_config("quickstart.yaml", configs),
            (fs::path(configs) / "quickstart.yaml").string());

  const auto shipped = list_configs(configs);
  std::vector<std::string> names;
  for (const auto& s : shipped) {
    names.push_back(s.name);
    EXPECT_FALSE(s.summary.empty()) << s.path << ": the first line should be a # comment";
  }
  for (const char* n : {"quickstart", "vit_fp32", "vit_interp4096", "resnet20_fp32", "regnety_fp32"})
    EXPECT_NE(std::find(names.begin(), names.end(), n), names.end()) << n;

  const std::string msg = error_of([&] { find_config("vit_qfp8_someday", configs); });
  EXPECT_TRUE(starts_with(msg, "--config vit_qfp8_someday: no such file, and not a shipped config "
                               "(shipped: "))
      << msg;
  EXPECT_NE(msg.find("quickstart"), std::string::npos) << msg;

  // $QILIN_CONFIG_DIR comes first.
  dir.write("cfg/quickstart.yaml", kMinimal);
  setenv("QILIN_CONFIG_DIR", (dir.path() / "cfg").c_str(), 1);
  EXPECT_EQ(find_config("quickstart", configs), (dir.path() / "cfg" / "quickstart.yaml").string());
  unsetenv("QILIN_CONFIG_DIR");
}

// tests/configs/*.yaml: bad configs the trainer's tests reuse; each first line says
// `# expect: <part of the error>`.
TEST(ConfigFixtures, EveryBadConfigFailsWithItsMessage) {
  const fs::path dir = fs::path(source_dir()) / "tests" / "configs";
  int count = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().extension() != ".yaml") continue;
    SCOPED_TRACE(e.path().string());
    std::ifstream in(e.path());
    std::string first;
    std::getline(in, first);
    const std::string tag = "# expect: ";
    ASSERT_TRUE(starts_with(first, tag)) << "first line must be '# expect: ...'";
    const std::string msg = error_of([&] { load_config(e.path().string()); });
    EXPECT_TRUE(starts_with(msg, dir.string() + "/")) << msg;
    EXPECT_NE(msg.find(first.substr(tag.size())), std::string::npos) << msg;
    ++count;
  }
  EXPECT_GE(count, 9);
}

TEST(ConfigReference, ReadmeMatchesTheSchema) {
  const fs::path readme = fs::path(source_dir()) / "configs" / "README.md";
  const std::string expected = reference_config_markdown();
  if (const char* update = std::getenv("QILIN_UPDATE_CONFIG_REFERENCE"); update && *update == '1') {
    std::ofstream(readme) << expected;
  }
  std::ifstream in(readme);
  std::stringstream actual;
  actual << in.rdbuf();
  EXPECT_EQ(actual.str(), expected)
      << readme << " is out of date with the schema in train/config.cpp. Regenerate it with\n"
      << "  QILIN_UPDATE_CONFIG_REFERENCE=1 build/bin/test_config "
         "--gtest_filter='ConfigReference.*'";
}

}  // namespace
}  // namespace qilin
