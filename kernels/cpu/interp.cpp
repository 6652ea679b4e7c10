// CPU kernels of the interpolated layers (see interp.h; DESIGN.md §4.1, PAPER.md §1).
//
// Every kernel is one pass over its data: find each lane's piece (the index), fetch its
// (k, b) pair, one FMA. How the pair is fetched decides the speed:
//   - small uniform tables live in registers and are read with lane permutes: AVX-512
//     vpermps (16 pieces) / vpermt2ps (32), two of those combined by the index's upper bit
//     for 64; AVX2 vpermps (8) and blends of 2 or 4 (16, 32). The lookup then costs a few
//     register operations and the kernel runs near copy speed. (128 pieces in 8 + 8
//     registers ran no faster than gathering: bench_interp.)
//   - larger tables are gathered from memory (L1/L2: 64 Ki pieces are 512 KiB): on AVX-512
//     one 64-bit gather of each interleaved (k, b) pair plus a deinterleave, 1.5-1.8x
//     faster here than two 32-bit gathers (QILIN_INTERP_PAIR_GATHER=0 selects those;
//     bench/bench_interp.cpp measures both and scalar loads); the backward gathers k only.
// The index of a uniform table is Algorithm 1's (uniform_index, core/interp_view.h), computed
// in its closed form floor(fma(x, 2^(n-m), -a 2^(n-m))) where that is exact (UniformIndex);
// binary_search is a branchless vector search over the breakpoints (one gather per level);
// nonuniform searches the segment starts the same way, then runs Algorithm 1 with each
// lane's segment parameters.
// Out-of-domain lanes (x < lo, x > hi, ±Inf) and NaN are fixed up by branch-free selects
// after the lookup; the result is bit for bit the scalar reference's (interp_eval,
// interp_slope).
//
// Highway compiles this file once per x86 target (AVX2, AVX-512) through foreach_target.h;
// HWY_DYNAMIC_DISPATCH picks the best one the CPU has at run time. OpenMP across elements
// (rows for softmax) through parallel_for.

// clang-format off
// The build's baseline is x86-64-v3 (AVX2): targets below it would only cost compile time.
#ifndef HWY_DISABLED_TARGETS
#define HWY_DISABLED_TARGETS (HWY_SSSE3 | HWY_SSE4)
#endif
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu/interp.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
// clang-format on

#include <immintrin.h>

// GCC 12's AVX-512 intrinsic headers initialise the unused pass-through operand of
// vpermps / vgatherdps from _mm512_undefined_ps(), which -Wmaybe-uninitialized reports.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "core/error.h"
#include "hwy/highway.h"
#include "kernels/cpu/interp.h"
#include "kernels/cpu/parallel.h"

#ifndef QILIN_KERNELS_CPU_INTERP_ONCE
#define QILIN_KERNELS_CPU_INTERP_ONCE
namespace qilin::kernels::cpu::interp_detail {
// Per-segment parameters of a non-uniform table, unpacked for lane-wise gathers.
struct SegmentArrays {
  std::vector<float> starts;  // segments[1 ..].a: the search keys
  std::vector<float> a;
  std::vector<int32_t> shift_base, last, first;
};
}  // namespace qilin::kernels::cpu::interp_detail
#endif

