// The slope backward with the contiguous slope array (InterpTableView::k, which
// InterpTable::view() sets) against the same kernel gathering the slopes from the (k, b)
// pairs at a stride of 8 bytes (view.k unset). Each of 15 rounds times a block of four calls
// of each (the median of the last three), the order alternating between rounds; the speed-up
// is the median of the per-round ratios, so both sides see the same machine.
//
//   taskset -c 0,1 env OMP_PROC_BIND=true build/bin/bench_slope_array
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "core/interp.h"
#include "kernels/cpu/interp.h"

namespace {

namespace kc = qilin::kernels::cpu;

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

double now_ms() {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

int main() {
  using qilin::InterpFn;
  omp_set_num_threads(2);
  constexpr int64_t kN = 5000000;
  constexpr int kRounds = 15;
  std::vector<float> x(kN), dy(kN), dx(kN);
  std::mt19937 gen(2);
  std::normal_distribution<float> normal;
  std::uniform_real_distribution<float> unit(-1.0f, 1.0f);
  for (float& v : dy) v = unit(gen);
  for (InterpFn fn : {InterpFn::kTanh, InterpFn::kSigmoid, InterpFn::kExp}) {
    // The inputs of bench_interp: exp sees x - max <= 0, the others centred normals.
    for (float& v : x) {
      const float z = normal(gen);
      v = fn == InterpFn::kExp ? -std::fabs(4 * z) : fn == InterpFn::kSigmoid ? 2 * z : z;
    }
    for (int64_t pieces : {256, 4096, 16384, 65536}) {
      qilin::InterpSpec spec;
      spec.fn = fn;
      spec.pieces = pieces;
      const auto table = qilin::InterpTable::get(spec);
      const qilin::InterpTableView with = table->view();
      qilin::InterpTableView without = with;
      without.k = nullptr;
      const auto block_ms = [&](const qilin::InterpTableView& v) {
        kc::interp_backward_slope(v, x.data(), dy.data(), dx.data(), kN, false);
        double t[3];
        for (double& ti : t) {
          const double t0 = now_ms();
          kc::interp_backward_slope(v, x.data(), dy.data(), dx.data(), kN, false);
          ti = now_ms() - t0;
        }
        std::sort(t, t + 3);
        return t[1];
      };
      std::vector<double> with_ms, without_ms, speedup;
      for (int r = 0; r < kRounds; ++r) {
        double a, b;
        if (r % 2 == 0) {
          a = block_ms(with);
          b = block_ms(without);
        } else {
          b = block_ms(without);
          a = block_ms(with);
        }
        with_ms.push_back(a);
        without_ms.push_back(b);
        speedup.push_back(b / a);
      }
      std::printf("%-8s %6lld pieces: slope array %.1f GB/s, stride-8 pairs %.1f GB/s, speed-up %.3f\n",
                  qilin::to_string(fn), static_cast<long long>(pieces), 12e-6 * kN / median(with_ms),
                  12e-6 * kN / median(without_ms), median(speedup));
    }
  }
  return 0;
}
