// Interpolated functions against the native ones, a plain copy and the lookup-only bound
// (issue 4, Must show 4; docs/PERFORMANCE.md). qilin's side; bench/torch_interp.py times
// PyTorch on the same inputs.
//
//   bench_interp [--fn exp|sigmoid|tanh|gelu|silu|all] [--segments 16,64,...]
//                [--n 5000000] [--reps 21] [--threads 2] [--target avx2|avx3]
//                [--stat median|min] [--format text|csv]
//
// Run pinned and quiet: taskset -c 0,1 env OMP_NUM_THREADS=2 OMP_PROC_BIND=true bench_interp.
// Every row is the median of --reps timed calls after two warm-up calls. Bytes moved per
// element: forward reads x and writes y (8), backward reads x and dy and writes dx (12).
// Rows:
//   copy         y = x (forward) and dx = x * dy (backward): the bandwidth reference, same
//                threading (parallel_for) as the kernels
//   native       qilin's exact kernels (kernels/cpu/unary.h)
//   uniform      Algorithm 1 tables (kernels/cpu/interp.h), backward `slope`
//   binary_search  the same pieces found by binary search
//   igelu        I-BERT's i-GELU (gelu only)
//   bound:<v>    the lookup-only loop: load x, index, load the (k, b) pair as one 8-byte value,
//                one FMA, store (backward: load x and dy, index, load k, multiply, store), in
//                each variant tried: gather-ps (two 32-bit gathers, scale 8), gather-pd (one
//                64-bit gather of the pair, then a deinterleave), scalar (plain C loop),
//                scalar-x16 (vector index, 16 scalar 8-byte loads, vector FMA), alg1 (gather-ps
//                with Algorithm 1's bit-field index instead of the scaled one). The bound
//                of a piece count is the fastest variant.
// The tables are built here (chords of the exact function in double, stored as float32), so
// the benchmark needs only the kernels.
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "core/interp_view.h"
#include "hwy/targets.h"
#include "kernels/cpu/interp.h"
#include "kernels/cpu/parallel.h"
#include "kernels/cpu/unary.h"

#pragma GCC diagnostic ignored "-Wpsabi"
// GCC 12 initialises unused AVX-512 pass-through operands from _mm512_undefined_*().
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace {

namespace kc = qilin::kernels::cpu;
using qilin::InterpKind;
using qilin::InterpTableView;

// ---- functions and tables ----

struct FnInfo {
  std::string name;
  std::function<double(double)> f;
  double a;
  int m;  // domain [a, a + 2^m)
  double below, above_k;  // asymptotes: y = below for x < a; y = above_k * x or 1 above
  bool above_is_x;
  std::function<float(std::mt19937&)> sample;  // a typical input
  void (*native_fwd)(float*, const float*, int64_t);
  void (*native_bwd)(float*, const float*, const float*, int64_t);
  bool native_bwd_from_y;
};

double gelu(double x) { return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0))); }
double sigmoid(double x) { return 1 / (1 + std::exp(-x)); }

std::vector<FnInfo> functions() {
  auto normal = [](double s, double mean = 0) {
    return [s, mean](std::mt19937& g) {
      return static_cast<float>(mean + s * std::normal_distribution<double>()(g));
    };
  };
  return {
      {"exp", [](double x) { return std::exp(x); }, -16, 4, 0, 0, false,
       [](std::mt19937& g) { return static_cast<float>(-std::fabs(4 * std::normal_distribution<double>()(g))); },
       kc::exp_forward, kc::exp_backward, true},
      {"sigmoid", sigmoid, -8, 4, 0, 1, false, normal(2.0), kc::sigmoid_forward,
       kc::sigmoid_backward, false},
      {"tanh", [](double x) { return std::tanh(x); }, -4, 3, -1, 1, false, normal(1.0),
       kc::tanh_forward, kc::tanh_backward, false},
      {"gelu", gelu, -5, 3, 0, 1, true, normal(1.0), kc::gelu_forward, kc::gelu_backward, false},
      {"silu", [](double x) { return x * sigmoid(x); }, -16, 5, 0, 1, true, normal(3.0),
       kc::silu_forward, kc::silu_backward, false},
  };
}

struct Table {
  std::vector<float> kb, breaks;
  InterpTableView view;
};

