// The lookup-only bound of the interpolated functions (issue 4, Must show 4b;
// docs/PERFORMANCE.md): `qilin interp bench` (train/interp_bench.h: native, tables, copy,
// timed round-robin) plus, for each piece count, loops that do only the lookups, in every
// form tried. qilin's side; bench/torch_interp.py times PyTorch on the same inputs.
//
//   bench_interp [--fn exp,sigmoid,...|all] [--segments 16,64,...] [--n 5000000] [--reps 21]
//                [--threads 2] [--target avx2|avx3] [--timing round-robin|consecutive]
//                [--backward in-place|out-of-place]
//                [--format text|csv]
//
// Run pinned and quiet: taskset -c 0,1 env OMP_PROC_BIND=true bench_interp --threads 2.
// Bound rows (bound:<variant>): load x, index, load the (k, b) pair as one 8-byte value, one
// FMA, store (backward: load x and dy, index, load k, multiply, store), as
//   gather-ps    two 32-bit gathers (k and b, scale 8)
//   gather-pd    one 64-bit gather of the pair, then a deinterleave
//   scalar       a plain C loop, one 8-byte load per element
//   scalar-x16   vector index, 16 scalar 8-byte loads, vector FMA
//   alg1         gather-ps with Algorithm 1's bit-field index instead of the scaled one
// The bound of a piece count is its fastest variant (columns fwd_vs_bound, bwd_vs_bound).
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/interp.h"
#include "hwy/targets.h"
#include "kernels/cpu/parallel.h"
#include "train/interp_bench.h"
#include "train/interp_tool.h"

#pragma GCC diagnostic ignored "-Wpsabi"
// GCC 12 initialises unused AVX-512 pass-through operands from _mm512_undefined_*().
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace {

namespace kc = qilin::kernels::cpu;
using qilin::InterpTableView;

// ---- the lookup-only bound ----
//
// The index is the cheapest exact form: floor(fl(x - a) 2^(n-m)) = floor(fma(x, s, -a s))
// (scaling by a power of two commutes with rounding), clamped: max with 0 before the
// conversion, unsigned min with the last piece after it (NaN and overflow convert to
// 0x80000000, which the unsigned min maps to the last piece).
// Every loop prefetches its streamed inputs 512 floats ahead, as the kernels do
// (kernels/cpu/interp.cpp kPrefetchDistance): the bound is the fastest loop we have.
constexpr int64_t kPrefetch = 512;
inline void prefetch_ahead(const float* p, int64_t i, int64_t end) {
  if (i + kPrefetch < end) __builtin_prefetch(p + i + kPrefetch);
}

struct BoundArgs {
  const float* kb;
  const float* k;  // the slopes alone (InterpTableView::k): what the backward loops gather
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
inline __m512 gather_ps4(__m512i index, const float* base) {
  __m512 src = _mm512_setzero_ps();
  __mmask16 all = 0xFFFF;
  asm("" : "+v"(src), "+Yk"(all));
  return _mm512_mask_i32gather_ps(src, all, index, base, 4);
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
      prefetch_ahead(xs, i, end);
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
      prefetch_ahead(xs, i, end);
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
      prefetch_ahead(xs, i, end);
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
      prefetch_ahead(xs, i, end);
      prefetch_ahead(dys, i, end);
      const __m512 v = _mm512_loadu_ps(xs + i);
      const __m512 k = gather_ps4(index512(v, q), q.k);
      _mm512_storeu_ps(dxs + i, _mm512_mul_ps(_mm512_loadu_ps(dys + i), k));
    }
    for (; i < end; ++i) {
      const int32_t j = std::min<int32_t>(q.last, static_cast<int32_t>(std::max(0.0f, std::fma(xs[i], q.scale, q.offset))));
      dxs[i] = dys[i] * q.k[j];
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
      if (i % 16 == 0) prefetch_ahead(xs, i, end);
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
      if (i % 16 == 0) {
        prefetch_ahead(xs, i, end);
        prefetch_ahead(dys, i, end);
      }
      const float t = std::max(0.0f, std::fma(xs[i], q.scale, q.offset));
      const uint32_t j = std::min(static_cast<uint32_t>(static_cast<int32_t>(t)),
                                  static_cast<uint32_t>(q.last));
      dxs[i] = dys[i] * q.k[j];
    }
  });
}

