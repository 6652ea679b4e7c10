// Layer norm and 2-D batch norm: forward and all three gradients against double-precision
// loops (incl. sizes that take the parallel paths), finite differences, PyTorch values for
// the running-statistics rules, and errors naming bad shapes. Also BatchNorm2d folded into
// the Conv2d before it (quant.fold_bn): the folded conv against conv then eval BN in double.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "core/autograd.h"
#include "core/ops/norm.h"
#include "layers/conv.h"
#include "layers/norm.h"
#include "layers/sequential.h"
#include "tests/testing.h"

namespace qilin {
namespace {

struct LayerNormRef {
  std::vector<double> y, dx, dw, db;
};

// Double reference of layer norm over the last dim and its gradients for upstream dy.
LayerNormRef ref_layer_norm(const Tensor& x, const Tensor& w, const Tensor& b, float eps,
                            const Tensor& dy) {
  const int64_t cols = x.size(-1), rows = x.numel() / cols;
  std::vector<float> xv = x.to_vector(), dyv = dy.to_vector();
  std::vector<float> wv = w.defined() ? w.to_vector() : std::vector<float>(cols, 1.0f);
  std::vector<float> bv = b.defined() ? b.to_vector() : std::vector<float>(cols, 0.0f);
  LayerNormRef r{std::vector<double>(xv.size()), std::vector<double>(xv.size()),
                 std::vector<double>(cols), std::vector<double>(cols)};
  for (int64_t i = 0; i < rows; ++i) {
    const float* xr = xv.data() + i * cols;
    const float* dyr = dyv.data() + i * cols;
    double mu = 0, var = 0;
    for (int64_t c = 0; c < cols; ++c) mu += xr[c];
    mu /= cols;
    for (int64_t c = 0; c < cols; ++c) var += (xr[c] - mu) * (xr[c] - mu);
    var /= cols;
    const double rs = 1 / std::sqrt(var + eps);
    double mean_g = 0, mean_g_xhat = 0;
    for (int64_t c = 0; c < cols; ++c) {
      const double xhat = (xr[c] - mu) * rs;
      r.y[i * cols + c] = xhat * wv[c] + bv[c];
      r.dw[c] += dyr[c] * xhat;
      r.db[c] += dyr[c];
      mean_g += dyr[c] * wv[c] / cols;
      mean_g_xhat += dyr[c] * wv[c] * xhat / cols;
    }
    for (int64_t c = 0; c < cols; ++c) {
      const double xhat = (xr[c] - mu) * rs;
      r.dx[i * cols + c] = rs * (dyr[c] * wv[c] - mean_g - xhat * mean_g_xhat);
    }
  }
  return r;
}

// Double reference of training-mode batch norm: y, and the batch mean / unbiased variance.
void ref_batch_norm_train(const Tensor& x, const std::vector<float>& w,
                          const std::vector<float>& b, float eps, std::vector<double>* y,
                          std::vector<double>* mean, std::vector<double>* unbiased_var) {
  const int64_t n = x.size(0), ch = x.size(1), hw = x.size(2) * x.size(3);
  std::vector<float> xv = x.to_vector();
  y->assign(xv.size(), 0);
  mean->assign(ch, 0);
  unbiased_var->assign(ch, 0);
  for (int64_t c = 0; c < ch; ++c) {
    double mu = 0, sq = 0;
    for (int64_t i = 0; i < n; ++i)
      for (int64_t k = 0; k < hw; ++k) mu += xv[(i * ch + c) * hw + k];
    mu /= n * hw;
    for (int64_t i = 0; i < n; ++i)
      for (int64_t k = 0; k < hw; ++k) sq += std::pow(xv[(i * ch + c) * hw + k] - mu, 2);
    const double rs = 1 / std::sqrt(sq / (n * hw) + eps);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t k = 0; k < hw; ++k) {
        const int64_t j = (i * ch + c) * hw + k;
        (*y)[j] = (xv[j] - mu) * rs * w[c] + b[c];
      }
    (*mean)[c] = mu;
    (*unbiased_var)[c] = sq / (n * hw - 1);
  }
}

// x [2, 3, 2, 2] = sin(0.3 i) (c + 1) + c for flat index i: the input of the PyTorch values.
Tensor sine_images() {
  std::vector<float> v;
  for (int i = 0; i < 24; ++i) {
    const int c = (i / 4) % 3;
    v.push_back(static_cast<float>(std::sin(0.3 * i) * (c + 1) + c));
  }
  return Tensor::from_vector(v, {2, 3, 2, 2});
}

}  // namespace

