// Sweep outputs (DESIGN.md §5): one run per value of one config key, then sweep.csv,
// sweep.md and sweep.png (the final metric against the swept value) in the sweep's
// directory. The plot is drawn by scripts/plot_sweep.py (Debian's python3-matplotlib) when
// that is available; the table files never depend on it.
#pragma once

#include <string>
#include <vector>

namespace qilin {

struct SweepRow {
  std::string value;     // as given on the command line
  std::string run_dir;
  double val_acc = 0;    // best validation top-1 (what a sweep chooses by)
  double test_acc = 0;   // reported, never used to choose
  double test_loss = 0;
  double wall_seconds = 0;
};

// Writes <dir>/sweep.csv and <dir>/sweep.md (atomically), then tries the plot; returns the
// plot's path, or "" with `plot_note` saying why there is none.
std::string write_sweep_outputs(const std::string& dir, const std::string& key,
                                const std::vector<SweepRow>& rows, const std::string& plot_script,
                                std::string* plot_note);

// Writes `text` to `path` through a temporary file and a rename (never half a file).
void write_file_atomic(const std::string& path, const std::string& text);

}  // namespace qilin
