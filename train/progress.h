// What a run shows and records as it goes: a progress bar on a terminal (epoch, step/steps,
// loss, lr, images/s, ETA), plain periodic log lines when stdout is not a terminal (CI,
// files), and metrics.jsonl (one JSON object per log step and per evaluation).
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <map>
#include <string>

namespace qilin {

enum class ProgressStyle : uint8_t { kAuto, kBar, kLines };

struct StepStats {
  int64_t epoch = 0;       // 0-based
  int64_t epochs = 0;
  int64_t step = 0;        // optimizer steps done in the run
  int64_t total_steps = 0;
  double loss = 0;         // mean over the steps since the last report
  double lr = 0;
  double images_per_sec = 0;
};

class ProgressReporter {
 public:
  // `every_steps`: how often a line is printed in kLines style (the bar redraws at most
  // ~10 times a second). `out` is normally stdout.
  ProgressReporter(ProgressStyle style, int64_t every_steps, std::FILE* out = stdout);
  ~ProgressReporter();
  void step(const StepStats& s);
  // A line that must not be overwritten (evaluation results, warnings): ends the bar first.
  void message(const std::string& line);
  bool uses_bar() const { return bar_; }

  // "1:02:03" / "4:05" for a duration in seconds.
  static std::string format_duration(double seconds);
  // The bar line for a terminal `width` columns wide (exposed for tests).
  static std::string bar_line(const StepStats& s, double eta_seconds, int width);

 private:
  void end_bar();
  std::FILE* out_;
  bool bar_;
  int64_t every_steps_;
  bool bar_open_ = false;
  std::chrono::steady_clock::time_point last_draw_{};
  std::chrono::steady_clock::time_point start_;
  int64_t start_step_ = -1;
};

// Appends one JSON object per call to `path` (metrics.jsonl), flushed line by line so a
// crash loses at most the line being written. Values: numbers or strings.
class MetricsWriter {
 public:
  explicit MetricsWriter(const std::string& path);
  void write(const std::map<std::string, double>& numbers,
             const std::map<std::string, std::string>& strings = {});

 private:
  std::string path_;
  std::ofstream file_;
};

}  // namespace qilin
