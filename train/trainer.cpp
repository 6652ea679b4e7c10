// The training loop. Data comes through TrainerData (below): the data sets of data/datasets.h
// behind DataLoaders (data/loader.h) whose batch b of epoch e depends only on (seed, e, b),
// so a resumed run sees exactly the batches the uninterrupted run would have.
#include "train/trainer.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>

#include <nlohmann/json.hpp>

#include "core/autograd.h"
#include "core/ops/elementwise.h"
#include "core/ops/loss.h"
#include "core/ops/reduce.h"
#include "core/profiler.h"
#include "core/safetensors.h"
#include "core/random.h"
#include "data/datasets.h"
#include "data/idx.h"
#include "data/loader.h"
#include "data/transforms.h"
#include "layers/dropout.h"
#include "layers/interp.h"
#include "layers/norm.h"
#include "layers/quant.h"
#include "models/registry.h"
#include "train/checkpoint.h"
#include "train/lr_schedule.h"
#include "train/optim.h"
#include "train/progress.h"
#include "train/run_support.h"
#include "train/sweep.h"
#include "train/train_utils.h"

namespace qilin {
namespace {

using Clock = std::chrono::steady_clock;

// The synthetic data set's stream (its seed: run seed ^ stream; the test set ^ 1 more).
// Shuffling, augmentation and mixing streams are the loader's (data/loader.h).
constexpr uint64_t kSyntheticStream = 0x53594e54ull;   // "SYNT"

// A packed checkpoint's metadata entry for quant.fold_bn: how many BatchNorm layers the ptq
// run folded (absent: none), so eval can refuse a quant section that does not match it.
constexpr const char* kFoldBnMetadataKey = "qilin.fold_bn";

// ---- data ----

// The data of a run: the training set split into train/validation (a fixed split, the same
// for every seed), the test set, and a DataLoader for each. The training loader's batch b of
// epoch e depends only on (seed, e, b) (data/loader.h), which is what makes resume exact.
class TrainerData {
 public:
  explicit TrainerData(const Config& config) : cfg_(config.data) {
    const uint64_t seed = static_cast<uint64_t>(config.run.seed);
    auto [train_set, test_set] = load_datasets(config, seed);
    if (cfg_.val_size >= train_set->size())
      throw ConfigError(str_cat("data.val_size = ", cfg_.val_size, ": must be smaller than the ",
                                train_set->size(), " training images of ", train_set->name()));
    TrainValDatasets split = split_train_val(train_set, cfg_.val_size, kDefaultSplitSeed, cfg_.train_subset);
    check_image_shape(config, *train_set);

    const TransformsSection& t = cfg_.transforms;
    TransformOptions to;
    to.mean = t.normalize_mean;
    to.std = t.normalize_std;
    to.random_crop_padding = t.random_crop_padding;
    to.hflip = t.hflip;
    to.resize = t.random_resized_crop && t.resize == 0 ? config.model.img_size : t.resize;
    to.random_resized_crop = t.random_resized_crop;
    to.center_crop = t.center_crop;

    LoaderOptions train_options;
    train_options.batch_size = cfg_.batch_size;
    train_options.drop_last = cfg_.drop_last;
    train_options.workers = cfg_.workers;
    train_options.prefetch = cfg_.prefetch;
    train_options.seed = seed;
    train_options.transform = train_transform(to);
    train_options.mix.mixup_alpha = t.mixup_alpha;
    train_options.mix.cutmix_alpha = t.cutmix_alpha;
    train_options.mix.label_smoothing = config.optim.label_smoothing;
    train_ = std::make_unique<DataLoader>(split.train, std::move(train_options));
    const Compose eval = eval_transform(to);
    val_ = std::make_unique<DataLoader>(split.val, LoaderOptions::evaluation(cfg_.eval_batch_size, eval, cfg_.workers));
    test_ = std::make_unique<DataLoader>(test_set, LoaderOptions::evaluation(cfg_.eval_batch_size, eval, cfg_.workers));
  }

  int64_t train_size() const { return train_->size(); }
  int64_t val_size() const { return val_->size(); }
  int64_t batches_per_epoch() const { return train_->batches_per_epoch(); }
  DataLoader& train() { return *train_; }
  DataLoader& eval(bool test) { return test ? *test_ : *val_; }

