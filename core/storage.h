// Storage: one contiguous block of device memory, shared by every tensor that views it.
// CPU blocks are 64-byte aligned (a cache line, a full AVX-512 vector). The allocator is
// chosen by device; the CUDA backend registers its own (core/storage.cpp).
#pragma once

#include <cstddef>
#include <memory>

#include "core/device.h"

namespace qilin {

constexpr size_t kStorageAlignment = 64;

class Storage {
 public:
  Storage(size_t nbytes, Device device);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() { return data_; }
  const void* data() const { return data_; }
  size_t nbytes() const { return nbytes_; }
  Device device() const { return device_; }

 private:
  void* data_ = nullptr;
  size_t nbytes_ = 0;
  Device device_;
};

// Bytes currently held by live CPU storages, and the high-water mark since the last reset:
// the engine's own memory accounting (benchmarks also read the process's VmHWM).
size_t cpu_bytes_in_use();
size_t cpu_peak_bytes();
void reset_cpu_peak_bytes();

}  // namespace qilin
