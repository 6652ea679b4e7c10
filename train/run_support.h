// Small pieces of a run's life cycle: stop requests from SIGINT/SIGTERM (the trainer
// finishes the current step, checkpoints and exits cleanly), and the per-layer
// implementation list that summary.json records (DESIGN.md §5).
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "layers/module.h"

namespace qilin {

// Installs SIGINT/SIGTERM handlers that only set a flag; a second signal of the same kind
// restores the default action (so a second Ctrl-C kills at once).
void install_stop_handlers();
bool stop_requested();
void request_stop();       // the same as a signal (tests)
void clear_stop_request();

// Every leaf module (no children) with its implementation in words, in PyTorch order:
// e.g. {"blocks.0.mlp.act", "GELU(erf)"}, {"blocks.0.mlp.fc1", "Linear(64 -> 256, bias)"}.
std::vector<std::pair<std::string, std::string>> layer_implementations(const Module& model);

}  // namespace qilin
