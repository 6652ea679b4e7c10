// A main() for building a fuzz target without libFuzzer (any compiler): runs
// LLVMFuzzerTestOneInput once on each file named on the command line, or on every file of a
// named directory, so the regressions/ and corpus/ inputs can run in the ordinary test suite
// (under the ASan build too). Exits 0 when every input was handled. A finding aborts, and so
// does the watchdog, on limits like those scripts/fuzz.sh gives libFuzzer: an input that runs
// past kTimeoutSeconds or a process past kMaxRssMb must fail the test, not exhaust the machine.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

constexpr unsigned kTimeoutSeconds = 10;  // scripts/fuzz.sh: -timeout=10
// Half of scripts/fuzz.sh's -rss_limit_mb: a replay of inputs of a few KB stays near 10 MB
// (200 MB under ASan), while the labels of regressions/fuzz_idx/ zero-fill 1.8 GB.
constexpr long kMaxRssMb = 1024;
constexpr auto kRssPollInterval = std::chrono::milliseconds(10);

const char* g_current_input = "";  // for the watchdog's messages

long rss_mb() {
  long pages_total = 0, pages_resident = 0;
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (!f) return 0;
  if (std::fscanf(f, "%ld %ld", &pages_total, &pages_resident) != 2) pages_resident = 0;
  std::fclose(f);
  return pages_resident * (::sysconf(_SC_PAGESIZE) / 1024) / 1024;
}

void on_timeout(int) {
  constexpr char kMessage[] = "replay: an input ran past the time limit (a hang): ";
  (void)!::write(2, kMessage, sizeof(kMessage) - 1);
  (void)!::write(2, g_current_input, std::char_traits<char>::length(g_current_input));
  (void)!::write(2, "\n", 1);
  std::abort();
}

void start_rss_watchdog() {
  std::thread([] {
    for (;;) {
      std::this_thread::sleep_for(kRssPollInterval);
      const long mb = rss_mb();
      if (mb > kMaxRssMb) {
        std::fprintf(stderr, "replay: RSS %ld MB exceeds %ld MB on %s: a reader allocated far "
                     "more than its input justifies\n", mb, kMaxRssMb, g_current_input);
        std::abort();
      }
    }
  }).detach();
}

bool replay_file(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "replay: cannot read %s\n", file.c_str());
    return false;
  }
  const std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  static std::string current;
  current = file.string();
  g_current_input = current.c_str();
  ::alarm(kTimeoutSeconds);
  LLVMFuzzerTestOneInput(bytes.data(), bytes.size());
  ::alarm(0);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  ::signal(SIGALRM, on_timeout);
  start_rss_watchdog();
  int replayed = 0;
  bool ok = true;
  for (int i = 1; i < argc; ++i) {
    const std::filesystem::path arg = argv[i];
    if (!std::filesystem::exists(arg)) {
      std::printf("replay: %s does not exist, skipped (no findings yet)\n", arg.c_str());
      continue;
    }
    if (std::filesystem::is_directory(arg)) {
      for (const auto& entry : std::filesystem::directory_iterator(arg)) {
        if (!entry.is_regular_file()) continue;
        ok = replay_file(entry.path()) && ok;
        ++replayed;
      }
    } else {
      ok = replay_file(arg) && ok;
      ++replayed;
    }
  }
  std::printf("replay: %d input(s), peak RSS below %ld MB, each under %u s\n", replayed, kMaxRssMb,
              kTimeoutSeconds);
  return ok ? 0 : 1;
}
