// Per-op profile: calls and wall time of forward and backward per op type. Off by default;
// any program turns it on with Profiler::enable(). Forward time is taken by a ProfileScope
// at the top of each op front-end; only the outermost scope counts, so an op built from
// other ops is charged once. Backward time is taken per Node by the autograd engine.
//
// Process-wide by nature (like torch.profiler): one table guarded by a mutex, touched only
// while enabled; when disabled a scope costs one relaxed atomic load.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace qilin {

struct OpProfile {
  std::string op;
  int64_t forward_calls = 0;
  int64_t backward_calls = 0;
  double forward_seconds = 0;
  double backward_seconds = 0;
};

class Profiler {
 public:
  static void enable(bool on = true);
  static bool enabled() { return enabled_.load(std::memory_order_relaxed); }
  static void reset();
  static void record(const char* op, bool backward, double seconds);
  // Rows sorted by total time, descending.
  static std::vector<OpProfile> snapshot();
  // A plain table: op, calls, forward ms, backward ms, share of the total.
  static std::string table();
  static std::string csv();

 private:
  static std::atomic<bool> enabled_;
};

class ProfileScope {
 public:
  explicit ProfileScope(const char* op, bool backward = false);
  ~ProfileScope();
  ProfileScope(const ProfileScope&) = delete;
  ProfileScope& operator=(const ProfileScope&) = delete;

 private:
  const char* op_ = nullptr;
  bool backward_ = false;
  bool counted_ = false;  // this scope incremented the thread's nesting depth
  std::chrono::steady_clock::time_point start_;
};

}  // namespace qilin