HWY_BEFORE_NAMESPACE();
namespace qilin::kernels::cpu {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using D = hn::ScalableTag<float>;
using DI = hn::RebindToSigned<D>;
using DU = hn::RebindToUnsigned<D>;
using V = hn::Vec<D>;
using VI = hn::Vec<DI>;
using M = hn::Mask<D>;

#undef QILIN_INTERP_AVX512
#undef QILIN_INTERP_AVX2
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
#define QILIN_INTERP_AVX512 1
#define QILIN_INTERP_AVX2 0
#elif HWY_ARCH_X86 && HWY_TARGET == HWY_AVX2
#define QILIN_INTERP_AVX512 0
#define QILIN_INTERP_AVX2 1
#else
#define QILIN_INTERP_AVX512 0
#define QILIN_INTERP_AVX2 0
#endif

#ifndef QILIN_INTERP_PAIR_GATHER
#define QILIN_INTERP_PAIR_GATHER 1
#endif
// Gathered tables: one 64-bit gather of each (k, b) pair (AVX-512), not two 32-bit ones.
constexpr bool kPairGather = QILIN_INTERP_PAIR_GATHER;
// The slope backward's gathers from InterpTableView::k (1) or from kb's stride-8 slopes (0).
#ifndef QILIN_INTERP_SLOPE_ARRAY
#define QILIN_INTERP_SLOPE_ARRAY 1
#endif
constexpr bool kSlopeArray = QILIN_INTERP_SLOPE_ARRAY;

constexpr int kLanes = HWY_LANES(float);
// Largest uniform table kept in registers: 4 vectors of k and 4 of b on AVX-512 (64
// pieces; at 128 pieces, 8 + 8 registers and 4 permutes per value ran no faster than the
// gathers: bench_interp), 4 + 4 on AVX2 (32 pieces).
#if QILIN_INTERP_AVX512
constexpr int kMaxRegisterVectors = 4;
#elif QILIN_INTERP_AVX2
constexpr int kMaxRegisterVectors = 4;
#else
constexpr int kMaxRegisterVectors = 0;
#endif

// ---- indices ----

// Algorithm 1 lane-wise, as uniform_index: d = fl32(x - a); e = biased exponent of d;
// shift = m - (e - 127) + 23 - n = shift_base - e with shift_base = m + 150 - n; the index is
// (mantissa with its hidden 1) >> clamp(shift, 0, 31), at most `last`. A negative d (x < a:
// an outside lane, or -0 - (+0) = -0 at x == a == 0) has the sign masked off the exponent,
// so its index is that of |d| (0 for -0, as uniform_index's sign test gives).
HWY_INLINE VI algorithm1(V x, V a, VI shift_base, VI last) {
  const DI di;
  const DU du;
  const VI bits = hn::BitCast(di, hn::Sub(x, a));
  const VI e = hn::And(hn::ShiftRight<23>(bits), hn::Set(di, 0xFF));
  VI shift = hn::Max(hn::Sub(shift_base, e), hn::Zero(di));
#if !(QILIN_INTERP_AVX512 || QILIN_INTERP_AVX2)
  shift = hn::Min(shift, hn::Set(di, 31));  // x86's vpsrlvd gives 0 for counts >= 32 itself
#endif
  const VI mant = hn::OrAnd(hn::Set(di, 0x00800000), bits, hn::Set(di, 0x007FFFFF));
  const VI index = hn::BitCast(di, hn::BitCast(du, mant) >> hn::BitCast(du, shift));
  return hn::Min(index, last);
}

// The same index in closed form: floor(fl(x - a) 2^(n-m)) = floor(fma(x, 2^(n-m), -a 2^(n-m)))
// (the fma rounds x 2^(n-m) - a 2^(n-m) = (x - a) 2^(n-m) once, and scaling by a power of two
// commutes with rounding), clamped: 4 operations instead of Algorithm 1's 8, which the
// register tables feel (forward 0.83-0.95 of a copy's bandwidth with Algorithm 1, 0.88-0.99
// this way: docs/PERFORMANCE.md). test_interp proves Algorithm 1 equal to this clamp(floor())
// on every float32 of its domains, and the kernels match the scalar Algorithm 1 bit for bit.
// It needs -a 2^(n-m) exact in float32 (true unless it under- or overflows; then Algorithm 1
// runs). NaN and overflow convert to 0x80000000, which the unsigned min maps to the last
// piece; the outside selects fix those lanes. (x86: relies on vcvttps2dq's result.)
struct UniformIndex {
  V a, scale, offset;
  VI shift_base, last;
  bool scaled;
  explicit UniformIndex(const InterpTableView& t)
      : a(hn::Set(D(), t.lo)),
        scale(hn::Set(D(), std::ldexp(1.0f, t.n - t.m))),
        offset(hn::Set(D(), -t.lo * std::ldexp(1.0f, t.n - t.m))),
        shift_base(hn::Set(DI(), t.m + 150 - t.n)),
        last(hn::Set(DI(), (1 << t.n) - 1)),
        scaled(offset_is_exact(t)) {}
  static bool offset_is_exact(const InterpTableView& t) {
    const double exact = -static_cast<double>(t.lo) * std::ldexp(1.0, t.n - t.m);
    const float rounded = static_cast<float>(exact);
    return (QILIN_INTERP_AVX512 || QILIN_INTERP_AVX2) && static_cast<double>(rounded) == exact &&
           (rounded == 0.0f || std::fabs(rounded) >= std::numeric_limits<float>::min()) &&
           std::isfinite(rounded);
  }
  HWY_INLINE VI operator()(V x) const {
    if (scaled) {  // the same for every vector of a call: predicted
#if QILIN_INTERP_AVX512
      const __m512 f = _mm512_max_ps(_mm512_fmadd_ps(x.raw, scale.raw, offset.raw), _mm512_setzero_ps());
      return VI{_mm512_min_epu32(_mm512_cvttps_epi32(f), last.raw)};
#elif QILIN_INTERP_AVX2
      const __m256 f = _mm256_max_ps(_mm256_fmadd_ps(x.raw, scale.raw, offset.raw), _mm256_setzero_ps());
      return VI{_mm256_min_epu32(_mm256_cvttps_epi32(f), last.raw)};
#endif
    }
    return algorithm1(x, a, shift_base, last);
  }
};

// The number of keys[0 .. count - 1] (ascending) that are <= x: upper_bound, branchless and
// lane-parallel. Invariant: the answer lies in [base, base + len]; each level halves len
// with one gather; NaN compares false everywhere (0), +Inf counts all.
struct SearchIndex {
  const float* keys = nullptr;
  int32_t count = 0;
  HWY_INLINE VI operator()(V x) const {
    const D d;
    const DI di;
    VI base = hn::Zero(di);
    if (count == 0) return base;
    int32_t len = count;
    while (len > 1) {
      const int32_t half = len / 2;
      const V probe = hn::GatherIndex(d, keys, hn::Add(base, hn::Set(di, half - 1)));
      base = hn::IfThenElse(hn::RebindMask(di, hn::Le(probe, x)), hn::Add(base, hn::Set(di, half)),
                            base);
      len -= half;
    }
    const V probe = hn::GatherIndex(d, keys, base);
    return hn::Add(base, hn::IfThenElseZero(hn::RebindMask(di, hn::Le(probe, x)), hn::Set(di, 1)));
  }
};

// Non-uniform tables: the segment by search over the segment starts, then Algorithm 1 with
// the lane's own segment (a, m, n) and the segment's first piece added.
struct SegmentIndex {
  SearchIndex segment;
  const interp_detail::SegmentArrays* s = nullptr;
  HWY_INLINE VI operator()(V x) const {
    const D d;
    const DI di;
    const VI seg = segment(x);
    const V a = hn::GatherIndex(d, s->a.data(), seg);
    const VI shift_base = hn::GatherIndex(di, s->shift_base.data(), seg);
    const VI last = hn::GatherIndex(di, s->last.data(), seg);
    const VI first = hn::GatherIndex(di, s->first.data(), seg);
    return hn::Add(first, algorithm1(x, a, shift_base, last));
  }
};

// ---- (k, b) lookups ----

// A uniform table of up to R * kLanes pieces held in 2 R registers (k and b deinterleaved,
// padded with zeros), read by lane permutes.
template <int R>
struct RegisterLookup {
  V k[R], b[R];
  explicit RegisterLookup(const InterpTableView& t) {
    const D d;
    HWY_ALIGN float kk[R * kLanes] = {}, bb[R * kLanes] = {};
    for (int32_t i = 0; i < t.pieces; ++i) {
      kk[i] = t.kb[2 * i];
      bb[i] = t.kb[2 * i + 1];
    }
    for (int r = 0; r < R; ++r) {
      k[r] = hn::Load(d, kk + r * kLanes);
      b[r] = hn::Load(d, bb + r * kLanes);
    }
  }

