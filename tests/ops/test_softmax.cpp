// Softmax, log-softmax and the cross-entropy losses: forward against double-precision
// loops and PyTorch values, backward by finite differences, edge rows (NaN, -inf, huge
// offsets, one column, masked tails of every length), and errors that name bad targets.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "core/ops/loss.h"
#include "core/ops/softmax.h"
#include "hwy/targets.h"
#include "tests/testing.h"

namespace qilin {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

// Double reference of (log-)softmax over the last dim of a [rows, cols] array.
std::vector<double> ref_softmax(const std::vector<float>& x, int64_t cols, bool log_form) {
  std::vector<double> y(x.size());
  for (size_t r = 0; r * cols < x.size(); ++r) {
    const float* xr = x.data() + r * cols;
    double max = -INFINITY, sum = 0;
    for (int64_t c = 0; c < cols; ++c) max = std::max(max, static_cast<double>(xr[c]));
    for (int64_t c = 0; c < cols; ++c) sum += std::exp(xr[c] - max);
    for (int64_t c = 0; c < cols; ++c)
      y[r * cols + c] = log_form ? xr[c] - max - std::log(sum) : std::exp(xr[c] - max) / sum;
  }
  return y;
}

// Double reference of cross entropy with label smoothing (the formula of core/ops/loss.h).
double ref_cross_entropy(const std::vector<float>& x, const std::vector<int64_t>& t,
                         int64_t cols, double s) {
  std::vector<double> logp = ref_softmax(x, cols, true);
  double total = 0;
  for (size_t i = 0; i < t.size(); ++i) {
    double mean_nlogp = 0;
    for (int64_t c = 0; c < cols; ++c) mean_nlogp -= logp[i * cols + c] / cols;
    total += (1 - s) * -logp[i * cols + t[i]] + s * mean_nlogp;
  }
  return total / t.size();
}

// Runs `body` once per SIMD target this CPU has (AVX-512, AVX2), dispatch restricted to it.
void for_each_simd_target(const std::function<void(const std::string&)>& body) {
  hwy::SetSupportedTargetsForTest(0);  // the real CPU
  const int64_t supported = hwy::SupportedTargets();
  for (int64_t t : {HWY_AVX3, HWY_AVX2}) {
    if (!(supported & t)) continue;
    hwy::SetSupportedTargetsForTest(t);
    body(hwy::TargetName(t));
  }
  hwy::SetSupportedTargetsForTest(0);
}

const std::vector<Shape> kShapes = {{7}, {3, 10}, {5, 50}, {2, 3, 17}, {4, 1}, {300, 33}, {2, 1000}};

// logits [4, 5] = 3 sin(0.7 i + 1.3 c) (float32), targets {0, 3, 4, 1}: the inputs of the
// PyTorch values below.
Tensor sine_logits() {
  std::vector<float> v;
  for (int i = 0; i < 4; ++i)
    for (int c = 0; c < 5; ++c) v.push_back(static_cast<float>(3 * std::sin(0.7 * i + 1.3 * c)));
  return Tensor::from_vector(v, {4, 5});
}

}  // namespace

TEST(Softmax, ForwardMatchesDoubleReference) {
  for_each_simd_target([](const std::string& target) {
    for (const Shape& shape : kShapes) {
      Tensor x = testing::uniform(shape, 1, -10.0f, 10.0f);
      const int64_t cols = shape.back();
      const std::string what = target + " " + shape_str(shape);
      // x - max in [-20, 0] rounds to float32 with absolute error <= 2^-20 (9.5e-7), which
      // e^(.) turns into the same relative error; exp, sum and scale add a few ulp.
      testing::expect_close(softmax(x), ref_softmax(x.to_vector(), cols, false), 1e-30, 1.5e-6,
                            "softmax " + what);
      // log-softmax: the same absolute 1e-6 from x - max, plus a few ulp of |y| (up to 23).
      testing::expect_close(log_softmax(x), ref_softmax(x.to_vector(), cols, true), 1.5e-6,
                            5e-7, "log_softmax " + what);
    }
    Tensor logits = testing::uniform({37, 10}, 2, -8.0f, 8.0f);
    std::vector<int64_t> t;
    for (int64_t i = 0; i < 37; ++i) t.push_back(i % 10);
    testing::expect_close(cross_entropy(logits, Tensor::from_vector_i64(t, {37}), 0.1f),
                          std::vector<double>{ref_cross_entropy(logits.to_vector(), t, 10, 0.1)},
                          5e-6, 1e-6, "cross_entropy " + target);
  });
}

