#include "train/checkpoint.h"

#include <cstdio>
#include <filesystem>

#include "core/error.h"

namespace qilin {
namespace {

constexpr char kOptimPrefix[] = "optim.";
constexpr char kGeneratorPrefix[] = "generator.";

std::string u64_str(uint64_t v) { return std::to_string(v); }

std::string double_str(double v) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.17g", v);  // round-trips exactly
  return buf;
}

// A metadata value of file `path`, parsed as an unsigned integer (or a double).
const std::string& meta(const SafetensorsContents& c, const std::string& path,
                        const std::string& key) {
  auto it = c.metadata.find(key);
  if (it == c.metadata.end())
    throw Error(str_cat("checkpoint ", path, ": no '", key, "' in its __metadata__"));
  return it->second;
}

uint64_t meta_u64(const SafetensorsContents& c, const std::string& path, const std::string& key) {
  const std::string& text = meta(c, path, key);
  try {
    size_t used = 0;
    unsigned long long v = std::stoull(text, &used);
    if (used == text.size() && text[0] != '-') return v;
  } catch (const std::exception&) {
  }
  throw Error(str_cat("checkpoint ", path, ": __metadata__ ", key, " = '", text,
                      "' is not an unsigned integer"));
}

double meta_double(const SafetensorsContents& c, const std::string& path, const std::string& key) {
  const std::string& text = meta(c, path, key);
  try {
    size_t used = 0;
    double v = std::stod(text, &used);
    if (used == text.size()) return v;
  } catch (const std::exception&) {
  }
  throw Error(str_cat("checkpoint ", path, ": __metadata__ ", key, " = '", text,
                      "' is not a number"));
}

}  // namespace

CheckpointPaths checkpoint_paths(const std::string& dir, const std::string& tag) {
  std::filesystem::path base(dir);
  return {(base / ("ckpt_" + tag + ".safetensors")).string(),
          (base / ("ckpt_" + tag + ".trainer.safetensors")).string()};
}

void save_checkpoint(const std::string& dir, const std::string& tag, const Module& model,
                     const Optimizer& optimizer, const TrainerProgress& progress,
                     const std::map<std::string, const Generator*>& generators,
                     const NamedTensors& extra) {
  const CheckpointPaths paths = checkpoint_paths(dir, tag);
  const std::string step = u64_str(static_cast<uint64_t>(progress.step));

  NamedTensors trainer_tensors;
  for (auto& [name, t] : optimizer.state_dict()) trainer_tensors.emplace_back(kOptimPrefix + name, t);
  for (auto& [name, t] : extra) {
    QILIN_CHECK(name.rfind(kOptimPrefix, 0) != 0, "checkpoint extra tensor '", name,
                "' uses the reserved prefix ", kOptimPrefix);
    trainer_tensors.emplace_back(name, t);
  }
  std::map<std::string, std::string> trainer_meta{
      {"step", step},
      {"epoch", u64_str(static_cast<uint64_t>(progress.epoch))},
      {"epoch_batch", u64_str(static_cast<uint64_t>(progress.epoch_batch))},
      {"best_metric", double_str(progress.best_metric)},
      {"config_hash", u64_str(progress.config_hash)},
  };
  for (auto& [name, gen] : generators) {
    trainer_meta[kGeneratorPrefix + name + ".seed"] = u64_str(gen->state().seed);
    trainer_meta[kGeneratorPrefix + name + ".offset"] = u64_str(gen->state().offset);
  }
  // Trainer file first: until the model file is renamed into place, the pair's steps differ
  // and resume ignores it.
  save_safetensors(paths.trainer, trainer_tensors, trainer_meta);
  save_safetensors(paths.model, model.state_dict(), {{"format", "pt"}, {"step", step}});
}

NamedTensors Checkpoint::optimizer_state() const {
  NamedTensors out;
  const std::string prefix = kOptimPrefix;
  for (auto& [name, t] : trainer.tensors)
    if (name.rfind(prefix, 0) == 0) out.emplace_back(name.substr(prefix.size()), t);
  return out;
}

NamedTensors Checkpoint::extra() const {
  NamedTensors out;
  for (auto& [name, t] : trainer.tensors)
    if (name.rfind(kOptimPrefix, 0) != 0) out.emplace_back(name, t);
  return out;
}

Checkpoint load_checkpoint(const std::string& dir, const std::string& tag) {
  const CheckpointPaths paths = checkpoint_paths(dir, tag);
  for (const std::string& p : {paths.model, paths.trainer})
    if (!std::filesystem::exists(p)) throw Error(str_cat("checkpoint ", p, ": no such file"));
  Checkpoint c;
  c.tag = tag;
  c.model = load_safetensors(paths.model);
  c.trainer = load_safetensors(paths.trainer);
  const uint64_t model_step = meta_u64(c.model, paths.model, "step");
  const uint64_t trainer_step = meta_u64(c.trainer, paths.trainer, "step");
  if (model_step != trainer_step)
    throw Error(str_cat("checkpoint ", tag, " in ", dir, ": model file at step ", model_step,
                        ", trainer file at step ", trainer_step,
                        " (a write was interrupted): not a usable pair"));
  c.progress.step = static_cast<int64_t>(trainer_step);
  c.progress.epoch = static_cast<int64_t>(meta_u64(c.trainer, paths.trainer, "epoch"));
  c.progress.epoch_batch = static_cast<int64_t>(meta_u64(c.trainer, paths.trainer, "epoch_batch"));
  c.progress.best_metric = meta_double(c.trainer, paths.trainer, "best_metric");
  c.progress.config_hash = meta_u64(c.trainer, paths.trainer, "config_hash");
  const std::string gp = kGeneratorPrefix;
  for (auto& [key, value] : c.trainer.metadata) {
    if (key.rfind(gp, 0) != 0 || key.size() < gp.size() + 5 ||
        key.compare(key.size() - 5, 5, ".seed") != 0)
      continue;
    const std::string name = key.substr(gp.size(), key.size() - gp.size() - 5);
    PhiloxState s;
    s.seed = meta_u64(c.trainer, paths.trainer, key);
    s.offset = meta_u64(c.trainer, paths.trainer, gp + name + ".offset");
    c.generators[name] = s;
  }
  return c;
}

std::optional<Checkpoint> find_resumable(const std::string& dir,
                                         const std::vector<std::string>& tags) {
  for (const std::string& tag : tags) {
    const CheckpointPaths paths = checkpoint_paths(dir, tag);
    if (!std::filesystem::exists(paths.model) || !std::filesystem::exists(paths.trainer)) continue;
    try {
      return load_checkpoint(dir, tag);
    } catch (const Error&) {
      continue;  // interrupted or damaged pair: try the next tag
    }
  }
  return std::nullopt;
}

}  // namespace qilin
