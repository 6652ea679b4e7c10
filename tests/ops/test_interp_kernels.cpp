// The vectorized interpolation kernels (kernels/cpu/interp.h) against the scalar reference of
// core/interp_view.h, bit for bit, on every SIMD target this CPU has: every table size
// 2^1 .. 2^16, every kind (uniform, binary_search, nonuniform), both outside modes, every
// backward mode with and without accumulate, and inputs that hit every branch of Algorithm 1
// (exact breakpoints, lo, hi, x - a rounding up to 2^m, ±0, ±Inf, NaN, subnormals, random
// bit patterns). The interpolated softmax against a double reference (forward) and central
// differences in double (backward); i-GELU against its formula in double.
//
// Tables are built here (chords of the exact function in double, stored as float32), not
// by core/interp.h: these tests check the kernels only.
#include <gtest/gtest.h>

#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "core/interp_view.h"
#include "hwy/targets.h"
#include "kernels/cpu/interp.h"
#include "tests/testing.h"

namespace qilin {
namespace {

using testing::bits_of;
using testing::from_bits;
using testing::same_bits;

namespace kc = kernels::cpu;

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

// ---- tables ----

using Fn = std::function<double(double)>;
double ref_gelu(double x) { return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0))); }
double ref_sigmoid(double x) { return 1 / (1 + std::exp(-x)); }

// A table and the storage its view points into.
struct OwnedTable {
  std::vector<float> kb, breaks;
  std::vector<InterpSegment> segments;
  InterpTableView view;
  OwnedTable() = default;
  OwnedTable(const OwnedTable&) = delete;
  OwnedTable& operator=(const OwnedTable&) = delete;
  void bind() {
    view.kb = kb.data();
    view.breaks = breaks.empty() ? nullptr : breaks.data();
    view.segments = segments.empty() ? nullptr : segments.data();
  }
};

// Appends the chords of f over 2^n pieces of [a, a + 2^m) to kb (double, stored as float).
void append_chords(const Fn& f, double a, int m, int n, std::vector<float>* kb) {
  const double h = std::ldexp(1.0, m - n);
  for (int64_t i = 0; i < (int64_t{1} << n); ++i) {
    const double x0 = a + i * h, x1 = x0 + h;
    const double k = (f(x1) - f(x0)) / h;
    kb->push_back(static_cast<float>(k));
    kb->push_back(static_cast<float>(f(x0) - k * x0));
  }
}

// Outside lines: `flat` gives constant lines (k == 0, like the asymptotes 0 / 1); otherwise
// the end chords (extrapolate), whose k != 0.
void set_outside(OwnedTable* t, bool flat, float below_b, float above_b) {
  const size_t last = t->kb.size() - 2;
  if (flat) {
    t->view.below = {0.0f, below_b};
    t->view.above = {0.0f, above_b};
  } else {
    t->view.below = {t->kb[0], t->kb[1]};
    t->view.above = {t->kb[last], t->kb[last + 1]};
  }
}

void make_uniform(OwnedTable* t, const Fn& f, float a, int m, int n, bool flat) {
  append_chords(f, a, m, n, &t->kb);
  t->view.kind = InterpKind::kUniform;
  t->view.pieces = 1 << n;
  t->view.lo = a;
  t->view.hi = static_cast<float>(a + std::ldexp(1.0, m));
  t->view.m = m;
  t->view.n = n;
  set_outside(t, flat, static_cast<float>(f(a - 1e3)), static_cast<float>(f(t->view.hi + 1e3)));
  t->bind();
}

// The same pieces found by binary search over the inner breakpoints.
void make_binary(OwnedTable* t, const Fn& f, float a, int m, int n, bool flat) {
  make_uniform(t, f, a, m, n, flat);
  t->view.kind = InterpKind::kBinarySearch;
  for (int64_t i = 1; i < t->view.pieces; ++i)
    t->breaks.push_back(static_cast<float>(a + i * std::ldexp(1.0, m - n)));
  t->bind();
}

