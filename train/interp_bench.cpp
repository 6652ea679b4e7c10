// `qilin interp bench` (see interp_bench.h for the method).
#include "train/interp_bench.h"

#include <immintrin.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <random>

#include "core/error.h"
#include "kernels/cpu/interp.h"
#include "kernels/cpu/parallel.h"
#include "kernels/cpu/unary.h"

namespace qilin {
namespace {

namespace kc = kernels::cpu;

// A typical input of each function where a network feeds it: the softmax's exp sees
// x - max <= 0; activations see roughly centred values of unit-ish scale.
float sample_input(InterpFn fn, std::mt19937& gen) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  switch (fn) {
    case InterpFn::kExp: return -std::fabs(4.0f * normal(gen));
    case InterpFn::kSigmoid: return 2.0f * normal(gen);
    case InterpFn::kTanh: return normal(gen);
    case InterpFn::kGelu: return normal(gen);
    case InterpFn::kSilu: return 3.0f * normal(gen);
  }
  return 0.0f;
}
const char* sample_name(InterpFn fn) {
  switch (fn) {
    case InterpFn::kExp: return "-|N(0, 4^2)|";
    case InterpFn::kSigmoid: return "N(0, 2^2)";
    case InterpFn::kTanh: return "N(0, 1)";
    case InterpFn::kGelu: return "N(0, 1)";
    case InterpFn::kSilu: return "N(0, 3^2)";
  }
  return "";
}

// The exact kernels (kernels/cpu/unary.h); exp's backward reads y, the others x.
InterpBenchCall native_call(InterpFn fn, const InterpBenchBuffers& b) {
  using Fwd = void (*)(float*, const float*, int64_t);
  using Bwd = void (*)(float*, const float*, const float*, int64_t);
  Fwd fwd = nullptr;
  Bwd bwd = nullptr;
  switch (fn) {
    case InterpFn::kExp: fwd = kc::exp_forward; bwd = kc::exp_backward; break;
    case InterpFn::kSigmoid: fwd = kc::sigmoid_forward; bwd = kc::sigmoid_backward; break;
    case InterpFn::kTanh: fwd = kc::tanh_forward; bwd = kc::tanh_backward; break;
    case InterpFn::kGelu: fwd = kc::gelu_forward; bwd = kc::gelu_backward; break;
    case InterpFn::kSilu: fwd = kc::silu_forward; bwd = kc::silu_backward; break;
  }
  const float* bwd_in = fn == InterpFn::kExp ? b.y : b.x;
  return {"native", 0, [=] { fwd(b.y, b.x, b.n); }, [=] { bwd(b.dx, bwd_in, b.dy, b.n); }, false};
}

InterpBenchCall table_call(const std::shared_ptr<const InterpTable>& table, const InterpBenchBuffers& b) {
  const InterpSpec& spec = table->spec();
  if (spec.method == InterpMethod::kIgelu) {
    return {"igelu", 0, [=] { kc::igelu_forward(b.x, b.y, b.n); },
            [=] { kc::igelu_backward(b.x, b.dy, b.dx, b.n, false); }, false};
  }
  const InterpTableView v = table->view();
  return {to_string(spec.method), table->pieces(), [=] { kc::interp_forward(v, b.x, b.y, b.n); },
          [=] { kc::interp_backward_slope(v, b.x, b.dy, b.dx, b.n, false); }, false};
}

// The bandwidth references: y = x (forward) and dx = x * dy (backward), plain loops with the
// widest vectors the CPU has and ordinary stores, as the kernels they are compared with (not
// memcpy, whose large-size path may switch to non-temporal stores; and on a machine whose
// large L3 holds the buffers, vector width shows even in a "memory-bound" loop).
__attribute__((target("avx512f"))) void copy_avx512(const float* x, const float* dy, float* y,
                                                    int64_t begin, int64_t end) {
  int64_t i = begin;
  if (dy == nullptr) {
    for (; i + 16 <= end; i += 16) _mm512_storeu_ps(y + i, _mm512_loadu_ps(x + i));
    for (; i < end; ++i) y[i] = x[i];
    return;
  }
  for (; i + 16 <= end; i += 16)
    _mm512_storeu_ps(y + i, _mm512_mul_ps(_mm512_loadu_ps(x + i), _mm512_loadu_ps(dy + i)));
  for (; i < end; ++i) y[i] = x[i] * dy[i];
}
// y = x, or y = x * dy when dy is given.
void copy(const float* x, const float* dy, float* y, int64_t n) {
  static const bool avx512 = __builtin_cpu_supports("avx512f");
  kc::parallel_for(n, 1, [=](int64_t begin, int64_t end) {
    if (avx512) return copy_avx512(x, dy, y, begin, end);
    const float* __restrict xs = x;
    float* __restrict ys = y;
    if (dy == nullptr) {
#pragma omp simd
      for (int64_t i = begin; i < end; ++i) ys[i] = xs[i];
      return;
    }
    const float* __restrict dys = dy;
#pragma omp simd
    for (int64_t i = begin; i < end; ++i) ys[i] = xs[i] * dys[i];
  });
}

double median(std::vector<double> v) {
  std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
  return v[v.size() / 2];
}

std::string fixed(double v, int digits) {
  char s[32];
  std::snprintf(s, sizeof s, "%.*f", digits, v);
  return s;
}
std::string significant(double v, int digits) {
  char s[32];
  std::snprintf(s, sizeof s, "%.*g", digits, v);
  return s;
}

}  // namespace

