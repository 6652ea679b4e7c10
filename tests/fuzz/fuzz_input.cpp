// Per-process input file for the fuzz targets (see fuzz_input.h).
#include "fuzz_input.h"

#include "core/storage.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

namespace qilin::fuzz {
namespace {

std::string temp_dir() {
  const char* dir = std::getenv("TMPDIR");
  if (dir && *dir) return dir;
  return ::access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
}

std::string make_path(const char* role) {
  return temp_dir() + "/qilin_fuzz_" + std::to_string(::getpid()) + "_" + role;
}

[[noreturn]] void harness_failure(const std::string& what, const std::string& path) {
  std::perror((what + " " + path).c_str());
  std::abort();
}

void remove_files() {
  ::unlink(make_path("input").c_str());
  ::unlink(make_path("scratch").c_str());
}

}  // namespace

const std::string& write_input(const uint8_t* data, size_t size) {
  static const std::string path = [] {
    std::atexit(remove_files);
    return make_path("input");
  }();
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) harness_failure("cannot create", path);
  while (size > 0) {
    ssize_t written = ::write(fd, data, size);
    if (written < 0) harness_failure("cannot write", path);
    data += written;
    size -= static_cast<size_t>(written);
  }
  if (::close(fd) != 0) harness_failure("cannot close", path);
  return path;
}

const std::string& scratch_path() {
  static const std::string path = make_path("scratch");
  return path;
}

StorageBudget::StorageBudget(const char* target, uint64_t max_bytes)
    : target_(target), max_bytes_(max_bytes), in_use_before_(cpu_bytes_in_use()) {
  reset_cpu_peak_bytes();
}

void StorageBudget::check() const {
  const uint64_t used = cpu_peak_bytes() - in_use_before_;
  if (used <= max_bytes_) return;
  std::fprintf(stderr, "%s: the reader allocated %llu bytes of tensor storage, more than the "
               "%llu the input can justify\n", target_, static_cast<unsigned long long>(used),
               static_cast<unsigned long long>(max_bytes_));
  std::abort();
}

}  // namespace qilin::fuzz