// Contiguous segments from a with the given (m, n): finer pieces where f curves more.
void make_nonuniform(OwnedTable* t, const Fn& f, float a, const std::vector<std::pair<int, int>>& mn,
                     bool flat) {
  double start = a;
  int32_t first = 0;
  for (auto [m, n] : mn) {
    t->segments.push_back({static_cast<float>(start), m, n, first});
    append_chords(f, start, m, n, &t->kb);
    first += 1 << n;
    start += std::ldexp(1.0, m);
  }
  t->view.kind = InterpKind::kNonuniform;
  t->view.pieces = first;
  t->view.lo = a;
  t->view.hi = static_cast<float>(start);
  t->view.num_segments = static_cast<int32_t>(mn.size());
  set_outside(t, flat, static_cast<float>(f(a - 1e3)), static_cast<float>(f(start + 1e3)));
  t->bind();
}

// ---- inputs ----


// Inputs that reach every branch: exact breakpoints and their neighbours, lo, hi, values
// just below hi (x - a rounds up to 2^m), uniform inside and around the domain, ±0, ±Inf,
// NaNs (quiet, negative, with payload, signalling), subnormals, random bit patterns.
std::vector<float> inputs_for(const InterpTableView& t, size_t count, uint32_t seed) {
  std::mt19937 gen(seed);
  std::vector<float> x;
  const double lo = t.lo, hi = t.hi, width = hi - lo;
  auto add_near = [&](float v) {
    x.push_back(v);
    x.push_back(std::nextafter(v, -kInf));
    x.push_back(std::nextafter(v, kInf));
  };
  add_near(t.lo);
  add_near(t.hi);
  for (int i = 0; i < 64; ++i) x.push_back(std::nextafter(t.hi, -kInf) - i * FLT_EPSILON * std::fabs(t.hi));
  const float specials[] = {0.0f, -0.0f, kInf, -kInf, kNaN, -kNaN, from_bits(0x7FC12345u),
                            from_bits(0x7F800001u) /* signalling */, FLT_MIN, -FLT_MIN,
                            from_bits(1), from_bits(0x80000001u), from_bits(0x007FFFFFu),
                            FLT_MAX, -FLT_MAX, 1.0f, -1.0f};
  for (float v : specials) x.push_back(v);
  // Breakpoints of every piece (for big tables a random subset).
  std::uniform_int_distribution<int64_t> piece(0, t.pieces);
  const int64_t npoints = std::min<int64_t>(t.pieces + 1, 2048);
  for (int64_t j = 0; j < npoints; ++j) {
    const int64_t i = npoints == t.pieces + 1 ? j : piece(gen);
    add_near(static_cast<float>(lo + width * static_cast<double>(i) / t.pieces));
  }
  std::uniform_real_distribution<double> inside(lo, hi), around(lo - width, hi + width),
      tiny(-4.8e-7, 0.0);
  std::uniform_int_distribution<uint32_t> bits;
  while (x.size() < count) {
    switch (x.size() % 5) {
      case 0:
      case 1: x.push_back(static_cast<float>(inside(gen))); break;
      case 2: x.push_back(static_cast<float>(around(gen))); break;
      case 3: x.push_back(from_bits(bits(gen))); break;
      default: x.push_back(static_cast<float>(hi + tiny(gen) * std::max(1.0, std::fabs(hi)))); break;
    }
  }
  x.resize(count);
  std::shuffle(x.begin(), x.end(), gen);
  return x;
}


// ---- targets ----

std::vector<int64_t> simd_targets() {
  hwy::SetSupportedTargetsForTest(0);
  std::vector<int64_t> out;
  for (int64_t t : {HWY_AVX3, HWY_AVX2})
    if (hwy::SupportedTargets() & t) out.push_back(t);
  return out;
}

void for_each_simd_target(const std::function<void(const std::string&)>& body) {
  for (int64_t t : simd_targets()) {
    hwy::SetSupportedTargetsForTest(t);
    body(hwy::TargetName(t));
  }
  hwy::SetSupportedTargetsForTest(0);
}

