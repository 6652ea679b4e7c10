// conv2d against a double-precision loop over the definition (forward, and the input,
// weight and bias gradients of L = sum(y * gy)), finite-difference gradients, determinism of
// the weight gradient, and shape errors. Every numeric test runs once per implementation
// (kernels/cpu/conv.h: im2col + Highway GEMM, and oneDNN), switched through the process
// default the op front-end uses.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <functional>
#include <string>

#include "core/ops/conv.h"
#include "hwy/targets.h"
#include "kernels/cpu/conv.h"
#include "tests/testing.h"

namespace qilin {
namespace {

struct Case {
  int64_t n, c, h, w, o, kh, kw;
  Conv2dParams p;
  bool bias;
  std::string name;
};

Conv2dParams params(int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t groups = 1) {
  Conv2dParams p;
  p.stride_h = sh;
  p.stride_w = sw;
  p.pad_h = ph;
  p.pad_w = pw;
  p.groups = groups;
  return p;
}

const Case kCases[] = {
    {2, 3, 7, 6, 4, 3, 3, params(1, 1, 1, 1), true, "3x3 pad 1"},
    {2, 3, 8, 7, 5, 3, 3, params(2, 2, 1, 1), true, "3x3 stride 2 pad 1"},
    {2, 4, 6, 6, 6, 3, 3, params(1, 1, 1, 1, 2), true, "groups 2"},
    {2, 4, 7, 7, 4, 3, 3, params(1, 1, 1, 1, 4), true, "depthwise"},
    {2, 3, 7, 8, 6, 3, 3, params(2, 2, 1, 1, 3), true, "depthwise x2 stride 2"},
    {2, 5, 5, 5, 3, 1, 1, params(1, 1, 0, 0), true, "1x1"},
    {2, 3, 24, 24, 2, 1, 1, params(1, 1, 0, 0), true, "1x1 large plane (no im2col)"},
    {2, 4, 9, 9, 6, 1, 1, params(2, 2, 0, 0), false, "1x1 stride 2"},
    {2, 3, 6, 9, 4, 2, 3, params(2, 1, 0, 1), true, "2x3 kernel, stride 2x1, pad 0x1"},
    {1, 2, 5, 4, 3, 5, 4, params(1, 1, 0, 0), true, "kernel = input"},
    {3, 2, 4, 4, 2, 3, 3, params(3, 3, 2, 2), true, "stride 3 pad 2"},
    {13, 6, 7, 7, 4, 3, 3, params(1, 1, 1, 1), false, "batch in chunks, last partial"},
    {3, 1, 28, 28, 4, 3, 3, params(1, 1, 1, 1), false, "one input channel, 28x28"},
    // Channel counts of 16 and more: oneDNN's blocked (16-channel) kernels, full blocks and
    // tails; ResNet-20's shapes at a small batch.
    {3, 1, 28, 28, 16, 3, 3, params(1, 1, 1, 1), false, "resnet stem 1->16"},
    {2, 16, 14, 14, 32, 3, 3, params(2, 2, 1, 1), false, "resnet 16->32 stride 2"},
    {2, 16, 14, 14, 32, 1, 1, params(2, 2, 0, 0), false, "resnet downsample 1x1 16->32"},
    {3, 32, 7, 7, 32, 3, 3, params(1, 1, 1, 1), true, "32->32 7x7"},
    {2, 20, 9, 9, 24, 3, 3, params(1, 1, 1, 1), true, "20->24, channel tails"},
    {2, 32, 8, 8, 32, 3, 3, params(1, 1, 1, 1, 32), true, "depthwise 32"},
    {2, 32, 6, 6, 48, 3, 3, params(1, 1, 1, 1, 16), true, "groups 16, 2->3 per group"},
};

// Forward: a sum of cg*kh*kw products of values in [-1, 1], accumulated in float32 in
// some order; each addition errs by at most half an ulp of a partial sum (|.| <= terms), so
// 2e-7 * terms bounds the rounding (1e-5 at least). Gradients: dx has og*kh*kw terms per
// element, dw and db up to n*oh*ow; same bound.
double forward_atol(const Case& k) {
  return std::max(1e-5, 2e-7 * static_cast<double>(k.c / k.p.groups * k.kh * k.kw));
}
double grad_atol(int64_t terms) {
  return std::max(1e-4, 2e-7 * static_cast<double>(terms));
}

struct Reference {
  std::vector<double> y, dx, dw, db;
};

// The definition, in double: y[n,o,i,j] = b[o] + sum_{c,a,b} w[o,c,a,b] x[n, g*cg + c,
// i*sh - ph + a, j*sw - pw + b]; the gradients of L = sum(y * gy) follow term by term.
Reference reference(const Tensor& x, const Tensor& w, const Tensor& b, const Conv2dParams& p,
                    const Tensor& gy) {
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  const int64_t O = w.size(0), CG = w.size(1), KH = w.size(2), KW = w.size(3);
  const int64_t OG = O / p.groups;
  const int64_t OH = (H + 2 * p.pad_h - KH) / p.stride_h + 1;
  const int64_t OW = (W + 2 * p.pad_w - KW) / p.stride_w + 1;
  std::vector<float> xv = x.to_vector(), wv = w.to_vector(), gv;
  if (gy.defined()) gv = gy.to_vector();
  Reference r;
  r.y.assign(N * O * OH * OW, 0.0);
  r.dx.assign(xv.size(), 0.0);
  r.dw.assign(wv.size(), 0.0);
  r.db.assign(O, 0.0);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t o = 0; o < O; ++o)
      for (int64_t i = 0; i < OH; ++i)
        for (int64_t j = 0; j < OW; ++j) {
          const int64_t yi = ((n * O + o) * OH + i) * OW + j;
          const double g = gv.empty() ? 0.0 : gv[yi];
          double s = b.defined() ? b.to_vector()[o] : 0.0;
          r.db[o] += g;
          for (int64_t c = 0; c < CG; ++c)
            for (int64_t a = 0; a < KH; ++a)
              for (int64_t bb = 0; bb < KW; ++bb) {
                const int64_t ih = i * p.stride_h - p.pad_h + a, iw = j * p.stride_w - p.pad_w + bb;
                if (ih < 0 || iw < 0 || ih >= H || iw >= W) continue;
                const int64_t xi = ((n * C + (o / OG) * CG + c) * H + ih) * W + iw;
                const int64_t wi = ((o * CG + c) * KH + a) * KW + bb;
                s += static_cast<double>(wv[wi]) * xv[xi];
                r.dx[xi] += static_cast<double>(wv[wi]) * g;
                r.dw[wi] += static_cast<double>(xv[xi]) * g;
              }
          r.y[yi] = s;
        }
  return r;
}

struct Inputs {
  Tensor x, w, b;
};
Inputs make_inputs(const Case& k, uint32_t seed) {
  Inputs in;
  in.x = testing::uniform({k.n, k.c, k.h, k.w}, seed);
  in.w = testing::uniform({k.o, k.c / k.p.groups, k.kh, k.kw}, seed + 1);
  if (k.bias) in.b = testing::uniform({k.o}, seed + 2);
  return in;
}

using kernels::cpu::ConvImpl;

std::string impl_name(ConvImpl impl) { return impl == ConvImpl::kOneDnn ? "onednn" : "im2col"; }

// Runs `body` once per SIMD target this CPU has (AVX-512, AVX2), dispatch restricted to it,
// for im2col (its GEMM micro-kernels have a different register tile per target); once for
// oneDNN (which picks its own ISA, and only once per process).
void for_each_simd_target(ConvImpl impl, const std::function<void(const std::string&)>& body) {
  if (impl == ConvImpl::kOneDnn) return body("onednn");
  hwy::SetSupportedTargetsForTest(0);  // the real CPU
  const int64_t supported = hwy::SupportedTargets();
  for (int64_t t : {HWY_AVX3, HWY_AVX2}) {
    if (!(supported & t)) continue;
    hwy::SetSupportedTargetsForTest(t);
    body(std::string("im2col ") + hwy::TargetName(t));
  }
  hwy::SetSupportedTargetsForTest(0);
}

// Each test runs with the process default set to its implementation, restored after.
class Conv2d : public ::testing::TestWithParam<ConvImpl> {
 protected:
  void SetUp() override {
    saved_ = kernels::cpu::default_conv_impl();
    kernels::cpu::set_default_conv_impl(GetParam());
  }
  void TearDown() override { kernels::cpu::set_default_conv_impl(saved_); }

