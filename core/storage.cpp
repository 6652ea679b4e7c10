#include "core/storage.h"

#include <atomic>
#include <cstdlib>

#include "core/error.h"

namespace qilin {
namespace {

std::atomic<size_t> g_cpu_in_use{0};
std::atomic<size_t> g_cpu_peak{0};

void* cpu_allocate(size_t nbytes) {
  // aligned_alloc needs a size that is a multiple of the alignment.
  size_t rounded = (nbytes + kStorageAlignment - 1) / kStorageAlignment * kStorageAlignment;
  if (rounded == 0) rounded = kStorageAlignment;
  void* p = std::aligned_alloc(kStorageAlignment, rounded);
  QILIN_CHECK(p != nullptr, "out of CPU memory allocating ", nbytes, " bytes");
  size_t now = g_cpu_in_use.fetch_add(nbytes) + nbytes;
  size_t peak = g_cpu_peak.load();
  while (now > peak && !g_cpu_peak.compare_exchange_weak(peak, now)) {
  }
  return p;
}

}  // namespace

Storage::Storage(size_t nbytes, Device device) : nbytes_(nbytes), device_(device) {
  QILIN_CHECK(device.is_cpu(), "no backend for device ", device.str(),
              " in this build (CPU only)");
  data_ = cpu_allocate(nbytes);
}

Storage::~Storage() {
  if (device_.is_cpu()) {
    std::free(data_);
    g_cpu_in_use.fetch_sub(nbytes_);
  }
}

size_t cpu_bytes_in_use() { return g_cpu_in_use.load(); }
size_t cpu_peak_bytes() { return g_cpu_peak.load(); }
void reset_cpu_peak_bytes() { g_cpu_peak.store(g_cpu_in_use.load()); }

}  // namespace qilin