// 2^n chords of f on [a, a + 2^m), in double, stored as float; asymptote outside lines.
Table build_table(const FnInfo& fn, int n, InterpKind kind) {
  Table t;
  const double h = std::ldexp(1.0, fn.m - n);
  for (int64_t i = 0; i < (int64_t{1} << n); ++i) {
    const double x0 = fn.a + i * h, x1 = x0 + h;
    const double k = (fn.f(x1) - fn.f(x0)) / h;
    t.kb.push_back(static_cast<float>(k));
    t.kb.push_back(static_cast<float>(fn.f(x0) - k * x0));
    if (i > 0) t.breaks.push_back(static_cast<float>(x0));
  }
  InterpTableView& v = t.view;
  v.kind = kind;
  v.kb = t.kb.data();
  v.breaks = t.breaks.data();
  v.pieces = 1 << n;
  v.lo = static_cast<float>(fn.a);
  v.hi = static_cast<float>(fn.a + std::ldexp(1.0, fn.m));
  v.m = fn.m;
  v.n = n;
  v.below = {0.0f, static_cast<float>(fn.below)};
  v.above = fn.above_is_x ? qilin::InterpLine{1.0f, 0.0f} : qilin::InterpLine{0.0f, 1.0f};
  return t;
}

// ---- the lookup-only bound ----
//
// The index is the cheapest exact form: floor(fl(x - a) 2^(n-m)) = floor(fma(x, s, -a s))
// (scaling by a power of two commutes with rounding), clamped: max with 0 before the
// conversion, unsigned min with the last piece after it (NaN and overflow convert to
// 0x80000000, which the unsigned min maps to the last piece).
struct BoundArgs {
  const float* kb;
  float scale, offset;  // 2^(n-m), -a 2^(n-m)
  int32_t last;
  float a;
  int32_t shift_base;  // Algorithm 1: m + 150 - n
};

// AVX-512 variants (the lambdas given to parallel_for must be compiled for it too, hence the
// pragma rather than function attributes).
#pragma GCC push_options
#pragma GCC target("avx512f,avx512dq,avx512bw,avx512vl")
inline __m512i index512(
    __m512 x, const BoundArgs& p) {
  const __m512 t = _mm512_max_ps(_mm512_fmadd_ps(x, _mm512_set1_ps(p.scale), _mm512_set1_ps(p.offset)),
                                 _mm512_setzero_ps());
  return _mm512_min_epu32(_mm512_cvttps_epi32(t), _mm512_set1_epi32(p.last));
}

inline __m512i alg1_index512(
    __m512 x, const BoundArgs& p) {
  const __m512i bits = _mm512_castps_si512(_mm512_sub_ps(x, _mm512_set1_ps(p.a)));
  const __m512i e = _mm512_and_si512(_mm512_srli_epi32(bits, 23), _mm512_set1_epi32(0xFF));
  const __m512i shift = _mm512_max_epi32(_mm512_sub_epi32(_mm512_set1_epi32(p.shift_base), e),
                                         _mm512_setzero_si512());
  const __m512i mant = _mm512_ternarylogic_epi32(bits, _mm512_set1_epi32(0x007FFFFF),
                                                 _mm512_set1_epi32(0x00800000), 0xEA);  // a&b|c
  return _mm512_min_epi32(_mm512_srlv_epi32(mant, shift), _mm512_set1_epi32(p.last));
}

// Gathers from a fresh destination (see kernels/cpu/interp.cpp: otherwise GCC lets the
// gathers of consecutive iterations chain through a reused destination register).
inline __m512 gather_ps8(__m512i index, const float* base) {
  __m512 src = _mm512_setzero_ps();
  __mmask16 all = 0xFFFF;
  asm("" : "+v"(src), "+Yk"(all));
  return _mm512_mask_i32gather_ps(src, all, index, base, 8);
}
inline __m512d gather_pd8(__m256i index, const double* base) {
  __m512d src = _mm512_setzero_pd();
  __mmask8 all = 0xFF;
  asm("" : "+v"(src), "+Yk"(all));
  return _mm512_mask_i32gather_pd(src, all, index, base, 8);
}