TEST(Softmax, RowsSumToOneAndAreShiftInvariant) {
  Tensor x = testing::uniform({6, 37}, 2, -5.0f, 5.0f);
  std::vector<float> y = softmax(x).to_vector();
  for (int r = 0; r < 6; ++r) {
    double s = 0;
    for (int c = 0; c < 37; ++c) s += y[r * 37 + c];
    EXPECT_NEAR(s, 1.0, 1e-6) << "row " << r;
  }
  // Offsets of 1e4 (exp would overflow without the max shift): x + 1e4 rounds x to a
  // spacing of 2^-10, so compare with the reference of the shifted values themselves.
  Tensor shifted = x + 1.0e4f;
  testing::expect_close(softmax(shifted), ref_softmax(shifted.to_vector(), 37, false), 1e-30,
                        1.5e-6, "softmax(x + 1e4)");
}

TEST(Softmax, NaNRowIsNaNAndMinusInfinityIsZeroProbability) {
  Tensor x = Tensor::from_vector({1, NAN, 2, 0, -kInf, 0, 5, 6, 7}, {3, 3});
  std::vector<float> y = softmax(x).to_vector(), ly = log_softmax(x).to_vector();
  for (int c = 0; c < 3; ++c) EXPECT_TRUE(std::isnan(y[c])) << c;
  EXPECT_FLOAT_EQ(y[3], 0.5f);
  EXPECT_EQ(y[4], 0.0f);
  EXPECT_EQ(ly[4], -kInf);
  EXPECT_FLOAT_EQ(y[5], 0.5f);
  EXPECT_TRUE(std::isfinite(y[6]) && std::isfinite(y[8]));
}

TEST(Softmax, EveryRowLengthMatchesTheReference) {
  // 1..40 columns: every masked tail of 8- and 16-lane vectors.
  for (int64_t cols = 1; cols <= 40; ++cols) {
    Tensor x = testing::uniform({3, cols}, 3 + static_cast<uint32_t>(cols), -4.0f, 4.0f);
    testing::expect_close(softmax(x), ref_softmax(x.to_vector(), cols, false), 1e-30, 1e-6,
                          "softmax cols " + std::to_string(cols));
    testing::expect_close(log_softmax(x), ref_softmax(x.to_vector(), cols, true), 1e-6, 5e-7,
                          "log_softmax cols " + std::to_string(cols));
  }
}

TEST(Softmax, EmptyAndSingleColumn) {
  EXPECT_EQ(softmax(Tensor::empty({0, 4})).shape(), (Shape{0, 4}));
  EXPECT_EQ(softmax(Tensor::empty({3, 0})).shape(), (Shape{3, 0}));
  testing::expect_close(softmax(testing::uniform({5, 1}, 4)), std::vector<double>(5, 1.0), 0, 0,
                        "one column");
  testing::expect_close(log_softmax(testing::uniform({5, 1}, 4)), std::vector<double>(5, 0.0), 0,
                        0, "one column");
}

TEST(Softmax, BackwardMatchesFiniteDifferences) {
  for (const Shape& shape : {Shape{3, 5}, Shape{2, 3, 17}, Shape{1, 1}}) {
    Tensor x = testing::uniform(shape, 5, -3.0f, 3.0f);
    testing::check_gradients([](const std::vector<Tensor>& in) { return softmax(in[0]); }, {x},
                             {}, "softmax " + shape_str(shape));
    testing::check_gradients([](const std::vector<Tensor>& in) { return log_softmax(in[0]); },
                             {x}, {}, "log_softmax " + shape_str(shape));
  }
}

