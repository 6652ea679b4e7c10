// `train`: the program a user runs (DESIGN.md §1, §5).
//   train --config FILE|NAME [--set key.path=value]... [--sweep key.path=v1,v2,...] [--profile]
// Exit codes: 0 done; 2 bad command line or config (nothing written); 1 any other error;
// 3 the loss diverged; 130 stopped by SIGINT/SIGTERM (a checkpoint was written: run the
// same command again to resume).
#include <CLI/CLI.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "train/config.h"
#include "train/interp_tool.h"
#include "train/sweep.h"
#include "train/trainer.h"

#ifndef QILIN_SOURCE_DIR
#define QILIN_SOURCE_DIR ""
#endif

namespace qilin {
namespace {

std::string source_configs_dir() { return std::string(QILIN_SOURCE_DIR) + "/configs"; }

std::string configs_help() {
  std::string text = "\nShipped configs (train --config NAME):\n";
  for (const ShippedConfig& c : list_configs(source_configs_dir()))
    text += "  " + c.name + std::string(c.name.size() < 22 ? 22 - c.name.size() : 1, ' ') + c.summary + "\n";
  return text;
}

// A finished run's results from its summary.json, or nullopt.
std::optional<SweepRow> finished_run(const std::string& dir) {
  std::ifstream in(std::filesystem::path(dir) / "summary.json");
  if (!in) return std::nullopt;
  try {
    nlohmann::json j = nlohmann::json::parse(in);
    if (!j.value("finished", false)) return std::nullopt;
    SweepRow r;
    r.run_dir = dir;
    r.val_acc = j.value("best_val_acc", 0.0);
    r.test_acc = j.value("test_acc", 0.0);
    r.test_loss = j.value("test_loss", 0.0);
    r.wall_seconds = j.value("wall_seconds", 0.0);
    return r;
  } catch (const std::exception&) {
    return std::nullopt;  // damaged summary: run it again
  }
}

int run_sweep(const std::string& config_path, const std::vector<std::string>& overrides,
              const std::string& sweep_text, const RunOptions& options) {
  SweepSpec spec = parse_sweep(sweep_text);
  // Validate every value before running any.
  std::vector<Config> configs;
  for (size_t i = 0; i < spec.values.size(); ++i) {
    std::vector<std::string> all = overrides;
    all.push_back(spec.override_for(i));
    configs.push_back(load_config(config_path, all));
  }
  const std::string sweep_dir = run_directory(configs.front());
  std::vector<SweepRow> rows;
  for (size_t i = 0; i < configs.size(); ++i) {
    const std::string dir = (std::filesystem::path(sweep_dir) / (spec.key + "=" + spec.values[i])).string();
    std::optional<SweepRow> done = finished_run(dir);
    if (done) {
      std::printf("sweep %s = %s: finished before (%s), skipped\n", spec.key.c_str(), spec.values[i].c_str(),
                  dir.c_str());
    } else {
      std::printf("sweep %s = %s (%zu of %zu)\n", spec.key.c_str(), spec.values[i].c_str(), i + 1, configs.size());
      RunOptions o = options;
      o.run_dir_override = dir;
      RunOutcome outcome = run_training(configs[i], o);
      if (outcome.exit_code() != 0) return outcome.exit_code();
      done = finished_run(dir);
      if (!done) throw Error(str_cat("sweep: run ", dir, " finished without a summary.json"));
    }
    done->value = spec.values[i];
    rows.push_back(*done);
  }
  std::string note;
  std::string png = write_sweep_outputs(sweep_dir, spec.key, rows, find_script("plot_sweep.py"), &note);
  std::printf("sweep results: %s/sweep.csv, %s/sweep.md%s\n", sweep_dir.c_str(), sweep_dir.c_str(),
              png.empty() ? (" (" + note + ")").c_str() : (", " + png).c_str());
  return 0;
}

}  // namespace
}  // namespace qilin

int main(int argc, char** argv) {
  using namespace qilin;
  CLI::App app{"qilin train: runs one experiment (or a sweep) from a YAML config"};
  std::string config_name;
  std::vector<std::string> overrides;
  std::string sweep;
  bool profile = false;
  app.add_option("--config", config_name, "config file, or the name of a shipped config")->required();
  app.add_option("--set", overrides, "override a key: key.path=value (repeatable)");
  app.add_option("--sweep", sweep, "one run per value: key.path=v1,v2,...");
  app.add_flag("--profile", profile, "per-op profile of the run (printed, and saved as profile.csv)");
  try {
    app.footer(configs_help());
  } catch (const std::exception&) {
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  try {
    const std::string path = find_config(config_name, source_configs_dir());
    RunOptions options;
    options.profile = profile;
    if (!sweep.empty()) return run_sweep(path, overrides, sweep, options);
    Config config = load_config(path, overrides);
    return run_training(config, options).exit_code();
  } catch (const ConfigError& e) {
    std::fprintf(stderr, "train: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "train: %s\n", e.what());
    return 1;
  }
}