TEST(LayerNorm, ForwardAndGradientsMatchDoubleReference) {
  struct Case {
    Shape shape;
    bool affine;
    float offset;
  };
  // [600, 64] and [40, 1000] take the parallel paths (per-thread dweight/dbias partials).
  for (const Case& c : {Case{{4, 64}, true, 0}, Case{{2, 3, 17}, true, 0}, Case{{7, 9}, false, 0}, Case{{6, 2}, true, 0},
                        Case{{600, 64}, true, 0}, Case{{40, 1000}, true, 0},
                        Case{{5, 33}, true, 30.0f}}) {
    const int64_t cols = c.shape.back();
    Tensor x = testing::uniform(c.shape, 1, -2.0f, 2.0f) + c.offset;
    Tensor w = c.affine ? testing::uniform({cols}, 2, 0.5f, 1.5f) : Tensor();
    Tensor b = c.affine ? testing::uniform({cols}, 3) : Tensor();
    Tensor dy = testing::uniform(c.shape, 4);
    if (w.defined()) w.set_requires_grad(true);
    if (b.defined()) b.set_requires_grad(true);
    x.set_requires_grad(true);
    Tensor y = layer_norm(x, w, b, 1e-5f);
    y.backward(dy);
    LayerNormRef ref = ref_layer_norm(x, w, b, 1e-5f, dy);
    const std::string what = shape_str(c.shape) + (c.affine ? " affine" : "") +
                             (c.offset != 0 ? " offset 30" : "");
    // Float32 sums of up to 1000 terms and one rsqrt: |xhat| <= ~3 carries ~1e-6 absolute
    // error. With an offset of 30, x itself is only known to 2e-6 (its ulp) relative to a
    // spread of 4: the mean then carries ~4e-6 of absolute error into xhat.
    const double atol = c.offset != 0 ? 2e-5 : 4e-6;
    testing::expect_close(y, ref.y, atol, 1e-6, "y " + what);
    testing::expect_close(x.grad(), ref.dx, 4 * atol, 1e-5, "dx " + what);
    if (c.affine) {
      // Sums over up to 600 rows of O(1) terms: float accumulation, ~1e-5 relative.
      testing::expect_close(w.grad(), ref.dw, 1e-4, 1e-5, "dweight " + what);
      testing::expect_close(b.grad(), ref.db, 1e-4, 1e-5, "dbias " + what);
    }
  }
}

TEST(LayerNorm, BackwardMatchesFiniteDifferences) {
  // (Two columns is covered by the double reference above: there xhat = +-d / sqrt(d^2 + 4 eps)
  // bends on the scale sqrt(eps), too sharply for a finite-difference step of 1e-3.)
  for (const Shape& shape : {Shape{3, 5}, Shape{2, 2, 7}, Shape{4, 3}}) {
    const int64_t cols = shape.back();
    Tensor x = testing::uniform(shape, 5, -2.0f, 2.0f);
    Tensor w = testing::uniform({cols}, 6, 0.5f, 1.5f), b = testing::uniform({cols}, 7);
    testing::check_gradients(
        [](const std::vector<Tensor>& in) { return layer_norm(in[0], in[1], in[2], 1e-5f); },
        {x, w, b}, {}, "layer_norm " + shape_str(shape));
    testing::check_gradients(
        [](const std::vector<Tensor>& in) { return layer_norm(in[0], Tensor(), Tensor(), 1e-5f); },
        {x}, {}, "layer_norm no affine " + shape_str(shape));
  }
}

TEST(LayerNorm, MatchesPyTorch) {
  // /usr/bin/python3 (torch 1.13):
  //   x = torch.tensor([[1., 2., 4.], [-3., 0.5, 0.5]])
  //   F.layer_norm(x, (3,), torch.tensor([1., 2., -1.]), torch.tensor([0., 0.5, 1.]), 1e-5)
  //   print(["%.8g" % v for v in _.flatten().tolist()])
  Tensor x = Tensor::from_vector({1, 2, 4, -3, 0.5f, 0.5f}, {2, 3});
  Tensor y = layer_norm(x, Tensor::from_vector({1, 2, -1}, {3}),
                        Tensor::from_vector({0, 0.5f, 1}, {3}), 1e-5f);
  testing::expect_close(
      y, {-1.0690414, -0.034520626, -0.3363018, -1.4142108, 1.9142108, 0.2928946}, 1e-6, 1e-6,
      "layer_norm");
}

