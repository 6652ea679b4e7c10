// The training loop. Data comes through TrainerData (below): in-memory image sets from the
// data layer, batched per epoch from a permutation that depends only on (seed, epoch) and
// augmented from per-sample counters, so a resumed run sees exactly the batches the
// uninterrupted run would have.
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
#include "core/random.h"
#include "data/idx.h"
#include "layers/dropout.h"
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

// Stream ids that separate the run's random streams (Philox keys: seed ^ stream).
constexpr uint64_t kShuffleStream = 0x5348554646ull;   // "SHUFF"
constexpr uint64_t kAugmentStream = 0x4155474dull;     // "AUGM"
constexpr uint64_t kSplitStream = 0x53504c4954ull;     // "SPLIT"
constexpr uint64_t kSyntheticStream = 0x53594e54ull;   // "SYNT"

// ---- data ----

struct ImageSet {
  Tensor images;  // uint8 [N, H, W] (one channel) or float [N, C, H, W]
  Tensor labels;  // int64 [N]
  int64_t size() const { return labels.defined() ? labels.size(0) : 0; }
};

struct Batch {
  Tensor images;  // float [B, C, H, W], normalised and augmented
  Tensor labels;  // int64 [B]
};

class TrainerData {
 public:
  TrainerData(const Config& config) : cfg_(config.data), seed_(static_cast<uint64_t>(config.run.seed)) {
    load(config);
  }

  int64_t train_size() const { return static_cast<int64_t>(train_index_.size()); }
  int64_t val_size() const { return static_cast<int64_t>(val_index_.size()); }
  int64_t batches_per_epoch() const {
    const int64_t b = cfg_.batch_size;
    return cfg_.drop_last ? train_size() / b : (train_size() + b - 1) / b;
  }

  // Batch `index` of epoch `epoch` of the training split (shuffled, augmented).
  Batch train_batch(int64_t epoch, int64_t index) {
    if (epoch != perm_epoch_) {
      Generator g(seed_ ^ kShuffleStream ^ (static_cast<uint64_t>(epoch) * 0x9E3779B97F4A7C15ull));
      perm_ = randperm(train_size(), g);
      perm_epoch_ = epoch;
    }
    const int64_t begin = index * cfg_.batch_size;
    const int64_t count = std::min(cfg_.batch_size, train_size() - begin);
    std::vector<int64_t> rows(count);
    for (int64_t i = 0; i < count; ++i) rows[i] = train_index_[perm_.data<int64_t>()[begin + i]];
    return assemble(train_, rows, /*augment=*/true, epoch);
  }

  // All batches of the validation split or the test set, in order, unaugmented.
  template <typename Fn>
  void for_each_eval_batch(bool test, Fn&& fn) {
    const ImageSet& set = test ? test_ : train_;
    const int64_t n = test ? test_.size() : val_size();
    for (int64_t begin = 0; begin < n; begin += cfg_.eval_batch_size) {
      const int64_t count = std::min(cfg_.eval_batch_size, n - begin);
      std::vector<int64_t> rows(count);
      for (int64_t i = 0; i < count; ++i) rows[i] = test ? begin + i : val_index_[begin + i];
      fn(assemble(set, rows, /*augment=*/false, 0));
    }
  }

 private:
  void load(const Config& config) {
    switch (cfg_.dataset) {
      case DatasetKind::kFashionMnist:
      case DatasetKind::kMnist: {
        FashionMnist files;  // MNIST uses the same file names
        if (!cfg_.root.empty()) files.dir = cfg_.root;
        else if (cfg_.dataset == DatasetKind::kMnist)
          throw ConfigError("data.root: MNIST has no default location; set data.root to the "
                            "directory with the four IDX files");
        ImagesAndLabels train = files.load(DataSplit::kTrain);
        ImagesAndLabels test = files.load(DataSplit::kTest);
        train_ = {train.images, train.labels};
        test_ = {test.images, test.labels};
        break;
      }
      case DatasetKind::kSynthetic: {
        const int64_t c = config.model.in_chans, s = config.model.img_size;
        train_ = synthetic(cfg_.synthetic_train_size, c, s, config.model.num_classes, 0);
        test_ = synthetic(cfg_.synthetic_test_size, c, s, config.model.num_classes, 1);
        break;
      }
      default:
        throw ConfigError(str_cat("data.dataset = ", to_string(cfg_.dataset),
                                  ": the trainer does not read this data set yet (available: "
                                  "fashion_mnist, mnist, synthetic)"));
    }
    int64_t n = train_.size();
    if (cfg_.train_subset > 0) n = std::min(n, cfg_.train_subset + cfg_.val_size);
    if (cfg_.val_size >= n)
      throw ConfigError(str_cat("data.val_size = ", cfg_.val_size, ": must be smaller than the ",
                                n, " training images"));
    // The validation split: a fixed permutation of the training set from the split stream
    // (not the run seed), so every run of every seed validates on the same images.
    Generator split_gen(kSplitStream);
    Tensor perm = randperm(train_.size(), split_gen);
    const int64_t* p = perm.data<int64_t>();
    val_index_.assign(p, p + cfg_.val_size);
    train_index_.assign(p + cfg_.val_size, p + n);
    const auto& t = cfg_.transforms;
    mean_ = t.normalize_mean;
    std_ = t.normalize_std;
  }