 private:
  ConvImpl saved_ = ConvImpl::kOneDnn;
};

// The weight and bias gradients of conv2d(x, w0, b0) for gy, 3x3 pad 1, at `threads` threads.
std::vector<float> weight_and_bias_grad(const Tensor& x, const Tensor& w0, const Tensor& b0,
                                        const Tensor& gy, int threads) {
  const int saved = omp_get_max_threads();
  omp_set_num_threads(threads);
  Tensor w = w0.detach().set_requires_grad(true), b = b0.detach().set_requires_grad(true);
  conv2d(x, w, b, params(1, 1, 1, 1)).backward(gy);
  omp_set_num_threads(saved);
  std::vector<float> out = w.grad().to_vector(), db = b.grad().to_vector();
  out.insert(out.end(), db.begin(), db.end());
  return out;
}

}  // namespace

INSTANTIATE_TEST_SUITE_P(Impl, Conv2d, ::testing::Values(ConvImpl::kIm2col, ConvImpl::kOneDnn),
                         [](const ::testing::TestParamInfo<ConvImpl>& info) {
                           return impl_name(info.param);
                         });

TEST_P(Conv2d, ForwardMatchesDoubleReference) {
  for_each_simd_target(GetParam(), [](const std::string& target) {
  for (const Case& k : kCases) {
    Inputs in = make_inputs(k, 10);
    Tensor y = conv2d(in.x, in.w, in.b, k.p);
    testing::expect_close(y, reference(in.x, in.w, in.b, k.p, Tensor()).y, forward_atol(k),
                          1e-5, target + " " + k.name);
  }
  });
}

