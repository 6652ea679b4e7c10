// Running the built programs (train, qilin) from a test: the command line through the shell,
// stdout and stderr together, and the exit code.
#pragma once

#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace qilin::testing {

// build/bin/<program> (QILIN_BIN_DIR, set by tests/CMakeLists.txt).
inline std::string program_path(const std::string& program) {
  const char* d = std::getenv("QILIN_BIN_DIR");
  return std::string(d ? d : "build/bin") + "/" + program;
}

struct CliResult {
  int exit_code = -1;   // -1: did not exit normally (a signal)
  std::string output;   // stdout and stderr
};

inline CliResult run_program(const std::string& program, const std::string& args) {
  const std::string cmd = program_path(program) + " " + args + " 2>&1";
  CliResult r;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.output.append(buf, n);
  const int status = pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

}  // namespace qilin::testing
