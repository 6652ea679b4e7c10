// Interpolation tables (DESIGN.md §4.1, PAPER.md §1): the exact functions in double, the table
// builders (uniform, binary_search, nonuniform), I-BERT's i-GELU, the spec cache and the error
// metrics. Evaluating a table is core/interp_view.h; vectorized kernels are kernels/cpu/interp.
#include "core/interp.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <mutex>
#include <sstream>
#include <tuple>

#include "core/error.h"

namespace qilin {
namespace {

constexpr double kSqrt2 = 1.41421356237309504880;
constexpr double kInvSqrt2Pi = 0.39894228040143267794;  // the normal density's 1 / sqrt(2 pi)
constexpr int64_t kMinPieces = 2, kMaxPieces = 65536;   // DESIGN.md §4.1: n = 1 .. 16
constexpr int32_t kMinLog2Length = -24, kMaxLog2Length = 24;
// Nonuniform tables: at most this many segments (a binary search over them precedes the
// lookup), and 16 pieces per segment by default (PAPER.md §4.5: 48 pieces = 3 x 16).
constexpr int32_t kMaxSegments = 256, kDefaultPiecesPerSegment = 16, kMaxDefaultSegments = 64;

const char* const kFnNames[] = {"exp", "sigmoid", "tanh", "gelu", "silu"};
const char* const kMethodNames[] = {"uniform", "binary_search", "nonuniform", "igelu", "native"};
const char* const kOutsideNames[] = {"asymptote", "extrapolate"};
const char* const kGradNames[] = {"slope", "table"};

template <size_t N>
int parse_name(const char* const (&names)[N], const std::string& name, const char* what) {
  for (size_t i = 0; i < N; ++i)
    if (name == names[i]) return static_cast<int>(i);
  std::string valid;
  for (size_t i = 0; i < N; ++i) valid += (i ? ", " : "") + std::string(names[i]);
  throw Error(str_cat("unknown ", what, " '", name, "' (valid: ", valid, ")"));
}

bool is_power_of_two(int64_t v) { return v > 0 && (v & (v - 1)) == 0; }
int32_t log2_exact(int64_t v) {  // v a power of two
  int32_t n = 0;
  while ((int64_t{1} << n) < v) ++n;
  return n;
}
bool float_exact(double v) {
  return std::isfinite(v) && static_cast<double>(static_cast<float>(v)) == v;
}

// Numerically stable logistic: exp of a non-positive argument only.
double sigmoid(double x) {
  if (x >= 0) return 1.0 / (1.0 + std::exp(-x));
  const double e = std::exp(x);
  return e / (1.0 + e);
}

// f'' for the nonuniform construction's Lagrange bound M2 h^2 / 8 (finite x only).
double second_derivative(InterpFn fn, double x) {
  switch (fn) {
    case InterpFn::kExp:
      return std::exp(x);
    case InterpFn::kSigmoid: {
      const double s = sigmoid(x), sn = sigmoid(-x);
      return s * sn * (sn - s);  // s (1 - s) (1 - 2 s)
    }
    case InterpFn::kTanh: {
      const double t = std::tanh(x), c = std::cosh(x);
      return -2.0 * t / (c * c);
    }
    case InterpFn::kGelu:
      return kInvSqrt2Pi * std::exp(-0.5 * x * x) * (2.0 - x * x);
    case InterpFn::kSilu: {
      const double s = sigmoid(x), sn = sigmoid(-x);
      return s * sn * (2.0 + x * (sn - s));  // s (1 - s) (2 + x (1 - 2 s))
    }
  }
  return 0.0;
}

// The chords of 2^n equal pieces on [a, a + 2^m) of g, appended to kb as float32 (k, b)
// pairs. Breakpoints, values, k and b in double (PAPER.md §1; b = g(x_i) - k x_i is the
// chord's intercept, the paper's eq. (5) has its sign flipped).
template <typename G>
void append_chords(const G& g, double a, int32_t m, int32_t n, std::vector<float>& kb) {
  const int64_t pieces = int64_t{1} << n;
  const double h = std::ldexp(1.0, m - n);
  double x0 = a, y0 = g(a);
  for (int64_t i = 0; i < pieces; ++i) {
    const double x1 = a + static_cast<double>(i + 1) * h;
    const double y1 = g(x1);
    const double k = (y1 - y0) / h;
    kb.push_back(static_cast<float>(k));
    kb.push_back(static_cast<float>(y0 - k * x0));
    x0 = x1;
    y0 = y1;
  }
}

InterpLine first_chord(const std::vector<float>& kb) { return {kb[0], kb[1]}; }
InterpLine last_chord(const std::vector<float>& kb) { return {kb[kb.size() - 2], kb.back()}; }

// The lines outside [lo, hi] (DESIGN.md §4.1). `derivative`: the lines of f' for grad: table.
void set_outside(InterpFn fn, InterpOutside outside, bool derivative, const std::vector<float>& kb,
                 InterpTableView& v) {
  v.below = first_chord(kb);
  v.above = last_chord(kb);
  if (outside == InterpOutside::kExtrapolate) return;
  const InterpLine zero{0.0f, 0.0f}, one{0.0f, 1.0f};
  switch (fn) {
    case InterpFn::kExp:  // exp and exp' -> 0 below; no limit above: the end chord
      v.below = zero;
      break;
    case InterpFn::kSigmoid:
      v.below = zero;
      v.above = derivative ? zero : one;
      break;
    case InterpFn::kTanh:
      v.below = derivative ? zero : InterpLine{0.0f, -1.0f};
      v.above = derivative ? zero : one;
      break;
    case InterpFn::kGelu:
    case InterpFn::kSilu:  // 0 below, y = x above (derivatives 0 and 1)
      v.below = zero;
      v.above = derivative ? one : InterpLine{1.0f, 0.0f};
      break;
  }
}

// Nonuniform segments (PAPER.md §4.5: "sub-intervals of unequal length chosen so each has a
// similar fitting error, each a uniform table"). Each segment must be usable by Algorithm 1:
// a power-of-two length and a float32-exact start. Construction:
//   1. a grid of 2^G cells of width c = 2^(m - G) over the domain; per cell, M2 = max |f''|
//      at 9 points of the cell;
//   2. a candidate segment is any run of 2^l cells (l = 0 .. G) starting at a cell boundary
//      a + j c that is float32-exact; its error with 2^n pieces is the Lagrange bound
//      M2(segment) h^2 / 8, h = 2^(m - G + l - n) (M2 by a sparse max table, O(1));
//   3. dynamic programming over the grid picks exactly S contiguous candidates covering the
//      domain that minimize the largest segment error (exactly optimal among such
//      partitions for the bound; ties broken by the smaller sum of errors, a heuristic for
//      RMS). Since halving a segment cuts its error 4x, segment errors can only be
//      equalized to within that granularity; the largest one is as small as it can be.
std::vector<InterpSegment> choose_segments(InterpFn fn, const InterpDomain& dom, int32_t S,
                                           int32_t n) {
  int32_t log2_s = 0;
  while ((1 << log2_s) < S) ++log2_s;
  const int32_t G = std::clamp(log2_s + 6, 10, 14);
  const int64_t N = int64_t{1} << G;
  const double cell = std::ldexp(1.0, dom.m - G);

  std::vector<std::vector<double>> m2(G + 1);  // m2[l][j]: max |f''| over cells j .. j+2^l-1
  m2[0].resize(N);
  for (int64_t j = 0; j < N; ++j) {
    double mx = 0.0;
    for (int s = 0; s <= 8; ++s)
      mx = std::max(mx, std::fabs(second_derivative(fn, dom.a + (j + s / 8.0) * cell)));
    m2[0][j] = mx;
  }
  for (int32_t l = 1; l <= G; ++l) {
    const int64_t count = N - (int64_t{1} << l) + 1, half = int64_t{1} << (l - 1);
    m2[l].resize(count);
    for (int64_t j = 0; j < count; ++j) m2[l][j] = std::max(m2[l - 1][j], m2[l - 1][j + half]);
  }
  std::vector<char> exact_start(N);
  for (int64_t j = 0; j < N; ++j) exact_start[j] = float_exact(dom.a + j * cell);
  auto bound = [&](int64_t j, int32_t l) {
    const double h = std::ldexp(1.0, dom.m - G + l - n);
    return m2[l][j] * h * h / 8.0;
  };

  // best_max/best_sum over grid points for s segments (rolling); choice[s][j] = l.
  const double kInf = std::numeric_limits<double>::infinity();
  std::vector<double> prev_max(N + 1, kInf), prev_sum(N + 1, kInf), cur_max(N + 1), cur_sum(N + 1);
  prev_max[0] = prev_sum[0] = 0.0;
  std::vector<std::vector<int8_t>> choice(S + 1, std::vector<int8_t>(N + 1, -1));
  for (int32_t s = 1; s <= S; ++s) {
    for (int64_t e = 0; e <= N; ++e) {
      double bm = kInf, bs = kInf;
      int8_t bl = -1;
      for (int32_t l = 0; l <= G && (int64_t{1} << l) <= e; ++l) {
        const int64_t j = e - (int64_t{1} << l);
        if (!exact_start[j] || prev_max[j] == kInf) continue;
        const double err = bound(j, l);
        const double cm = std::max(prev_max[j], err), cs = prev_sum[j] + err;
        if (cm < bm || (cm == bm && cs < bs)) {
          bm = cm;
          bs = cs;
          bl = static_cast<int8_t>(l);
        }
      }
      cur_max[e] = bm;
      cur_sum[e] = bs;
      choice[s][e] = bl;
    }
    std::swap(prev_max, cur_max);
    std::swap(prev_sum, cur_sum);
  }
  QILIN_CHECK(prev_max[N] < kInf, "interp nonuniform: no partition of [", dom.lo(), ", ", dom.hi(),
              "] into ", S, " power-of-two segments with float32-exact starts");
  std::vector<InterpSegment> segs(S);
  int64_t e = N;
  for (int32_t s = S; s >= 1; --s) {
    const int32_t l = choice[s][e];
    e -= int64_t{1} << l;
    segs[s - 1] =
        InterpSegment{static_cast<float>(dom.a + e * cell), dom.m - G + l, n, (s - 1) << n};
  }
  return segs;
}

void append_segment_chords(InterpFn fn, bool derivative, const std::vector<InterpSegment>& segs,
                           std::vector<float>& kb) {
  for (const InterpSegment& s : segs) {
    if (derivative)
      append_chords([fn](double x) { return interp_fn_derivative(fn, x); }, s.a, s.m, s.n, kb);
    else
      append_chords([fn](double x) { return interp_fn_exact(fn, x); }, s.a, s.m, s.n, kb);
  }
}

// The default number of nonuniform segments: pieces / 16 (48 -> 3 x 16, 96 -> 6 x 16), at
// most 64; a count not divisible by 16 splits into its odd factor (24 -> 3 x 8).
int32_t default_segments(int64_t pieces) {
  int64_t s = pieces;
  if (pieces % kDefaultPiecesPerSegment == 0) {
    s = pieces / kDefaultPiecesPerSegment;
    while (s > kMaxDefaultSegments && s % 2 == 0) s /= 2;
  } else {
    while (s % 2 == 0) s /= 2;
  }
  return static_cast<int32_t>(s);
}

// Fills in the defaults (domain, segments) and checks the spec (DESIGN.md §4.1).
InterpSpec resolve(const InterpSpec& in) {
  InterpSpec spec = in;
  if (!spec.domain.is_set()) spec.domain = default_domain(spec.fn);
  const InterpDomain& d = spec.domain;
  QILIN_CHECK(d.m >= kMinLog2Length && d.m <= kMaxLog2Length, "interp ", to_string(spec.fn),
              ": domain length 2^", d.m, " out of range 2^", kMinLog2Length, " .. 2^",
              kMaxLog2Length);
  QILIN_CHECK(float_exact(d.a) && float_exact(d.hi()), "interp ", to_string(spec.fn), ": domain [",
              d.lo(), ", ", d.hi(), "] ends are not float32-exact");
  switch (spec.method) {
    case InterpMethod::kUniform:
    case InterpMethod::kBinarySearch:
      if (!(spec.pieces >= kMinPieces && spec.pieces <= kMaxPieces && is_power_of_two(spec.pieces)))
        throw Error(str_cat("interp ", to_string(spec.method), " ", to_string(spec.fn),
                            ": pieces = ", spec.pieces, " must be a power of two in [", kMinPieces,
                            ", ", kMaxPieces, "]"));
      spec.nonuniform_segments = 0;
      break;
    case InterpMethod::kNonuniform: {
      if (!(spec.pieces >= kMinPieces && spec.pieces <= kMaxPieces))
        throw Error(str_cat("interp nonuniform ", to_string(spec.fn), ": pieces = ", spec.pieces,
                            " must be in [", kMinPieces, ", ", kMaxPieces, "]"));
      if (spec.nonuniform_segments == 0) spec.nonuniform_segments = default_segments(spec.pieces);
      const int64_t s = spec.nonuniform_segments;
      if (!(s >= 1 && s <= kMaxSegments && spec.pieces % s == 0 &&
            is_power_of_two(spec.pieces / s) && spec.pieces / s >= 2))
        throw Error(str_cat("interp nonuniform ", to_string(spec.fn), ": pieces = ", spec.pieces,
                            " in ", s, " segments: must be segments (1 .. ", kMaxSegments,
                            ") x 2^k pieces, 2^k >= 2"));
      break;
    }
    case InterpMethod::kIgelu:
      if (spec.fn != InterpFn::kGelu)
        throw Error(str_cat("interp: igelu approximates gelu only, not ", to_string(spec.fn)));
      spec.nonuniform_segments = 0;
      break;
    case InterpMethod::kNative:
      spec.nonuniform_segments = 0;
      break;
  }
  return spec;
}

std::string format_number(double v) {
  std::ostringstream os;
  os.precision(9);
  os << v;
  return os.str();
}

}  // namespace

const char* to_string(InterpFn fn) { return kFnNames[static_cast<int>(fn)]; }
const char* to_string(InterpMethod method) { return kMethodNames[static_cast<int>(method)]; }
const char* to_string(InterpOutside outside) { return kOutsideNames[static_cast<int>(outside)]; }
const char* to_string(InterpGrad grad) { return kGradNames[static_cast<int>(grad)]; }

InterpFn parse_interp_fn(const std::string& name) {
  return static_cast<InterpFn>(parse_name(kFnNames, name, "interp function"));
}
InterpMethod parse_interp_method(const std::string& name) {
  return static_cast<InterpMethod>(parse_name(kMethodNames, name, "interp method"));
}
InterpOutside parse_interp_outside(const std::string& name) {
  return static_cast<InterpOutside>(parse_name(kOutsideNames, name, "interp outside mode"));
}
InterpGrad parse_interp_grad(const std::string& name) {
  return static_cast<InterpGrad>(parse_name(kGradNames, name, "interp grad mode"));
}

double interp_fn_exact(InterpFn fn, double x) {
  switch (fn) {
    case InterpFn::kExp:
      return std::exp(x);
    case InterpFn::kSigmoid:
      return sigmoid(x);
    case InterpFn::kTanh:
      return std::tanh(x);
    case InterpFn::kGelu:
      // x Phi(x) with Phi = erfc(-x / sqrt 2) / 2: the erf form without cancellation for
      // x << 0; ±Inf give the limits (-Inf * 0 would be NaN).
      if (std::isinf(x)) return x > 0 ? x : 0.0;
      return 0.5 * x * std::erfc(-x / kSqrt2);
    case InterpFn::kSilu:
      if (std::isinf(x)) return x > 0 ? x : 0.0;
      return x * sigmoid(x);
  }
  return 0.0;
}

double interp_fn_derivative(InterpFn fn, double x) {
  switch (fn) {
    case InterpFn::kExp:
      return std::exp(x);
    case InterpFn::kSigmoid:
      return sigmoid(x) * sigmoid(-x);  // s (1 - s), no cancellation
    case InterpFn::kTanh: {
      const double c = std::cosh(x);  // 1 - tanh^2 = 1 / cosh^2, accurate for large |x|
      return 1.0 / (c * c);
    }
    case InterpFn::kGelu:
      if (std::isinf(x)) return x > 0 ? 1.0 : 0.0;
      return 0.5 * std::erfc(-x / kSqrt2) + x * kInvSqrt2Pi * std::exp(-0.5 * x * x);
    case InterpFn::kSilu:
      if (std::isinf(x)) return x > 0 ? 1.0 : 0.0;
      return sigmoid(x) * (1.0 + x * sigmoid(-x));  // s + x s (1 - s)
  }
  return 0.0;
}

double InterpDomain::hi() const { return a + std::ldexp(1.0, m); }

InterpDomain default_domain(InterpFn fn) {
  switch (fn) {  // PAPER.md §1 (silu: DESIGN.md §4.1)
    case InterpFn::kExp:
      return {-16.0, 4};
    case InterpFn::kSigmoid:
      return {-8.0, 4};
    case InterpFn::kTanh:
      return {-4.0, 3};
    case InterpFn::kGelu:
      return {-5.0, 3};
    case InterpFn::kSilu:
      return {-16.0, 5};
  }
  return {};
}

InterpDomain make_domain(double lo, double hi, const std::string& what) {
  const std::string where = str_cat(what, " = [", format_number(lo), ", ", format_number(hi), "]");
  if (!(std::isfinite(lo) && std::isfinite(hi) && lo < hi))
    throw Error(where + ": expected finite lo < hi");
  if (!float_exact(lo) || !float_exact(hi))
    throw Error(where + ": the ends must be exactly representable in float32");
  const double length = hi - lo;
  int exp = 0;
  const double mant = std::frexp(length, &exp);  // length = mant 2^exp, mant in [0.5, 1)
  const int32_t m = exp - 1;
  if (mant != 0.5 || lo + std::ldexp(1.0, m) != hi)
    throw Error(str_cat(where, ": length ", format_number(length), " is not a power of two"));
  if (m < kMinLog2Length || m > kMaxLog2Length)
    throw Error(str_cat(where, ": length 2^", m, " is outside 2^", kMinLog2Length, " .. 2^",
                        kMaxLog2Length));
  return {lo, m};
}

std::shared_ptr<const InterpTable> InterpTable::build(const InterpSpec& spec_in) {
  auto table = std::make_shared<InterpTable>();
  InterpTable& t = *table;
  t.spec_ = resolve(spec_in);
  const InterpSpec& spec = t.spec_;
  if (!t.has_table()) return table;

  const InterpDomain& dom = spec.domain;
  const InterpFn fn = spec.fn;
  const bool grad_table = spec.grad == InterpGrad::kTable;
  auto f = [fn](double x) { return interp_fn_exact(fn, x); };
  auto fd = [fn](double x) { return interp_fn_derivative(fn, x); };
  InterpTableView v;
  v.pieces = static_cast<int32_t>(spec.pieces);
  v.lo = static_cast<float>(dom.lo());
  v.hi = static_cast<float>(dom.hi());
  v.m = dom.m;
  if (spec.method == InterpMethod::kNonuniform) {
    const int32_t n = log2_exact(spec.pieces / spec.nonuniform_segments);
    t.segments_ = choose_segments(fn, dom, spec.nonuniform_segments, n);
    append_segment_chords(fn, false, t.segments_, t.kb_);
    if (grad_table) {  // the same segments, interpolating f'
      t.dsegments_ = t.segments_;
      append_segment_chords(fn, true, t.dsegments_, t.dkb_);
    }
    v.kind = InterpKind::kNonuniform;
    v.num_segments = static_cast<int32_t>(t.segments_.size());
  } else {
    const int32_t n = log2_exact(spec.pieces);
    append_chords(f, dom.a, dom.m, n, t.kb_);
    if (grad_table) append_chords(fd, dom.a, dom.m, n, t.dkb_);
    v.n = n;
    v.kind = InterpKind::kUniform;
    if (spec.method == InterpMethod::kBinarySearch) {
      // The P - 1 inner breakpoints a + i 2^(m - n), rounded to float32 (exact on the usual
      // domains); the search defines the piece by them (upper_bound, interp_view.h).
      const double h = std::ldexp(1.0, dom.m - n);
      for (int64_t i = 1; i < spec.pieces; ++i)
        t.breaks_.push_back(static_cast<float>(dom.a + static_cast<double>(i) * h));
      if (grad_table) t.dbreaks_ = t.breaks_;
      v.kind = InterpKind::kBinarySearch;
    }
  }
  t.view_ = v;
  set_outside(fn, spec.outside, false, t.kb_, t.view_);
  t.k_.resize(t.kb_.size() / 2);
  for (size_t i = 0; i < t.k_.size(); ++i) t.k_[i] = t.kb_[2 * i];
  if (grad_table) {
    t.dview_ = v;
    set_outside(fn, spec.outside, true, t.dkb_, t.dview_);
  }
  return table;
}

std::shared_ptr<const InterpTable> InterpTable::get(const InterpSpec& spec_in) {
  const InterpSpec spec = resolve(spec_in);
  uint64_t a_bits;
  std::memcpy(&a_bits, &spec.domain.a, sizeof a_bits);
  using Key = std::tuple<int, int, int64_t, uint64_t, int32_t, int, int, int32_t>;
  const Key key{static_cast<int>(spec.fn),
                static_cast<int>(spec.method),
                spec.pieces,
                a_bits,
                spec.domain.m,
                static_cast<int>(spec.outside),
                static_cast<int>(spec.grad),
                spec.nonuniform_segments};
  static std::mutex mutex;
  static std::map<Key, std::shared_ptr<const InterpTable>> cache;
  std::lock_guard<std::mutex> lock(mutex);
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  auto table = build(spec);
  cache.emplace(key, table);
  return table;
}

bool InterpTable::has_table() const {
  return spec_.method != InterpMethod::kIgelu && spec_.method != InterpMethod::kNative;
}

// The views point into this object's vectors at the time of the call (so a copy of the
// table hands out views of its own storage).
InterpTableView InterpTable::view() const {
  QILIN_CHECK(has_table(), "interp: ", describe(), " has no table");
  InterpTableView v = view_;
  v.kb = kb_.data();
  v.k = k_.empty() ? nullptr : k_.data();
  v.breaks = breaks_.empty() ? nullptr : breaks_.data();
  v.segments = segments_.empty() ? nullptr : segments_.data();
  return v;
}

InterpTableView InterpTable::derivative_view() const {
  QILIN_CHECK(has_table() && spec_.grad == InterpGrad::kTable, "interp: ", describe(),
              " has no derivative table (grad: table)");
  InterpTableView v = dview_;
  v.kb = dkb_.data();
  v.breaks = dbreaks_.empty() ? nullptr : dbreaks_.data();
  v.segments = dsegments_.empty() ? nullptr : dsegments_.data();
  return v;
}

int64_t InterpTable::pieces() const { return has_table() ? spec_.pieces : 0; }

// Forward and derivative tables together: (k, b) pairs, breakpoints, segment records (not
// k_, a copy of the slopes laid out for the CPU backward).
int64_t InterpTable::table_bytes() const {
  const size_t floats = kb_.size() + breaks_.size() + dkb_.size() + dbreaks_.size();
  return static_cast<int64_t>(floats * sizeof(float) +
                              (segments_.size() + dsegments_.size()) * sizeof(InterpSegment));
}

std::string InterpTable::describe() const {
  if (spec_.method == InterpMethod::kNative) return str_cat("native ", to_string(spec_.fn));
  if (spec_.method == InterpMethod::kIgelu) return "igelu (I-BERT)";
  std::string s = str_cat("interp ", to_string(spec_.method), " ", to_string(spec_.fn), " ",
                          spec_.pieces, " pieces");
  if (spec_.method == InterpMethod::kNonuniform)
    s += str_cat(" in ", spec_.nonuniform_segments, " segments");
  s += str_cat(" [", format_number(spec_.domain.lo()), ", ", format_number(spec_.domain.hi()),
               "] grad ", to_string(spec_.grad));
  if (spec_.outside != InterpOutside::kAsymptote)
    s += str_cat(" outside ", to_string(spec_.outside));
  return s;
}

float InterpTable::eval(float x) const {
  switch (spec_.method) {
    case InterpMethod::kNative:
      return static_cast<float>(interp_fn_exact(spec_.fn, x));
    case InterpMethod::kIgelu:
      return igelu(x);
    default:
      return interp_eval(view(), x);
  }
}

float InterpTable::derivative(float x) const {
  switch (spec_.method) {
    case InterpMethod::kNative:
      return static_cast<float>(interp_fn_derivative(spec_.fn, x));
    case InterpMethod::kIgelu:
      return igelu_derivative(x);
    default:
      return spec_.grad == InterpGrad::kSlope ? interp_slope(view(), x)
                                              : interp_eval(derivative_view(), x);
  }
}

// I-BERT i-GELU (Kim et al. 2021, PAPER.md Table 11), written operation for operation as the
// vectorized kernel (kernels/cpu/interp.cpp) so both agree bit for bit: u = x / sqrt 2,
// t = min(|u|, -b) + b, L = sign(u) (a t^2 + 1). Beyond |u| = -b, L = ±1 and the result is
// exactly x or 0 (selected, so ±Inf give the limits instead of Inf * 0).
namespace {
constexpr float kIgeluA = -0.2888f;
constexpr float kIgeluB = -1.769f;
constexpr float kInvSqrt2f = 0.70710678118654752f;
}  // namespace

float igelu(float x) {
  const float u = x * kInvSqrt2f;
  if (std::fabs(u) >= -kIgeluB) return x > 0.0f ? x : 0.0f;
  const float t = std::min(std::fabs(u), -kIgeluB) + kIgeluB;
  const float poly = std::fma(kIgeluA * t, t, 1.0f);
  const float half_x = x * 0.5f;
  return std::fma(half_x, std::copysign(poly, u), half_x);  // x/2 (1 + L)
}

// d/dx = (1 + L)/2 + x/2 L'(u) / sqrt 2 with L'(u) = 2 a t (0 once saturated). L jumps at
// u = 0 (from -(a b^2 + 1) to a b^2 + 1); the slope there uses L = 0, the mean of both sides.
float igelu_derivative(float x) {
  const float u = x * kInvSqrt2f;
  if (std::fabs(u) >= -kIgeluB) return x > 0.0f ? 1.0f : 0.0f;
  const float t = std::min(std::fabs(u), -kIgeluB) + kIgeluB;
  const float poly = std::fma(kIgeluA * t, t, 1.0f);
  const float l = u == 0.0f ? 0.0f : std::copysign(poly, u);
  const float half_one_plus_l = std::fma(l, 0.5f, 0.5f);
  return std::fma(x * (kIgeluA * kInvSqrt2f), t, half_one_plus_l);
}

InterpError interp_error(const InterpTable& table, int64_t samples) {
  QILIN_CHECK(samples > 0, "interp_error: samples = ", samples);
  const InterpSpec& spec = table.spec();
  const double lo = spec.domain.lo(), width = spec.domain.hi() - lo;
  // Fixed chunks combined in order: the result does not depend on the thread count.
  constexpr int64_t kChunks = 256;
  struct Partial {
    double max = -1.0, arg = 0.0, sum_sq = 0.0;
  };
  std::vector<Partial> parts(kChunks);
#pragma omp parallel for schedule(dynamic, 4)
  for (int64_t c = 0; c < kChunks; ++c) {
    Partial p;
    const int64_t begin = samples * c / kChunks, end = samples * (c + 1) / kChunks;
    for (int64_t j = begin; j < end; ++j) {
      const float x = static_cast<float>(lo + (static_cast<double>(j) + 0.5) * width / samples);
      double err = std::fabs(static_cast<double>(table.eval(x)) - interp_fn_exact(spec.fn, x));
      if (std::isnan(err)) err = std::numeric_limits<double>::infinity();
      p.sum_sq += err * err;
      if (err > p.max) {
        p.max = err;
        p.arg = x;
      }
    }
    parts[c] = p;
  }
  InterpError result;
  double sum_sq = 0.0, best = -1.0;
  for (const Partial& p : parts) {
    sum_sq += p.sum_sq;
    if (p.max > best) {
      best = p.max;
      result.argmax = p.arg;
    }
  }
  result.linf = std::max(best, 0.0);
  result.rms = std::sqrt(sum_sq / static_cast<double>(samples));
  return result;
}

}  // namespace qilin