  static HWY_INLINE V pick(const V* tab, VI index) {
#if QILIN_INTERP_AVX512
    const __m512i i = index.raw;
    if constexpr (R == 1) {
      return V{_mm512_permutexvar_ps(i, tab[0].raw)};
    } else if constexpr (R == 2) {
      return V{_mm512_permutex2var_ps(tab[0].raw, i, tab[1].raw)};
    } else {
      // vpermt2ps uses bits 0..4; bits 5 (and 6) choose among the 32-entry halves.
      const __mmask16 bit5 = _mm512_test_epi32_mask(i, _mm512_set1_epi32(32));
      const __m512 p0 = _mm512_permutex2var_ps(tab[0].raw, i, tab[1].raw);
      const __m512 p1 = _mm512_permutex2var_ps(tab[2].raw, i, tab[3].raw);
      const __m512 lo = _mm512_mask_blend_ps(bit5, p0, p1);
      if constexpr (R == 4) {
        return V{lo};
      } else {
        static_assert(R == 8, "R is 1, 2, 4 or 8");
        const __mmask16 bit6 = _mm512_test_epi32_mask(i, _mm512_set1_epi32(64));
        const __m512 p2 = _mm512_permutex2var_ps(tab[4].raw, i, tab[5].raw);
        const __m512 p3 = _mm512_permutex2var_ps(tab[6].raw, i, tab[7].raw);
        const __m512 hi = _mm512_mask_blend_ps(bit5, p2, p3);
        return V{_mm512_mask_blend_ps(bit6, lo, hi)};
      }
    }
#elif QILIN_INTERP_AVX2
    const __m256i i = index.raw;
    if constexpr (R == 1) {
      return V{_mm256_permutevar8x32_ps(tab[0].raw, i)};
    } else {
      // vpermps uses bits 0..2; bit 3 (and 4), moved to the sign, picks with blendv.
      const __m256 bit3 = _mm256_castsi256_ps(_mm256_slli_epi32(i, 28));
      const __m256 lo = _mm256_blendv_ps(_mm256_permutevar8x32_ps(tab[0].raw, i),
                                         _mm256_permutevar8x32_ps(tab[1].raw, i), bit3);
      if constexpr (R == 2) {
        return V{lo};
      } else {
        static_assert(R == 4, "R is 1, 2 or 4");
        const __m256 bit4 = _mm256_castsi256_ps(_mm256_slli_epi32(i, 27));
        const __m256 hi = _mm256_blendv_ps(_mm256_permutevar8x32_ps(tab[2].raw, i),
                                           _mm256_permutevar8x32_ps(tab[3].raw, i), bit3);
        return V{_mm256_blendv_ps(lo, hi, bit4)};
      }
    }
#else
    static_assert(R == 0, "no register tables on this target");
    return tab[0];
#endif
  }