template <bool kAlg1>
void bound_gather_ps(
    const BoundArgs& p, const float* x, float* y, int64_t n) {
  kc::parallel_for(n, 2, [&](int64_t begin, int64_t end) {
    // Locals: stores through y must not force reloads of the table, pointers, constants.
    const BoundArgs q = p;
    const float* xs = x;
    float* ys = y;
    int64_t i = begin;
    for (; i + 16 <= end; i += 16) {
      const __m512 v = _mm512_loadu_ps(xs + i);
      const __m512i idx = kAlg1 ? alg1_index512(v, q) : index512(v, q);
      const __m512 k = gather_ps8(idx, q.kb);
      const __m512 b = gather_ps8(idx, q.kb + 1);
      _mm512_storeu_ps(ys + i, _mm512_fmadd_ps(v, k, b));
    }
    for (; i < end; ++i) {
      const int32_t j = std::min<int32_t>(q.last, static_cast<int32_t>(std::max(0.0f, std::fma(xs[i], q.scale, q.offset))));
      ys[i] = std::fma(xs[i], q.kb[2 * j], q.kb[2 * j + 1]);
    }
  });
}

void bound_gather_pd(
    const BoundArgs& p, const float* x, float* y, int64_t n) {
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
  const double* kb64 = reinterpret_cast<const double*>(p.kb);
  kc::parallel_for(n, 2, [&](int64_t begin, int64_t end) {
    // Locals: stores through y must not force reloads of the table, pointers, constants.
    const BoundArgs q = p;
    const float* xs = x;
    float* ys = y;
    const double* kb = kb64;
    const __m512i ev = even, od = odd;
    int64_t i = begin;
    for (; i + 16 <= end; i += 16) {
      const __m512 v = _mm512_loadu_ps(xs + i);
      const __m512i idx = index512(v, q);
      const __m512 lo = _mm512_castpd_ps(gather_pd8(_mm512_castsi512_si256(idx), kb));
      const __m512 hi = _mm512_castpd_ps(gather_pd8(_mm512_extracti64x4_epi64(idx, 1), kb));
      const __m512 k = _mm512_permutex2var_ps(lo, ev, hi);
      const __m512 b = _mm512_permutex2var_ps(lo, od, hi);
      _mm512_storeu_ps(ys + i, _mm512_fmadd_ps(v, k, b));
    }
    for (; i < end; ++i) {
      const int32_t j = std::min<int32_t>(q.last, static_cast<int32_t>(std::max(0.0f, std::fma(xs[i], q.scale, q.offset))));
      ys[i] = std::fma(xs[i], q.kb[2 * j], q.kb[2 * j + 1]);
    }
  });
}

void bound_scalar_x16(
    const BoundArgs& p, const float* x, float* y, int64_t n) {
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
  const uint64_t* kb64 = reinterpret_cast<const uint64_t*>(p.kb);
  kc::parallel_for(n, 2, [&](int64_t begin, int64_t end) {
    // Locals: stores through y must not force reloads of the table, pointers, constants.
    const BoundArgs q = p;
    const float* xs = x;
    float* ys = y;
    const uint64_t* kb = kb64;
    const __m512i ev = even, od = odd;
    alignas(64) int32_t idx[16];
    alignas(64) uint64_t pair[16];
    int64_t i = begin;
    for (; i + 16 <= end; i += 16) {
      const __m512 v = _mm512_loadu_ps(xs + i);
      _mm512_store_si512(idx, index512(v, q));
      for (int j = 0; j < 16; ++j) pair[j] = kb[idx[j]];
      const __m512 lo = _mm512_load_ps(pair), hi = _mm512_load_ps(pair + 8);
      _mm512_storeu_ps(ys + i, _mm512_fmadd_ps(v, _mm512_permutex2var_ps(lo, ev, hi),
                                               _mm512_permutex2var_ps(lo, od, hi)));
    }
    for (; i < end; ++i) {
      const int32_t j = std::min<int32_t>(q.last, static_cast<int32_t>(std::max(0.0f, std::fma(xs[i], q.scale, q.offset))));
      ys[i] = std::fma(xs[i], q.kb[2 * j], q.kb[2 * j + 1]);
    }
  });
}