// Runs every kernel of a table on x and compares each element with the scalar reference:
// forward, backward slope and table (dt = t itself: any table serves), = and +=.
void expect_kernels_match(const InterpTableView& t, const std::vector<float>& x,
                          const std::string& what) {
  const int64_t n = static_cast<int64_t>(x.size());
  std::mt19937 gen(7);
  std::uniform_real_distribution<float> dist(-2.0f, 2.0f);
  std::vector<float> dy(n), old(n), y(n), dx(n);
  for (int64_t i = 0; i < n; ++i) {
    dy[i] = dist(gen);
    old[i] = dist(gen);
  }
  int64_t bad = 0;
  auto check = [&](const char* kernel, int64_t i, float got, float want) {
    if (!same_bits(got, want) && bad++ < 5)
      ADD_FAILURE() << what << " " << kernel << ": x = " << x[i] << " (bits 0x" << std::hex
                    << bits_of(x[i]) << std::dec << ") gives " << got << ", reference " << want;
  };
  kc::interp_forward(t, x.data(), y.data(), n);
  for (int64_t i = 0; i < n; ++i) check("forward", i, y[i], interp_eval(t, x[i]));
  // The slope backward both ways: gathering k from kb's pairs, and from the contiguous slope
  // array that InterpTable::view() adds (InterpTableView::k).
  std::vector<float> slopes(static_cast<size_t>(t.pieces));
  for (int32_t i = 0; i < t.pieces; ++i) slopes[i] = t.kb[2 * i];
  InterpTableView with_slopes = t;
  with_slopes.k = slopes.data();
  for (bool acc : {false, true}) {
    for (const InterpTableView* v : {&t, static_cast<const InterpTableView*>(&with_slopes)}) {
      const std::string name = std::string(v->k == nullptr ? "backward slope" : "backward slope (slope array)") +
                               (acc ? " +=" : "");
      dx = old;
      kc::interp_backward_slope(*v, x.data(), dy.data(), dx.data(), n, acc);
      for (int64_t i = 0; i < n; ++i) {
        const float s = interp_slope(t, x[i]);
        check(name.c_str(), i, dx[i], acc ? std::fma(dy[i], s, old[i]) : dy[i] * s);
      }
    }
    const char* name = acc ? "backward table +=" : "backward table";
    dx = old;
    kc::interp_backward_table(t, x.data(), dy.data(), dx.data(), n, acc);
    for (int64_t i = 0; i < n; ++i) {
      const float v = interp_eval(t, x[i]);
      check(name, i, dx[i], acc ? std::fma(dy[i], v, old[i]) : dy[i] * v);
    }
  }
  EXPECT_EQ(bad, 0) << what << ": " << bad << " mismatches";
}

struct Domain {
  const char* name;
  Fn f;
  float a;
  int m;
};
// The paper's default domains, plus a = 0 (x = -0 gives d = -0), short domains and a tiny a.
const std::vector<Domain>& domains() {
  static const std::vector<Domain> d = {
      {"exp[-16,0]", [](double x) { return std::exp(x); }, -16.0f, 4},
      {"tanh[-4,4]", [](double x) { return std::tanh(x); }, -4.0f, 3},
      {"gelu[-5,3]", ref_gelu, -5.0f, 3},
      {"sigmoid[-8,8]", ref_sigmoid, -8.0f, 4},
      {"silu[-16,16]", [](double x) { return x * ref_sigmoid(x); }, -16.0f, 5},
      {"sqrt[0,2]", [](double x) { return std::sqrt(std::max(x, 0.0)); }, 0.0f, 1},
      {"sin[0.75,0.8125]", [](double x) { return std::sin(x); }, 0.75f, -4},
      // -a 2^(n-m) underflows to an inexact subnormal: the kernels' closed-form index cannot
      // be used and Algorithm 1 runs.
      {"log1p[1.5*2^-126,2^24]", [](double x) { return std::log1p(std::max(x, 0.0)); },
       std::ldexp(1.5f, -126), 24},
  };
  return d;
}

TEST(InterpKernels, UniformTablesOfEveryPieceCountMatchTheScalarReferenceBitForBit) {
  for_each_simd_target([](const std::string& target) {
    for (int n = 1; n <= 16; ++n) {
      for (const Domain& dom : domains()) {
        if (n > 8 && dom.name[0] != 't' && dom.name[0] != 'e') continue;  // big: tanh, exp
        for (bool flat : {true, false}) {
          OwnedTable t;
          make_uniform(&t, dom.f, dom.a, dom.m, n, flat);
          const size_t count = n <= 12 ? 12000 : 6000;
          expect_kernels_match(t.view, inputs_for(t.view, count, 100 + n),
                               target + " " + dom.name + " uniform 2^" + std::to_string(n) +
                                   (flat ? " flat" : " extrapolate"));
        }
      }
    }
  });
}

