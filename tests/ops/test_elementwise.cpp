#include <gtest/gtest.h>

#include "core/ops/elementwise.h"
#include "tests/testing.h"

namespace qilin {
namespace {

// Double-precision reference of a broadcasting binary op on row-major shapes.
std::vector<double> reference(const Tensor& a, const Tensor& b, const Shape& out,
                              double (*f)(double, double)) {
  std::vector<float> av = a.to_vector(), bv = b.to_vector();
  std::vector<double> r(shape_numel(out));
  size_t n = out.size();
  for (int64_t i = 0; i < shape_numel(out); ++i) {
    int64_t rem = i, ia = 0, ib = 0, sa = 1, sb = 1;
    for (size_t k = 0; k < n; ++k) {
      size_t d = n - 1 - k;
      int64_t idx = rem % out[d];
      rem /= out[d];
      if (k < a.shape().size()) {
        int64_t size = a.shape()[a.shape().size() - 1 - k];
        ia += (size == 1 ? 0 : idx) * sa;
        sa *= size;
      }
      if (k < b.shape().size()) {
        int64_t size = b.shape()[b.shape().size() - 1 - k];
        ib += (size == 1 ? 0 : idx) * sb;
        sb *= size;
      }
    }
    r[i] = f(av[ia], bv[ib]);
  }
  return r;
}

struct Case {
  Shape a, b;
};
const Case kCases[] = {
    {{5}, {5}},          {{4, 3}, {3}},        {{4, 3}, {4, 1}},     {{2, 1, 3}, {1, 4, 1}},
    {{2, 3, 4}, {}},     {{}, {2, 3}},         {{3, 1}, {1, 3}},     {{2, 3, 4, 5}, {3, 1, 5}},
    {{1}, {6, 1}},       {{300, 200}, {200}},  {{70000}, {70000}},
};

}  // namespace

TEST(Elementwise, ForwardMatchesDoubleReferenceUnderBroadcasting) {
  for (const Case& c : kCases) {
    Tensor a = testing::uniform(c.a, 1), b = testing::uniform(c.b, 2, 0.5f, 2.0f);
    Shape out = broadcast_shapes(c.a, c.b, "test");
    std::string what = shape_str(c.a) + " op " + shape_str(c.b);
    // Float32 results of one operation are within 1 ulp (rtol 1.2e-7) of the double result.
    testing::expect_close(a + b, reference(a, b, out, [](double x, double y) { return x + y; }),
                          1e-7, 1.2e-7, "add " + what);
    testing::expect_close(a - b, reference(a, b, out, [](double x, double y) { return x - y; }),
                          1e-7, 1.2e-7, "sub " + what);
    testing::expect_close(a * b, reference(a, b, out, [](double x, double y) { return x * y; }),
                          1e-7, 1.2e-7, "mul " + what);
    testing::expect_close(a / b, reference(a, b, out, [](double x, double y) { return x / y; }),
                          1e-7, 1.2e-7, "div " + what);
  }
}

TEST(Elementwise, ScalarForms) {
  Tensor a = Tensor::from_vector({1, 2, 4}, {3});
  testing::expect_close(a + 1.0f, std::vector<double>{2, 3, 5}, 0, 0, "add");
  testing::expect_close(a - 1.0f, std::vector<double>{0, 1, 3}, 0, 0, "sub");
  testing::expect_close(1.0f - a, std::vector<double>{0, -1, -3}, 0, 0, "rsub");
  testing::expect_close(a * 2.0f, std::vector<double>{2, 4, 8}, 0, 0, "mul");
  testing::expect_close(a / 2.0f, std::vector<double>{0.5, 1, 2}, 0, 0, "div");
  testing::expect_close(2.0f / a, std::vector<double>{2, 1, 0.5}, 0, 0, "rdiv");
  testing::expect_close(-a, std::vector<double>{-1, -2, -4}, 0, 0, "neg");
}

TEST(Elementwise, BackwardMatchesFiniteDifferencesUnderBroadcasting) {
  for (const Case& c : kCases) {
    if (shape_numel(c.a) > 100 || shape_numel(c.b) > 100) continue;
    std::string what = shape_str(c.a) + " op " + shape_str(c.b);
    auto a = testing::uniform(c.a, 3), b = testing::uniform(c.b, 4, 0.5f, 2.0f);
    testing::check_gradients([](const std::vector<Tensor>& x) { return x[0] + x[1]; }, {a, b},
                             {}, "add " + what);
    testing::check_gradients([](const std::vector<Tensor>& x) { return x[0] - x[1]; }, {a, b},
                             {}, "sub " + what);
    testing::check_gradients([](const std::vector<Tensor>& x) { return x[0] * x[1]; }, {a, b},
                             {}, "mul " + what);
    testing::check_gradients([](const std::vector<Tensor>& x) { return x[0] / x[1]; }, {a, b},
                             {}, "div " + what);
  }
}

TEST(Elementwise, ScalarBackwardMatchesFiniteDifferences) {
  auto a = testing::uniform({7}, 5, 0.5f, 2.0f);
  testing::check_gradients([](const std::vector<Tensor>& x) { return 3.0f - x[0] * 2.0f; }, {a});
  testing::check_gradients([](const std::vector<Tensor>& x) { return 3.0f / (x[0] + 1.0f); },
                           {a});
  testing::check_gradients([](const std::vector<Tensor>& x) { return -(x[0] / 4.0f); }, {a});
}

TEST(Elementwise, SumToReducesBroadcastDims) {
  Tensor x = testing::uniform({300, 4, 200}, 6);
  for (Shape target : {Shape{200}, Shape{4, 1}, Shape{300, 1, 200}, Shape{1, 4, 200}, Shape{}}) {
    Tensor s = sum_to(x, target);
    ASSERT_EQ(s.shape(), target);
    // reference: sum in double over broadcast dims
    std::vector<double> ref(shape_numel(target), 0.0);
    std::vector<float> xv = x.to_vector();
    Shape padded(3 - target.size(), 1);
    padded.insert(padded.end(), target.begin(), target.end());
    for (int64_t i = 0; i < 300; ++i)
      for (int64_t j = 0; j < 4; ++j)
        for (int64_t k = 0; k < 200; ++k) {
          int64_t o = ((padded[0] == 1 ? 0 : i) * padded[1] + (padded[1] == 1 ? 0 : j)) *
                          padded[2] +
                      (padded[2] == 1 ? 0 : k);
          ref[o] += xv[(i * 4 + j) * 200 + k];
        }
    // Sums of up to 240000 float32 terms: float accumulation error grows ~sqrt(n) ulp.
    testing::expect_close(s, ref, 1e-3, 1e-4, "sum_to " + shape_str(target));
  }
}

TEST(Elementwise, MismatchedShapesNameTheOpAndBothShapes) {
  try {
    Tensor::ones({2, 3}) + Tensor::ones({4});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("add"), std::string::npos) << m;
    EXPECT_NE(m.find("[2, 3]"), std::string::npos) << m;
    EXPECT_NE(m.find("[4]"), std::string::npos) << m;
  }
}

}  // namespace qilin