  ImageSet synthetic(int64_t n, int64_t c, int64_t s, int64_t classes, uint64_t part) {
    // Learnable: class k brightens every pixel whose flat index is k modulo the class count,
    // under unit Gaussian noise. (Crops and flips move the pattern: a data set to exercise
    // the pipeline, not the augmentations' value.)
    Generator g(seed_ ^ kSyntheticStream ^ part);
    ImageSet set;
    set.images = rand_normal({n, c, s, s}, g, 0.0f, 1.0f);
    Tensor u = rand_uniform({n}, g, 0.0f, static_cast<float>(classes));
    set.labels = Tensor::empty({n}, DType::kInt64);
    constexpr float kPatternBrightness = 2.0f;
    const int64_t pixels = c * s * s;
    for (int64_t i = 0; i < n; ++i) {
      const int64_t label = std::min<int64_t>(classes - 1, static_cast<int64_t>(u.data<float>()[i]));
      set.labels.data<int64_t>()[i] = label;
      float* img = set.images.data<float>() + i * pixels;
      for (int64_t k = label; k < pixels; k += classes) img[k] += kPatternBrightness;
    }
    return set;
  }

  Batch assemble(const ImageSet& set, const std::vector<int64_t>& rows, bool augment, int64_t epoch) {
    const bool u8 = set.images.dtype() == DType::kUInt8;
    const int64_t c = u8 ? 1 : set.images.size(1);
    const int64_t h = u8 ? set.images.size(1) : set.images.size(2);
    const int64_t w = u8 ? set.images.size(2) : set.images.size(3);
    const int64_t count = static_cast<int64_t>(rows.size());
    Batch b;
    b.images = Tensor::empty({count, c, h, w});
    b.labels = Tensor::empty({count}, DType::kInt64);
    const auto& t = cfg_.transforms;
    const int64_t pad = augment ? t.random_crop_padding : 0;
    const bool flip = augment && t.hflip;
    const int64_t pixels = h * w;
#pragma omp parallel for if (count * pixels > (1 << 16))
    for (int64_t i = 0; i < count; ++i) {
      const int64_t row = rows[i];
      b.labels.data<int64_t>()[i] = set.labels.data<int64_t>()[row];
      // Per-sample randomness from its own counter: (epoch, row), whatever the batch order.
      int64_t dx = 0, dy = 0;
      bool mirror = false;
      if (pad > 0 || flip) {
        Generator g(seed_ ^ kAugmentStream);
        g.advance(static_cast<uint64_t>(epoch * set.size() + row));
        Tensor r = rand_uniform({3}, g);
        const float* rv = r.data<float>();
        dx = std::min<int64_t>(2 * pad, static_cast<int64_t>(rv[0] * (2 * pad + 1))) - pad;
        dy = std::min<int64_t>(2 * pad, static_cast<int64_t>(rv[1] * (2 * pad + 1))) - pad;
        mirror = flip && rv[2] < 0.5f;
      }
      for (int64_t ch = 0; ch < c; ++ch) {
        const float m = mean_.empty() ? 0.0f : mean_[mean_.size() == 1 ? 0 : ch];
        const float inv_s = std_.empty() ? 1.0f : 1.0f / std_[std_.size() == 1 ? 0 : ch];
        float* out = b.images.data<float>() + (i * c + ch) * pixels;
        for (int64_t y = 0; y < h; ++y) {
          for (int64_t x = 0; x < w; ++x) {
            // Output (y, x) reads the padded image at (y + dy, x + dx); mirrored along x.
            const int64_t sx = (mirror ? w - 1 - x : x) + dx, sy = y + dy;
            float v = 0.0f;  // zero padding, before normalisation (torchvision's order)
            if (sx >= 0 && sx < w && sy >= 0 && sy < h) {
              v = u8 ? set.images.data<uint8_t>()[row * pixels + sy * w + sx] / 255.0f
                     : set.images.data<float>()[((row * c + ch) * h + sy) * w + sx];
            }
            out[y * w + x] = (v - m) * inv_s;
          }
        }
      }
    }
    return b;
  }