TEST(LayerNorm, BadParameterShapeNamesBothShapes) {
  try {
    layer_norm(Tensor::ones({4, 8}), Tensor::ones({6}), Tensor(), 1e-5f);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("layer_norm"), std::string::npos) << m;
    EXPECT_NE(m.find("[4, 8]"), std::string::npos) << m;
    EXPECT_NE(m.find("[6]"), std::string::npos) << m;
  }
}

TEST(BatchNorm2d, TrainingForwardAndRunningStatsMatchDoubleReference) {
  // [64, 16, 14, 14]: channels split across threads, 12544 values per channel.
  for (const Shape& shape : {Shape{4, 3, 5, 5}, Shape{64, 16, 14, 14}, Shape{2, 1, 1, 3}}) {
    const int64_t ch = shape[1];
    Tensor x = testing::uniform(shape, 8, -1.0f, 3.0f);
    Tensor w = testing::uniform({ch}, 9, 0.5f, 1.5f), b = testing::uniform({ch}, 10);
    Tensor rm = Tensor::zeros({ch}), rv = Tensor::ones({ch});
    Tensor y = batch_norm2d(x, w, b, rm, rv, true, 0.1f, 1e-5f);
    std::vector<double> ref_y, mean, var;
    ref_batch_norm_train(x, w.to_vector(), b.to_vector(), 1e-5f, &ref_y, &mean, &var);
    const std::string what = shape_str(shape);
    // Channel sums are double over float plane sums: a few 1e-7 relative on mean and var.
    testing::expect_close(y, ref_y, 4e-6, 1e-6, "y " + what);
    std::vector<double> ref_rm, ref_rv;
    for (int64_t c = 0; c < ch; ++c) {
      ref_rm.push_back(0.1 * mean[c]);
      ref_rv.push_back(0.9 + 0.1 * var[c]);
    }
    testing::expect_close(rm, ref_rm, 1e-7, 1e-6, "running_mean " + what);
    testing::expect_close(rv, ref_rv, 1e-7, 1e-6, "running_var " + what);
  }
}

TEST(BatchNorm2d, RunningStatsAndEvalMatchPyTorch) {
  // /usr/bin/python3 (torch 1.13):
  //   x = torch.tensor([[[[math.sin(0.3 * (((n * 3 + c) * 2 + h) * 2 + w)) * (c + 1) + c
  //        for w in range(2)] for h in range(2)] for c in range(3)] for n in range(2)])
  //   for mom in (0.1, None):
  //       bn = torch.nn.BatchNorm2d(3, momentum=mom)
  //       bn.weight <- [0.5, 1.5, -1.0]; bn.bias <- [0.1, -0.2, 0.3]
  //       bn.train(); y1 = bn(x); bn(2 * x + 1)
  //       print(bn.running_mean, bn.running_var); bn.eval(); print(bn(x)[0, :, 0, 0])
  //   print(y1[1, :, 1, 1])
  struct Expected {
    float momentum;  // < 0: None
    std::vector<double> running_mean, running_var, eval_y;
  };
  const Expected expected[] = {
      {0.1f,
       {0.051573526, 0.42778423, 0.86635369},
       {1.0326511, 2.5664814, 1.330794},
       {0.074624307, 2.0811353, -2.439271}},
      {-1.0f,
       {0.24951822, 2.1954355, 4.4638982},
       {1.1359752, 8.9616404, 2.6571121},
       {-0.017053908, 0.13503593, 0.56839901}},
  };
  Tensor x = sine_images();
  Tensor w = Tensor::from_vector({0.5f, 1.5f, -1.0f}, {3});
  Tensor b = Tensor::from_vector({0.1f, -0.2f, 0.3f}, {3});
  for (const Expected& e : expected) {
    Tensor rm = Tensor::zeros({3}), rv = Tensor::ones({3});
    Tensor y1 = batch_norm2d(x, w, b, rm, rv, true, e.momentum, 1e-5f, 0);
    batch_norm2d(2.0f * x + 1.0f, w, b, rm, rv, true, e.momentum, 1e-5f, 1);
    const std::string what = "momentum " + std::to_string(e.momentum);
    testing::expect_close(rm, e.running_mean, 1e-6, 1e-6, "running_mean " + what);
    testing::expect_close(rv, e.running_var, 1e-6, 1e-6, "running_var " + what);
    std::vector<float> ye = batch_norm2d(x, w, b, rm, rv, false, e.momentum, 1e-5f).to_vector();
    testing::expect_close(Tensor::from_vector({ye[0], ye[4], ye[8]}, {3}), e.eval_y, 1e-6, 1e-6,
                          "eval " + what);
    std::vector<float> yv = y1.to_vector();
    // y1[1, :, 1, 1]: flat index ((1 * 3 + c) * 2 + 1) * 2 + 1.
    testing::expect_close(Tensor::from_vector({yv[15], yv[19], yv[23]}, {3}),
                          {-0.54271984, -1.2431679, -0.83309877}, 1e-6, 1e-6, "train " + what);
  }
}

