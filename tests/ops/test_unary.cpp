// Elementwise math and activations: forward and fused backward against double-precision
// references over the whole float range (on every SIMD target this CPU has), special
// values, tails of every length, and finite-difference gradients through autograd.
#include <gtest/gtest.h>

#include <cfloat>
#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "core/ops/unary.h"
#include "hwy/targets.h"
#include "tests/testing.h"

namespace qilin {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

// ---- double-precision references ----
double ref_sigmoid(double z) {  // no overflow, no cancellation
  double e = std::exp(-std::fabs(z));
  return z >= 0 ? 1 / (1 + e) : e / (1 + e);
}
double ref_sigmoid_slope(double z) {  // s (1 - s)
  double e = std::exp(-std::fabs(z));
  return e / ((1 + e) * (1 + e));
}
double ref_phi(double x) { return 0.5 * std::erfc(-x / std::sqrt(2.0)); }
double ref_gauss(double x) { return std::exp(-0.5 * x * x) / std::sqrt(2 * M_PI); }
constexpr double kTanhK = 0.7978845608028654;  // sqrt(2/pi)
double ref_gelu_tanh_z(double x) { return 2 * kTanhK * (x + 0.044715 * x * x * x); }
// In its negative tail gelu_tanh ~ x e^z: the few-ulp rounding of z = 2 sqrt(2/pi)
// (x + 0.044715 x^3) in float32 (absolute error ~|z| 2e-7) becomes a relative error of
// the result. That is the function's conditioning in float, not a kernel defect (it is an
// approximation to 1e-3 anyway): its tolerance scales with max(1, |z|).
double gelu_tanh_condition(double x) { return std::max(1.0, std::fabs(ref_gelu_tanh_z(x))); }

struct Case {
  std::string name;
  std::function<Tensor(const Tensor&)> op;
  double (*f)(double);
  double (*df)(double);
  // Size of the derivative's terms: the tolerance scale of the backward check. Where the
  // derivative is a sum of terms that cancel (gelu' = Phi + x phi is 0 at x = -0.75), the
  // float result can only be accurate relative to the terms, not to their sum.
  double (*df_scale)(double);
  // Tolerance scale of the forward check; null: |f|.
  double (*f_scale)(double);
  bool positive_domain;
  double rtol_forward, rtol_backward;  // measured worst (AVX2 and AVX-512) is in the comment
};

// Tolerances: a few float32 ulp (1 ulp = 2^-23 = 1.19e-7 relative at worst), set a little
// above the worst relative errors measured on this machine, forward / backward, AVX-512
// (AVX2 where it differs):
//   exp 8.4e-8 / 1.7e-7, log 7.9e-8 / 6e-8, sqrt 6e-8 / 1.2e-7, relu exact,
//   gelu 3.9e-7 (3.6e-7) / 3.6e-7 (3.5e-7), gelu_tanh 2.4e-7 / 2.6e-7 (x max(1, |z|), above),
//   sigmoid 2.4e-7 (1.9e-7) / 3.8e-7 (3.2e-7), tanh 2.1e-7 / 3.8e-7 (3.2e-7),
//   silu 2.6e-7 (2.3e-7) / 3.1e-7 (2.8e-7).
std::vector<Case> cases() {
  return {
      // exp' is computed from the float32 output y (dx = dy * y, exact relation; as PyTorch):
      // where e^x overflows float32, so does the gradient.
      {"exp", [](const Tensor& x) { return exp(x); }, [](double x) { return std::exp(x); },
       [](double x) { return static_cast<double>(static_cast<float>(std::exp(x))); },
       [](double x) { return static_cast<double>(static_cast<float>(std::exp(x))); }, nullptr,
       false, 1.5e-7, 2.5e-7},
      {"log", [](const Tensor& x) { return log(x); }, [](double x) { return std::log(x); },
       [](double x) { return 1 / x; }, [](double x) { return 1 / x; }, nullptr, true, 2.5e-7,
       1.2e-7},
      {"sqrt", [](const Tensor& x) { return sqrt(x); }, [](double x) { return std::sqrt(x); },
       [](double x) { return 0.5 / std::sqrt(x); }, [](double x) { return 0.5 / std::sqrt(x); },
       nullptr, true, 1.2e-7, 2.4e-7},
      {"relu", [](const Tensor& x) { return relu(x); }, [](double x) { return x > 0 ? x : 0.0; },
       [](double x) { return x > 0 ? 1.0 : 0.0; }, [](double) { return 1.0; }, nullptr, false, 0,
       0},
      {"gelu", [](const Tensor& x) { return gelu(x); }, [](double x) { return x * ref_phi(x); },
       [](double x) { return ref_phi(x) + x * ref_gauss(x); },
       [](double x) { return ref_phi(x) + std::fabs(x) * ref_gauss(x); }, nullptr, false, 5e-7,
       5e-7},
      {"gelu_tanh", [](const Tensor& x) { return gelu(x, GeluApprox::kTanh); },
       [](double x) { return x * ref_sigmoid(ref_gelu_tanh_z(x)); },
       [](double x) {
         double dz = 2 * kTanhK * (1 + 3 * 0.044715 * x * x);
         return ref_sigmoid(ref_gelu_tanh_z(x)) + x * ref_sigmoid_slope(ref_gelu_tanh_z(x)) * dz;
       },
       [](double x) {
         double dz = 2 * kTanhK * (1 + 3 * 0.044715 * x * x);
         return (ref_sigmoid(ref_gelu_tanh_z(x)) +
                 std::fabs(x) * ref_sigmoid_slope(ref_gelu_tanh_z(x)) * dz) *
                gelu_tanh_condition(x);
       },
       [](double x) { return std::fabs(x * ref_sigmoid(ref_gelu_tanh_z(x))) * gelu_tanh_condition(x); },
       false, 4e-7, 4e-7},
      {"sigmoid", [](const Tensor& x) { return sigmoid(x); }, ref_sigmoid, ref_sigmoid_slope,
       ref_sigmoid_slope, nullptr, false, 3e-7, 4.5e-7},
      {"tanh", [](const Tensor& x) { return tanh(x); }, [](double x) { return std::tanh(x); },
       [](double x) { return 4 * ref_sigmoid_slope(2 * x); },
       [](double x) { return 4 * ref_sigmoid_slope(2 * x); }, nullptr, false, 3e-7, 4.5e-7},
      {"silu", [](const Tensor& x) { return silu(x); },
       [](double x) { return x * ref_sigmoid(x); },
       [](double x) { return ref_sigmoid(x) + x * ref_sigmoid_slope(x); },
       [](double x) { return ref_sigmoid(x) + std::fabs(x) * ref_sigmoid_slope(x); }, nullptr,
       false, 3.5e-7, 4e-7},
  };
}

// Dense samples of [-20, 20] (where activations live), coarser ones out to +-110 (exp's
// overflow and underflow), and magnitudes from 1e-30 to 3e38 of both signs.
std::vector<float> wide_samples(bool positive) {
  std::vector<float> v;
  for (int i = 0; i <= 400000; ++i) v.push_back(-20.0f + 40.0f * i / 400000);
  for (int i = 0; i <= 20000; ++i) v.push_back(-110.0f + 220.0f * i / 20000);
  for (int i = 0; i <= 2000; ++i) {
    float m = static_cast<float>(std::pow(10.0, -30.0 + 68.5 * i / 2000));
    v.push_back(m);
    v.push_back(-m);
  }
  if (positive) {
    for (float& x : v) x = std::fabs(x);
    for (int i = 0; i <= 100000; ++i) v.push_back(0.5f + 1.5f * i / 100000);  // log near 1
  }
  return v;
}

// The SIMD targets (hwy bits) this CPU supports among those qilin compiles, best first.
std::vector<int64_t> simd_targets() {
  hwy::SetSupportedTargetsForTest(0);  // the real CPU
  std::vector<int64_t> out;
  for (int64_t t : {HWY_AVX3, HWY_AVX2})
    if (hwy::SupportedTargets() & t) out.push_back(t);
  return out;
}

// Runs `body` once per SIMD target, with dispatch restricted to that target.
void for_each_simd_target(const std::function<void(const std::string&)>& body) {
  for (int64_t t : simd_targets()) {
    hwy::SetSupportedTargetsForTest(t);
    body(hwy::TargetName(t));
  }
  hwy::SetSupportedTargetsForTest(0);
}

struct Worst {
  double rel = 0;
  float x = 0;
  double got = 0, want = 0;
};

// |got - want| relative to `scale`. Near and below FLT_MIN (1.2e-38) the check is
// absolute, 1e-40: subnormals have an absolute spacing of 1.4e-45, and results just above
// FLT_MIN come from subnormal intermediates (gelu_tanh(-10) = -10 * e^-87.3: e^-87.3 is
// subnormal), which keep only an absolute accuracy of a few 1e-45.
constexpr double kAbsoluteBelow = 1e-36;
void track(Worst* w, float x, double got, double want, double scale) {
  // Equal (incl. infinities, and results that overflow float32), or both NaN.
  if ((std::isnan(want) && std::isnan(got)) || got == static_cast<float>(want)) return;
  double err = std::fabs(got - want);
  double rel = std::fabs(scale) >= kAbsoluteBelow ? err / std::fabs(scale)
                                                   : (err <= 1e-40 ? 0 : 1);
  if (!(rel <= w->rel)) *w = {std::isnan(rel) ? 1.0 : rel, x, got, want};
}

}  // namespace