TEST_P(Conv2d, GradientsMatchDoubleReference) {
  for_each_simd_target(GetParam(), [](const std::string& target) {
  for (const Case& k : kCases) {
    Inputs in = make_inputs(k, 20);
    Tensor x = in.x.detach().set_requires_grad(true);
    Tensor w = in.w.detach().set_requires_grad(true);
    Tensor b = k.bias ? in.b.detach().set_requires_grad(true) : Tensor();
    Tensor y = conv2d(x, w, b, k.p);
    Tensor gy = testing::uniform(y.shape(), 21);
    y.backward(gy);
    Reference r = reference(in.x, in.w, in.b, k.p, gy);
    // dx: <= O*KH*KW terms; dw and db: up to N*OH*OW (= 2352) terms of |.| <= 1, summed in
    // float32 in blocks: a few 1e-5 absolute at most (see grad_atol).
    const int64_t batch_terms = k.n * y.size(2) * y.size(3);
    testing::expect_close(x.grad(), r.dx, grad_atol(k.o / k.p.groups * k.kh * k.kw), 1e-5,
                          target + " " + k.name + " dx");
    testing::expect_close(w.grad(), r.dw, grad_atol(batch_terms), 1e-5,
                          target + " " + k.name + " dw");
    if (k.bias)
      testing::expect_close(b.grad(), r.db, grad_atol(batch_terms), 1e-5,
                            target + " " + k.name + " db");
  }
  });
}

TEST_P(Conv2d, BackwardMatchesFiniteDifferences) {
  for (const Case& k : kCases) {
    if (k.n * k.c * k.h * k.w > 600) continue;  // the larger cases are covered by the reference
    Inputs in = make_inputs(k, 30);
    std::vector<Tensor> inputs{in.x, in.w};
    if (k.bias) inputs.push_back(in.b);
    const Conv2dParams p = k.p;
    testing::check_gradients(
        [p](const std::vector<Tensor>& t) {
          return conv2d(t[0], t[1], t.size() > 2 ? t[2] : Tensor(), p);
        },
        inputs, {}, k.name);
  }
}

TEST_P(Conv2d, OnlyTheNeededGradientsAreComputed) {
  // Frozen weight: only dx; frozen input (e.g. the image): only dw and db.
  Case k = kCases[1];
  Inputs in = make_inputs(k, 40);
  Tensor x = in.x.detach().set_requires_grad(true);
  conv2d(x, in.w, in.b, k.p).backward(testing::uniform({2, 5, 4, 4}, 41));
  EXPECT_TRUE(x.grad().defined());
  Tensor w = in.w.detach().set_requires_grad(true);
  conv2d(in.x, w, Tensor(), k.p).backward(testing::uniform({2, 5, 4, 4}, 41));
  EXPECT_TRUE(w.grad().defined());
  EXPECT_FALSE(in.x.grad().defined());
}