TEST(CrossEntropy, MatchesPyTorch) {
  // /usr/bin/python3 (torch 1.13):
  //   import math, torch; import torch.nn.functional as F
  //   x = torch.tensor([[3 * math.sin(0.7 * i + 1.3 * c) for c in range(5)] for i in range(4)],
  //                    dtype=torch.float32, requires_grad=True)
  //   t = torch.tensor([0, 3, 4, 1])
  //   for s in (0.0, 0.1):
  //       x.grad = None; loss = F.cross_entropy(x, t, label_smoothing=s); loss.backward()
  //       print(s, "%.8g" % loss.item(), ["%.8g" % v for v in x.grad.flatten().tolist()])
  struct Expected {
    float smoothing;
    double loss;
    std::vector<double> grad;
  };
  const Expected expected[] = {
      {0.0f, 3.9179785,
       {-0.23953894, 0.18835621, 0.049114998, 0.0013289142, 0.00073881814, 0.074412331,
        0.16482118, 0.0067108911, -0.24945344, 0.0035090263, 0.18803538, 0.035248417,
        0.0010099227, 0.00080531533, -0.22509907, 0.12294282, -0.24571352, 0.00045947163,
        0.0039902134, 0.11832099}},
      {0.1f, 3.8439,
       {-0.21953893, 0.18335618, 0.044114992, -0.0036710859, -0.0042611817, 0.069412328,
        0.15982117, 0.0017108909, -0.22945343, -0.0014909739, 0.18303537, 0.030248415,
        -0.0039900774, -0.0041946848, -0.20509906, 0.1179428, -0.22571351, -0.0045405282,
        -0.001009787, 0.11332098}},
  };
  for (const Expected& e : expected) {
    for (bool i64 : {true, false}) {
      Tensor x = sine_logits();
      x.set_requires_grad(true);
      Tensor t = i64 ? Tensor::from_vector_i64({0, 3, 4, 1}, {4})
                     : Tensor::from_vector_i32({0, 3, 4, 1}, {4});
      Tensor loss = cross_entropy(x, t, e.smoothing);
      EXPECT_EQ(loss.shape(), Shape{});
      loss.backward();
      std::string what = "s = " + std::to_string(e.smoothing) + (i64 ? " int64" : " int32");
      // Two float32 implementations of the same formula: a few ulp of the values.
      testing::expect_close(loss, std::vector<double>{e.loss}, 1e-6, 1e-6, "loss " + what);
      testing::expect_close(x.grad(), e.grad, 1e-7, 1e-5, "grad " + what);
    }
  }
}

TEST(CrossEntropy, ForwardMatchesDoubleReference) {
  for (int64_t classes : {1, 3, 10, 17, 100}) {
    const int64_t n = 37;
    Tensor x = testing::uniform({n, classes}, 6, -8.0f, 8.0f);
    std::vector<int64_t> t;
    for (int64_t i = 0; i < n; ++i) t.push_back((i * 7) % classes);
    for (float s : {0.0f, 0.1f, 1.0f}) {
      double ref = ref_cross_entropy(x.to_vector(), t, classes, s);
      // Per-row terms in float32 (lse and x up to ~12: a few 1e-6 absolute), mean in double.
      testing::expect_close(cross_entropy(x, Tensor::from_vector_i64(t, {n}), s),
                            std::vector<double>{ref}, 5e-6, 1e-6,
                            "C = " + std::to_string(classes) + " s = " + std::to_string(s));
    }
  }
}

TEST(CrossEntropy, BackwardMatchesFiniteDifferences) {
  Tensor x = testing::uniform({4, 7}, 7, -3.0f, 3.0f);
  Tensor t = Tensor::from_vector_i64({6, 0, 3, 3}, {4});
  for (float s : {0.0f, 0.1f, 0.5f}) {
    testing::check_gradients(
        [t, s](const std::vector<Tensor>& in) { return cross_entropy(in[0], t, s); }, {x}, {},
        "cross_entropy s = " + std::to_string(s));
  }
}

