// Checkpoints (DESIGN.md §5): two safetensors files per checkpoint.
//   ckpt_<tag>.safetensors          the model's state dict only, named as timm/torchvision
//                                   name it, so PyTorch's load_state_dict(load_file(...))
//                                   takes it strictly; the step in its __metadata__.
//   ckpt_<tag>.trainer.safetensors  everything else a resumed run needs: optimizer state,
//                                   step, epoch, generator states, extra tensors (EMA
//                                   weights), the config hash; the step in __metadata__.
// Each file is written to a temporary file and renamed into place (core/safetensors.cpp),
// the trainer file first: a crash at any moment leaves either the old pair or a trainer
// file whose step does not match its model file, and resume takes a pair only when both
// carry the same step.
//
// Not here: when to checkpoint, or which tags exist (the trainer decides: last, best,
// epoch_N).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/random.h"
#include "core/safetensors.h"
#include "layers/module.h"
#include "train/optim.h"

namespace qilin {

struct TrainerProgress {
  int64_t step = 0;         // optimizer updates done
  int64_t epoch = 0;        // epochs completed
  int64_t epoch_batch = 0;  // batches consumed of the current epoch
  double best_metric = 0;   // best validation accuracy so far
  uint64_t config_hash = 0;
};

struct CheckpointPaths {
  std::string model;
  std::string trainer;
};
CheckpointPaths checkpoint_paths(const std::string& dir, const std::string& tag);

// Writes both files of checkpoint `tag` in `dir`: trainer file first, then the model file.
// `generators` are saved by name (e.g. "shuffle", "dropout"); `extra` tensors (e.g.
// "ema.<param>") go to the trainer file under their own names.
void save_checkpoint(const std::string& dir, const std::string& tag, const Module& model,
                     const Optimizer& optimizer, const TrainerProgress& progress,
                     const std::map<std::string, const Generator*>& generators,
                     const NamedTensors& extra = {});

struct Checkpoint {
  std::string tag;
  SafetensorsContents model;    // the model's state dict
  SafetensorsContents trainer;  // optimizer state ("optim.<name>"), extra tensors
  TrainerProgress progress;
  std::map<std::string, PhiloxState> generators;
  NamedTensors optimizer_state() const;  // the "optim." entries, prefix stripped
  NamedTensors extra() const;            // the trainer file's other tensors
};

// Reads checkpoint `tag` from `dir`; an Error names the file when either is missing,
// corrupt, or when their steps differ (an interrupted write).
Checkpoint load_checkpoint(const std::string& dir, const std::string& tag);

// The checkpoint to resume from in `dir`: among the tags given, in order of preference,
// the first complete pair (both files present, readable, same step); nullopt when none.
std::optional<Checkpoint> find_resumable(const std::string& dir,
                                         const std::vector<std::string>& tags);

}  // namespace qilin