TEST(Unary, ForwardAndBackwardMatchDoubleReferenceOverTheFloatRange) {
  for_each_simd_target([](const std::string& target) {
    for (const Case& c : cases()) {
      std::vector<float> xs = wide_samples(c.positive_domain);
      const int64_t n = static_cast<int64_t>(xs.size());
      Tensor x = Tensor::from_vector(xs, {n});
      Tensor dy = testing::uniform({n}, 7, 0.5f, 1.5f);
      x.set_requires_grad(true);
      Tensor y = c.op(x);
      y.backward(dy);
      std::vector<float> yv = y.to_vector(), gv = x.grad().to_vector(), dyv = dy.to_vector();
      Worst fw, bw;
      for (int64_t i = 0; i < n; ++i) {
        double want = c.f(xs[i]);
        track(&fw, xs[i], yv[i], want, c.f_scale ? c.f_scale(xs[i]) : want);
        track(&bw, xs[i], gv[i], dyv[i] * c.df(xs[i]), dyv[i] * c.df_scale(xs[i]));
      }
      EXPECT_LE(fw.rel, c.rtol_forward)
          << target << " " << c.name << "(" << fw.x << ") = " << fw.got << ", want " << fw.want;
      EXPECT_LE(bw.rel, c.rtol_backward) << target << " " << c.name << "'(" << bw.x
                                          << ") * dy = " << bw.got << ", want " << bw.want;
      std::printf("  %-7s %-10s worst relative error forward %.2e, backward %.2e\n",
                  target.c_str(), c.name.c_str(), fw.rel, bw.rel);
    }
  });
}