TEST_P(Conv2d, BiasGradientAloneMatchesReference) {
  // Frozen x and weight: the kernel gets no dw and no x, only dy for dbias.
  Case k = kCases[12];
  Inputs in = make_inputs(k, 45);
  Tensor b = testing::uniform({k.o}, 46).set_requires_grad(true);
  Tensor y = conv2d(in.x, in.w, b, k.p);
  Tensor gy = testing::uniform(y.shape(), 47);
  y.backward(gy);
  EXPECT_FALSE(in.w.grad().defined());
  testing::expect_close(b.grad(), reference(in.x, in.w, b, k.p, gy).db, 1e-4, 1e-5, k.name);
}

TEST_P(Conv2d, WeightGradientRepeatsBitForBitAtAFixedThreadCount) {
  // ResNet-20's stage-3 shape (7x7 planes, batched into chunks by im2col).
  Tensor x = testing::uniform({40, 16, 7, 7}, 50);
  Tensor w0 = testing::uniform({16, 16, 3, 3}, 51), b0 = testing::uniform({16}, 52);
  Tensor gy = testing::uniform({40, 16, 7, 7}, 53);
  for (int threads : {1, 2}) {
    const std::vector<float> first = weight_and_bias_grad(x, w0, b0, gy, threads);
    for (int run = 0; run < 3; ++run)
      EXPECT_EQ(weight_and_bias_grad(x, w0, b0, gy, threads), first) << threads << " threads";
  }
}

TEST_P(Conv2d, WeightGradientAcrossThreadCounts) {
  // im2col sums fixed-size chunk partials in chunk order: one and two threads agree bit for
  // bit. oneDNN splits the batch reduction by thread count, so its sums differ in rounding
  // only: 1960 terms of |.| <= 1 summed in two orders (partial sums of |.| up to ~40, and
  // results that cancel to ~0.2) differ by up to 5e-5 as measured; allowed: the bound
  // grad_atol gives the reference test for 1960 terms (4e-4), far below any indexing error.
  Tensor x = testing::uniform({40, 16, 7, 7}, 50);
  Tensor w0 = testing::uniform({16, 16, 3, 3}, 51), b0 = testing::uniform({16}, 52);
  Tensor gy = testing::uniform({40, 16, 7, 7}, 53);
  const std::vector<float> one = weight_and_bias_grad(x, w0, b0, gy, 1);
  const std::vector<float> two = weight_and_bias_grad(x, w0, b0, gy, 2);
  if (GetParam() == ConvImpl::kIm2col) {
    EXPECT_EQ(one, two);
  } else {
    ASSERT_EQ(one.size(), two.size());
    const double atol = grad_atol(40 * 7 * 7);
    for (size_t i = 0; i < one.size(); ++i) EXPECT_NEAR(one[i], two[i], atol) << "element " << i;
  }
}

TEST_P(Conv2d, BadShapesNameTheOpAndShapes) {
  Tensor x = testing::uniform({2, 4, 5, 5}, 60);
  auto expect_error = [](const std::function<void()>& f, const std::string& needle) {
    try {
      f();
      ADD_FAILURE() << "no error, expected one mentioning " << needle;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("conv2d"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_error([&] { conv2d(testing::uniform({4, 5, 5}, 1), testing::uniform({3, 4, 3, 3}, 2),
                            Tensor()); }, "[4, 5, 5]");
  expect_error([&] { conv2d(x, testing::uniform({3, 3, 3, 3}, 2), Tensor()); }, "[3, 3, 3, 3]");
  expect_error([&] { conv2d(x, testing::uniform({3, 2, 3, 3}, 2), Tensor(), params(1, 1, 0, 0, 2)); },
               "groups = 2");
  expect_error([&] { conv2d(x, testing::uniform({4, 4, 7, 7}, 2), Tensor()); }, "7x7");
  expect_error([&] { conv2d(x, testing::uniform({4, 4, 3, 3}, 2), testing::uniform({5}, 3)); },
               "bias");
  expect_error([&] { conv2d(x, testing::uniform({4, 4, 3, 3}, 2), Tensor(), params(0, 1, 0, 0)); },
               "stride");
}

}  // namespace qilin
