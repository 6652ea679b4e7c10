// Pooling against double-precision reference loops (padding, strides, non-square windows,
// adaptive bins that overlap or do not divide the input), ties and NaN in max pooling,
// finite-difference gradients, and shape errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>

#include "core/ops/pool.h"
#include "tests/testing.h"

namespace qilin {
namespace {

enum class Kind { kMax, kAvg };

// Direct definition: windows over the zero-padded input; max ignores padding, avg divides
// by the padded window (clipped to H + pad) or by the in-input count.
std::vector<double> reference_pool(const Tensor& x, const Pool2dParams& p, Kind kind) {
  const int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  const int64_t oh = (h + 2 * p.pad_h - p.kernel_h) / p.stride_h + 1;
  const int64_t ow = (w + 2 * p.pad_w - p.kernel_w) / p.stride_w + 1;
  std::vector<float> xv = x.to_vector();
  std::vector<double> out;
  for (int64_t pl = 0; pl < n * c; ++pl)
    for (int64_t i = 0; i < oh; ++i)
      for (int64_t j = 0; j < ow; ++j) {
        double best = -std::numeric_limits<double>::infinity(), sum = 0;
        int64_t inside = 0, padded = 0;
        for (int64_t a = 0; a < p.kernel_h; ++a)
          for (int64_t b = 0; b < p.kernel_w; ++b) {
            const int64_t ih = i * p.stride_h - p.pad_h + a, iw = j * p.stride_w - p.pad_w + b;
            if (ih < h + p.pad_h && iw < w + p.pad_w) ++padded;
            if (ih < 0 || iw < 0 || ih >= h || iw >= w) continue;
            const double v = xv[(pl * h + ih) * w + iw];
            best = std::max(best, v);
            sum += v;
            ++inside;
          }
        if (kind == Kind::kMax) out.push_back(best);
        else out.push_back(sum / (p.count_include_pad ? padded : inside));
      }
  return out;
}

std::vector<double> reference_adaptive(const Tensor& x, int64_t oh, int64_t ow) {
  const int64_t planes = x.size(0) * x.size(1), h = x.size(2), w = x.size(3);
  std::vector<float> xv = x.to_vector();
  std::vector<double> out;
  for (int64_t pl = 0; pl < planes; ++pl)
    for (int64_t i = 0; i < oh; ++i)
      for (int64_t j = 0; j < ow; ++j) {
        const int64_t h0 = static_cast<int64_t>(std::floor(double(i) * h / oh));
        const int64_t h1 = static_cast<int64_t>(std::ceil(double(i + 1) * h / oh));
        const int64_t w0 = static_cast<int64_t>(std::floor(double(j) * w / ow));
        const int64_t w1 = static_cast<int64_t>(std::ceil(double(j + 1) * w / ow));
        double sum = 0;
        for (int64_t a = h0; a < h1; ++a)
          for (int64_t b = w0; b < w1; ++b) sum += xv[(pl * h + a) * w + b];
        out.push_back(sum / double((h1 - h0) * (w1 - w0)));
      }
  return out;
}

Pool2dParams params(int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t ph, int64_t pw,
                    bool include_pad = true) {
  Pool2dParams p;
  p.kernel_h = kh;
  p.kernel_w = kw;
  p.stride_h = sh;
  p.stride_w = sw;
  p.pad_h = ph;
  p.pad_w = pw;
  p.count_include_pad = include_pad;
  return p;
}

// Distinct values 0.05 apart (shuffled), so a finite-difference step of 1e-3 never changes
// which element of a window is the maximum.
Tensor distinct(const Shape& shape, uint32_t seed) {
  Tensor t = Tensor::empty(shape);
  std::vector<float> v(static_cast<size_t>(t.numel()));
  for (size_t i = 0; i < v.size(); ++i) v[i] = 0.05f * static_cast<float>(i) - 1.0f;
  std::shuffle(v.begin(), v.end(), std::mt19937(seed));
  std::copy(v.begin(), v.end(), t.data<float>());
  return t;
}

const Pool2dParams kWindowCases[] = {
    params(2, 2, 2, 2, 0, 0),        params(3, 3, 2, 2, 1, 1),
    params(3, 3, 1, 1, 1, 1),        params(2, 3, 1, 2, 1, 1),
    params(3, 2, 2, 1, 0, 1, false), params(3, 3, 2, 2, 1, 1, false),
    params(5, 5, 3, 3, 2, 2, false), params(1, 1, 2, 2, 0, 0),
};

std::string describe(const Pool2dParams& p) {
  return "k" + std::to_string(p.kernel_h) + "x" + std::to_string(p.kernel_w) + " s" +
         std::to_string(p.stride_h) + "x" + std::to_string(p.stride_w) + " p" +
         std::to_string(p.pad_h) + "x" + std::to_string(p.pad_w) +
         (p.count_include_pad ? " incl" : " excl");
}

}  // namespace

TEST(MaxPool2d, ForwardMatchesReferenceLoop) {
  Tensor x = testing::uniform({2, 3, 9, 8}, 1);
  for (const Pool2dParams& p : kWindowCases)  // a maximum is exact: no tolerance
    testing::expect_close(max_pool2d(x, p), reference_pool(x, p, Kind::kMax), 0, 0,
                          "max " + describe(p));
}

TEST(AvgPool2d, ForwardMatchesReferenceLoopWithAndWithoutPadInDivisor) {
  Tensor x = testing::uniform({2, 3, 9, 8}, 2);
  for (const Pool2dParams& p : kWindowCases)  // a float sum of <= 25 terms of |x| <= 1
    testing::expect_close(avg_pool2d(x, p), reference_pool(x, p, Kind::kAvg), 1e-6, 1e-6,
                          "avg " + describe(p));
}

TEST(AdaptiveAvgPool2d, ForwardMatchesPyTorchBinsIncludingOverlapsAndUpsampling) {
  Tensor x = testing::uniform({2, 3, 10, 7}, 3);
  const int64_t sizes[][2] = {{1, 1}, {5, 7}, {3, 4}, {4, 3}, {10, 7}, {13, 9}, {6, 5}};
  for (const auto& s : sizes)
    testing::expect_close(adaptive_avg_pool2d(x, s[0], s[1]),
                          reference_adaptive(x, s[0], s[1]), 1e-6, 1e-6,
                          "adaptive " + std::to_string(s[0]) + "x" + std::to_string(s[1]));
}

TEST(MaxPool2d, TiesSendTheGradientToTheFirstMaximum) {
  // x = [5 5 1; 5 5 1; 0 0 0], 2x2 windows at stride 1: each window holds several 5s and
  // PyTorch (strict > in row-major window order) picks the first of them:
  // (0,0) -> x[0,0], (0,1) -> x[0,1], (1,0) -> x[1,0], (1,1) -> x[1,1].
  Tensor x = Tensor::from_vector({5, 5, 1, 5, 5, 1, 0, 0, 0}, {1, 1, 3, 3})
                 .set_requires_grad(true);
  Tensor y = max_pool2d(x, params(2, 2, 1, 1, 0, 0));
  testing::expect_close(y, std::vector<double>{5, 5, 5, 5}, 0, 0, "tie values");
  y.backward(Tensor::from_vector({1, 10, 100, 1000}, {1, 1, 2, 2}));
  testing::expect_close(x.grad(), std::vector<double>{1, 10, 0, 100, 1000, 0, 0, 0, 0}, 0, 0,
                        "tie grad");
  Tensor z = Tensor::from_vector({3, 3, 3, 3}, {1, 1, 2, 2}).set_requires_grad(true);
  max_pool2d(z, params(2, 2, 2, 2, 0, 0)).backward(Tensor::from_vector({1}, {1, 1, 1, 1}));
  testing::expect_close(z.grad(), std::vector<double>{1, 0, 0, 0}, 0, 0, "all equal");
}

TEST(MaxPool2d, NaNPropagates) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  Tensor x = Tensor::from_vector({1, nan, 3, 4}, {1, 1, 2, 2});
  EXPECT_TRUE(std::isnan(max_pool2d(x, params(2, 2, 2, 2, 0, 0)).item()));
}