TEST(InterpKernels, BinarySearchTablesMatchTheScalarReferenceBitForBit) {
  for_each_simd_target([](const std::string& target) {
    for (int n : {1, 2, 3, 5, 8, 12, 16}) {
      for (const Domain& dom : {domains()[0], domains()[2]}) {
        for (bool flat : {true, false}) {
          OwnedTable t;
          make_binary(&t, dom.f, dom.a, dom.m, n, flat);
          expect_kernels_match(t.view, inputs_for(t.view, 6000, 200 + n),
                               target + " " + dom.name + " binary_search 2^" + std::to_string(n));
        }
      }
    }
  });
}

TEST(InterpKernels, NonuniformTablesMatchTheScalarReferenceBitForBit) {
  for_each_simd_target([](const std::string& target) {
    // exp on [-16, 0]: coarse far left, fine near 0 (lengths 8, 4, 2, 1, 1); one segment;
    // gelu on [-4, 4] in 8 segments of 1 with 2^0 .. 2^7 pieces.
    std::vector<std::tuple<std::string, Fn, float, std::vector<std::pair<int, int>>>> cases = {
        {"exp 5 segments", [](double x) { return std::exp(x); }, -16.0f,
         {{3, 2}, {2, 3}, {1, 4}, {0, 4}, {0, 5}}},
        {"tanh 1 segment", [](double x) { return std::tanh(x); }, -4.0f, {{3, 6}}},
        {"gelu 8 segments", ref_gelu, -4.0f,
         {{0, 0}, {0, 1}, {0, 2}, {0, 3}, {0, 4}, {0, 5}, {0, 6}, {0, 7}}},
    };
    for (const auto& [name, f, a, mn] : cases) {
      for (bool flat : {true, false}) {
        OwnedTable t;
        make_nonuniform(&t, f, a, mn, flat);
        expect_kernels_match(t.view, inputs_for(t.view, 8000, 300),
                             target + " nonuniform " + name);
      }
    }
  });
}

TEST(InterpKernels, EveryLengthAndTailIsCoveredAndInPlaceWorks) {
  for_each_simd_target([](const std::string& target) {
    for (int n : {4, 7, 10}) {  // register tables on both targets, and a gathered one
      OwnedTable t;
      make_uniform(&t, [](double x) { return std::tanh(x); }, -4.0f, 3, n, true);
      const std::vector<float> all = inputs_for(t.view, 1000003, 11);
      for (size_t len : {size_t{0}, size_t{1}, size_t{7}, size_t{15}, size_t{16}, size_t{17},
                         size_t{33}, size_t{1000003}}) {
        const std::vector<float> x(all.begin(), all.begin() + len);
        expect_kernels_match(t.view, x, target + " tanh 2^" + std::to_string(n) + " n = " +
                                            std::to_string(len));
      }
      // y aliasing x, and dx aliasing dy.
      std::vector<float> x(all.begin(), all.begin() + 4099), y = x;
      kc::interp_forward(t.view, y.data(), y.data(), static_cast<int64_t>(y.size()));
      std::vector<float> g(x.size(), 1.5f);
      kc::interp_backward_slope(t.view, x.data(), g.data(), g.data(), static_cast<int64_t>(g.size()),
                                false);
      for (size_t i = 0; i < x.size(); ++i) {
        ASSERT_TRUE(same_bits(y[i], interp_eval(t.view, x[i]))) << target << " in place, x = " << x[i];
        ASSERT_TRUE(same_bits(g[i], 1.5f * interp_slope(t.view, x[i]))) << target << " dx = dy";
      }
    }
  });
}

