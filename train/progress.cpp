#include "train/progress.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace qilin {
namespace {

int terminal_width(std::FILE* out) {
  winsize ws{};
  if (ioctl(fileno(out), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 20) return ws.ws_col;
  return 100;
}

constexpr double kRedrawSeconds = 0.1;

}  // namespace

ProgressReporter::ProgressReporter(ProgressStyle style, int64_t every_steps, std::FILE* out)
    : out_(out), every_steps_(std::max<int64_t>(every_steps, 1)) {
  bar_ = style == ProgressStyle::kBar || (style == ProgressStyle::kAuto && isatty(fileno(out)));
  start_ = std::chrono::steady_clock::now();
}

ProgressReporter::~ProgressReporter() { end_bar(); }

std::string ProgressReporter::format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const int64_t s = static_cast<int64_t>(seconds + 0.5);
  char buf[32];
  if (s >= 3600)
    std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", static_cast<long long>(s / 3600),
                  static_cast<long long>(s / 60 % 60), static_cast<long long>(s % 60));
  else
    std::snprintf(buf, sizeof buf, "%lld:%02lld", static_cast<long long>(s / 60),
                  static_cast<long long>(s % 60));
  return buf;
}

std::string ProgressReporter::bar_line(const StepStats& s, double eta_seconds, int width) {
  char stats[160];
  std::snprintf(stats, sizeof stats, " %lld/%lld loss %.4f lr %.2e %.0f img/s ETA %s",
                static_cast<long long>(s.step), static_cast<long long>(s.total_steps), s.loss,
                s.lr, s.images_per_sec, format_duration(eta_seconds).c_str());
  char head[32];
  std::snprintf(head, sizeof head, "epoch %lld/%lld ", static_cast<long long>(s.epoch + 1),
                static_cast<long long>(s.epochs));
  const int cells = std::max(10, width - 1 - static_cast<int>(std::string(head).size()) -
                                     static_cast<int>(std::string(stats).size()) - 2);
  const double frac = s.total_steps > 0 ? std::min(1.0, double(s.step) / s.total_steps) : 0.0;
  const int filled = static_cast<int>(frac * cells);
  std::string bar = std::string(head) + "[" + std::string(filled, '#') +
                    std::string(cells - filled, '.') + "]" + stats;
  if (static_cast<int>(bar.size()) > width - 1) bar.resize(width - 1);
  return bar;
}

void ProgressReporter::step(const StepStats& s) {
  const auto now = std::chrono::steady_clock::now();
  if (start_step_ < 0) {
    start_step_ = s.step;
    start_ = now;
  }
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  const int64_t done = s.step - start_step_;
  const double eta = done > 0 ? elapsed / done * (s.total_steps - s.step) : -1;
  if (bar_) {
    const bool last = s.step >= s.total_steps;
    if (!last && std::chrono::duration<double>(now - last_draw_).count() < kRedrawSeconds) return;
    last_draw_ = now;
    std::fprintf(out_, "\r%s\x1b[K", bar_line(s, eta, terminal_width(out_)).c_str());
    bar_open_ = true;
    std::fflush(out_);
    return;
  }
  if (s.step % every_steps_ != 0 && s.step != s.total_steps) return;
  std::fprintf(out_, "epoch %lld/%lld step %lld/%lld loss %.4f lr %.3e %.0f img/s ETA %s\n",
               static_cast<long long>(s.epoch + 1), static_cast<long long>(s.epochs),
               static_cast<long long>(s.step), static_cast<long long>(s.total_steps), s.loss, s.lr,
               s.images_per_sec, format_duration(eta).c_str());
  std::fflush(out_);
}

void ProgressReporter::end_bar() {
  if (bar_open_) {
    std::fputc('\n', out_);
    bar_open_ = false;
  }
}

void ProgressReporter::message(const std::string& line) {
  end_bar();
  std::fprintf(out_, "%s\n", line.c_str());
  std::fflush(out_);
}

MetricsWriter::MetricsWriter(const std::string& path) : path_(path), file_(path, std::ios::app) {
  if (!file_) throw Error(str_cat("metrics file ", path, ": cannot open for appending"));
}

void MetricsWriter::write(const std::map<std::string, double>& numbers,
                          const std::map<std::string, std::string>& strings) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [k, v] : numbers) j[k] = std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr);
  for (const auto& [k, v] : strings) j[k] = v;
  file_ << j.dump() << '\n';
  file_.flush();
  if (!file_) throw Error(str_cat("metrics file ", path_, ": write failed"));
}

}  // namespace qilin
