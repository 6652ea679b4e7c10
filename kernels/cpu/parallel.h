// OpenMP helpers for CPU kernels: split [0, n) into chunks across the team, and stay serial
// when the work is too small to pay for waking threads (about 5 us per parallel region on
// this machine's 2 cores; kMinParallelWork elements of streaming work take about as long).
#pragma once

#include <omp.h>

#include <algorithm>
#include <cstdint>

namespace qilin::kernels::cpu {

constexpr int64_t kMinParallelWork = 1 << 15;

// Calls fn(begin, end) on disjoint chunks covering [0, n). `cost_per_item` scales the
// threshold: pass the number of elements (or flops/4) each item touches.
template <typename Fn>
void parallel_for(int64_t n, int64_t cost_per_item, Fn&& fn) {
  if (n <= 0) return;
  const int64_t work = n * std::max<int64_t>(cost_per_item, 1);
  const int max_threads = omp_get_max_threads();
  if (work < kMinParallelWork || max_threads == 1 || omp_in_parallel()) {
    fn(int64_t{0}, n);
    return;
  }
  const int64_t threads = std::min<int64_t>(max_threads, std::max<int64_t>(1, work / kMinParallelWork));
#pragma omp parallel num_threads(static_cast<int>(threads))
  {
    const int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
    const int64_t chunk = (n + nt - 1) / nt;
    const int64_t begin = std::min(n, t * chunk), end = std::min(n, begin + chunk);
    if (begin < end) fn(begin, end);
  }
}

}  // namespace qilin::kernels::cpu