TEST(BatchNorm2d, TrainingBackwardMatchesFiniteDifferences) {
  Tensor x = testing::uniform({3, 2, 2, 3}, 11, -2.0f, 2.0f);
  Tensor w = testing::uniform({2}, 12, 0.5f, 1.5f), b = testing::uniform({2}, 13);
  testing::check_gradients(
      [](const std::vector<Tensor>& in) {
        return batch_norm2d(in[0], in[1], in[2], Tensor::zeros({2}), Tensor::ones({2}), true,
                            0.1f, 1e-5f);
      },
      {x, w, b}, {}, "batch_norm2d train");
  testing::check_gradients(
      [](const std::vector<Tensor>& in) {
        return batch_norm2d(in[0], Tensor(), Tensor(), Tensor(), Tensor(), true, 0.1f, 1e-5f);
      },
      {x}, {}, "batch_norm2d train, no affine, no running stats");
}

TEST(BatchNorm2d, EvalBackwardMatchesFiniteDifferences) {
  Tensor x = testing::uniform({2, 3, 2, 2}, 14, -2.0f, 2.0f);
  Tensor w = testing::uniform({3}, 15, 0.5f, 1.5f), b = testing::uniform({3}, 16);
  Tensor rm = testing::uniform({3}, 17), rv = testing::uniform({3}, 18, 0.5f, 2.0f);
  testing::check_gradients(
      [rm, rv](const std::vector<Tensor>& in) {
        return batch_norm2d(in[0], in[1], in[2], rm, rv, false, 0.1f, 1e-5f);
      },
      {x, w, b}, {}, "batch_norm2d eval");
}

TEST(BatchNorm2d, LargeTrainingGradientsMatchDoubleReference) {
  // [32, 8, 12, 12]: the parallel path; dx = w rstd (dy - mean dy - xhat mean(dy xhat)).
  Tensor x = testing::uniform({32, 8, 12, 12}, 19, -1.0f, 2.0f);
  Tensor w = testing::uniform({8}, 20, 0.5f, 1.5f), b = testing::uniform({8}, 21);
  Tensor dy = testing::uniform(x.shape(), 22);
  x.set_requires_grad(true);
  w.set_requires_grad(true);
  b.set_requires_grad(true);
  batch_norm2d(x, w, b, Tensor(), Tensor(), true, 0.1f, 1e-5f).backward(dy);
  const int64_t n = 32, ch = 8, hw = 144, count = n * hw;
  std::vector<float> xv = x.to_vector(), dyv = dy.to_vector(), wv = w.to_vector();
  std::vector<double> dx(xv.size()), dw(ch), db(ch);
  for (int64_t c = 0; c < ch; ++c) {
    double mu = 0, sq = 0, sdy = 0, sdyx = 0;
    auto at = [&](int64_t i, int64_t k) { return (i * ch + c) * hw + k; };
    for (int64_t i = 0; i < n; ++i)
      for (int64_t k = 0; k < hw; ++k) mu += xv[at(i, k)] / count;
    for (int64_t i = 0; i < n; ++i)
      for (int64_t k = 0; k < hw; ++k) sq += std::pow(xv[at(i, k)] - mu, 2);
    const double rs = 1 / std::sqrt(sq / count + 1e-5);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t k = 0; k < hw; ++k) {
        sdy += dyv[at(i, k)];
        sdyx += dyv[at(i, k)] * (xv[at(i, k)] - mu) * rs;
      }
    db[c] = sdy;
    dw[c] = sdyx;
    for (int64_t i = 0; i < n; ++i)
      for (int64_t k = 0; k < hw; ++k) {
        const double xhat = (xv[at(i, k)] - mu) * rs;
        dx[at(i, k)] = wv[c] * rs * (dyv[at(i, k)] - sdy / count - xhat * sdyx / count);
      }
  }
  // Sums of 4608 terms per channel (float within planes, double across): ~1e-6 relative.
  testing::expect_close(x.grad(), dx, 1e-6, 1e-4, "dx");
  testing::expect_close(w.grad(), dw, 1e-4, 1e-5, "dweight");
  testing::expect_close(b.grad(), db, 1e-4, 1e-5, "dbias");
}