 private:
  static std::pair<DatasetPtr, DatasetPtr> load_datasets(const Config& config, uint64_t seed) {
    const DataSection& d = config.data;
    const auto need_root = [&](const char* what) {
      if (d.root.empty())
        throw ConfigError(str_cat("data.root: data.dataset ", to_string(d.dataset),
                                  " has no default location; set data.root to ", what));
    };
    switch (d.dataset) {
      case DatasetKind::kFashionMnist: {
        const std::string dir = d.root.empty() ? FashionMnist::kDefaultDir : d.root;
        return {fashion_mnist(DataSplit::kTrain, dir), fashion_mnist(DataSplit::kTest, dir)};
      }
      case DatasetKind::kMnist:
        need_root("the directory with the four IDX files");
        return {mnist(DataSplit::kTrain, d.root), mnist(DataSplit::kTest, d.root)};
      case DatasetKind::kCifar10:
        need_root("the directory with data_batch_1.bin .. data_batch_5.bin and test_batch.bin");
        return {cifar10(DataSplit::kTrain, d.root), cifar10(DataSplit::kTest, d.root)};
      case DatasetKind::kImageFolder: {
        need_root("a directory with train/ and test/ (or val/) image folders");
        const std::filesystem::path root(d.root);
        std::filesystem::path held_out = root / "test";
        if (!std::filesystem::is_directory(held_out)) held_out = root / "val";
        if (!std::filesystem::is_directory(root / "train") || !std::filesystem::is_directory(held_out))
          throw Error(str_cat("data.root = ", d.root, ": an image_folder data set needs the "
                              "sub-folders train/ and test/ (or val/), each with one folder per class"));
        ImageFolderOptions o;
        o.grayscale = config.model.in_chans == 1;
        auto train = std::make_shared<ImageFolderDataset>((root / "train").string(), o);
        auto test = std::make_shared<ImageFolderDataset>(held_out.string(), o);
        if (train->classes() != test->classes())
          throw Error(str_cat("data.root = ", d.root, ": ", held_out.string(), " and ",
                              (root / "train").string(), " must have the same class folders"));
        if (train->num_classes() != config.model.num_classes)
          throw ConfigError(str_cat("model.num_classes = ", config.model.num_classes, ": ",
                                    (root / "train").string(), " has ", train->num_classes(),
                                    " class folders"));
        return {train, test};
      }
      case DatasetKind::kSynthetic: {
        SyntheticOptions o;
        o.channels = config.model.in_chans;
        o.height = o.width = config.model.img_size;
        o.num_classes = config.model.num_classes;
        o.size = d.synthetic_train_size;
        o.seed = seed ^ kSyntheticStream;
        auto train = std::make_shared<SyntheticDataset>(o);
        o.size = d.synthetic_test_size;
        o.seed = seed ^ kSyntheticStream ^ 1;
        return {train, std::make_shared<SyntheticDataset>(o)};
      }
    }
    throw ConfigError(str_cat("data.dataset = ", to_string(d.dataset), ": unknown data set"));
  }

  // Images of varying size need a transform that brings them to model.img_size.
  static void check_image_shape(const Config& config, const Dataset& set) {
    const TransformsSection& t = config.data.transforms;
    const Shape shape = set.image_shape();
    if (shape[0] != config.model.in_chans)
      throw ConfigError(str_cat("model.in_chans = ", config.model.in_chans, ": ", set.name(),
                                " has ", shape[0], " channels"));
    const bool sized = t.random_resized_crop || t.resize > 0 || t.center_crop > 0;
    if (shape[1] == 0 && !(t.random_resized_crop || t.resize > 0))
      throw ConfigError(str_cat("data.transforms.resize = 0: the images of ", set.name(),
                                " vary in size; set data.transforms.resize (and center_crop) or "
                                "random_resized_crop to bring them to model.img_size"));
    if (!sized && shape[1] != config.model.img_size)
      throw ConfigError(str_cat("model.img_size = ", config.model.img_size, ": ", set.name(),
                                " has ", shape[1], "x", shape[2], " images (set data.transforms.resize)"));
  }

  DataSection cfg_;
  std::unique_ptr<DataLoader> train_, val_, test_;
};

// ---- evaluation ----

struct EvalResult {
  double loss = 0, top1 = 0, top5 = 0;
  int64_t count = 0;
};

// `--profile` profiles the training steps (PAPER.md Table 4's shares of the forward and
// backward time), so evaluation passes are left out of it.
class ProfilerPause {
 public:
  ProfilerPause() : was_enabled_(Profiler::enabled()) { Profiler::enable(false); }
  ~ProfilerPause() { Profiler::enable(was_enabled_); }
  ProfilerPause(const ProfilerPause&) = delete;
  ProfilerPause& operator=(const ProfilerPause&) = delete;

