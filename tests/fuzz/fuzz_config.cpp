// Fuzz target for the config loader (train/config.h): the input is a YAML config file,
// optionally followed by a line `#@set` and then one `--set` override per line (a YAML
// comment, so the whole input is still a config file). Each override line also goes through
// parse_sweep. A bad config must end in a ConfigError (a qilin::Error); anything else (a
// crash, a sanitizer report, a yaml-cpp exception, a hang, a huge allocation) is a finding.
// A config that loads must survive its own resolved YAML (config.h: "loading it again gives
// an equal Config"), which the trainer writes to every run directory and resume reads.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "core/error.h"
#include "fuzz_input.h"
#include "train/config.h"

namespace {

constexpr char kSetMarker[] = "\n#@set\n";

void require(bool ok, const char* what, const std::string& detail = "") {
  if (ok) return;
  std::fprintf(stderr, "fuzz_config: %s%s\n", what, detail.c_str());
  std::abort();
}

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  size_t begin = 0;
  while (begin < text.size()) {
    size_t end = text.find('\n', begin);
    if (end == std::string::npos) end = text.size();
    lines.push_back(text.substr(begin, end - begin));
    begin = end + 1;
  }
  return lines;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  const size_t marker = input.find(kSetMarker);
  std::vector<std::string> overrides;
  if (marker != std::string::npos) overrides = split_lines(input.substr(marker + sizeof(kSetMarker) - 1));
  for (const std::string& line : overrides) {
    try {
      qilin::SweepSpec sweep = qilin::parse_sweep(line);
      require(!sweep.values.empty(), "parse_sweep returned no values for ", line);
    } catch (const qilin::Error&) {
    }
  }

  const std::string& path = qilin::fuzz::write_input(data, size);
  qilin::Config config;
  try {
    config = qilin::load_config(path, overrides);
  } catch (const qilin::Error&) {
    return 0;  // a clean rejection
  }

  const std::string resolved = qilin::resolved_yaml(config);
  qilin::Config again;
  try {
    again = qilin::load_config_text(resolved, "resolved.yaml");
  } catch (const qilin::Error& e) {
    require(false, "the resolved YAML of a valid config does not load: ", e.what());
  }
  require(again == config, "the resolved YAML loads to a different config:\n", resolved);
  return 0;
}