TEST(Unary, SpecialValuesGiveLimitsAndNaNPropagates) {
  struct Expect {
    const char* name;
    std::function<Tensor(const Tensor&)> op;
    float at_neg_inf, at_pos_inf, slope_neg_inf, slope_pos_inf;
  };
  const std::vector<Expect> expects = {
      {"exp", [](const Tensor& x) { return exp(x); }, 0, kInf, 0, kInf},
      {"relu", [](const Tensor& x) { return relu(x); }, 0, kInf, 0, 1},
      {"gelu", [](const Tensor& x) { return gelu(x); }, 0, kInf, 0, 1},
      {"gelu_tanh", [](const Tensor& x) { return gelu(x, GeluApprox::kTanh); }, 0, kInf, 0, 1},
      {"sigmoid", [](const Tensor& x) { return sigmoid(x); }, 0, 1, 0, 0},
      {"tanh", [](const Tensor& x) { return tanh(x); }, -1, 1, 0, 0},
      {"silu", [](const Tensor& x) { return silu(x); }, 0, kInf, 0, 1},
  };
  for_each_simd_target([&](const std::string& target) {
    for (const Expect& e : expects) {
      Tensor x = Tensor::from_vector({-kInf, kInf, kNaN}, {3});
      x.set_requires_grad(true);
      Tensor y = e.op(x);
      y.backward(Tensor::ones({3}));
      std::vector<float> yv = y.to_vector(), g = x.grad().to_vector();
      std::string what = target + " " + e.name;
      EXPECT_EQ(yv[0], e.at_neg_inf) << what;
      EXPECT_EQ(yv[1], e.at_pos_inf) << what;
      EXPECT_TRUE(std::isnan(yv[2])) << what;
      EXPECT_EQ(g[0], e.slope_neg_inf) << what;
      EXPECT_EQ(g[1], e.slope_pos_inf) << what;
      if (std::string(e.name) != "relu") {  // relu'(NaN) is 0: the mask x > 0 is false
        EXPECT_TRUE(std::isnan(g[2])) << what;
      }
    }
    Tensor x = Tensor::from_vector({0.0f, -1.0f, kInf, kNaN}, {4});
    std::vector<float> l = log(x).to_vector(), s = sqrt(x).to_vector();
    EXPECT_EQ(l[0], -kInf) << target;
    EXPECT_TRUE(std::isnan(l[1])) << target;
    EXPECT_EQ(l[2], kInf) << target;
    EXPECT_TRUE(std::isnan(l[3])) << target;
    EXPECT_EQ(s[0], 0.0f);
    EXPECT_TRUE(std::isnan(s[1]));
    EXPECT_EQ(s[2], kInf);
    EXPECT_TRUE(std::isnan(s[3]));
  });
}