// Backward bound: dx = dy * k[index(x)] (4 bytes of table per element).
void bound_bwd_gather(
    const BoundArgs& p, const float* x, const float* dy, float* dx, int64_t n) {
  kc::parallel_for(n, 2, [&](int64_t begin, int64_t end) {
    // Locals: stores through y must not force reloads of the table, pointers, constants.
    const BoundArgs q = p;
    const float* xs = x;
    const float* dys = dy;
    float* dxs = dx;
    int64_t i = begin;
    for (; i + 16 <= end; i += 16) {
      const __m512 v = _mm512_loadu_ps(xs + i);
      const __m512 k = gather_ps8(index512(v, q), q.kb);
      _mm512_storeu_ps(dxs + i, _mm512_mul_ps(_mm512_loadu_ps(dys + i), k));
    }
    for (; i < end; ++i) {
      const int32_t j = std::min<int32_t>(q.last, static_cast<int32_t>(std::max(0.0f, std::fma(xs[i], q.scale, q.offset))));
      dxs[i] = dys[i] * q.kb[2 * j];
    }
  });
}

#pragma GCC pop_options

// Plain C: one 8-byte load of the pair per element (kept scalar: GCC would otherwise turn
// it into gathers, which are the variants above).
__attribute__((optimize("no-tree-vectorize"))) void bound_scalar(const BoundArgs& p,
                                                                  const float* x, float* y,
                                                                  int64_t n) {
  const uint64_t* kb64 = reinterpret_cast<const uint64_t*>(p.kb);
  kc::parallel_for(n, 2, [&](int64_t begin, int64_t end) {
    // Locals: stores through y must not force reloads of the table, pointers, constants.
    const BoundArgs q = p;
    const float* xs = x;
    float* ys = y;
    const uint64_t* kb = kb64;
    for (int64_t i = begin; i < end; ++i) {
      const float t = std::max(0.0f, std::fma(xs[i], q.scale, q.offset));
      const uint32_t j = std::min(static_cast<uint32_t>(static_cast<int32_t>(t)),
                                  static_cast<uint32_t>(q.last));
      const uint64_t pair = kb[j];
      float k, b;
      std::memcpy(&k, &pair, 4);
      std::memcpy(&b, reinterpret_cast<const char*>(&pair) + 4, 4);
      ys[i] = std::fma(xs[i], k, b);
    }
  });
}

__attribute__((optimize("no-tree-vectorize"))) void bound_bwd_scalar(const BoundArgs& p,
                                                                      const float* x,
                                                                      const float* dy, float* dx,
                                                                      int64_t n) {
  kc::parallel_for(n, 2, [&](int64_t begin, int64_t end) {
    const BoundArgs q = p;
    const float* xs = x;
    const float* dys = dy;
    float* dxs = dx;
    for (int64_t i = begin; i < end; ++i) {
      const float t = std::max(0.0f, std::fma(xs[i], q.scale, q.offset));
      const uint32_t j = std::min(static_cast<uint32_t>(static_cast<int32_t>(t)),
                                  static_cast<uint32_t>(q.last));
      dxs[i] = dys[i] * q.kb[2 * j];
    }
  });
}

// ---- timing ----

// --stat min: the fastest call instead of the median (only to see through time slicing on
// a machine that is not quiet; the numbers are medians).
bool g_use_min = false;

double median_ms(int reps, const std::function<void()>& run) {
  run();
  run();
  std::vector<double> ms;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    run();
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  if (g_use_min) return *std::min_element(ms.begin(), ms.end());
  std::nth_element(ms.begin(), ms.begin() + ms.size() / 2, ms.end());
  return ms[ms.size() / 2];
}

struct Row {
  std::string fn, method;
  int64_t pieces;
  double fwd_ms, bwd_ms;  // < 0: not measured
};

