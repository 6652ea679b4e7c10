#include "core/profiler.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <mutex>
#include <sstream>

namespace qilin {
namespace {

std::mutex g_mutex;
std::map<std::string, OpProfile>& table_rows() {
  static std::map<std::string, OpProfile> rows;
  return rows;
}
thread_local int t_depth = 0;  // nesting of ProfileScopes on this thread

}  // namespace

std::atomic<bool> Profiler::enabled_{false};

void Profiler::enable(bool on) { enabled_.store(on); }

void Profiler::reset() {
  std::lock_guard<std::mutex> lock(g_mutex);
  table_rows().clear();
}

void Profiler::record(const char* op, bool backward, double seconds) {
  std::lock_guard<std::mutex> lock(g_mutex);
  OpProfile& row = table_rows()[op];
  row.op = op;
  if (backward) {
    row.backward_calls++;
    row.backward_seconds += seconds;
  } else {
    row.forward_calls++;
    row.forward_seconds += seconds;
  }
}

std::vector<OpProfile> Profiler::snapshot() {
  std::lock_guard<std::mutex> lock(g_mutex);
  std::vector<OpProfile> rows;
  for (auto& kv : table_rows()) rows.push_back(kv.second);
  std::sort(rows.begin(), rows.end(), [](const OpProfile& a, const OpProfile& b) {
    return a.forward_seconds + a.backward_seconds > b.forward_seconds + b.backward_seconds;
  });
  return rows;
}

std::string Profiler::table() {
  auto rows = snapshot();
  double total = 0;
  for (auto& r : rows) total += r.forward_seconds + r.backward_seconds;
  std::ostringstream os;
  char line[256];
  std::snprintf(line, sizeof line, "%-24s %8s %12s %8s %12s %7s\n", "op", "fwd_calls",
                "fwd_ms", "bwd_calls", "bwd_ms", "share");
  os << line;
  for (auto& r : rows) {
    double share = total > 0 ? 100.0 * (r.forward_seconds + r.backward_seconds) / total : 0;
    std::snprintf(line, sizeof line, "%-24s %8lld %12.3f %8lld %12.3f %6.1f%%\n", r.op.c_str(),
                  static_cast<long long>(r.forward_calls), r.forward_seconds * 1e3,
                  static_cast<long long>(r.backward_calls), r.backward_seconds * 1e3, share);
    os << line;
  }
  std::snprintf(line, sizeof line, "%-24s %8s %12s %8s %12.3f\n", "total", "", "", "",
                total * 1e3);
  os << line;
  return os.str();
}

std::string Profiler::csv() {
  auto rows = snapshot();
  double total = 0;
  for (auto& r : rows) total += r.forward_seconds + r.backward_seconds;
  std::ostringstream os;
  os << "op,forward_calls,forward_ms,backward_calls,backward_ms,share\n";
  for (auto& r : rows) {
    double share = total > 0 ? (r.forward_seconds + r.backward_seconds) / total : 0;
    os << r.op << "," << r.forward_calls << "," << r.forward_seconds * 1e3 << ","
       << r.backward_calls << "," << r.backward_seconds * 1e3 << "," << share << "\n";
  }
  return os.str();
}

ProfileScope::ProfileScope(const char* op, bool backward) {
  if (!Profiler::enabled()) return;
  counted_ = true;
  if (t_depth++ > 0) return;  // nested inside another op: charged to the outer one
  op_ = op;
  backward_ = backward;
  start_ = std::chrono::steady_clock::now();
}

ProfileScope::~ProfileScope() {
  if (!counted_) return;
  --t_depth;
  if (op_ == nullptr) return;
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  Profiler::record(op_, backward_, s);
}

}  // namespace qilin