TEST(Pool2d, BackwardMatchesFiniteDifferences) {
  for (const Pool2dParams& p : kWindowCases) {
    Tensor x = distinct({2, 2, 7, 6}, 4);
    testing::check_gradients([p](const std::vector<Tensor>& in) { return max_pool2d(in[0], p); },
                             {x}, {}, "max " + describe(p));
    testing::check_gradients([p](const std::vector<Tensor>& in) { return avg_pool2d(in[0], p); },
                             {testing::uniform({2, 2, 7, 6}, 5)}, {}, "avg " + describe(p));
  }
  const int64_t sizes[][2] = {{1, 1}, {3, 4}, {9, 5}};
  for (const auto& s : sizes) {
    const int64_t oh = s[0], ow = s[1];
    testing::check_gradients(
        [oh, ow](const std::vector<Tensor>& in) { return adaptive_avg_pool2d(in[0], oh, ow); },
        {testing::uniform({2, 2, 7, 6}, 6)}, {}, "adaptive");
  }
}

TEST(Pool2d, SizeOneAndLargeBatchPlanes) {
  // 1x1 planes with a 1x1 window are the identity; many planes run the parallel path.
  Tensor x = testing::uniform({3, 2, 1, 1}, 7);
  testing::expect_close(max_pool2d(x, params(1, 1, 1, 1, 0, 0)), x, 0, 0, "1x1 max");
  testing::expect_close(adaptive_avg_pool2d(x, 1, 1), x, 0, 0, "1x1 adaptive");
  Tensor big = testing::uniform({64, 64, 8, 8}, 8);
  testing::expect_close(adaptive_avg_pool2d(big, 1, 1), reference_adaptive(big, 1, 1), 1e-6,
                        1e-5, "global average of 64 values");
  testing::expect_close(max_pool2d(big, params(3, 3, 2, 2, 1, 1)),
                        reference_pool(big, params(3, 3, 2, 2, 1, 1), Kind::kMax), 0, 0,
                        "many planes");
}

TEST(Pool2d, BadShapesAndParametersNameTheOp) {
  Tensor x3 = testing::uniform({3, 4, 4}, 9), x = testing::uniform({1, 1, 4, 4}, 9);
  auto expect_error = [](const std::function<void()>& f, const std::string& op) {
    try {
      f();
      ADD_FAILURE() << op << ": no error";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(op), std::string::npos) << e.what();
    }
  };
  expect_error([&] { max_pool2d(x3, params(2, 2, 2, 2, 0, 0)); }, "max_pool2d");
  expect_error([&] { avg_pool2d(x, params(2, 2, 2, 2, 2, 0)); }, "avg_pool2d");       // pad > k/2
  expect_error([&] { max_pool2d(x, params(5, 5, 1, 1, 0, 0)); }, "max_pool2d");       // k > input
  expect_error([&] { avg_pool2d(x, params(2, 2, 0, 2, 0, 0)); }, "avg_pool2d");       // stride 0
  expect_error([&] { adaptive_avg_pool2d(x, 0, 2); }, "adaptive_avg_pool2d");
  expect_error([&] { adaptive_avg_pool2d(x3, 1, 1); }, "adaptive_avg_pool2d");
}

}  // namespace qilin