TEST(InterpKernels, OutsideAndSpecialValuesFollowTheLines) {
  // Spelled out for one table: flat lines give their b even at ±Inf; NaN stays NaN.
  OwnedTable t;
  make_uniform(&t, ref_sigmoid, -8.0f, 4, 6, true);
  const std::vector<float> x = {-kInf, -9.0f, kInf, 9.0f, kNaN};
  std::vector<float> y(x.size()), dx(x.size());
  const std::vector<float> dy(x.size(), 1.0f);
  for_each_simd_target([&](const std::string& target) {
    kc::interp_forward(t.view, x.data(), y.data(), 5);
    EXPECT_EQ(y[0], 0.0f) << target;
    EXPECT_EQ(y[1], 0.0f) << target;
    EXPECT_EQ(y[2], 1.0f) << target;
    EXPECT_EQ(y[3], 1.0f) << target;
    EXPECT_TRUE(std::isnan(y[4])) << target;
    kc::interp_backward_slope(t.view, x.data(), dy.data(), dx.data(), 5, false);
    EXPECT_EQ(dx[0], 0.0f) << target;
    EXPECT_EQ(dx[2], 0.0f) << target;
    EXPECT_TRUE(std::isnan(dx[4])) << target;
  });
}

TEST(InterpKernels, AMalformedViewIsAnErrorNamingTheKernel) {
  OwnedTable t;
  make_uniform(&t, ref_sigmoid, -8.0f, 4, 6, true);
  t.view.pieces = 65;  // not 2^n
  float x = 0, y = 0;
  try {
    kc::interp_forward(t.view, &x, &y, 1);
    ADD_FAILURE() << "no error";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("interp_forward"), std::string::npos) << e.what();
  }
}

// ---- i-GELU ----

constexpr double kIgeluA = static_cast<double>(-0.2888f), kIgeluB = static_cast<double>(-1.769f);

double ref_igelu(double x) {
  const double u = x / std::sqrt(2.0);
  const double t = std::min(std::fabs(u), -kIgeluB) + kIgeluB;
  const double l = (u > 0 ? 1 : u < 0 ? -1 : 0) * (kIgeluA * t * t + 1);
  return std::fabs(u) >= -kIgeluB ? (x > 0 ? x : 0.0) : 0.5 * x * (1 + l);
}
double ref_igelu_slope(double x) {
  const double u = x / std::sqrt(2.0);
  if (std::fabs(u) >= -kIgeluB) return x > 0 ? 1 : 0;
  const double t = std::fabs(u) + kIgeluB;
  const double l = (u > 0 ? 1 : u < 0 ? -1 : 0) * (kIgeluA * t * t + 1);
  return 0.5 * (1 + l) + x * kIgeluA * t / std::sqrt(2.0);
}

TEST(InterpKernels, IgeluMatchesItsFormulaInDouble) {
  std::vector<float> x;
  for (int i = -4000; i <= 4000; ++i) x.push_back(i * 1e-3f);
  for (float v : {-kInf, kInf, -1e30f, 1e30f, 2.5017f, -2.5017f, 0.0f, -0.0f}) x.push_back(v);
  const int64_t n = static_cast<int64_t>(x.size());
  std::vector<float> y(n), dx(n), dy(n, 2.0f), old(n, 0.25f);
  for_each_simd_target([&](const std::string& target) {
    kc::igelu_forward(x.data(), y.data(), n);
    kc::igelu_backward(x.data(), dy.data(), dx.data(), n, false);
    std::vector<float> acc = old;
    kc::igelu_backward(x.data(), dy.data(), acc.data(), n, true);
    for (int64_t i = 0; i < n; ++i) {
      // float32 evaluation: x/2 (1 + L) has a few roundings of size eps |x|; near the
      // saturation point the u = x / sqrt 2 rounding moves t by eps |u| (slope ~ a |x| t).
      const double want = ref_igelu(x[i]);
      if (std::isinf(x[i])) {
        EXPECT_EQ(y[i], want) << target << " x = " << x[i];
        continue;
      }
      EXPECT_NEAR(y[i], want, 4e-7 * (std::fabs(x[i]) + 1)) << target << " x = " << x[i];
      const double s = ref_igelu_slope(x[i]);
      EXPECT_NEAR(dx[i], 2 * s, 4e-6) << target << " slope at x = " << x[i];
      EXPECT_NEAR(acc[i], 0.25 + 2 * s, 4e-6) << target << " += at x = " << x[i];
    }
  });
}

// ---- softmax with the table exp ----

