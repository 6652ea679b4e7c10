#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "core/ops/reduce.h"
#include "tests/testing.h"

namespace qilin {
namespace {

// Double reference of a sum over `dim` of x seen as [outer, dim, inner].
std::vector<double> sum_reference(const Tensor& x, int64_t d) {
  std::vector<float> xv = x.to_vector();
  int64_t outer = 1, inner = 1;
  for (int64_t i = 0; i < x.dim(); ++i) {
    if (i < d) outer *= x.shape()[i];
    if (i > d) inner *= x.shape()[i];
  }
  const int64_t n = x.shape()[d];
  std::vector<double> out(outer * inner, 0.0);
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t j = 0; j < n; ++j)
      for (int64_t i = 0; i < inner; ++i) out[o * inner + i] += xv[(o * n + j) * inner + i];
  return out;
}

const Shape kShapes[] = {{7}, {3, 5}, {2, 3, 4}, {1, 6, 1}, {4, 1000}, {3000, 70}, {2, 20000}};

// Sums accumulate in double and round once: 1 ulp (rtol 1.2e-7) of the result plus an
// absolute slack of 1e-6 for results that cancel to near zero.
constexpr double kAtol = 1e-6, kRtol = 1.2e-7;

}  // namespace

TEST(Sum, OverEachDimMatchesDoubleReference) {
  for (const Shape& s : kShapes) {
    Tensor x = testing::uniform(s, 1);
    for (int64_t d = 0; d < static_cast<int64_t>(s.size()); ++d) {
      Tensor y = sum(x, d);
      Shape expected = s;
      expected.erase(expected.begin() + d);
      EXPECT_EQ(y.shape(), expected);
      testing::expect_close(y, sum_reference(x, d), kAtol, kRtol,
                            str_cat(shape_str(s), " dim ", d));
      Shape kept = s;
      kept[d] = 1;
      EXPECT_EQ(sum(x, d, true).shape(), kept);
    }
  }
}

TEST(Sum, AllElementsOfALargeTensorAreAccurate) {
  // 2^22 terms of 1 + tiny: float32 accumulation would lose the tiny parts entirely.
  const int64_t n = int64_t{1} << 22;
  Tensor x = Tensor::full({n}, 1.0f + 1.0f / 1024);
  EXPECT_DOUBLE_EQ(sum(x).item(), static_cast<double>(n) * (1.0 + 1.0 / 1024));
  Tensor y = testing::uniform({1000, 1000}, 2);
  std::vector<float> v = y.to_vector();
  double s = 0;
  for (float f : v) s += f;
  testing::expect_close(sum(y), std::vector<double>{s}, kAtol, kRtol, "sum all");
  EXPECT_EQ(sum(y).dim(), 0);
}

TEST(Mean, DividesByTheCount) {
  Tensor x = testing::uniform({3, 4, 5}, 3);
  std::vector<double> ref = sum_reference(x, 1);
  for (double& r : ref) r /= 4;
  testing::expect_close(mean(x, 1), ref, kAtol, kRtol, "mean dim 1");
  std::vector<float> v = x.to_vector();
  double s = 0;
  for (float f : v) s += f;
  testing::expect_close(mean(x), std::vector<double>{s / 60}, kAtol, kRtol, "mean all");
  EXPECT_THROW(mean(Tensor::zeros({2, 0}), 1), Error);
}

TEST(Sum, BackwardMatchesFiniteDifferences) {
  for (int64_t d : {0, 1, 2}) {
    testing::check_gradients([d](const std::vector<Tensor>& in) { return sum(in[0], d); },
                             {testing::uniform({2, 3, 4}, 4)}, {}, str_cat("sum dim ", d));
    testing::check_gradients([d](const std::vector<Tensor>& in) { return mean(in[0], d, true); },
                             {testing::uniform({2, 3, 4}, 5)}, {}, str_cat("mean dim ", d));
  }
  testing::check_gradients([](const std::vector<Tensor>& in) { return sum(in[0]); },
                           {testing::uniform({3, 4}, 6)}, {}, "sum all");
  testing::check_gradients([](const std::vector<Tensor>& in) { return mean(in[0]); },
                           {testing::uniform({3, 4}, 7)}, {}, "mean all");
}

TEST(Max, ValuesAndFirstIndexOfTheMaximum) {
  Tensor x = Tensor::from_vector({1, 5, 5, 2, 9, 0, 3, 3, -1, 4, 4, 8}, {2, 2, 3});
  // dim 2 (rows): [1,5,5] -> 5 @ 1 (the first of the tie), [2,9,0] -> 9 @ 1, ...
  testing::expect_close(max(x, 2), std::vector<double>{5, 9, 3, 8}, 0, 0, "max dim 2");
  Tensor i2 = argmax(x, 2);
  ASSERT_EQ(i2.dtype(), DType::kInt64);
  const int64_t* p = i2.data<int64_t>();
  EXPECT_EQ(std::vector<int64_t>(p, p + 4), (std::vector<int64_t>{1, 1, 0, 2}));
  // dim 1 (strided): column-wise over the 2 rows of each block.
  testing::expect_close(max(x, 1), std::vector<double>{2, 9, 5, 4, 4, 8}, 0, 0, "max dim 1");
  Tensor i1 = argmax(x, 1, true);
  EXPECT_EQ(i1.shape(), (Shape{2, 1, 3}));
  const int64_t* q = i1.data<int64_t>();
  EXPECT_EQ(std::vector<int64_t>(q, q + 6), (std::vector<int64_t>{1, 1, 0, 1, 1, 1}));
}

TEST(Max, NaNPropagatesLikePyTorch) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  Tensor x = Tensor::from_vector({1, nan, 3, nan}, {4});
  EXPECT_TRUE(std::isnan(max(x, 0).item()));
  EXPECT_EQ(argmax(x, 0).data<int64_t>()[0], 1);
}

TEST(Max, LargeInputsMatchReference) {
  Tensor x = testing::uniform({300, 200}, 8);
  std::vector<float> v = x.to_vector();
  std::vector<double> rows(300, -1e30), cols(200, -1e30);
  for (int r = 0; r < 300; ++r)
    for (int c = 0; c < 200; ++c) {
      rows[r] = std::max<double>(rows[r], v[r * 200 + c]);
      cols[c] = std::max<double>(cols[c], v[r * 200 + c]);
    }
  testing::expect_close(max(x, 1), rows, 0, 0, "row max");
  testing::expect_close(max(x, 0), cols, 0, 0, "column max");
}

TEST(Max, GradientGoesToTheFirstMaximumOnly) {
  Tensor x = Tensor::from_vector({1, 4, 4, 2}, {4}).set_requires_grad();
  max(x, 0).backward(Tensor::scalar(2.0f));
  testing::expect_close(x.grad(), std::vector<double>{0, 2, 0, 0}, 0, 0, "tie gradient");
  // Distinct values: finite differences apply.
  testing::check_gradients([](const std::vector<Tensor>& in) { return max(in[0], 1); },
                           {testing::uniform({3, 5, 2}, 9)}, {}, "max dim 1");
}

TEST(Reduce, BadDimNamesTheOp) {
  try {
    sum(Tensor::zeros({2, 3}), 2);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("sum"), std::string::npos) << e.what();
  }
  EXPECT_THROW(max(Tensor::zeros({2, 0}), 1), Error);
  EXPECT_THROW(argmax(Tensor::zeros({3}), -2), Error);
}

}  // namespace qilin