TEST(BatchNorm2d, BadInputsAreErrorsNamingTheShapes) {
  Tensor rm = Tensor::zeros({3}), rv = Tensor::ones({3});
  try {
    batch_norm2d(Tensor::ones({2, 4, 3, 3}), Tensor(), Tensor(), rm, rv, true, 0.1f, 1e-5f);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("batch_norm2d"), std::string::npos) << m;
    EXPECT_NE(m.find("[2, 4, 3, 3]"), std::string::npos) << m;
  }
  EXPECT_THROW(batch_norm2d(Tensor::ones({2, 3, 3}), Tensor(), Tensor(), rm, rv, true, 0.1f,
                            1e-5f),
               Error);  // not 4-D
  EXPECT_THROW(batch_norm2d(Tensor::ones({1, 3, 1, 1}), Tensor(), Tensor(), rm, rv, true, 0.1f,
                            1e-5f),
               Error);  // one value per channel
  EXPECT_THROW(batch_norm2d(Tensor::ones({2, 3, 1, 1}), Tensor(), Tensor(), Tensor(), Tensor(),
                            false, 0.1f, 1e-5f),
               Error);  // eval without running stats
}

// ---- BatchNorm2d folded into its Conv2d (quant.fold_bn, DESIGN.md §4.3) ----

namespace {

// Non-trivial eval-mode statistics: gamma of both signs, variances from 0.05 (scale up to
// 1.5 / sqrt(0.05) = 6.7) to 2.
void randomize_batch_norm(BatchNorm2d& bn, uint32_t seed) {
  const int64_t c = bn.num_features();
  NoGradGuard no_grad;
  Tensor(bn.weight()).copy_(testing::uniform({c}, seed, -1.5f, 1.5f));
  Tensor(bn.bias()).copy_(testing::uniform({c}, seed + 1));
  Tensor(bn.running_mean()).copy_(testing::uniform({c}, seed + 2, -0.5f, 0.5f));
  Tensor(bn.running_var()).copy_(testing::uniform({c}, seed + 3, 0.05f, 2.0f));
}

Conv2dSpec fold_spec(int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t padding,
                     int64_t groups, bool bias) {
  Conv2dSpec s;
  s.in_channels = in;
  s.out_channels = out;
  s.kernel = kernel;
  s.stride = stride;
  s.padding = padding;
  s.groups = groups;
  s.bias = bias;
  return s;
}

}  // namespace