Table interp_bench_table(const InterpBenchOptions& options,
                         const std::function<void(const std::string&)>& log) {
  QILIN_CHECK(options.n >= 1, "interp bench: n must be >= 1, got ", options.n);
  QILIN_CHECK(options.reps >= 1, "interp bench: reps must be >= 1, got ", options.reps);
  const int64_t n = options.n;
  // The four arrays in one allocation, each starting 1 KiB further into a 4 KiB page than
  // the one before: page-aligned arrays would put x[i], dy[i] and dx[i] at the same page
  // offset, and the CPU's 4K-aliasing check would stall loads behind unrelated stores
  // (measured: the x * dy reference ran 20% slower than a table backward that way).
  constexpr int64_t kStagger = 256;  // floats: 1 KiB
  const int64_t stride = (n + 1023) / 1024 * 1024 + kStagger;
  std::vector<float> storage(4 * stride + 1024);
  float* base = storage.data() + (1024 - reinterpret_cast<uintptr_t>(storage.data()) / 4 % 1024);
  const InterpBenchBuffers pristine{base, base + stride, base + 2 * stride, base + 3 * stride, n};
  // In place, every backward reads its dy from dx and writes dx over it.
  InterpBenchBuffers buf = pristine;
  if (options.in_place) buf.dy = buf.dx;
  float* x = base;
  std::mt19937 gen(1);
  std::uniform_real_distribution<float> unit(-1.0f, 1.0f);
  for (int64_t i = 0; i < n; ++i) base[stride + i] = unit(gen);  // pristine dy

  const bool with_bound = static_cast<bool>(options.extra);
  std::vector<std::string> header{"fn", "method", "pieces", "fwd_ms", "fwd_GBps", "fwd_vs_copy",
                                  "fwd_speedup", "bwd_ms", "bwd_GBps", "bwd_vs_copy", "bwd_speedup"};
  if (with_bound) {
    header.push_back("fwd_vs_bound");
    header.push_back("bwd_vs_bound");
  }
  Table table(header);

  for (InterpFn fn : options.fns) {
    std::mt19937 g(2);
    for (int64_t i = 0; i < n; ++i) x[i] = sample_input(fn, g);
    const InterpDomain domain = default_domain(fn);
    const int64_t outside = std::count_if(x, x + n, [&](float v) {
      return v < domain.lo() || v > domain.hi();
    });
    if (log) {
      char line[160];
      std::snprintf(line, sizeof line, "%s: inputs %s, %.2g%% outside the domain [%g, %g]",
                    to_string(fn), sample_name(fn), 100.0 * outside / n, domain.lo(), domain.hi());
      log(line);
    }

    // The candidates of this function, in row order.
    std::vector<InterpBenchCall> calls;
    calls.push_back({"copy", 0, [buf] { copy(buf.x, nullptr, buf.y, buf.n); },
                     [buf] { copy(buf.x, buf.dy, buf.dx, buf.n); }, false});
    calls.push_back(native_call(fn, buf));
    std::vector<std::shared_ptr<const InterpTable>> keep;  // the views point into these
    if (fn == InterpFn::kGelu &&
        std::count(options.methods.begin(), options.methods.end(), InterpMethod::kIgelu)) {
      InterpSpec spec;
      spec.fn = fn;
      spec.method = InterpMethod::kIgelu;
      keep.push_back(InterpTable::get(spec));
      calls.push_back(table_call(keep.back(), buf));
    }
    for (int64_t pieces : options.segments) {
      for (InterpMethod method : options.methods) {
        if (method == InterpMethod::kIgelu || method == InterpMethod::kNative) continue;
        InterpSpec spec;
        spec.fn = fn;
        spec.method = method;
        spec.pieces = pieces;
        keep.push_back(InterpTable::get(spec));
        calls.push_back(table_call(keep.back(), buf));
      }
      if (with_bound) {
        InterpSpec spec;
        spec.fn = fn;
        spec.pieces = pieces;
        keep.push_back(InterpTable::get(spec));
        for (InterpBenchCall& c : options.extra(keep.back()->view(), buf)) {
          c.pieces = pieces;
          c.is_bound = true;
          calls.push_back(std::move(c));
        }
      }
    }

    // Warm up, then time round-robin: times[c][0 | 1][round].
    std::vector<std::array<std::vector<double>, 2>> times(calls.size());
    for (auto& c : calls) {
      for (int w = 0; w < 2; ++w) {
        c.forward();
        if (!c.backward) continue;
        if (options.in_place) copy(pristine.dy, nullptr, pristine.dx, n);
        c.backward();
      }
    }
    const auto time_ms = [](const std::function<void()>& f) {
      const auto t0 = std::chrono::steady_clock::now();
      f();
      return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    };
    // Each timed call follows untimed calls of itself for at least kSettleMs: the previous
    // candidate's output (20 MB of dirty cache lines at the default n) is written back during
    // those, and the machine settles from what ran before. A memory-bound call right after a
    // long compute-bound one (binary search: 33 ms of gathers) ran 1.5-2x slower even after
    // one untimed call of itself, and recovered only after ~10-20 ms of memory traffic
    // (measured on this project's VM, 2026-11-27: tanh 4096 forward 22 vs 36 GB/s; an
    // uncore / power-state ramp would fit, the VM does not show which). This is what held
    // every three-array backward at 20-30 GB/s in the round-robin table.
    constexpr double kSettleMs = 20.0;
    const auto settle = [&](const std::function<void()>& f) {
      const auto t0 = std::chrono::steady_clock::now();
      do {
        f();
      } while (std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() < kSettleMs);
    };
    // In place, a backward call is preceded by an untimed refresh of its dy (dx = pristine
    // dy): repeated calls would otherwise multiply the same values down into subnormals.
    const auto refresh = [&](int dir) {
      if (dir == 1 && options.in_place) copy(pristine.dy, nullptr, pristine.dx, n);
    };
    const auto timed_call = [&](const std::function<void()>& f, int dir) {
      refresh(dir);
      return time_ms(f);
    };
    const auto settle_call = [&](const std::function<void()>& f, int dir) {
      settle([&] {
        refresh(dir);
        f();
      });
    };
    if (options.consecutive) {
      for (size_t c = 0; c < calls.size(); ++c) {
        for (int dir = 0; dir < 2; ++dir) {
          const std::function<void()>& f = dir == 0 ? calls[c].forward : calls[c].backward;
          if (!f) continue;
          settle_call(f, dir);
          for (int r = 0; r < options.reps; ++r) times[c][dir].push_back(timed_call(f, dir));
        }
      }
    } else {
      for (int r = 0; r < options.reps; ++r) {
        for (size_t c = 0; c < calls.size(); ++c) {
          for (int dir = 0; dir < 2; ++dir) {
            const std::function<void()>& f = dir == 0 ? calls[c].forward : calls[c].backward;
            if (!f) continue;
            settle_call(f, dir);
            times[c][dir].push_back(timed_call(f, dir));
          }
        }
      }
    }

    // The bound of each piece count and direction: the variant with the least median.
    std::map<std::pair<int64_t, int>, size_t> bound;
    for (size_t c = 0; c < calls.size(); ++c) {
      if (!calls[c].is_bound) continue;
      for (int dir = 0; dir < 2; ++dir) {
        if (times[c][dir].empty()) continue;
        auto it = bound.find({calls[c].pieces, dir});
        if (it == bound.end() || median(times[c][dir]) < median(times[it->second][dir]))
          bound[{calls[c].pieces, dir}] = c;
      }
    }
    // The median over rounds of ref_r / t_r (consecutive: the ratio of the medians).
    const auto ratio = [&](size_t ref, size_t c, int dir) {
      if (options.consecutive) return median(times[ref][dir]) / median(times[c][dir]);
      std::vector<double> q;
      for (int r = 0; r < options.reps; ++r) q.push_back(times[ref][dir][r] / times[c][dir][r]);
      return median(q);
    };
    const double mb = n * 4.0 / 1e6;  // MB per array
    for (size_t c = 0; c < calls.size(); ++c) {
      std::vector<std::string> row{to_string(fn), calls[c].method,
                                   calls[c].pieces ? std::to_string(calls[c].pieces) : "-"};
      for (int dir = 0; dir < 2; ++dir) {
        if (times[c][dir].empty()) {
          row.insert(row.end(), {"-", "-", "-", "-"});
          continue;
        }
        const double ms = median(times[c][dir]);
        row.push_back(significant(ms, 4));
        row.push_back(significant((dir == 0 ? 2 : 3) * mb / ms, 3));
        row.push_back(fixed(ratio(0, c, dir), 2));
        row.push_back(fixed(ratio(1, c, dir), 2));
      }
      if (with_bound) {
        for (int dir = 0; dir < 2; ++dir) {
          const auto it = bound.find({calls[c].pieces, dir});
          const bool show = calls[c].pieces > 0 && it != bound.end() && !times[c][dir].empty();
          row.push_back(show ? fixed(ratio(it->second, c, dir), 2) : "-");
        }
      }
      table.add(std::move(row));
    }
  }
  return table;
}

}  // namespace qilin