 private:
  bool was_enabled_;
};

EvalResult evaluate(Layer& model, TrainerData& data, bool test) {
  NoGradGuard no_grad;
  ProfilerPause no_profile;
  const bool was_training = model.is_training();
  model.eval();
  EvalResult r;
  double loss_sum = 0;
  int64_t top1 = 0, top5 = 0;
  DataLoader& loader = data.eval(test);
  loader.start(0);
  while (std::optional<Batch> batch = loader.next()) {
    const Batch& b = *batch;
    Tensor logits = model.forward(b.images);
    const int64_t n = b.labels.size(0), classes = logits.size(1);
    loss_sum += static_cast<double>(cross_entropy(logits, b.labels).item()) * n;
    const float* l = logits.data<float>();
    for (int64_t i = 0; i < n; ++i) {
      const int64_t y = b.labels.data<int64_t>()[i];
      const float target = l[i * classes + y];
      int64_t greater = 0;  // classes scored above the true one (ties go to the lower index)
      for (int64_t k = 0; k < classes; ++k)
        greater += l[i * classes + k] > target || (l[i * classes + k] == target && k < y);
      top1 += greater == 0;
      top5 += greater < 5;
    }
    r.count += n;
  }
  if (r.count > 0) {
    r.loss = loss_sum / r.count;
    r.top1 = static_cast<double>(top1) / r.count;
    r.top5 = static_cast<double>(top5) / r.count;
  }
  model.train(was_training);
  return r;
}

// ---- post-training quantization (DESIGN.md §4.3) ----

// Runs `batches` training batches through the model without gradients (calibration passes;
// not profiled). Fewer if the epoch is shorter.
int64_t run_calibration_batches(Layer& model, TrainerData& data, int64_t batches) {
  NoGradGuard no_grad;
  ProfilerPause no_profile;
  DataLoader& loader = data.train();
  loader.start(0);
  int64_t done = 0;
  for (; done < batches; ++done) {
    std::optional<Batch> batch = loader.next();
    if (!batch) break;
    model.forward(batch->images);
  }
  return done;
}

// Activation-bias calibration: every quantized layer's input observer tracks the running amax
// over the batches, then freezes its bias (scale) from it. The model is in eval mode.
int64_t calibrate_activations(Layer& model, TrainerData& data, int64_t batches) {
  model.eval();
  set_activation_mode(model, ActivationMode::kCalibrating);
  const int64_t done = run_calibration_batches(model, data, batches);
  freeze_activations(model);
  return done;
}

// BatchNorm re-estimation (DESIGN.md §4.3): running statistics reset, then the exact average
// over the batches (momentum None) with BN layers using batch statistics and every other layer
// in eval mode with its quantizers frozen; no weight changes.
int64_t recalibrate_batch_norms(Layer& model, TrainerData& data, int64_t batches) {
  model.eval();
  std::vector<std::pair<BatchNorm2d*, std::optional<float>>> norms;
  for (auto& [name, m] : model.named_modules()) {
    if (auto* bn = dynamic_cast<BatchNorm2d*>(m)) {
      norms.emplace_back(bn, bn->momentum());
      bn->reset_running_stats();
      bn->set_momentum(std::nullopt);
      bn->train(true);
    }
  }
  const int64_t done = norms.empty() ? 0 : run_calibration_batches(model, data, batches);
  for (auto& [bn, momentum] : norms) {
    bn->set_momentum(momentum);
    bn->train(false);
  }
  return done;
}

// QAT's freeze_bn_after: BatchNorm layers in eval mode (running statistics used and no
// longer updated) while the rest trains.
void freeze_batch_norms(Layer& model) {
  for (auto& [name, m] : model.named_modules())
    if (auto* bn = dynamic_cast<BatchNorm2d*>(m)) bn->train(false);
}

// ---- optimizer and schedule from the config ----

LrSchedule make_schedule(const OptimSection& o, int64_t steps_per_epoch) {
  LrSchedule s;
  s.kind = o.schedule;
  s.base_lr = o.lr;
  s.step_size = std::max<int64_t>(1, o.step_size * steps_per_epoch);
  s.gamma = o.gamma;
  s.warmup_steps = o.warmup_steps > 0 ? o.warmup_steps
                                      : static_cast<int64_t>(std::llround(o.warmup_epochs * steps_per_epoch));
  s.warmup_lr = o.warmup_lr;
  s.total_steps = o.epochs * steps_per_epoch;
  s.min_lr = o.min_lr;
  if (s.kind == LrScheduleKind::kCosine && s.total_steps <= s.warmup_steps)
    throw ConfigError(str_cat("optim: warm-up (", s.warmup_steps, " steps) must be shorter than "
                              "training (", s.total_steps, " steps)"));
  s.validate();
  return s;
}

// Every dropout mask stream of the model, by the first module path that uses it: they are
// saved with checkpoints so a resumed run draws the masks the uninterrupted run would have.
std::map<std::string, Generator*> dropout_generators(Module& model) {
  std::map<std::string, Generator*> out;
  std::vector<const Generator*> seen;
  for (auto& [name, module] : model.named_modules()) {
    auto* dropout = dynamic_cast<Dropout*>(module);
    if (dropout == nullptr || !dropout->generator()) continue;
    Generator* g = dropout->generator().get();
    if (std::find(seen.begin(), seen.end(), g) != seen.end()) continue;
    seen.push_back(g);
    out["dropout." + name] = g;
  }
  return out;
}

// The newest complete checkpoint pair in `dir`: normally ckpt_last; if a crash hit between
// its two renames (the pair's steps differ), the newest other pair (epoch_N or best).
std::optional<Checkpoint> newest_resumable(const std::string& dir) {
  if (!std::filesystem::is_directory(dir)) return std::nullopt;
  if (std::optional<Checkpoint> last = find_resumable(dir, {"last"})) return last;
  const std::string suffix = ".trainer.safetensors";
  std::optional<Checkpoint> best;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    const std::string file = entry.path().filename().string();
    if (file.rfind("ckpt_", 0) != 0 || file.size() <= 5 + suffix.size() ||
        file.compare(file.size() - suffix.size(), suffix.size(), suffix) != 0)
      continue;
    const std::string tag = file.substr(5, file.size() - 5 - suffix.size());
    std::optional<Checkpoint> c = find_resumable(dir, {tag});
    if (c && (!best || c->progress.step > best->progress.step)) best = std::move(c);
  }
  return best;
}

// The outermost directory that create_directories(dir) would create.
std::string outermost_missing(const std::string& dir) {
  std::filesystem::path p = std::filesystem::absolute(dir);
  while (p.has_parent_path() && p.parent_path() != p && !std::filesystem::exists(p.parent_path()))
    p = p.parent_path();
  return p.string();
}

}  // namespace