TEST(BatchNormFold, FoldedConvEqualsConvThenEvalBatchNorm) {
  const std::pair<Conv2dSpec, const char*> cases[] = {
      {fold_spec(4, 6, 3, 1, 1, 1, false), "3x3 no bias"},
      {fold_spec(4, 6, 3, 2, 1, 2, true), "3x3 stride 2 groups 2 bias"},
      {fold_spec(6, 6, 3, 1, 1, 6, true), "3x3 depthwise bias"},
      {fold_spec(3, 5, 1, 1, 0, 1, false), "1x1 no bias"},
  };
  uint32_t seed = 40;
  for (const auto& [spec, what] : cases) {
    auto conv = std::make_shared<Conv2d>(spec);
    {
      NoGradGuard no_grad;
      Tensor(conv->weight()).copy_(testing::uniform(conv->weight().shape(), seed++));
      if (spec.bias) Tensor(conv->bias()).copy_(testing::uniform({spec.out_channels}, seed++));
    }
    auto bn = std::make_shared<BatchNorm2d>(spec.out_channels, 1e-5f);
    randomize_batch_norm(*bn, seed);
    seed += 4;
    Sequential net;
    net.push_back(conv);
    net.push_back(bn);
    net.eval();
    const Tensor x = testing::uniform({2, spec.in_channels, 7, 6}, seed++);

    // The reference: the unfolded conv's float output through eval BN in double.
    const Tensor conv_out = conv->forward(x);
    const std::vector<float> y0 = conv_out.to_vector(), gamma = bn->weight().to_vector(),
                             beta = bn->bias().to_vector(), mean = bn->running_mean().to_vector(),
                             var = bn->running_var().to_vector();
    const int64_t channels = spec.out_channels, plane = conv_out.size(2) * conv_out.size(3);
    std::vector<double> ref(y0.size());
    for (size_t i = 0; i < y0.size(); ++i) {
      const auto c = static_cast<int64_t>(i) / plane % channels;
      ref[i] = (y0[i] - static_cast<double>(mean[c])) * gamma[c] / std::sqrt(var[c] + 1e-5) + beta[c];
    }
    // Before folding, the layers' own eval path agrees (BN eval kernel in float).
    testing::expect_close(net.forward(x), ref, 1e-5, 1e-5, std::string(what) + " unfolded");

    conv->fold_batch_norm(*bn);
    // Float32 rounding of W' and b' (6e-8 relative) and of the conv's sums (up to 36 products
    // of |w|, |x| <= 1, times a scale <= 6.7: |y| up to ~10 here) in another order than the
    // reference's conv-then-scale: measured worst 4e-6 at |y| = 10.5 (4e-7 relative), so
    // atol 1e-5 plus 1e-5 relative.
    testing::expect_close(net.forward(x), ref, 1e-5, 1e-5, std::string(what) + " folded");
    EXPECT_TRUE(bn->folded());
    EXPECT_TRUE(conv->batch_norm_folded());
    EXPECT_TRUE(conv->spec().bias) << what;
    // The state dict: the conv's weight and (new or folded) bias, nothing of the BN.
    std::vector<std::string> keys;
    for (const auto& e : net.state_dict()) keys.push_back(e.first);
    EXPECT_EQ(keys, (std::vector<std::string>{"0.weight", "0.bias"})) << what;
    EXPECT_EQ(net.named_parameters().size(), 2u) << what;
    EXPECT_TRUE(bn->state_dict().empty());
    EXPECT_TRUE(bn->named_buffers().empty());
    EXPECT_NE(conv->describe().find(", bias, BN folded)"), std::string::npos) << conv->describe();
    EXPECT_NE(bn->describe().find("folded"), std::string::npos) << bn->describe();
  }
}

TEST(BatchNormFold, AFoldedBatchNormIsTheIdentityInTrainingToo) {
  auto conv = std::make_shared<Conv2d>(fold_spec(2, 3, 1, 1, 0, 1, false));
  BatchNorm2d bn(3);
  conv->fold_batch_norm(bn);
  bn.train();
  const Tensor x = testing::uniform({2, 3, 4, 4}, 60);
  const Tensor y = bn.forward(x);
  EXPECT_EQ(y.to_vector(), x.to_vector());
  // Nothing is left to re-estimate or fold again.
  EXPECT_THROW(bn.reset_running_stats(), Error);
  auto other = std::make_shared<Conv2d>(fold_spec(2, 3, 1, 1, 0, 1, false));
  try {
    other->fold_batch_norm(bn);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("already folded"), std::string::npos) << e.what();
  }
}

TEST(BatchNormFold, ChannelMismatchIsAnErrorNamingBothCounts) {
  Conv2d conv(fold_spec(2, 4, 3, 1, 1, 1, false));
  BatchNorm2d bn(5);
  try {
    conv.fold_batch_norm(bn);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("fold_batch_norm"), std::string::npos) << m;
    EXPECT_NE(m.find("4 output channels"), std::string::npos) << m;
    EXPECT_NE(m.find("BatchNorm2d 5"), std::string::npos) << m;
  }
  EXPECT_FALSE(bn.folded());  // nothing changed
  EXPECT_FALSE(conv.bias().defined());
}

}  // namespace qilin