  HWY_INLINE void pair(VI index, V* k_out, V* b_out) const {
    *k_out = pick(k, index);
    *b_out = pick(b, index);
  }
  HWY_INLINE V k_only(VI index) const { return pick(k, index); }
};

// Gathers that start from a fresh destination. A gather merges into its destination
// register, so it depends on that register's old value; with an all-ones mask GCC drops the
// zero source and may reuse a register written by the previous iteration's gather (or by
// something computed from it), which chains the gathers of consecutive iterations and makes
// the loop latency-bound (measured: 2x slower lookup loops). The empty asm hides the zero
// and the mask from the compiler, so each gather gets its own freshly zeroed source.
#if QILIN_INTERP_AVX512
template <int kScale>
HWY_INLINE __m512 gather_ps(__m512i index, const float* base) {
  __m512 src = _mm512_setzero_ps();
  __mmask16 all = 0xFFFF;
  asm("" : "+v"(src), "+Yk"(all));
  return _mm512_mask_i32gather_ps(src, all, index, base, kScale);
}
HWY_INLINE __m512 gather_ps_scale8(__m512i index, const float* base) { return gather_ps<8>(index, base); }
HWY_INLINE __m512d gather_pd(__m256i index, const double* base) {
  __m512d src = _mm512_setzero_pd();
  __mmask8 all = 0xFF;
  asm("" : "+v"(src), "+Yk"(all));
  return _mm512_mask_i32gather_pd(src, all, index, base, 8);
}
#elif QILIN_INTERP_AVX2
template <int kScale>
HWY_INLINE __m256 gather_ps(__m256i index, const float* base) {
  __m256 src = _mm256_setzero_ps();
  __m256 all = _mm256_castsi256_ps(_mm256_set1_epi32(-1));
  asm("" : "+x"(src), "+x"(all));
  return _mm256_mask_i32gather_ps(src, base, index, all, kScale);
}
HWY_INLINE __m256 gather_ps_scale8(__m256i index, const float* base) { return gather_ps<8>(index, base); }
#endif

// Any table: the pair gathered from memory, k from kb[2 i] and b from kb[2 i + 1]; the
// slope alone from the contiguous k[i] where the view has it (else kb[2 i]).
struct GatherLookup {
  const float* kb = nullptr;
  const float* k = nullptr;
  HWY_INLINE void pair(VI index, V* k_out, V* b_out) const {
#if QILIN_INTERP_AVX512
    if constexpr (kPairGather) {
      // One 8-byte gather per lane (two of 8 lanes), then even floats are k, odd are b.
      const double* kb64 = reinterpret_cast<const double*>(kb);
      const __m512 lo = _mm512_castpd_ps(gather_pd(_mm512_castsi512_si256(index.raw), kb64));
      const __m512 hi = _mm512_castpd_ps(gather_pd(_mm512_extracti64x4_epi64(index.raw, 1), kb64));
      const __m512i even =
          _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
      *k_out = V{_mm512_permutex2var_ps(lo, even, hi)};
      *b_out = V{_mm512_permutex2var_ps(lo, _mm512_add_epi32(even, _mm512_set1_epi32(1)), hi)};
      return;
    }
    *k_out = V{gather_ps_scale8(index.raw, kb)};
    *b_out = V{gather_ps_scale8(index.raw, kb + 1)};
#elif QILIN_INTERP_AVX2
    *k_out = V{gather_ps_scale8(index.raw, kb)};
    *b_out = V{gather_ps_scale8(index.raw, kb + 1)};
#else
    const D d;
    const VI twice = hn::Add(index, index);
    *k_out = hn::GatherIndex(d, kb, twice);
    *b_out = hn::GatherIndex(d, kb + 1, twice);
#endif
  }
  HWY_INLINE V k_only(VI index) const {
#if QILIN_INTERP_AVX512 || QILIN_INTERP_AVX2
    if (k != nullptr) return V{gather_ps<4>(index.raw, k)};
    return V{gather_ps_scale8(index.raw, kb)};
#else
    if (k != nullptr) return hn::GatherIndex(D(), k, index);
    return hn::GatherIndex(D(), kb, hn::Add(index, index));
#endif
  }
};

// ---- a table: index + lookup + the outside lines ----

template <class Index, class Lookup>
struct Table {
  Index index;
  Lookup lookup;
  V lo, hi, below_k, below_b, above_k, above_b;
  bool below_flat, above_flat;  // k == 0: the line is its b exactly (also at ±Inf)
  int64_t cost;                 // work per element for parallel_for, relative to a copy

  Table(const InterpTableView& t, Index i, Lookup l, int64_t cost_)
      : index(i),
        lookup(l),
        lo(hn::Set(D(), t.lo)),
        hi(hn::Set(D(), t.hi)),
        below_k(hn::Set(D(), t.below.k)),
        below_b(hn::Set(D(), t.below.b)),
        above_k(hn::Set(D(), t.above.k)),
        above_b(hn::Set(D(), t.above.b)),
        below_flat(t.below.k == 0.0f),
        above_flat(t.above.k == 0.0f),
        cost(cost_) {}

  // lo <= x <= hi: false for NaN.
  HWY_INLINE M inside(V x) const { return hn::And(hn::Ge(x, lo), hn::Le(x, hi)); }

  // interp_eval, lane-wise.
  HWY_INLINE V value(D /*d*/, V x) const {
    V k, b;
    lookup.pair(index(x), &k, &b);
    // Branch-free: the outside selects cost a few register operations per vector, while a
    // branch on "any lane outside" mispredicts whenever outside lanes are common (exp fed
    // anything but x - max; wide activations).
    return value_outside(x, hn::MulAdd(x, k, b));
  }
  // y = fma(x, k, b) is already NaN for a NaN x (and both compares are false for it), so
  // only the two outside selects are needed.
  HWY_INLINE V value_outside(V x, V y) const {
    const V yb = below_flat ? below_b : hn::MulAdd(below_k, x, below_b);
    const V ya = above_flat ? above_b : hn::MulAdd(above_k, x, above_b);
    y = hn::IfThenElse(hn::Lt(x, lo), yb, y);
    return hn::IfThenElse(hn::Gt(x, hi), ya, y);
  }