std::unique_ptr<Optimizer> make_optimizer(const OptimSection& o, Layer& model) {
  // timm's rule: no weight decay on biases and norm weights (tensors of fewer than 2 dims).
  ParamGroup decay{{}, static_cast<float>(o.weight_decay)}, no_decay{{}, 0.0f};
  for (auto& [name, p] : model.named_parameters()) (p.dim() >= 2 ? decay : no_decay).params.emplace_back(name, p);
  std::vector<ParamGroup> groups;
  for (ParamGroup* g : {&decay, &no_decay})
    if (!g->params.empty()) groups.push_back(*g);
  if (o.name == OptimizerKind::kSgd) {
    SgdOptions s;
    s.lr = static_cast<float>(o.lr);
    s.momentum = static_cast<float>(o.momentum);
    s.nesterov = o.nesterov;
    return std::make_unique<Sgd>(groups, s);
  }
  AdamWOptions a;
  a.lr = static_cast<float>(o.lr);
  a.beta1 = static_cast<float>(o.beta1);
  a.beta2 = static_cast<float>(o.beta2);
  a.eps = static_cast<float>(o.eps);
  return std::make_unique<AdamW>(groups, a);
}

ModelFactories make_model_factories(const Config& config) {
  ModelFactories f;
  f.layers = std::make_unique<LayerFactory>();
  if (config.interp.enabled) {
    InterpLayerOptions interp;
    for (InterpFn fn : {InterpFn::kGelu, InterpFn::kExp, InterpFn::kSigmoid, InterpFn::kTanh, InterpFn::kSilu})
      if (config.interp.function(fn).enabled) interp.functions[fn] = interp_spec(config.interp, fn);
    auto tables = std::make_unique<InterpLayerFactory>(std::move(interp));
    f.interp = tables.get();
    f.layers = std::move(tables);
  }
  if (config.quant.format != QuantFormat::kNone) {
    QuantLayerOptions q;
    q.weight = config.quant.weight_spec();
    q.activation = config.quant.activation_spec();
    q.linear = std::count(config.quant.layers.begin(), config.quant.layers.end(), "linear") > 0;
    q.conv = std::count(config.quant.layers.begin(), config.quant.layers.end(), "conv") > 0;
    q.exclude = config.quant.exclude;
    f.quant = std::make_unique<QuantLayerFactory>(*f.layers, std::move(q));
  }
  return f;
}

std::string run_directory(const Config& config) {
  return (std::filesystem::path(config.run.out_dir) / config.run.name).string();
}