  DataSection cfg_;
  uint64_t seed_;
  ImageSet train_, test_;
  std::vector<int64_t> train_index_, val_index_;
  std::vector<float> mean_, std_;
  Tensor perm_;
  int64_t perm_epoch_ = -1;
};

// ---- evaluation ----

struct EvalResult {
  double loss = 0, top1 = 0, top5 = 0;
  int64_t count = 0;
};

EvalResult evaluate(Layer& model, TrainerData& data, bool test) {
  NoGradGuard no_grad;
  const bool was_training = model.is_training();
  model.eval();
  EvalResult r;
  double loss_sum = 0;
  int64_t top1 = 0, top5 = 0;
  data.for_each_eval_batch(test, [&](const Batch& b) {
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
  });
  if (r.count > 0) {
    r.loss = loss_sum / r.count;
    r.top1 = static_cast<double>(top1) / r.count;
    r.top5 = static_cast<double>(top5) / r.count;
  }
  model.train(was_training);
  return r;
}

// ---- optimizer and schedule from the config ----

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

}  // namespace

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
  std::shared_ptr<Layer> model = create_model(config.model, init_gen);
  if (!config.checkpoint.init_from.empty()) {
    SafetensorsContents init = load_safetensors(config.checkpoint.init_from);
    LoadReport report = model->load_state_dict(init.tensors, config.checkpoint.strict);
    if (!report.ok())
      std::printf("checkpoint.init_from %s (strict: false):\n%s\n", config.checkpoint.init_from.c_str(),
                  report.str().c_str());
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
  std::filesystem::create_directories(dir);
  write_file_atomic((std::filesystem::path(dir) / "config.yaml").string(), resolved_yaml(config));
  const uint64_t hash = config_hash(config);

  TrainerProgress progress;
  progress.config_hash = hash;
  ProgressReporter reporter(config.log.progress, config.log.every_steps);
  if (config.checkpoint.resume != ResumeMode::kNone && config.run.mode == RunMode::kTrain) {
    std::optional<Checkpoint> ckpt;
    if (config.checkpoint.resume == ResumeMode::kPath) {
      const std::filesystem::path p(config.checkpoint.resume_path);
      std::string tag = p.filename().string();
      if (tag.rfind("ckpt_", 0) == 0) tag = tag.substr(5);
      if (tag.size() > 12 && tag.compare(tag.size() - 12, 12, ".safetensors") == 0) tag.resize(tag.size() - 12);
      ckpt = load_checkpoint(p.parent_path().string(), tag);
    } else {
      ckpt = newest_resumable(dir);
    }
    if (ckpt) {
      model->load_state_dict(ckpt->model.tensors, /*strict=*/true);
      optimizer->load_state_dict(ckpt->optimizer_state());
      if (ema) ema->load_state_dict(ckpt->extra());
      for (auto& [name, gen] : dropout_generators(*model)) {
        auto it = ckpt->generators.find(name);
        if (it == ckpt->generators.end())
          throw Error(str_cat("checkpoint ", dir, "/ckpt_", ckpt->tag, ": no state for ", name));
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
    std::map<std::string, const Generator*> generators;
    for (auto& [name, gen] : dropout_generators(*model)) generators[name] = gen;
    save_checkpoint(dir, tag, *model, *optimizer, progress, generators, extra);
  };
  std::printf("run %s: %s, %lld parameters, %lld train / %lld val images, %lld steps of batch %lld, %d threads\n",
              dir.c_str(), model->describe().c_str(), static_cast<long long>(model->num_parameters()),
              static_cast<long long>(data.train_size()), static_cast<long long>(data.val_size()),
              static_cast<long long>(total_steps), static_cast<long long>(config.data.batch_size),
              omp_get_max_threads());
  std::fflush(stdout);

  if (config.run.mode == RunMode::kEval) {
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
      for (; progress.epoch_batch < steps_per_epoch * config.optim.accum_steps;) {
        optimizer->set_lr(schedule.lr_at(progress.step));
        optimizer->zero_grad();
        float step_loss = 0;
        for (int64_t micro = 0; micro < config.optim.accum_steps; ++micro) {
          Batch b = data.train_batch(progress.epoch, progress.epoch_batch + micro);
          Tensor loss = cross_entropy(model->forward(b.images), b.labels, smoothing);
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
  write_file_atomic((std::filesystem::path(dir) / "summary.json").string(), summary.dump(2) + "\n");
  return outcome;
}

}  // namespace qilin
