// Hands a fuzz input to qilin's readers, which take paths: the bytes are written to one file
// per process (in $TMPDIR, /dev/shm by default), rewritten on every call and removed at exit.
//
// Not here: the readers' checks (each fuzz_<reader>.cpp states what counts as a clean error).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace qilin::fuzz {

// Replaces the contents of this process's input file with [data, data + size); returns its
// path. Aborts if the file cannot be written: that is a broken harness, not a finding.
const std::string& write_input(const uint8_t* data, size_t size);

// A second per-process scratch path (for round trips that write a file); never created here.
const std::string& scratch_path();

// Watches qilin's tensor storage while a reader runs: a reader must not allocate more than
// the input's bytes can justify, even when it then fails cleanly (a 30-byte file announcing
// 4 GB must be refused before the 4 GB are asked for). libFuzzer's -malloc_limit_mb catches
// only the giant cases, and only while fuzzing; this also holds in the replay test.
class StorageBudget {
 public:
  StorageBudget(const char* target, uint64_t max_bytes);
  // Aborts with a message when the peak since construction exceeded max_bytes.
  void check() const;

 private:
  const char* target_;
  uint64_t max_bytes_;
  size_t in_use_before_;
};

}  // namespace qilin::fuzz