RunOutcome run_training(const Config& config, const RunOptions& options) {
  const auto t_start = Clock::now();
  if (config.run.device == DeviceChoice::kCuda)
    throw ConfigError("run.device = cuda: this build has no CUDA backend (use auto or cpu)");

  // Everything that can fail on bad input, before the run directory exists.
  TrainerData data(config);
  Generator init_gen(static_cast<uint64_t>(config.run.seed));
  ModelFactories factories = make_model_factories(config);
  QuantLayerFactory* quant_factory = factories.quant.get();
  InterpLayerFactory* interp_factory = factories.interp;
  const bool quantized = quant_factory != nullptr;
  std::shared_ptr<Layer> model = create_model(config.model, factories.model_factory(), init_gen);
  // PTQ reports the fp32 model's accuracy beside the quantized one's: the same weights in
  // the unquantized model.
  std::shared_ptr<Layer> fp32_model;
  if (config.run.mode == RunMode::kPtq) {
    Generator fp32_gen(static_cast<uint64_t>(config.run.seed));
    fp32_model = create_model(config.model, *factories.layers, fp32_gen);
  }
  bool packed_init = false;
  if (!config.checkpoint.init_from.empty()) {
    SafetensorsContents init = load_safetensors(config.checkpoint.init_from);
    packed_init = init.metadata.count("qilin.packed") > 0;
    if (packed_init) {
      if (!quantized || config.run.mode != RunMode::kEval)
        throw ConfigError(str_cat("checkpoint.init_from = ", config.checkpoint.init_from,
                                  ": a packed quantized checkpoint; evaluate it with run.mode eval and the "
                                  "quant section of the ptq run that wrote it"));
      // A ptq run with quant.fold_bn wrote conv biases and no BN tensors: fold this model's
      // structure the same way first (the values come from the file), so the load is strict.
      const auto folded_in_file = init.metadata.find(kFoldBnMetadataKey);
      const bool file_folded = folded_in_file != init.metadata.end() && folded_in_file->second != "0";
      if (file_folded != config.quant.fold_bn)
        throw ConfigError(str_cat("checkpoint.init_from = ", config.checkpoint.init_from, ": written by a ptq run ",
                                  file_folded ? "with" : "without", " quant.fold_bn; evaluate it with quant.fold_bn: ",
                                  file_folded ? "true" : "false"));
      if (config.quant.fold_bn) fold_batch_norms(*model);
      load_packed_state_dict(*model, init);
    } else {
      if (quantized && config.run.mode == RunMode::kEval)
        throw ConfigError(str_cat("checkpoint.init_from = ", config.checkpoint.init_from,
                                  ": run.mode eval with quant.format needs a packed checkpoint written by "
                                  "a ptq run; to quantize fp32 weights use run.mode ptq"));
      LoadReport report = model->load_state_dict(init.tensors, config.checkpoint.strict);
      if (!report.ok())
        std::printf("checkpoint.init_from %s (strict: false):\n%s\n", config.checkpoint.init_from.c_str(),
                    report.str().c_str());
      if (fp32_model) fp32_model->load_state_dict(init.tensors, config.checkpoint.strict);
    }
  }
  const int64_t steps_per_epoch = data.batches_per_epoch() / config.optim.accum_steps;
  if (steps_per_epoch < 1)
    throw ConfigError(str_cat("data.batch_size = ", config.data.batch_size, " with optim.accum_steps = ",
                              config.optim.accum_steps, ": fewer than one step per epoch of ",
                              data.train_size(), " images"));
  const LrSchedule schedule = make_schedule(config.optim, steps_per_epoch);
  std::unique_ptr<Optimizer> optimizer = make_optimizer(config.optim, *model);
  std::unique_ptr<ModelEma> ema;
  if (config.optim.ema_decay > 0) ema = std::make_unique<ModelEma>(*model, config.optim.ema_decay);

  const std::string dir = options.run_dir_override.empty() ? run_directory(config) : options.run_dir_override;
  // A run directory this run creates is removed again if the run fails (an unreadable image,
  // a full disk, ...) before it wrote a checkpoint: a failed start leaves nothing behind.
  struct NewDirectoryGuard {
    std::string dir;
    bool keep = true;
    ~NewDirectoryGuard() {
      std::error_code ec;
      if (!keep) std::filesystem::remove_all(dir, ec);
    }
  } dir_guard{outermost_missing(dir), std::filesystem::exists(dir)};
  std::filesystem::create_directories(dir);
  write_file_atomic((std::filesystem::path(dir) / "config.yaml").string(), resolved_yaml(config));
  const uint64_t hash = config_hash(config);

  TrainerProgress progress;
  progress.config_hash = hash;
  ProgressReporter reporter(config.log.progress, config.log.every_steps);
  // Training and QAT runs resume (a QAT checkpoint also holds its quantizers' state).
  const bool resumable = config.run.mode == RunMode::kTrain || config.run.mode == RunMode::kQat;
  if (config.checkpoint.resume != ResumeMode::kNone && resumable) {
    std::optional<Checkpoint> ckpt;
    std::string ckpt_dir = dir;
    if (config.checkpoint.resume == ResumeMode::kPath) {
      const std::filesystem::path p(config.checkpoint.resume_path);
      std::string tag = p.filename().string();
      if (tag.rfind("ckpt_", 0) == 0) tag = tag.substr(5);
      if (tag.size() > 12 && tag.compare(tag.size() - 12, 12, ".safetensors") == 0) tag.resize(tag.size() - 12);
      ckpt_dir = p.parent_path().string();
      ckpt = load_checkpoint(ckpt_dir, tag);
    } else {
      ckpt = newest_resumable(dir);
    }
    if (ckpt) {
      model->load_state_dict(ckpt->model.tensors, /*strict=*/true);
      optimizer->load_state_dict(ckpt->optimizer_state());
      if (ema) ema->load_state_dict(ckpt->extra());
      if (config.run.mode == RunMode::kQat) {
        try {
          load_activation_state(*model, ckpt->extra());
        } catch (const Error& e) {
          throw Error(str_cat(checkpoint_paths(ckpt_dir, ckpt->tag).trainer, " (not written by a qat run?): ", e.what()));
        }
      }
      for (auto& [name, gen] : dropout_generators(*model)) {
        auto it = ckpt->generators.find(name);
        if (it == ckpt->generators.end())
          throw Error(str_cat("checkpoint ", ckpt_dir, "/ckpt_", ckpt->tag, ": no state for ", name));
        gen->set_state(it->second);
      }
      progress = ckpt->progress;
      if (progress.config_hash != hash)
        reporter.message("warning: resuming a checkpoint written under a different config");
      progress.config_hash = hash;
      reporter.message(str_cat("resumed from ", dir, "/ckpt_", ckpt->tag, " at step ", progress.step,
                               " (epoch ", progress.epoch, ")"));
    }
  }

  MetricsWriter metrics((std::filesystem::path(dir) / "metrics.jsonl").string());
  if (options.profile) {
    Profiler::reset();
    Profiler::enable(true);
  }
  install_stop_handlers();
  RunOutcome outcome;
  outcome.run_dir = dir;
  const int64_t epochs = config.optim.epochs;
  const int64_t total_steps = epochs * steps_per_epoch;
  const auto save = [&](const std::string& tag) {
    NamedTensors extra = ema ? ema->state_dict() : NamedTensors{};
    if (config.run.mode == RunMode::kQat) {
      NamedTensors quantizers = activation_state_dict(*model);
      extra.insert(extra.end(), quantizers.begin(), quantizers.end());
    }
    std::map<std::string, const Generator*> generators;
    for (auto& [name, gen] : dropout_generators(*model)) generators[name] = gen;
    save_checkpoint(dir, tag, *model, *optimizer, progress, generators, extra);
    dir_guard.keep = true;
  };
  std::printf("run %s: %s, %lld parameters, %lld train / %lld val images, %lld steps of batch %lld, %d threads\n",
              dir.c_str(), model->describe().c_str(), static_cast<long long>(model->num_parameters()),
              static_cast<long long>(data.train_size()), static_cast<long long>(data.val_size()),
              static_cast<long long>(total_steps), static_cast<long long>(config.data.batch_size),
              omp_get_max_threads());
  if (quant_factory) {
    std::printf("quant: %zu layers quantized\n", quant_factory->quantized_paths().size());
    for (const std::string& glob : quant_factory->unused_excludes())
      std::printf("quant: exclude %s matches no layer of %s\n", glob.c_str(), config.model.arch.c_str());
  }
  if (interp_factory != nullptr) {
    std::string unused;
    for (InterpFn fn : interp_factory->unused()) unused += (unused.empty() ? "" : ", ") + std::string(interp_config_name(fn));
    if (!unused.empty())
      std::printf("interp: %s configured but not used by %s\n", unused.c_str(), config.model.arch.c_str());
  }
  std::fflush(stdout);

  nlohmann::json ptq_report;
  const bool qat = config.run.mode == RunMode::kQat;
  if (config.run.mode == RunMode::kPtq) {
    // DESIGN.md §4.3's order: weights, activation biases, BN statistics, activation biases again.
    // The quantized model's per-layer SQNR (weights, and inputs over the test images) goes
    // with each of its evaluations.
    const auto eval_both = [&](Layer& m, const char* what) {
      const bool quantized_model = &m == model.get();
      EvalResult val = evaluate(m, data, false);
      if (quantized_model) set_activation_metering(m, true);
      EvalResult test = evaluate(m, data, true);
      reporter.message(str_cat("ptq: ", what, ": val top-1 ", 100 * val.top1, "%, test top-1 ", 100 * test.top1, "%"));
      ptq_report[what] = {{"val_acc", val.top1}, {"test_acc", test.top1}, {"test_loss", test.loss}};
      if (quantized_model) {
        set_activation_metering(m, false);
        nlohmann::json sqnr = nlohmann::json::object();
        for (const QuantLayerSqnr& r : quant_sqnr(m)) sqnr[r.path] = {{"weight", r.weight_db}, {"input", r.input_db}};
        ptq_report[what]["sqnr_db"] = sqnr;
      }
      return std::make_pair(val, test);
    };
    eval_both(*fp32_model, "fp32");
    int64_t folded = 0;
    if (config.quant.fold_bn) {
      // DESIGN.md §4.3: each BN into its conv's fp32 master weight and bias, before the
      // weights' quantization parameters are frozen from them.
      folded = fold_batch_norms(*model);
      ptq_report["fold_bn"] = folded;
      reporter.message(str_cat("ptq: folded ", folded, " BatchNorm layers into their convolutions"));
    }
    freeze_weights(*model);
    const int64_t batches = calibrate_activations(*model, data, config.calibrate.batches);
    auto [val, test] = eval_both(*model, "quantized");
    if (config.calibrate.bn) {
      const int64_t bn_batches = recalibrate_batch_norms(*model, data, config.calibrate.batches);
      calibrate_activations(*model, data, config.calibrate.batches);
      std::tie(val, test) = eval_both(*model, "quantized_bn_calibrated");
      ptq_report["bn_batches"] = bn_batches;
    }
    ptq_report["calibration_batches"] = batches;
    outcome.best_val_acc = val.top1;
    outcome.test_acc = test.top1;
    outcome.test_loss = test.loss;
    // The packed checkpoint (DESIGN.md §5): uint8 codes and beta tensors, loadable for eval.
    std::map<std::string, std::string> metadata;
    const NamedTensors packed = packed_state_dict(*model, &metadata);
    if (config.quant.fold_bn) metadata[kFoldBnMetadataKey] = std::to_string(folded);
    const std::string path = (std::filesystem::path(dir) / "ckpt_quant.safetensors").string();
    save_safetensors(path + ".tmp", packed, metadata);
    std::filesystem::rename(path + ".tmp", path);
    ptq_report["packed_checkpoint"] = path;
    ptq_report["packed_bytes"] = std::filesystem::file_size(path);
    dir_guard.keep = true;
    reporter.message(str_cat("ptq: packed checkpoint ", path, " (", std::filesystem::file_size(path), " bytes)"));
  } else if (config.run.mode == RunMode::kEval) {
    EvalResult val = evaluate(*model, data, false), test = evaluate(*model, data, true);
    outcome.best_val_acc = val.top1;
    outcome.test_acc = test.top1;
    outcome.test_loss = test.loss;
    reporter.message(str_cat("eval: val top-1 ", val.top1, ", test top-1 ", test.top1));
  } else {
    model->train();
    double loss_sum = 0;
    int64_t loss_count = 0, images = 0;
    auto t_log = Clock::now();
    const float smoothing = static_cast<float>(config.optim.label_smoothing);
    while (progress.epoch < epochs && outcome.status == RunOutcome::Status::kFinished) {
      data.train().start(progress.epoch, progress.epoch_batch);
      for (; progress.epoch_batch < steps_per_epoch * config.optim.accum_steps;) {
        optimizer->set_lr(schedule.lr_at(progress.step));
        optimizer->zero_grad();
        if (qat) {
          // Activation biases: from each batch, then (freeze_bias_after) calibrated on the next
          // calibrate.batches training batches and frozen. BN statistics frozen from an epoch on.
          const int64_t freeze_at = config.quant.freeze_bias_after;
          if (freeze_at > 0 && progress.step == freeze_at) {
            set_activation_mode(*model, ActivationMode::kCalibrating);
            reporter.message(str_cat("qat: calibrating the activation biases on steps ", freeze_at + 1, "..",
                                     freeze_at + config.calibrate.batches));
          }
          if (freeze_at > 0 && progress.step == freeze_at + config.calibrate.batches) {
            freeze_activations(*model);
            reporter.message(str_cat("qat: activation biases frozen at step ", progress.step));
          }
          if (config.quant.freeze_bn_after > 0 && progress.epoch >= config.quant.freeze_bn_after)
            freeze_batch_norms(*model);
        }
        float step_loss = 0;
        for (int64_t micro = 0; micro < config.optim.accum_steps; ++micro) {
          std::optional<Batch> batch = data.train().next();
          QILIN_CHECK(batch.has_value(), "trainer: the loader ended epoch ", progress.epoch,
                      " before batch ", progress.epoch_batch + micro);
          const Batch& b = *batch;
          Tensor logits = model->forward(b.images);
          // Mixed batches come with soft targets that already carry the label smoothing.
          Tensor loss = b.soft_targets.defined() ? cross_entropy_soft(logits, b.soft_targets)
                                                 : cross_entropy(logits, b.labels, smoothing);
          if (config.optim.accum_steps > 1) loss = loss * (1.0f / config.optim.accum_steps);
          loss.backward();
          step_loss += loss.item();
          images += b.labels.size(0);
        }
        if (!std::isfinite(step_loss)) {
          reporter.message(str_cat("loss is ", step_loss, " at step ", progress.step + 1,
                                   ": stopping; the last good checkpoint is kept"));
          outcome.status = RunOutcome::Status::kDiverged;
          break;
        }
        if (config.optim.clip_grad_norm > 0) clip_grad_norm(model->parameters(), config.optim.clip_grad_norm);
        optimizer->step();
        if (ema) ema->update(*model);
        progress.step++;
        progress.epoch_batch += config.optim.accum_steps;
        loss_sum += step_loss;
        loss_count++;
        const auto now = Clock::now();
        const double secs = std::chrono::duration<double>(now - t_log).count();
        StepStats s{progress.epoch, epochs, progress.step, total_steps, loss_sum / loss_count,
                    optimizer->lr(), secs > 0 ? images / secs : 0};
        reporter.step(s);
        if (progress.step % config.log.every_steps == 0) {
          metrics.write({{"step", double(progress.step)}, {"epoch", double(progress.epoch)},
                         {"loss", s.loss}, {"lr", s.lr}, {"images_per_sec", s.images_per_sec}},
                        {{"split", "train"}});
          loss_sum = 0;
          loss_count = 0;
          images = 0;
          t_log = now;
        }
        if (stop_requested()) {
          save("last");
          reporter.message(str_cat("stopped at step ", progress.step, ": checkpoint ", dir,
                                   "/ckpt_last written; run again to resume"));
          outcome.status = RunOutcome::Status::kStopped;
          break;
        }
      }
      if (outcome.status != RunOutcome::Status::kFinished) break;
      // End of epoch: validate, checkpoint.
      progress.epoch++;
      progress.epoch_batch = 0;
      EvalResult val = evaluate(*model, data, false);
      std::map<std::string, double> row{{"step", double(progress.step)}, {"epoch", double(progress.epoch)},
                                        {"loss", val.loss}, {"acc", val.top1}, {"top5", val.top5}};
      std::string line = str_cat("epoch ", progress.epoch, "/", epochs, ": val loss ", val.loss,
                                 " top-1 ", 100 * val.top1, "% top-5 ", 100 * val.top5, "%");
      if (ema) {
        ema->swap_into(*model);
        EvalResult ev = evaluate(*model, data, false);
        ema->swap_into(*model);
        row["ema_acc"] = ev.top1;
        line += str_cat(" (EMA top-1 ", 100 * ev.top1, "%)");
      }
      metrics.write(row, {{"split", "val"}});
      reporter.message(line);
      const bool best = val.top1 > progress.best_metric || progress.epoch == 1;
      if (best) progress.best_metric = val.top1;
      save("last");
      if (best) save("best");
      if (config.checkpoint.every_epochs > 0 && progress.epoch % config.checkpoint.every_epochs == 0)
        save(str_cat("epoch_", progress.epoch));
    }
    outcome.best_val_acc = progress.best_metric;
    if (outcome.status == RunOutcome::Status::kFinished && qat) {
      // As after PTQ: the activation biases calibrated and frozen, the weights' frozen, and
      // evaluation and export use them.
      calibrate_activations(*model, data, config.calibrate.batches);
      freeze_weights(*model);
      EvalResult val = evaluate(*model, data, false);
      outcome.best_val_acc = val.top1;
      std::map<std::string, std::string> metadata;
      const NamedTensors packed = packed_state_dict(*model, &metadata);
      const std::string path = (std::filesystem::path(dir) / "ckpt_quant.safetensors").string();
      save_safetensors(path + ".tmp", packed, metadata);
      std::filesystem::rename(path + ".tmp", path);
      reporter.message(str_cat("qat: activation biases calibrated and frozen on ", config.calibrate.batches,
                               " batches; val top-1 ", 100 * val.top1, "%; packed checkpoint ", path));
    }
    if (outcome.status == RunOutcome::Status::kFinished) {
      EvalResult test = evaluate(*model, data, true);
      outcome.test_acc = test.top1;
      outcome.test_loss = test.loss;
      metrics.write({{"step", double(progress.step)}, {"loss", test.loss}, {"acc", test.top1}, {"top5", test.top5}},
                    {{"split", "test"}});
      reporter.message(str_cat("test: loss ", test.loss, " top-1 ", 100 * test.top1, "% top-5 ",
                               100 * test.top5, "% (", test.count, " images)"));
    }
  }
  outcome.wall_seconds = std::chrono::duration<double>(Clock::now() - t_start).count();

  if (options.profile) {
    Profiler::enable(false);
    std::printf("%s", Profiler::table().c_str());
    write_file_atomic((std::filesystem::path(dir) / "profile.csv").string(), Profiler::csv());
  }
  nlohmann::json summary;
  summary["status"] = outcome.status == RunOutcome::Status::kFinished ? "finished"
                      : outcome.status == RunOutcome::Status::kStopped ? "stopped" : "diverged";
  summary["finished"] = outcome.status == RunOutcome::Status::kFinished;
  summary["steps"] = progress.step;
  summary["epochs"] = progress.epoch;
  summary["best_val_acc"] = outcome.best_val_acc;
  summary["test_acc"] = outcome.test_acc;
  summary["test_loss"] = outcome.test_loss;
  summary["wall_seconds"] = outcome.wall_seconds;
  summary["config_hash"] = config_hash_hex(config);
  summary["parameters"] = model->num_parameters();
  nlohmann::json layers = nlohmann::json::object();
  for (auto& [name, impl] : layer_implementations(*model)) layers[name] = impl;
  summary["layers"] = layers;
  if (!ptq_report.is_null()) summary["ptq"] = ptq_report;
  write_file_atomic((std::filesystem::path(dir) / "summary.json").string(), summary.dump(2) + "\n");
  dir_guard.keep = true;
  return outcome;
}

}  // namespace qilin