  // interp_slope, lane-wise.
  HWY_INLINE V slope(D /*d*/, V x) const {
    return slope_outside(x, lookup.k_only(index(x)));
  }
  HWY_INLINE V slope_outside(V x, V k) const {
    k = hn::IfThenElse(hn::Lt(x, lo), below_k, k);
    k = hn::IfThenElse(hn::Gt(x, hi), above_k, k);
    return hn::IfThenElse(hn::IsNaN(x), x, k);
  }
};

template <class Index, class Lookup>
Table<Index, Lookup> make_table(const InterpTableView& t, Index i, Lookup l, int64_t cost) {
  return Table<Index, Lookup>(t, i, l, cost);
}

// Unpacks a non-uniform table's segments for SegmentIndex.
interp_detail::SegmentArrays segment_arrays(const InterpTableView& t) {
  interp_detail::SegmentArrays s;
  for (int32_t j = 0; j < t.num_segments; ++j) {
    const InterpSegment& g = t.segments[j];
    if (j > 0) s.starts.push_back(g.a);
    s.a.push_back(g.a);
    s.shift_base.push_back(g.m + 150 - g.n);
    s.last.push_back((1 << g.n) - 1);
    s.first.push_back(g.first);
  }
  return s;
}

int32_t ceil_log2(int64_t v) {
  int32_t r = 0;
  while ((int64_t{1} << r) < v) ++r;
  return r;
}

// Calls fn(table) with the fastest evaluator of t's kind and size.
template <class Fn>
void visit_table(const InterpTableView& t, Fn&& fn) {
  const float* slopes = kSlopeArray ? t.k : nullptr;  // GatherLookup's k_only
  switch (t.kind) {
    case InterpKind::kUniform: {
      const UniformIndex index(t);
      if constexpr (kMaxRegisterVectors >= 1) {
        if (t.pieces <= kLanes) return fn(make_table(t, index, RegisterLookup<1>(t), 1));
      }
      if constexpr (kMaxRegisterVectors >= 2) {
        if (t.pieces <= 2 * kLanes) return fn(make_table(t, index, RegisterLookup<2>(t), 1));
      }
      if constexpr (kMaxRegisterVectors >= 4) {
        if (t.pieces <= 4 * kLanes) return fn(make_table(t, index, RegisterLookup<4>(t), 1));
      }
      if constexpr (kMaxRegisterVectors >= 8) {
        if (t.pieces <= 8 * kLanes) return fn(make_table(t, index, RegisterLookup<8>(t), 2));
      }
      return fn(make_table(t, index, GatherLookup{t.kb, slopes}, 2));
    }
    case InterpKind::kBinarySearch: {
      const SearchIndex index{t.breaks, t.pieces - 1};
      return fn(make_table(t, index, GatherLookup{t.kb, slopes}, 2 + ceil_log2(t.pieces)));
    }
    case InterpKind::kNonuniform: {
      const interp_detail::SegmentArrays s = segment_arrays(t);
      const SegmentIndex index{SearchIndex{s.starts.data(), t.num_segments - 1}, &s};
      return fn(make_table(t, index, GatherLookup{t.kb, slopes}, 6 + ceil_log2(t.num_segments)));
    }
  }
}

// ---- elementwise drivers ----

// Calls body(i, mask, full) for each vector of [begin, end): full vectors, then the masked
// tail (masked-off lanes load as 0 and are not stored).
template <class Body>
HWY_INLINE void for_each_vector(D d, int64_t begin, int64_t end, Body&& body) {
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  const M all = hn::FirstN(d, hn::Lanes(d));
  int64_t i = begin;
  for (; i + lanes <= end; i += lanes) body(i, all, true);
  if (i < end) body(i, hn::FirstN(d, static_cast<size_t>(end - i)), false);
}

HWY_INLINE V load(D d, const float* p, M m, bool full) {
  return full ? hn::LoadU(d, p) : hn::MaskedLoad(m, d, p);
}
HWY_INLINE void store(D d, V v, float* p, M m, bool full) {
  if (full) {
    hn::StoreU(v, d, p);
  } else {
    hn::BlendedStore(v, m, d, p);
  }
}

enum class Mode { kValue, kSlope };

// Software prefetch of the streamed inputs, this many floats (2 KiB) ahead. The lookups keep
// the out-of-order window full of permutes or gathers, which leaves the hardware prefetcher
// too little lead: prefetching x (and dy) took the register and L1 tables 4-19% faster
// (tanh, gelu, exp at 16-16384 pieces, forward and backward; 65536: 0-6%), while the same
// prefetch gives a plain copy or x * dy loop 1-2% (A/B in one process, 2026-11-27). 256 and
// 1024-2048 floats ahead did no better.
constexpr int64_t kPrefetchDistance = 512;

// out = value(x) (forward); out (=, or += with accumulate) dy * value(x) or dy * slope(x).
// The += is one FMA: dx = fma(dy, s, dx).
template <Mode kMode, bool kBackward, bool kAccumulate, class Tab>
void map_table(const Tab& tab, const float* x, const float* dy, float* out, int64_t n) {
  parallel_for(n, tab.cost, [&](int64_t begin, int64_t end) {
    const D d;
    // Local copies: the stores through `out` could alias the captured table and pointers,
    // which would make the compiler reload them every iteration.
    const Tab t = tab;
    const float* xp = x;  // (x and out, dy and out may alias: no restrict)
    const float* dyp = dy;
    float* outp = out;
    for_each_vector(d, begin, end, [&](int64_t i, M m, bool full) {
      if (i + kPrefetchDistance < end) {
        __builtin_prefetch(xp + i + kPrefetchDistance);
        if (kBackward) __builtin_prefetch(dyp + i + kPrefetchDistance);
      }
      const V vx = load(d, xp + i, m, full);
      const V f = kMode == Mode::kValue ? t.value(d, vx) : t.slope(d, vx);
      if constexpr (!kBackward) {
        store(d, f, outp + i, m, full);
      } else if constexpr (kAccumulate) {
        store(d, hn::MulAdd(load(d, dyp + i, m, full), f, load(d, outp + i, m, full)), outp + i,
              m, full);
      } else {
        store(d, hn::Mul(load(d, dyp + i, m, full), f), outp + i, m, full);
      }
    });
  });
}

void forward_impl(const InterpTableView& t, const float* x, float* y, int64_t n) {
  visit_table(t, [&](const auto& tab) { map_table<Mode::kValue, false, false>(tab, x, nullptr, y, n); });
}

template <Mode kMode>
void backward(const InterpTableView& t, const float* x, const float* dy, float* dx, int64_t n,
              bool accumulate) {
  visit_table(t, [&](const auto& tab) {
    if (accumulate) {
      map_table<kMode, true, true>(tab, x, dy, dx, n);
    } else {
      map_table<kMode, true, false>(tab, x, dy, dx, n);
    }
  });
}

void backward_slope_impl(const InterpTableView& t, const float* x, const float* dy, float* dx,
                         int64_t n, bool accumulate) {
  backward<Mode::kSlope>(t, x, dy, dx, n, accumulate);
}

void backward_table_impl(const InterpTableView& dt, const float* x, const float* dy, float* dx,
                         int64_t n, bool accumulate) {
  backward<Mode::kValue>(dt, x, dy, dx, n, accumulate);
}

// ---- I-BERT i-GELU ----
// L(u) = sign(u) [a (min(|u|, -b) + b)^2 + 1], igelu(x) = x/2 (1 + L(x / sqrt 2)),
// a = -0.2888, b = -1.769 (Kim et al. 2021). Beyond |u| = -b, L = ±1: the result is x or 0
// and the slope 1 or 0 (selected, so ±Inf give the limits instead of Inf * 0).
constexpr float kIgeluA = -0.2888f;
constexpr float kIgeluB = -1.769f;
constexpr float kInvSqrt2 = 0.70710678118654752f;

struct IgeluParts {
  V u, t, poly;  // u = x / sqrt 2, t = min(|u|, -b) + b in [b, 0], poly = a t^2 + 1
};
HWY_INLINE IgeluParts igelu_parts(D d, V x) {
  IgeluParts p;
  p.u = hn::Mul(x, hn::Set(d, kInvSqrt2));
  p.t = hn::Add(hn::Min(hn::Abs(p.u), hn::Set(d, -kIgeluB)), hn::Set(d, kIgeluB));
  p.poly = hn::MulAdd(hn::Mul(hn::Set(d, kIgeluA), p.t), p.t, hn::Set(d, 1.0f));
  return p;
}

HWY_INLINE V igelu_value(D d, V x) {
  const IgeluParts p = igelu_parts(d, x);
  const V half_x = hn::Mul(x, hn::Set(d, 0.5f));
  const V l = hn::CopySign(p.poly, p.u);
  V y = hn::MulAdd(half_x, l, half_x);  // x/2 (1 + L)
  const M saturated = hn::Ge(hn::Abs(p.u), hn::Set(d, -kIgeluB));
  y = hn::IfThenElse(saturated, hn::IfThenElseZero(hn::Gt(x, hn::Zero(d)), x), y);
  return y;
}

// d/dx = (1 + L)/2 + x/2 L'(u) / sqrt 2 with L'(u) = 2 a t (0 once saturated).
HWY_INLINE V igelu_slope(D d, V x) {
  const IgeluParts p = igelu_parts(d, x);
  // sign(0) = 0: L jumps from -(a b^2 + 1) to a b^2 + 1 at 0; the slope there is the mean.
  const V l = hn::IfThenZeroElse(hn::Eq(p.u, hn::Zero(d)), hn::CopySign(p.poly, p.u));
  const V half_one_plus_l = hn::MulAdd(l, hn::Set(d, 0.5f), hn::Set(d, 0.5f));
  V s = hn::MulAdd(hn::Mul(x, hn::Set(d, kIgeluA * kInvSqrt2)), p.t, half_one_plus_l);
  const M saturated = hn::Ge(hn::Abs(p.u), hn::Set(d, -kIgeluB));
  s = hn::IfThenElse(saturated, hn::IfThenElseZero(hn::Gt(x, hn::Zero(d)), hn::Set(d, 1.0f)), s);
  return s;
}

void igelu_forward_impl(const float* x, float* y, int64_t n) {
  parallel_for(n, 2, [x, y](int64_t begin, int64_t end) {
    const D d;
    const float* xp = x;  // locals: see map_table
    float* yp = y;
    for_each_vector(d, begin, end, [&](int64_t i, M m, bool full) {
      store(d, igelu_value(d, load(d, xp + i, m, full)), yp + i, m, full);
    });
  });
}

void igelu_backward_impl(const float* x, const float* dy, float* dx, int64_t n, bool accumulate) {
  parallel_for(n, 2, [x, dy, dx, accumulate](int64_t begin, int64_t end) {
    const D d;
    const float* xp = x;  // locals: see map_table
    const float* dyp = dy;
    float* dxp = dx;
    const bool add = accumulate;
    for_each_vector(d, begin, end, [&](int64_t i, M m, bool full) {
      const V s = igelu_slope(d, load(d, xp + i, m, full));
      const V g = load(d, dyp + i, m, full);
      store(d, add ? hn::MulAdd(g, s, load(d, dxp + i, m, full)) : hn::Mul(g, s), dxp + i, m, full);
    });
  });
}

// ---- softmax with the table exp ----

constexpr float kInf = std::numeric_limits<float>::infinity();

// The row's maximum and the first index holding it (-1 if none compares equal: a NaN max).
HWY_INLINE float row_max(D d, const float* x, int64_t n, int64_t* argmax) {
  V vmax = hn::Set(d, -kInf);
  for_each_vector(d, 0, n, [&](int64_t i, M m, bool full) {
    vmax = hn::Max(vmax, hn::IfThenElse(m, load(d, x + i, m, full), hn::Set(d, -kInf)));
  });
  const float max = hn::GetLane(hn::MaxOfLanes(d, vmax));
  if (argmax) {
    *argmax = -1;
    const V vm = hn::Set(d, max);
    const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
    for (int64_t i = 0; i < n && *argmax < 0; i += lanes) {
      const M m = hn::FirstN(d, static_cast<size_t>(std::min<int64_t>(lanes, n - i)));
      const intptr_t j = hn::FindFirstTrue(d, hn::And(m, hn::Eq(hn::MaskedLoad(m, d, x + i), vm)));
      if (j >= 0) *argmax = i + j;
    }
  }
  return max;
}

template <class Tab>
void softmax_forward_rows(const Tab& tab, const float* x, float* y, int64_t rows, int64_t cols,
                          const InterpSoftmaxRowStats* stats) {
  parallel_for(rows, cols * (2 + tab.cost), [&](int64_t r0, int64_t r1) {
    const D d;
    const Tab t = tab;  // a local copy, as in map_table
    for (int64_t r = r0; r < r1; ++r) {
      const float* xr = x + r * cols;
      float* yr = y + r * cols;
      int64_t argmax = -1;
      const float max = row_max(d, xr, cols, stats ? &argmax : nullptr);
      const V vmax = hn::Set(d, max);
      V vsum = hn::Zero(d);
      for_each_vector(d, 0, cols, [&](int64_t i, M m, bool full) {
        const V e = t.value(d, hn::Sub(load(d, xr + i, m, full), vmax));
        store(d, e, yr + i, m, full);
        vsum = hn::Add(vsum, hn::IfThenElseZero(m, e));
      });
      const float sum = hn::GetLane(hn::SumOfLanes(d, vsum));
      const V inv = hn::Set(d, 1.0f / sum);
      for_each_vector(d, 0, cols, [&](int64_t i, M m, bool full) {
        store(d, hn::Mul(load(d, yr + i, m, full), inv), yr + i, m, full);
      });
      if (stats) {
        stats->max[r] = max;
        stats->sum[r] = sum;
        stats->argmax[r] = static_cast<int32_t>(argmax);
      }
    }
  });
}

// g_j = k(s_j) (gy_j - sum_i gy_i y_i) / sum_i e_i, gx_j (=|+=) g_j, and gx at the first
// argmax (-)= sum_j g_j (the max's own dependence on x; see interp.h). The row's max, sum and
// argmax come from the forward's stats, or are recomputed exactly as the forward computed
// them (same vector order: the same bits).
template <class Tab>
void softmax_backward_rows(const Tab& tab, const float* x, const float* y, const float* gy,
                           float* gx, int64_t rows, int64_t cols, bool accumulate,
                           const InterpSoftmaxRowStats* stats) {
  parallel_for(rows, cols * (stats ? 3 + tab.cost : 3 + 2 * tab.cost), [&](int64_t r0, int64_t r1) {
    const D d;
    const Tab t = tab;  // a local copy, as in map_table
    const bool add = accumulate;
    for (int64_t r = r0; r < r1; ++r) {
      const float* xr = x + r * cols;
      const float* yr = y + r * cols;
      const float* gyr = gy + r * cols;
      float* gxr = gx + r * cols;
      int64_t argmax = -1;
      V vmax, vdot = hn::Zero(d);
      float sum;
      if (stats) {
        vmax = hn::Set(d, stats->max[r]);
        sum = stats->sum[r];
        argmax = stats->argmax[r];
        for_each_vector(d, 0, cols, [&](int64_t i, M m, bool full) {
          vdot = hn::MulAdd(load(d, gyr + i, m, full), load(d, yr + i, m, full), vdot);
        });
      } else {
        vmax = hn::Set(d, row_max(d, xr, cols, &argmax));
        V vsum = hn::Zero(d);
        for_each_vector(d, 0, cols, [&](int64_t i, M m, bool full) {
          const V e = t.value(d, hn::Sub(load(d, xr + i, m, full), vmax));
          vsum = hn::Add(vsum, hn::IfThenElseZero(m, e));
          vdot = hn::MulAdd(load(d, gyr + i, m, full), load(d, yr + i, m, full), vdot);
        });
        sum = hn::GetLane(hn::SumOfLanes(d, vsum));
      }
      const V inv_sum = hn::Set(d, 1.0f / sum);
      const V dot = hn::Set(d, hn::GetLane(hn::SumOfLanes(d, vdot)));
      V vg = hn::Zero(d);
      for_each_vector(d, 0, cols, [&](int64_t i, M m, bool full) {
        const V k = t.slope(d, hn::Sub(load(d, xr + i, m, full), vmax));
        const V g = hn::Mul(hn::Mul(k, hn::Sub(load(d, gyr + i, m, full), dot)), inv_sum);
        vg = hn::Add(vg, hn::IfThenElseZero(m, g));
        store(d, add ? hn::Add(load(d, gxr + i, m, full), g) : g, gxr + i, m, full);
      });
      if (argmax >= 0) gxr[argmax] -= hn::GetLane(hn::SumOfLanes(d, vg));
    }
  });
}

void softmax_forward_impl(const InterpTableView& t, const float* x, float* y, int64_t rows,
                          int64_t cols, const InterpSoftmaxRowStats* stats) {
  visit_table(t, [&](const auto& tab) { softmax_forward_rows(tab, x, y, rows, cols, stats); });
}

void softmax_backward_slope_impl(const InterpTableView& t, const float* x, const float* y,
                                 const float* gy, float* gx, int64_t rows, int64_t cols,
                                 bool accumulate, const InterpSoftmaxRowStats* stats) {
  visit_table(t, [&](const auto& tab) {
    softmax_backward_rows(tab, x, y, gy, gx, rows, cols, accumulate, stats);
  });
}

}  // namespace HWY_NAMESPACE
}  // namespace qilin::kernels::cpu
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace qilin::kernels::cpu {

HWY_EXPORT(forward_impl);
HWY_EXPORT(backward_slope_impl);
HWY_EXPORT(backward_table_impl);
HWY_EXPORT(igelu_forward_impl);
HWY_EXPORT(igelu_backward_impl);
HWY_EXPORT(softmax_forward_impl);
HWY_EXPORT(softmax_backward_slope_impl);

namespace {

// The view's invariants the kernels rely on for memory safety (core/interp_view.h).
void check_view(const InterpTableView& t, const char* op) {
  QILIN_CHECK(t.kb != nullptr && t.pieces >= 1, op, ": empty table");
  switch (t.kind) {
    case InterpKind::kUniform:
      QILIN_CHECK(t.n >= 1 && t.n <= 16 && t.pieces == (1 << t.n) && t.m >= -24 && t.m <= 24,
                  op, ": uniform table with pieces ", t.pieces, ", m ", t.m, ", n ", t.n);
      break;
    case InterpKind::kBinarySearch:
      QILIN_CHECK(t.pieces == 1 || t.breaks != nullptr, op, ": binary_search table without breaks");
      break;
    case InterpKind::kNonuniform: {
      QILIN_CHECK(t.segments != nullptr && t.num_segments >= 1, op, ": nonuniform table without segments");
      for (int32_t j = 0; j < t.num_segments; ++j) {
        const InterpSegment& s = t.segments[j];
        QILIN_CHECK(s.n >= 0 && s.n <= 16 && s.m >= -24 && s.m <= 24 && s.first >= 0 &&
                        int64_t{s.first} + (int64_t{1} << s.n) <= t.pieces,
                    op, ": nonuniform segment ", j, " (m ", s.m, ", n ", s.n, ", first ", s.first,
                    ") does not fit a table of ", t.pieces, " pieces");
      }
      break;
    }
  }
}

}  // namespace

void interp_forward(const InterpTableView& t, const float* x, float* y, int64_t n) {
  if (n <= 0) return;
  check_view(t, "interp_forward");
  HWY_DYNAMIC_DISPATCH(forward_impl)(t, x, y, n);
}

void interp_backward_slope(const InterpTableView& t, const float* x, const float* dy, float* dx,
                           int64_t n, bool accumulate) {
  if (n <= 0) return;
  check_view(t, "interp_backward_slope");
  HWY_DYNAMIC_DISPATCH(backward_slope_impl)(t, x, dy, dx, n, accumulate);
}

void interp_backward_table(const InterpTableView& dt, const float* x, const float* dy, float* dx,
                           int64_t n, bool accumulate) {
  if (n <= 0) return;
  check_view(dt, "interp_backward_table");
  HWY_DYNAMIC_DISPATCH(backward_table_impl)(dt, x, dy, dx, n, accumulate);
}

void igelu_forward(const float* x, float* y, int64_t n) {
  if (n <= 0) return;
  HWY_DYNAMIC_DISPATCH(igelu_forward_impl)(x, y, n);
}

void igelu_backward(const float* x, const float* dy, float* dx, int64_t n, bool accumulate) {
  if (n <= 0) return;
  HWY_DYNAMIC_DISPATCH(igelu_backward_impl)(x, dy, dx, n, accumulate);
}

void interp_softmax_forward(const InterpTableView& t, const float* x, float* y, int64_t rows,
                            int64_t cols, const InterpSoftmaxRowStats* stats) {
  if (rows <= 0 || cols <= 0) return;
  check_view(t, "interp_softmax_forward");
  QILIN_CHECK(!stats || (stats->max && stats->sum && stats->argmax),
              "interp_softmax_forward: row stats need all of max, sum and argmax");
  HWY_DYNAMIC_DISPATCH(softmax_forward_impl)(t, x, y, rows, cols, stats);
}

void interp_softmax_backward_slope(const InterpTableView& t, const float* x, const float* y,
                                   const float* gy, float* gx, int64_t rows, int64_t cols,
                                   bool accumulate, const InterpSoftmaxRowStats* stats) {
  if (rows <= 0 || cols <= 0) return;
  check_view(t, "interp_softmax_backward_slope");
  QILIN_CHECK(!stats || (stats->max && stats->sum && stats->argmax),
              "interp_softmax_backward_slope: row stats need all of max, sum and argmax");
  HWY_DYNAMIC_DISPATCH(softmax_backward_slope_impl)(t, x, y, gy, gx, rows, cols, accumulate, stats);
}

}  // namespace qilin::kernels::cpu
#endif  // HWY_ONCE
