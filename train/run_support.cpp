#include "train/run_support.h"

#include <atomic>
#include <csignal>

namespace qilin {
namespace {

// Set from a signal handler: lock-free atomics are async-signal-safe.
std::atomic<bool> g_stop{false};
static_assert(std::atomic<bool>::is_always_lock_free);

extern "C" void on_stop_signal(int sig) {
  g_stop.store(true);
  std::signal(sig, SIG_DFL);  // a second signal of this kind terminates at once
}

}  // namespace

void install_stop_handlers() {
  std::signal(SIGINT, on_stop_signal);
  std::signal(SIGTERM, on_stop_signal);
}

bool stop_requested() { return g_stop.load(); }
void request_stop() { g_stop.store(true); }
void clear_stop_request() { g_stop.store(false); }

std::vector<std::pair<std::string, std::string>> layer_implementations(const Module& model) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& [name, module] : model.named_modules())
    if (module->named_children().empty() && !name.empty()) out.emplace_back(name, module->describe());
  return out;
}

}  // namespace qilin