// e_j = interp_eval(t, fl(x_j - max)) exactly as the kernel defines it, then normalised in
// double.
std::vector<double> ref_interp_softmax(const InterpTableView& t, const std::vector<float>& x,
                                       int64_t cols) {
  std::vector<double> y(x.size());
  for (size_t r = 0; r * cols < x.size(); ++r) {
    const float* xr = x.data() + r * cols;
    float max = -kInf;
    for (int64_t c = 0; c < cols; ++c) max = std::max(max, xr[c]);
    double sum = 0;
    for (int64_t c = 0; c < cols; ++c) sum += interp_eval(t, xr[c] - max);
    for (int64_t c = 0; c < cols; ++c) y[r * cols + c] = interp_eval(t, xr[c] - max) / sum;
  }
  return y;
}

TEST(InterpKernels, SoftmaxForwardMatchesADoubleReferenceWithTheSameTableExp) {
  for (int n : {6, 12}) {
    OwnedTable t;
    make_uniform(&t, [](double x) { return std::exp(x); }, -16.0f, 4, n, true);
    for (int64_t cols : {1, 5, 16, 50, 333}) {
      const int64_t rows = 37;
      std::mt19937 gen(cols);
      std::normal_distribution<float> dist(0.0f, 4.0f);
      std::vector<float> x(rows * cols);
      for (float& v : x) v = dist(gen);
      if (cols > 1) x[3] = -kInf;  // a masked position
      const std::vector<double> want = ref_interp_softmax(t.view, x, cols);
      std::vector<float> y(x.size());
      for_each_simd_target([&](const std::string& target) {
        kc::interp_softmax_forward(t.view, x.data(), y.data(), rows, cols);
        for (size_t i = 0; i < x.size(); ++i)  // a float sum of <= 333 terms and one multiply
          ASSERT_NEAR(y[i], want[i], 1e-9 + 1e-5 * want[i])
              << target << " 2^" << n << " cols " << cols << " at " << i;
      });
    }
  }
}

// F(x) = sum_j w_j y_j(x) in double, y the interpolated softmax with e = k_i s + b_i of the
// float table (the same piece as the kernel picks) and s_j = x_j - x_{shift}: shift is the
// first argmax, held fixed, so F is smooth where pieces do not change.
double softmax_objective(const InterpTableView& t, const std::vector<double>& x, int64_t shift,
                         const std::vector<double>& w, const std::vector<int32_t>& piece) {
  double sum = 0, dot = 0;
  for (size_t j = 0; j < x.size(); ++j) {
    const double s = x[j] - x[shift];
    const double e = piece[j] < 0 ? 0.0 : t.kb[2 * piece[j]] * s + t.kb[2 * piece[j] + 1];
    sum += e;
    dot += w[j] * e;
  }
  return dot / sum;
}