TEST(CrossEntropy, BadTargetNamesTheValueAndTheClassCount) {
  Tensor x = testing::uniform({3, 10}, 8);
  for (int64_t bad : {12, -1, 10}) {
    try {
      cross_entropy(x, Tensor::from_vector_i64({1, bad, 2}, {3}));
      FAIL() << "expected an error for target " << bad;
    } catch (const Error& e) {
      std::string m = e.what();
      EXPECT_NE(m.find("= " + std::to_string(bad)), std::string::npos) << m;
      EXPECT_NE(m.find("C = 10"), std::string::npos) << m;
    }
  }
  EXPECT_THROW(cross_entropy(x, Tensor::from_vector_i32({1, 2, 30}, {3})), Error);
  EXPECT_THROW(cross_entropy(x, Tensor::from_vector_i64({1, 2}, {2})), Error);  // N mismatch
  EXPECT_THROW(cross_entropy(x, Tensor::from_vector({1, 2, 3}, {3})), Error);   // float target
  EXPECT_THROW(cross_entropy(x, Tensor::from_vector_i64({1, 2, 3}, {3}), 1.5f), Error);
  EXPECT_THROW(cross_entropy(testing::uniform({3}, 1), Tensor::from_vector_i64({1}, {1})), Error);
}

TEST(CrossEntropySoft, ForwardMatchesDoubleReferenceAndOneHotCase) {
  const int64_t n = 9, classes = 13;
  Tensor x = testing::uniform({n, classes}, 9, -6.0f, 6.0f);
  Tensor raw = testing::uniform({n, classes}, 10, 0.0f, 1.0f);
  // Rows normalised to probabilities (mixup targets).
  std::vector<float> tv = raw.to_vector();
  for (int64_t i = 0; i < n; ++i) {
    double s = 0;
    for (int64_t c = 0; c < classes; ++c) s += tv[i * classes + c];
    for (int64_t c = 0; c < classes; ++c) tv[i * classes + c] /= static_cast<float>(s);
  }
  Tensor t = Tensor::from_vector(tv, {n, classes});
  std::vector<double> logp = ref_softmax(x.to_vector(), classes, true);
  double ref = 0;
  for (int64_t i = 0; i < n * classes; ++i) ref -= tv[i] * logp[i];
  ref /= n;
  testing::expect_close(cross_entropy_soft(x, t), std::vector<double>{ref}, 5e-6, 1e-6, "soft");

  // One-hot targets give the hard-label loss.
  std::vector<float> onehot(n * classes, 0.0f);
  std::vector<int64_t> labels;
  for (int64_t i = 0; i < n; ++i) {
    labels.push_back((i * 5) % classes);
    onehot[i * classes + labels.back()] = 1.0f;
  }
  const double hard = cross_entropy(x, Tensor::from_vector_i64(labels, {n})).item();
  testing::expect_close(cross_entropy_soft(x, Tensor::from_vector(onehot, {n, classes})),
                        std::vector<double>{hard}, 1e-6, 1e-6, "one-hot");
}

TEST(CrossEntropySoft, BackwardMatchesFiniteDifferencesForLogitsAndTargets) {
  Tensor x = testing::uniform({3, 6}, 11, -3.0f, 3.0f);
  Tensor t = testing::uniform({3, 6}, 12, 0.0f, 0.4f);  // need not sum to 1
  testing::check_gradients(
      [](const std::vector<Tensor>& in) { return cross_entropy_soft(in[0], in[1]); }, {x, t}, {},
      "cross_entropy_soft");
}

TEST(CrossEntropySoft, ShapeMismatchIsAnError) {
  EXPECT_THROW(cross_entropy_soft(testing::uniform({3, 4}, 1), testing::uniform({3, 5}, 2)),
               Error);
}

}  // namespace qilin