int usage(const char* msg) {
  std::fprintf(stderr,
               "%s\nusage: bench_interp [--fn exp|sigmoid|tanh|gelu|silu|all] [--segments LIST] "
               "[--n N] [--reps R] [--threads T] [--target avx2|avx3] [--stat median|min] [--format text|csv]\n",
               msg);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string fn_arg = "all", format = "text";
  std::vector<int64_t> segments = {16, 64, 128, 256, 1024, 4096, 16384, 65536};
  int64_t n = 5000000;
  int reps = 21, threads = 2;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) return usage(("missing value for " + a).c_str());
    const std::string v = argv[++i];
    if (a == "--fn") {
      fn_arg = v;
    } else if (a == "--segments") {
      segments.clear();
      std::stringstream ss(v);
      std::string item;
      while (std::getline(ss, item, ',')) segments.push_back(std::stoll(item));
    } else if (a == "--n") {
      n = std::stoll(v);
    } else if (a == "--reps") {
      reps = std::stoi(v);
    } else if (a == "--threads") {
      threads = std::stoi(v);
    } else if (a == "--target") {  // restrict the kernels' dispatch: avx2 | avx3
      if (v != "avx2" && v != "avx3") return usage("--target is avx2 or avx3");
      hwy::SetSupportedTargetsForTest(v == "avx2" ? HWY_AVX2 : HWY_AVX3);
    } else if (a == "--stat") {
      if (v != "min" && v != "median") return usage("--stat is min or median");
      g_use_min = v == "min";
    } else if (a == "--format") {
      format = v;
    } else {
      return usage(("unknown option " + a).c_str());
    }
  }
  for (int64_t p : segments)
    if (p < 2 || p > 65536 || (p & (p - 1)) != 0) return usage("segments must be powers of two 2..65536");
  omp_set_num_threads(threads);
  const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
                      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");

  std::vector<float> x(n), dy(n), y(n), dx(n);
  std::vector<Row> rows;
  std::mt19937 gen(1);
  for (int64_t i = 0; i < n; ++i) dy[i] = std::uniform_real_distribution<float>(-1, 1)(gen);

  // The bandwidth references.
  const double copy_ms = median_ms(reps, [&] {
    kc::parallel_for(n, 1, [&](int64_t b, int64_t e) {
      std::memcpy(y.data() + b, x.data() + b, (e - b) * sizeof(float));
    });
  });
  const double copy3_ms = median_ms(reps, [&] {
    kc::parallel_for(n, 1, [&](int64_t b, int64_t e) {
#pragma omp simd
      for (int64_t i = b; i < e; ++i) dx[i] = x[i] * dy[i];
    });
  });
  rows.push_back({"-", "copy", 0, copy_ms, copy3_ms});

  for (const FnInfo& fn : functions()) {
    if (fn_arg != "all" && fn_arg != fn.name) continue;
    std::mt19937 g(2);
    int64_t outside = 0;
    for (int64_t i = 0; i < n; ++i) {
      x[i] = fn.sample(g);
      outside += x[i] < fn.a || x[i] > fn.a + std::ldexp(1.0, fn.m);
    }
    std::fprintf(stderr, "%s: inputs %s, %.2g%% outside the domain [%g, %g]\n", fn.name.c_str(),
                 fn.name == "exp" ? "-|N(0, 4^2)|" : "normal", 100.0 * outside / n, fn.a,
                 fn.a + std::ldexp(1.0, fn.m));
    const float* bwd_in = fn.native_bwd_from_y ? y.data() : x.data();
    if (fn.native_bwd_from_y) fn.native_fwd(y.data(), x.data(), n);
    rows.push_back({fn.name, "native", 0, median_ms(reps, [&] { fn.native_fwd(y.data(), x.data(), n); }),
                    median_ms(reps, [&] { fn.native_bwd(dx.data(), bwd_in, dy.data(), n); })});
    if (fn.name == "gelu") {
      rows.push_back({fn.name, "igelu", 0, median_ms(reps, [&] { kc::igelu_forward(x.data(), y.data(), n); }),
                      median_ms(reps, [&] { kc::igelu_backward(x.data(), dy.data(), dx.data(), n, false); })});
    }
    for (int64_t pieces : segments) {
      const int bits = static_cast<int>(std::log2(static_cast<double>(pieces)));
      for (InterpKind kind : {InterpKind::kUniform, InterpKind::kBinarySearch}) {
        const Table t = build_table(fn, bits, kind);
        rows.push_back({fn.name, kind == InterpKind::kUniform ? "uniform" : "binary_search", pieces,
                        median_ms(reps, [&] { kc::interp_forward(t.view, x.data(), y.data(), n); }),
                        median_ms(reps, [&] {
                          kc::interp_backward_slope(t.view, x.data(), dy.data(), dx.data(), n, false);
                        })});
      }
      const Table t = build_table(fn, bits, InterpKind::kUniform);
      const float scale = static_cast<float>(std::ldexp(1.0, bits - fn.m));
      const BoundArgs p{t.kb.data(), scale, static_cast<float>(-fn.a * scale),
                        static_cast<int32_t>(pieces - 1), static_cast<float>(fn.a),
                        fn.m + 150 - bits};
      rows.push_back({fn.name, "bound:scalar", pieces,
                      median_ms(reps, [&] { bound_scalar(p, x.data(), y.data(), n); }),
                      median_ms(reps, [&] { bound_bwd_scalar(p, x.data(), dy.data(), dx.data(), n); })});
      if (avx512) {
        rows.push_back({fn.name, "bound:gather-ps", pieces,
                        median_ms(reps, [&] { bound_gather_ps<false>(p, x.data(), y.data(), n); }),
                        median_ms(reps, [&] { bound_bwd_gather(p, x.data(), dy.data(), dx.data(), n); })});
        rows.push_back({fn.name, "bound:gather-pd", pieces,
                        median_ms(reps, [&] { bound_gather_pd(p, x.data(), y.data(), n); }), -1});
        rows.push_back({fn.name, "bound:scalar-x16", pieces,
                        median_ms(reps, [&] { bound_scalar_x16(p, x.data(), y.data(), n); }), -1});
        rows.push_back({fn.name, "bound:alg1", pieces,
                        median_ms(reps, [&] { bound_gather_ps<true>(p, x.data(), y.data(), n); }), -1});
      }
    }
  }

  // The bound of each (fn, pieces): the fastest lookup-only variant, forward and backward.
  std::map<std::pair<std::string, int64_t>, std::pair<double, double>> bound;
  for (const Row& r : rows) {
    if (r.method.rfind("bound:", 0) != 0) continue;
    auto& b = bound.try_emplace({r.fn, r.pieces}, 1e30, 1e30).first->second;
    b.first = std::min(b.first, r.fwd_ms);
    if (r.bwd_ms > 0) b.second = std::min(b.second, r.bwd_ms);
  }
  const double mb = n * 4.0 / 1e6;  // MB per float array
  auto gbs = [&](double ms, int arrays) { return ms > 0 ? arrays * mb / ms : 0.0; };
  const bool csv = format == "csv";
  std::printf(csv ? "fn,method,pieces,fwd_ms,fwd_gbs,bwd_ms,bwd_gbs,fwd_vs_copy,bwd_vs_copy,fwd_vs_bound,bwd_vs_bound\n"
                  : "%-8s %-17s %6s %8s %8s %8s %8s %7s %7s %7s %7s\n",
              "fn", "method", "pieces", "fwd ms", "fwd GB/s", "bwd ms", "bwd GB/s", "f/copy",
              "b/copy", "f/bound", "b/bound");
  for (const Row& r : rows) {
    const auto it = bound.find({r.fn, r.pieces});
    const double fb = it != bound.end() ? it->second.first / r.fwd_ms : 0;
    const double bb = it != bound.end() && r.bwd_ms > 0 ? it->second.second / r.bwd_ms : 0;
    const double fc = copy_ms / r.fwd_ms, bc = r.bwd_ms > 0 ? copy3_ms / r.bwd_ms : 0;
    if (csv) {
      std::printf("%s,%s,%lld,%.3f,%.2f,%.3f,%.2f,%.3f,%.3f,%.3f,%.3f\n", r.fn.c_str(), r.method.c_str(),
                  static_cast<long long>(r.pieces), r.fwd_ms, gbs(r.fwd_ms, 2), r.bwd_ms,
                  gbs(r.bwd_ms, 3), fc, bc, fb, bb);
    } else {
      char pieces[24] = "-", bms[16] = "-", bg[16] = "-", bcs[16] = "-", fbs[16] = "-", bbs[16] = "-";
      if (r.pieces > 0) std::snprintf(pieces, sizeof pieces, "%lld", static_cast<long long>(r.pieces));
      if (r.bwd_ms > 0) {
        std::snprintf(bms, sizeof bms, "%.3f", r.bwd_ms);
        std::snprintf(bg, sizeof bg, "%.1f", gbs(r.bwd_ms, 3));
        std::snprintf(bcs, sizeof bcs, "%.2f", bc);
      }
      if (fb > 0) std::snprintf(fbs, sizeof fbs, "%.2f", fb);
      if (bb > 0) std::snprintf(bbs, sizeof bbs, "%.2f", bb);
      std::printf("%-8s %-17s %6s %8.3f %8.1f %8s %8s %7.2f %7s %7s %7s\n", r.fn.c_str(),
                  r.method.c_str(), pieces, r.fwd_ms, gbs(r.fwd_ms, 2), bms, bg, fc, bcs, fbs, bbs);
    }
  }
  std::printf(csv ? "" : "copy: forward y = x (8 B/elem), backward dx = x * dy (12 B/elem); n = %lld, %d threads\n",
              static_cast<long long>(n), threads);
  return 0;
}
