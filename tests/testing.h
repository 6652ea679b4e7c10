// Test helpers: random inputs, closeness checks against double-precision references, and
// a finite-difference gradient check (ggml's test-backend-ops / flashlight's jacobianTest).
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "core/autograd.h"
#include "core/ops/elementwise.h"
#include "core/tensor.h"

namespace qilin::testing {

// A float32's bits and back; `same_bits` compares as bits (so -0 != +0), with any NaN equal to
// any NaN (a NaN's payload depends on which operand the hardware propagates).
inline uint32_t bits_of(float x) {
  uint32_t b;
  std::memcpy(&b, &x, sizeof b);
  return b;
}
inline float from_bits(uint32_t b) {
  float x;
  std::memcpy(&x, &b, sizeof x);
  return x;
}
inline bool same_bits(float a, float b) { return (std::isnan(a) && std::isnan(b)) || bits_of(a) == bits_of(b); }

// Uniform values in [lo, hi) from a fixed seed (std::mt19937: tests only).
inline Tensor uniform(const Shape& shape, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  Tensor t = Tensor::empty(shape);
  float* p = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = dist(gen);
  return t;
}

// Asserts |actual - expected| <= atol + rtol * |expected| elementwise; reports the worst.
inline void expect_close(const Tensor& actual, const std::vector<double>& expected, double atol,
                         double rtol, const std::string& what = "") {
  ASSERT_EQ(actual.numel(), static_cast<int64_t>(expected.size())) << what;
  std::vector<float> a = actual.to_vector();
  double worst = 0;
  int64_t worst_i = -1;
  for (size_t i = 0; i < a.size(); ++i) {
    double err = std::fabs(a[i] - expected[i]);
    double excess = err - (atol + rtol * std::fabs(expected[i]));
    if (!(excess <= 0) && (worst_i < 0 || excess > worst)) {
      worst = excess;
      worst_i = static_cast<int64_t>(i);
    }
  }
  if (worst_i >= 0) {
    ADD_FAILURE() << what << ": element " << worst_i << " is " << a[worst_i] << ", expected "
                  << expected[worst_i] << " (atol " << atol << ", rtol " << rtol << ")";
  }
}

inline void expect_close(const Tensor& actual, const Tensor& expected, double atol, double rtol,
                         const std::string& what = "") {
  ASSERT_EQ(actual.shape(), expected.shape()) << what;
  std::vector<float> e = expected.to_vector();
  expect_close(actual, std::vector<double>(e.begin(), e.end()), atol, rtol, what);
}

struct GradCheckOptions {
  // Central differences in float32: truncation error ~eps^2 |f'''|, rounding error
  // ~1e-7 |f| / eps. eps = 1e-3 balances them for O(1) values; tolerances below are
  // a few times the resulting error (~1e-3 relative), far below any wrong formula.
  double eps = 1e-3;
  double atol = 2e-3;
  double rtol = 2e-2;
  // Check at most this many elements of each input, evenly spaced (whole models: each
  // element costs two forward passes); 0 checks every element.
  int64_t max_elements_per_input = 0;
};

// Checks d/dx_i of L = sum(f(x) * w) (w fixed random weights, so upstream gradients are
// not uniform) against central finite differences, for every element of every input that
// requires grad. The loss is accumulated in double.
inline void check_gradients(const std::function<Tensor(const std::vector<Tensor>&)>& f,
                            std::vector<Tensor> inputs, GradCheckOptions opt = {},
                            const std::string& what = "") {
  for (Tensor& x : inputs)
    if (x.dtype() == DType::kFloat32 && !x.requires_grad()) x.set_requires_grad(true);
  Tensor y = f(inputs);
  Tensor w = uniform(y.shape(), 1234, 0.5f, 1.5f);
  auto loss_of = [&](const Tensor& out) {
    std::vector<float> v = out.to_vector(), wv = w.to_vector();
    double s = 0;
    for (size_t i = 0; i < v.size(); ++i) s += static_cast<double>(v[i]) * wv[i];
    return s;
  };
  for (Tensor& x : inputs) x.zero_grad();
  // L's gradient w.r.t. y is w: backward with grad_output = w (no reduction op needed).
  y.backward(w);
  for (size_t k = 0; k < inputs.size(); ++k) {
    Tensor& x = inputs[k];
    if (!x.requires_grad() || x.dtype() != DType::kFloat32) continue;
    ASSERT_TRUE(x.grad().defined()) << what << ": input " << k << " got no gradient";
    std::vector<float> analytic = x.grad().to_vector();
    float* p = x.data<float>();
    const int64_t n = x.numel();
    const int64_t stride =
        opt.max_elements_per_input > 0 ? std::max<int64_t>(1, n / opt.max_elements_per_input) : 1;
    for (int64_t i = 0; i < n; i += stride) {
      const float orig = p[i];
      double numeric;
      {
        NoGradGuard no_grad;
        p[i] = static_cast<float>(orig + opt.eps);
        double up = loss_of(f(inputs));
        p[i] = static_cast<float>(orig - opt.eps);
        double down = loss_of(f(inputs));
        p[i] = orig;
        numeric = (up - down) / (2 * opt.eps);
      }
      double err = std::fabs(analytic[i] - numeric);
      if (!(err <= opt.atol + opt.rtol * std::fabs(numeric))) {
        ADD_FAILURE() << what << ": input " << k << " element " << i << ": backward "
                      << analytic[i] << ", finite differences " << numeric;
        return;
      }
    }
  }
}

}  // namespace qilin::testing
