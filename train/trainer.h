// The trainer: runs one configured run (DESIGN.md §5) — `run.mode: train` from scratch,
// from `checkpoint.init_from`, or resumed from the run directory's last checkpoint, and
// `run.mode: eval`. Writes the run directory: config.yaml (resolved), metrics.jsonl,
// summary.json, checkpoints (ckpt_last, ckpt_best, ckpt_epoch_N).
//
// Order of work: everything that can fail on bad input (data set files, init_from) is
// checked before the run directory is created, so a bad run leaves nothing behind.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "layers/interp.h"
#include "layers/quant.h"
#include "train/config.h"
#include "train/optim.h"

namespace qilin {

struct RunOutcome {
  enum class Status { kFinished, kStopped, kDiverged } status = Status::kFinished;
  std::string run_dir;
  double best_val_acc = 0;
  double test_acc = 0;
  double test_loss = 0;
  double wall_seconds = 0;
  int exit_code() const { return status == Status::kFinished ? 0 : status == Status::kStopped ? 130 : 3; }
};

struct RunOptions {
  bool profile = false;          // per-op profile printed at the end and saved as profile.csv
  std::string run_dir_override;  // "" : <run.out_dir>/<run.name>
};

// Runs `config`; progress and results go to stdout. Throws qilin::Error (ConfigError for a
// configuration the data or model cannot satisfy) before creating anything.
RunOutcome run_training(const Config& config, const RunOptions& options = {});

// The layer factories a config asks for: native layers, or the interp section's tables
// (layers/interp.h), with the quant section's Linear / Conv2d (layers/quant.h) around them.
struct ModelFactories {
  std::unique_ptr<LayerFactory> layers;       // native or interpolated
  InterpLayerFactory* interp = nullptr;       // layers, when interp.enabled
  std::unique_ptr<QuantLayerFactory> quant;   // when quant.format is not none
  LayerFactory& model_factory() { return quant ? *quant : *layers; }
};
ModelFactories make_model_factories(const Config& config);

// The optimizer of the optim section over the model's parameters (no weight decay on
// tensors of fewer than 2 dims, timm's rule).
std::unique_ptr<Optimizer> make_optimizer(const OptimSection& o, Layer& model);

// The run directory a config writes to.
std::string run_directory(const Config& config);

}  // namespace qilin