TEST(InterpKernels, SoftmaxSlopeBackwardIsTheExactDerivativeByCentralDifferences) {
  OwnedTable t;
  make_uniform(&t, [](double x) { return std::exp(x); }, -16.0f, 4, 8, true);
  const double width = 16.0 / 256;
  const int64_t cols = 37, rows = 4;
  std::mt19937 gen(5);
  std::uniform_int_distribution<int> piece_of(0, 255);
  std::uniform_real_distribution<double> frac(0.2, 0.8), wdist(0.5, 1.5);
  // Each s_j well inside a piece (steps of 1e-3 of a piece never cross a breakpoint); row 1
  // has its maximum twice, row 2 has entries below the domain (exp's flat 0 line).
  std::vector<float> x(rows * cols);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) {
      const double s = -16.0 + (piece_of(gen) + frac(gen)) * width;
      x[r * cols + c] = static_cast<float>(2.0 + s);
    }
    x[r * cols + 4] = 2.0f;  // the maximum: s = 0 (last piece, its end point)
  }
  x[1 * cols + 20] = 2.0f;
  x[2 * cols + 7] = -30.0f;
  x[2 * cols + 8] = -kInf;
  std::vector<float> y(x.size()), gy(x.size()), gx(x.size()), acc(x.size(), 0.5f);
  for (float& v : gy) v = static_cast<float>(wdist(gen));
  for_each_simd_target([&](const std::string& target) {
    kc::interp_softmax_forward(t.view, x.data(), y.data(), rows, cols);
    kc::interp_softmax_backward_slope(t.view, x.data(), y.data(), gy.data(), gx.data(), rows, cols,
                                      false);
    kc::interp_softmax_backward_slope(t.view, x.data(), y.data(), gy.data(), acc.data(), rows,
                                      cols, true);
    for (int64_t r = 0; r < rows; ++r) {
      std::vector<double> xr(x.begin() + r * cols, x.begin() + (r + 1) * cols);
      std::vector<double> w(gy.begin() + r * cols, gy.begin() + (r + 1) * cols);
      const int64_t shift = 4;  // the first argmax of every row
      std::vector<int32_t> piece(cols);
      for (int64_t c = 0; c < cols; ++c) {
        const float s = x[r * cols + c] - x[r * cols + shift];
        piece[c] = s < t.view.lo ? -1 : interp_index(t.view, s);
      }
      const double h = 1e-3 * width;
      for (int64_t c = 0; c < cols; ++c) {
        if (std::isinf(xr[c])) {
          EXPECT_EQ(gx[r * cols + c], 0.0f) << target << " row " << r << " col " << c;
          continue;
        }
        std::vector<double> xp = xr, xm = xr;
        xp[c] += h;
        xm[c] -= h;
        const double fd = (softmax_objective(t.view, xp, shift, w, piece) -
                           softmax_objective(t.view, xm, shift, w, piece)) / (2 * h);
        EXPECT_NEAR(gx[r * cols + c], fd, 1e-6 + 1e-4 * std::fabs(fd))
            << target << " row " << r << " col " << c;
        EXPECT_NEAR(acc[r * cols + c], 0.5 + fd, 1e-6 + 1e-4 * std::fabs(fd))
            << target << " += row " << r << " col " << c;
      }
    }
    acc.assign(x.size(), 0.5f);
  });
}

TEST(InterpKernels, SoftmaxBackwardFromSavedRowStatsEqualsRecomputingThemBitForBit) {
  OwnedTable t;
  make_uniform(&t, [](double x) { return std::exp(x); }, -16.0f, 4, 12, true);
  const int64_t rows = 9, cols = 50;
  std::mt19937 gen(11);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  std::vector<float> x(rows * cols), gy(rows * cols);
  for (float& v : x) v = normal(gen);
  for (float& v : gy) v = normal(gen);
  x[3 * cols + 7] = x[3 * cols + 30] = 20.0f;  // a repeated maximum: the first one is argmax
  x[5 * cols + 2] = -kInf;
  x[6 * cols + 9] = kNaN;  // a NaN row (all NaN out)
  for_each_simd_target([&](const std::string& target) {
    std::vector<float> y(x.size()), y_stats(x.size()), max(rows), sum(rows);
    std::vector<int32_t> argmax(rows);
    const InterpSoftmaxRowStats stats{max.data(), sum.data(), argmax.data()};
    kc::interp_softmax_forward(t.view, x.data(), y.data(), rows, cols);
    kc::interp_softmax_forward(t.view, x.data(), y_stats.data(), rows, cols, &stats);
    EXPECT_EQ(std::memcmp(y.data(), y_stats.data(), y.size() * sizeof(float)), 0) << target;
    EXPECT_EQ(argmax[3], 7) << target;
    for (bool acc : {false, true}) {
      std::vector<float> gx(x.size(), 0.25f), gx_stats(x.size(), 0.25f);
      kc::interp_softmax_backward_slope(t.view, x.data(), y.data(), gy.data(), gx.data(), rows, cols, acc);
      kc::interp_softmax_backward_slope(t.view, x.data(), y.data(), gy.data(), gx_stats.data(), rows,
                                        cols, acc, &stats);
      for (size_t i = 0; i < gx.size(); ++i)
        ASSERT_TRUE(bits_of(gx[i]) == bits_of(gx_stats[i]) || (std::isnan(gx[i]) && std::isnan(gx_stats[i])))
            << target << (acc ? " +=" : "") << " element " << i << ": " << gx[i] << " vs " << gx_stats[i];
    }
  });
}

}  // namespace
}  // namespace qilin