int usage(const std::string& msg) {
  std::fprintf(stderr,
               "%s\nusage: bench_interp [--fn F,...|all] [--segments LIST] [--n N] [--reps R] "
               "[--threads T] [--target avx2|avx3] [--timing round-robin|consecutive] "
               "[--backward in-place|out-of-place] [--format text|csv]\n",
               msg.c_str());
  return 2;
}

// The bound loops of one table (uniform, 2^n pieces on [a, a + 2^m)).
std::vector<qilin::InterpBenchCall> bound_calls(const InterpTableView& t,
                                                const qilin::InterpBenchBuffers& b) {
  const float scale = std::ldexp(1.0f, t.n - t.m);
  QILIN_CHECK(t.k != nullptr, "bench_interp: the table view has no slope array");
  const BoundArgs p{t.kb, t.k, scale, -t.lo * scale, t.pieces - 1, t.lo, t.m + 150 - t.n};
  std::vector<qilin::InterpBenchCall> calls;
  calls.push_back({"bound:scalar", 0, [=] { bound_scalar(p, b.x, b.y, b.n); },
                   [=] { bound_bwd_scalar(p, b.x, b.dy, b.dx, b.n); }});
  const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
                      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
  if (avx512) {
    calls.push_back({"bound:gather-ps", 0, [=] { bound_gather_ps<false>(p, b.x, b.y, b.n); },
                     [=] { bound_bwd_gather(p, b.x, b.dy, b.dx, b.n); }});
    calls.push_back({"bound:gather-pd", 0, [=] { bound_gather_pd(p, b.x, b.y, b.n); }, {}});
    calls.push_back({"bound:scalar-x16", 0, [=] { bound_scalar_x16(p, b.x, b.y, b.n); }, {}});
    calls.push_back({"bound:alg1", 0, [=] { bound_gather_ps<true>(p, b.x, b.y, b.n); }, {}});
  }
  return calls;
}

}  // namespace

int main(int argc, char** argv) {
  qilin::InterpBenchOptions o;
  std::string format = "text";
  int threads = 2;
  try {
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      if (i + 1 >= argc) return usage("missing value for " + a);
      const std::string v = argv[++i];
      if (a == "--fn") {
        o.fns.clear();
        std::stringstream ss(v == "all" ? "exp,sigmoid,tanh,gelu,silu" : v);
        std::string item;
        while (std::getline(ss, item, ',')) o.fns.push_back(qilin::parse_interp_fn(item));
      } else if (a == "--segments") {
        o.segments = qilin::parse_int_list(v, "--segments");
      } else if (a == "--n") {
        o.n = std::stoll(v);
      } else if (a == "--reps") {
        o.reps = std::stoi(v);
      } else if (a == "--threads") {
        threads = std::stoi(v);
      } else if (a == "--target") {  // restrict the kernels' dispatch: avx2 | avx3
        if (v != "avx2" && v != "avx3") return usage("--target is avx2 or avx3");
        hwy::SetSupportedTargetsForTest(v == "avx2" ? HWY_AVX2 : HWY_AVX3);
      } else if (a == "--timing") {
        if (v != "round-robin" && v != "consecutive") return usage("--timing is round-robin or consecutive");
        o.consecutive = v == "consecutive";
      } else if (a == "--backward") {
        if (v != "in-place" && v != "out-of-place") return usage("--backward is in-place or out-of-place");
        o.in_place = v == "in-place";
      } else if (a == "--format") {
        format = v;
      } else {
        return usage("unknown option " + a);
      }
    }
    omp_set_num_threads(threads);
    o.extra = bound_calls;
    const qilin::Table t = qilin::interp_bench_table(
        o, [](const std::string& line) { std::fprintf(stderr, "%s\n", line.c_str()); });
    std::fputs(t.render(qilin::parse_table_format(format)).c_str(), stdout);
    std::fprintf(stderr, "n = %lld float32, %d threads, medians of %d %s, backward %s\n",
                 static_cast<long long>(o.n), threads, o.reps, o.consecutive ? "consecutive calls" : "rounds",
                 o.in_place ? "in place (dx over dy)" : "out of place");
  } catch (const std::exception& e) {
    return usage(e.what());
  }
  return 0;
}
