#include "core/storage.h"

#include <malloc.h>

#include <atomic>
#include <cstdlib>

#include "core/error.h"

namespace qilin {
namespace {

std::atomic<size_t> g_cpu_in_use{0};
std::atomic<size_t> g_cpu_peak{0};

// glibc serves blocks above its mmap threshold (128 KiB, raised dynamically only to the
// largest block freed so far) with fresh mmaps, and gives the top of the heap back to the OS
// whenever more than the trim threshold is free there. A training step allocates and frees
// activations of a few MB each, hundreds of times: both rules turn every step's memory into
// fresh pages, and the page faults cost more than the ops (ViT step at batch 128: 616,000
// minor faults over 30 steps and 127-158 ms per step; tuned as below, 50,000 and 94-101 ms;
// docs/PERFORMANCE.md). So: blocks up to 32 MiB (glibc's maximum threshold) come from the
// heap, and freed heap memory stays mapped for reuse, as a caching allocator would keep it.
// Once per process, before the first tensor; users may still override with MALLOC_*_ env
// variables, which glibc reads earlier and which this leaves alone when set.
void tune_malloc_once() {
  static const bool tuned = [] {
    if (!std::getenv("MALLOC_MMAP_THRESHOLD_")) mallopt(M_MMAP_THRESHOLD, 32 << 20);
    if (!std::getenv("MALLOC_TRIM_THRESHOLD_")) mallopt(M_TRIM_THRESHOLD, 1 << 30);
    return true;
  }();
  (void)tuned;
}

void* cpu_allocate(size_t nbytes) {
  tune_malloc_once();
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