TEST(Unary, EveryLengthMatchesTheFullVectorPath) {
  // Lengths 1..40 cover every masked tail of 8- and 16-lane vectors; each element must be
  // bit-identical to the same input computed inside a long array.
  Tensor big = testing::uniform({4096}, 11, -6.0f, 6.0f);
  for (const Case& c : cases()) {
    Tensor xb = c.positive_domain ? exp(big) : big;
    std::vector<float> ref = c.op(xb).to_vector();
    std::vector<float> xv = xb.to_vector();
    for (int64_t n = 1; n <= 40; ++n) {
      Tensor x = Tensor::from_vector(std::vector<float>(xv.begin() + 100, xv.begin() + 100 + n),
                                     {n});
      std::vector<float> y = c.op(x).to_vector();
      for (int64_t i = 0; i < n; ++i)
        ASSERT_EQ(y[i], ref[100 + i]) << c.name << " length " << n << " element " << i;
    }
  }
}

TEST(Unary, EmptyTensorGivesEmptyResult) {
  for (const Case& c : cases()) {
    Tensor x = Tensor::empty({0, 3});
    x.set_requires_grad(true);
    Tensor y = c.op(x);
    EXPECT_EQ(y.shape(), (Shape{0, 3})) << c.name;
  }
}

TEST(Unary, BackwardMatchesFiniteDifferences) {
  for (const Case& c : cases()) {
    // relu: keep samples away from the kink, where finite differences straddle it.
    Tensor x = c.positive_domain ? testing::uniform({3, 7}, 21, 0.2f, 3.0f)
                                 : testing::uniform({3, 7}, 21, -4.0f, 4.0f);
    if (c.name == "relu") {
      float* p = x.data<float>();
      for (int64_t i = 0; i < x.numel(); ++i)
        if (std::fabs(p[i]) < 0.1f) p[i] = 0.5f;
    }
    auto op = c.op;
    testing::check_gradients([op](const std::vector<Tensor>& in) { return op(in[0]); }, {x}, {},
                             c.name);
  }
}

TEST(Unary, GeluFormsAtLargeMagnitudesMatchFiniteDifferences) {
  // Both GELU forms also in their tails, where the slope goes to 0 and 1.
  Tensor x = Tensor::from_vector({-9.0f, -6.5f, -3.0f, 2.5f, 5.0f, 8.0f}, {6});
  testing::check_gradients([](const std::vector<Tensor>& in) { return gelu(in[0]); }, {x}, {},
                           "gelu");
  testing::check_gradients(
      [](const std::vector<Tensor>& in) { return gelu(in[0], GeluApprox::kTanh); }, {x}, {},
      "gelu_tanh");
}

TEST(Unary, PowMatchesStdPowAndFiniteDifferences) {
  Tensor x = testing::uniform({5, 4}, 31, 0.3f, 3.0f);
  for (float p : {2.0f, 3.0f, 0.5f, -1.5f, 0.0f, 1.0f}) {
    std::vector<float> xv = x.to_vector();
    std::vector<double> ref;
    for (float v : xv) ref.push_back(std::pow(static_cast<double>(v), p));
    // std::pow in float32 is correctly rounded or within 1 ulp.
    testing::expect_close(pow(x, p), ref, 0, 2.4e-7, "pow " + std::to_string(p));
    testing::check_gradients([p](const std::vector<Tensor>& in) { return pow(in[0], p); }, {x},
                             {}, "pow " + std::to_string(p));
  }
}

TEST(Unary, NonFloatInputIsAnErrorNamingTheOp) {
  Tensor labels = Tensor::from_vector_i64({1, 2}, {2});
  try {
    gelu(labels);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("gelu"), std::string::npos) << m;
    EXPECT_NE(m.find("float32"), std::string::npos) << m;
  }
}

}  // namespace qilin
