// The quantized layers (layers/quant.h): forward = the native layer on fake-quantized input and
// weight, the straight-through gradients exactly (DESIGN.md §4.2), the activation observer's
// modes, the factory in real models, what quantization does to a ViT's logits, and the packed
// checkpoint (DESIGN.md §5) round trip and size.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>

#include "core/autograd.h"
#include "core/ops/conv.h"
#include "core/ops/matmul.h"
#include "core/ops/quant.h"
#include "core/random.h"
#include "layers/interp.h"
#include "layers/quant.h"
#include "models/registry.h"
#include "tests/testing.h"
#include "train/run_support.h"

namespace qilin {
namespace {

QuantSpec make_spec(QuantFormat format, std::optional<Qfp8Layout> layout = kQfp8E3M4,
                    BiasMode bias = BiasMode::kAmax, Granularity g = Granularity::kPerTensor,
                    int32_t fixed_bias = 0) {
  QuantSpec s;
  s.format = format;
  s.layout = layout;
  s.bias = bias;
  s.granularity = g;
  s.fixed_bias = fixed_bias;
  return s;
}

// A weight spec and an activation spec, as a config pairs them.
struct Case {
  std::string name;
  QuantSpec weight, activation;
};

std::vector<Case> format_cases() {
  const Granularity pc = Granularity::kPerChannel;
  return {
      {"qfp8 e3m4", make_spec(QuantFormat::kQfp8, kQfp8E3M4, BiasMode::kMse, pc), make_spec(QuantFormat::kQfp8)},
      {"qfp8 e4m3", make_spec(QuantFormat::kQfp8, kQfp8E4M3, BiasMode::kAmax, pc),
       make_spec(QuantFormat::kQfp8, kQfp8E4M3)},
      {"qfp8 auto", make_spec(QuantFormat::kQfp8, std::nullopt, BiasMode::kMse, pc),
       make_spec(QuantFormat::kQfp8, kQfp8E2M5)},
      {"qfp8 e5m2 per tensor", make_spec(QuantFormat::kQfp8, kQfp8E5M2, BiasMode::kMse),
       make_spec(QuantFormat::kQfp8, kQfp8E5M2)},
      {"int8", make_spec(QuantFormat::kInt8, std::nullopt, BiasMode::kAmax, pc), make_spec(QuantFormat::kInt8)},
      {"fp8_e4m3", make_spec(QuantFormat::kFp8E4M3, std::nullopt, BiasMode::kAmax, pc),
       make_spec(QuantFormat::kFp8E4M3)},
      {"fp8_e5m2", make_spec(QuantFormat::kFp8E5M2), make_spec(QuantFormat::kFp8E5M2)},
  };
}

void set_values(const Tensor& target, const Tensor& values) {
  Tensor t = target;
  t.copy_(values);
}

// x fake-quantized by the scalar reference (core/qfp8.h), parameters chosen by the host scan
// choose_quant_params: independent of the layer's vector kernel and its amax fast path.
Tensor reference_fake_quant(const QuantSpec& spec, const Tensor& x, QuantParams* params_out = nullptr) {
  const int64_t channels = spec.granularity == Granularity::kPerChannel ? x.size(0) : 1;
  const int64_t inner = x.numel() / channels;
  QuantParams params = choose_quant_params(spec, x.data<float>(), channels, inner, "reference");
  Tensor y = Tensor::empty(x.shape());
  if (spec.format == QuantFormat::kNone) y.copy_(x);
  else fake_quantize_reference(params, x.data<float>(), y.data<float>(), channels, inner);
  if (params_out) *params_out = params;
  return y;
}

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && std::memcmp(a.raw_data(), b.raw_data(), a.nbytes()) == 0;
}

double max_abs_diff(const Tensor& a, const Tensor& b) {
  double worst = 0;
  for (int64_t i = 0; i < a.numel(); ++i)
    worst = std::max(worst, std::abs(double(a.data<float>()[i]) - b.data<float>()[i]));
  return worst;
}

// ---- forward ----

TEST(QuantLinear, ForwardIsLinearOfTheFakeQuantizedInputAndWeightExactly) {
  const Tensor w = testing::uniform({8, 16}, 1, -0.3f, 0.3f);
  const Tensor b = testing::uniform({8}, 2);
  const Tensor x = testing::uniform({5, 16}, 3, -2.0f, 2.0f);
  for (const Case& c : format_cases()) {
    QuantLinear layer(16, 8, true, c.weight, c.activation, "fc");
    set_values(layer.weight(), w);
    set_values(layer.bias(), b);
    const Tensor y = layer(x);
    const Tensor expected = linear(reference_fake_quant(c.activation, x), reference_fake_quant(c.weight, w), b);
    EXPECT_TRUE(same_bits(y, expected)) << c.name << ": max diff " << max_abs_diff(y, expected);
    EXPECT_GT(max_abs_diff(y, linear(x, w, b)), 0.0) << c.name << ": quantization ran";
  }
  // Format none is the fp32 layer, bit for bit.
  QuantLinear none(16, 8, true, make_spec(QuantFormat::kNone), make_spec(QuantFormat::kNone), "fc");
  Linear native(16, 8, true);
  for (Linear* l : {static_cast<Linear*>(&none), &native}) {
    set_values(l->weight(), w);
    set_values(l->bias(), b);
  }
  EXPECT_TRUE(same_bits(none(x), native(x)));
}

TEST(QuantConv2d, ForwardIsConv2dOfTheFakeQuantizedInputAndWeightExactly) {
  Conv2dSpec cs;
  cs.in_channels = 4;
  cs.out_channels = 6;
  cs.kernel = 3;
  cs.stride = 2;
  cs.padding = 1;
  cs.groups = 2;
  Conv2dParams p;
  p.stride_h = p.stride_w = 2;
  p.pad_h = p.pad_w = 1;
  p.groups = 2;
  const Tensor w = testing::uniform({6, 2, 3, 3}, 4, -0.5f, 0.5f);
  const Tensor b = testing::uniform({6}, 5);
  const Tensor x = testing::uniform({2, 4, 7, 7}, 6, -3.0f, 3.0f);
  for (const Case& c : format_cases()) {
    QuantConv2d layer(cs, c.weight, c.activation, "conv");
    set_values(layer.weight(), w);
    set_values(layer.bias(), b);
    const Tensor y = layer(x);
    const Tensor expected = conv2d(reference_fake_quant(c.activation, x), reference_fake_quant(c.weight, w), b, p);
    EXPECT_TRUE(same_bits(y, expected)) << c.name << ": max diff " << max_abs_diff(y, expected);
  }
  QuantConv2d none(cs, make_spec(QuantFormat::kNone), make_spec(QuantFormat::kNone), "conv");
  Conv2d native(cs);
  for (Conv2d* l : {static_cast<Conv2d*>(&none), &native}) {
    set_values(l->weight(), w);
    set_values(l->bias(), b);
  }
  EXPECT_TRUE(same_bits(none(x), native(x)));
}

// ---- STE gradients ----
// Finite differences see a step function's zero slope (or a jump), not the STE: the claim is
// checked against the explicit STE formulas instead, in double. Fixed biases clip a good part
// of both inputs, so the masks are exercised: e3m4 β 9: max = 1.9375 * 2^-2 = 0.484 for
// weights in [-1, 1]; β 7: max = 1.9375 for inputs in [-3, 3].

double clip_of(const QuantParams& params, int64_t entry) {
  return quant_clip_max(params.channel(params.size() == 1 ? 0 : entry));
}

std::vector<Case> gradient_cases() {
  const Granularity pc = Granularity::kPerChannel;
  return {
      {"qfp8 fixed biases", make_spec(QuantFormat::kQfp8, kQfp8E3M4, BiasMode::kFixed, pc, 9),
       make_spec(QuantFormat::kQfp8, kQfp8E3M4, BiasMode::kFixed, Granularity::kPerTensor, 7)},
      {"qfp8 mse / amax", make_spec(QuantFormat::kQfp8, kQfp8E4M3, BiasMode::kMse, pc),
       make_spec(QuantFormat::kQfp8, kQfp8E4M3)},
      {"int8", make_spec(QuantFormat::kInt8, std::nullopt, BiasMode::kAmax, pc), make_spec(QuantFormat::kInt8)},
  };
}

// Float32 GEMMs over <= 36 terms of magnitude <= 3 against double sums: ~1e-6 apart.
constexpr double kGradAtol = 1e-5, kGradRtol = 1e-5;

TEST(QuantLinear, GradientsAreTheStraightThroughEstimatorExactly) {
  const int64_t N = 6, I = 12, O = 7;
  const Tensor w = testing::uniform({O, I}, 7);
  const Tensor b = testing::uniform({O}, 8);
  for (const Case& c : gradient_cases()) {
    QuantLinear layer(I, O, true, c.weight, c.activation, "fc");
    set_values(layer.weight(), w);
    set_values(layer.bias(), b);
    Tensor x = testing::uniform({N, I}, 9, -3.0f, 3.0f);
    x.set_requires_grad(true);
    const Tensor gy = testing::uniform({N, O}, 10);
    layer(x).backward(gy);

    QuantParams wp, xp;
    const Tensor wq = reference_fake_quant(c.weight, w, &wp), xq = reference_fake_quant(c.activation, x, &xp);
    const float* g = gy.data<float>();
    std::vector<double> dw(O * I), dx(N * I), db(O, 0.0);
    int64_t clipped_w = 0, clipped_x = 0;
    for (int64_t o = 0; o < O; ++o)
      for (int64_t i = 0; i < I; ++i) {
        const bool pass = std::abs(w.data<float>()[o * I + i]) <= clip_of(wp, o);
        clipped_w += !pass;
        double s = 0;
        for (int64_t n = 0; n < N; ++n) s += double(g[n * O + o]) * xq.data<float>()[n * I + i];
        dw[o * I + i] = pass ? s : 0.0;
      }
    for (int64_t n = 0; n < N; ++n)
      for (int64_t i = 0; i < I; ++i) {
        const bool pass = std::abs(x.data<float>()[n * I + i]) <= clip_of(xp, 0);
        clipped_x += !pass;
        double s = 0;
        for (int64_t o = 0; o < O; ++o) s += double(g[n * O + o]) * wq.data<float>()[o * I + i];
        dx[n * I + i] = pass ? s : 0.0;
      }
    for (int64_t n = 0; n < N; ++n)
      for (int64_t o = 0; o < O; ++o) db[o] += g[n * O + o];
    testing::expect_close(layer.weight().grad(), dw, kGradAtol, kGradRtol, c.name + " dW");
    testing::expect_close(x.grad(), dx, kGradAtol, kGradRtol, c.name + " dX");
    testing::expect_close(layer.bias().grad(), db, kGradAtol, kGradRtol, c.name + " db");
    if (c.name == "qfp8 fixed biases") {
      EXPECT_GT(clipped_w, O * I / 4) << "the weight mask is exercised";
      EXPECT_GT(clipped_x, N * I / 8) << "the input mask is exercised";
    }
  }
}

TEST(QuantConv2d, GradientsAreTheStraightThroughEstimatorExactly) {
  const int64_t N = 2, C = 3, H = 6, W = 5, O = 4, K = 3, S = 2, P = 1;
  const int64_t OH = (H + 2 * P - K) / S + 1, OW = (W + 2 * P - K) / S + 1;
  Conv2dSpec cs;
  cs.in_channels = C;
  cs.out_channels = O;
  cs.kernel = K;
  cs.stride = S;
  cs.padding = P;
  const Tensor w = testing::uniform({O, C, K, K}, 11);
  for (const Case& c : gradient_cases()) {
    QuantConv2d layer(cs, c.weight, c.activation, "conv");
    set_values(layer.weight(), w);
    Tensor x = testing::uniform({N, C, H, W}, 12, -3.0f, 3.0f);
    x.set_requires_grad(true);
    const Tensor gy = testing::uniform({N, O, OH, OW}, 13);
    layer(x).backward(gy);

    QuantParams wp, xp;
    const Tensor wq = reference_fake_quant(c.weight, w, &wp), xq = reference_fake_quant(c.activation, x, &xp);
    auto X = [&](const Tensor& t, int64_t n, int64_t ci, int64_t h, int64_t ww) {
      return double(t.data<float>()[((n * C + ci) * H + h) * W + ww]);
    };
    std::vector<double> dw(O * C * K * K, 0.0), dx(N * C * H * W, 0.0);
    for (int64_t n = 0; n < N; ++n)
      for (int64_t o = 0; o < O; ++o)
        for (int64_t oh = 0; oh < OH; ++oh)
          for (int64_t ow = 0; ow < OW; ++ow) {
            const double g = gy.data<float>()[((n * O + o) * OH + oh) * OW + ow];
            for (int64_t ci = 0; ci < C; ++ci)
              for (int64_t kh = 0; kh < K; ++kh)
                for (int64_t kw = 0; kw < K; ++kw) {
                  const int64_t ih = oh * S - P + kh, iw = ow * S - P + kw;
                  if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                  const int64_t wi = ((o * C + ci) * K + kh) * K + kw;
                  dw[wi] += g * X(xq, n, ci, ih, iw);
                  dx[((n * C + ci) * H + ih) * W + iw] += g * wq.data<float>()[wi];
                }
          }
    for (int64_t i = 0; i < O * C * K * K; ++i)
      if (std::abs(w.data<float>()[i]) > clip_of(wp, i / (C * K * K))) dw[i] = 0.0;
    for (int64_t i = 0; i < N * C * H * W; ++i)
      if (std::abs(x.data<float>()[i]) > clip_of(xp, 0)) dx[i] = 0.0;
    testing::expect_close(layer.weight().grad(), dw, kGradAtol, kGradRtol, c.name + " dW");
    testing::expect_close(x.grad(), dx, kGradAtol, kGradRtol, c.name + " dX");
  }
}

// ---- the observer ----

Tensor batch_with_amax(float amax, uint32_t seed) {
  Tensor x = testing::uniform({4, 10}, seed, -0.5f * amax, 0.5f * amax);
  x.data<float>()[7] = -amax;
  return x;
}

TEST(ActivationQuantizer, DynamicModeTakesEachBatchsOwnParameters) {
  ActivationQuantizer q(make_spec(QuantFormat::kQfp8, kQfp8E3M4), "fc input");
  for (float amax : {0.3f, 5.0f, 1.875f}) {
    const Tensor x = batch_with_amax(amax, 1);
    const Tensor y = q(x);
    ASSERT_TRUE(q.last_params().has_value());
    EXPECT_EQ(q.last_params()->betas, std::vector<int32_t>{bias_for_amax(amax, kQfp8E3M4, "x")}) << amax;
    EXPECT_TRUE(same_bits(y, reference_fake_quant(q.spec(), x))) << amax;
  }
  EXPECT_EQ(q.observed_batches(), 0);
  EXPECT_EQ(q.describe(), "qfp8 e3m4 per_tensor amax (dynamic)");
}

// The per-layer SQNR report against core/qfp8.h's double-precision sqnr_db: the input's over
// all metered batches together (sums, not a mean of dB), the weight's with its parameters.
// Tolerance 1e-3 dB: the report sums float32 tensors (relative error ~1e-6 over these sizes).
TEST(QuantSqnr, LayerReportEqualsTheDoublePrecisionReference) {
  const Case c = format_cases()[0];
  QuantLinear layer(10, 32, true, c.weight, c.activation, "fc");
  Generator gen(3);
  Tensor weight = layer.weight();  // shares the layer's storage
  weight.copy_(rand_normal({32, 10}, gen));
  EXPECT_TRUE(std::isnan(quant_sqnr(layer)[0].input_db)) << "nothing metered yet";
  set_activation_metering(layer, true);
  std::vector<float> xs, xqs;
  for (float amax : {0.3f, 5.0f}) {
    const Tensor x = batch_with_amax(amax, 2);
    layer.forward(x);
    const std::vector<float> xv = x.to_vector();
    const std::vector<float> xq = fake_quantize(x, *layer.activation_quantizer().last_params(), -1).to_vector();
    xs.insert(xs.end(), xv.begin(), xv.end());
    xqs.insert(xqs.end(), xq.begin(), xq.end());
  }
  set_activation_metering(layer, false);
  layer.forward(batch_with_amax(100.0f, 4));  // not metered
  const std::vector<QuantLayerSqnr> report = quant_sqnr(layer);
  ASSERT_EQ(report.size(), 1u);
  EXPECT_EQ(report[0].path, "");
  EXPECT_NEAR(report[0].input_db, sqnr_db(xs.data(), xqs.data(), static_cast<int64_t>(xs.size())), 1e-3);
  const std::vector<float> w = layer.weight().to_vector();
  EXPECT_NEAR(report[0].weight_db, sqnr_db(layer.weight_params(), w.data(), 32, 10), 1e-3);
  EXPECT_GT(report[0].weight_db, 30.0) << "e3m4 on Gaussian weights: ~37.5 dB";
}

TEST(ActivationQuantizer, CalibratingTracksTheRunningMaxAndFrozenIgnoresNewData) {
  for (const QuantSpec& spec : {make_spec(QuantFormat::kQfp8, kQfp8E4M3), make_spec(QuantFormat::kInt8),
                                make_spec(QuantFormat::kFp8E5M2)}) {
    ActivationQuantizer q(spec, "fc input");
    q.set_mode(ActivationMode::kCalibrating);
    const std::vector<float> amaxes = {0.5f, 3.0f, 1.0f};
    float running = 0;
    for (size_t i = 0; i < amaxes.size(); ++i) {
      running = std::max(running, amaxes[i]);
      const Tensor x = batch_with_amax(amaxes[i], static_cast<uint32_t>(i));
      const Tensor y = q(x);
      EXPECT_EQ(q.running_amax(), running);
      // The batch is quantized with the running amax's parameters (batch 3: 3.0's, not 1.0's).
      Tensor expected = Tensor::empty(x.shape());
      fake_quantize_reference(q.params_for_amax(running), x.data<float>(), expected.data<float>(), 1, x.numel());
      EXPECT_TRUE(same_bits(y, expected)) << quant_spec_summary(spec) << " batch " << i;
    }
    EXPECT_EQ(q.observed_batches(), 3);
    q.freeze();
    ASSERT_EQ(q.mode(), ActivationMode::kFrozen);
    const QuantParams frozen = *q.frozen_params();
    if (spec.format == QuantFormat::kQfp8) {
      EXPECT_EQ(frozen.betas, std::vector<int32_t>{bias_for_amax(3.0f, kQfp8E4M3, "x")});
    } else if (spec.format == QuantFormat::kInt8) {
      EXPECT_EQ(frozen.scales, std::vector<float>{int8_scale_for_amax(3.0f)});
    } else {
      EXPECT_EQ(frozen.scales, std::vector<float>{fp8_scale_for_amax(kFp8E5M2Max, 3.0f)});
    }
    // A batch 100x larger: still the frozen parameters (it saturates), running amax unchanged.
    const Tensor big = batch_with_amax(300.0f, 9);
    const Tensor y = q(big);
    Tensor expected = Tensor::empty(big.shape());
    fake_quantize_reference(frozen, big.data<float>(), expected.data<float>(), 1, big.numel());
    EXPECT_TRUE(same_bits(y, expected));
    EXPECT_EQ(q.running_amax(), 3.0f);
  }
  ActivationQuantizer q(make_spec(QuantFormat::kQfp8, kQfp8E3M4), "blocks.0.mlp.fc1.input");
  q.set_mode(ActivationMode::kCalibrating);
  q(batch_with_amax(1.875f, 1));  // e3m4: max(β) >= 1.875 -> T = 0, β = 7 (max 1.9375)
  q.freeze();
  EXPECT_EQ(q.describe(), "qfp8 e3m4 per_tensor amax (frozen: beta 7)");
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(ActivationQuantizer, RestoreGivesBackTheSavedModeAndFrozenParameters) {
  for (const QuantSpec& spec : {make_spec(QuantFormat::kQfp8, kQfp8E3M4), make_spec(QuantFormat::kInt8)}) {
    ActivationQuantizer saved(spec, "fc input");
    saved.set_mode(ActivationMode::kCalibrating);
    saved(batch_with_amax(2.5f, 1));
    saved(batch_with_amax(0.75f, 2));
    saved.freeze();
    ActivationQuantizer restored(spec, "fc input");
    restored.restore(saved.mode(), saved.running_amax(), saved.observed_batches());
    ASSERT_EQ(restored.mode(), ActivationMode::kFrozen);
    EXPECT_EQ(restored.running_amax(), 2.5f);
    EXPECT_EQ(restored.observed_batches(), 2);
    const Tensor x = batch_with_amax(9.0f, 3);
    EXPECT_TRUE(same_bits(restored(x), saved(x))) << quant_spec_summary(spec);
    EXPECT_EQ(restored.describe(), saved.describe());
  }
}

TEST(ActivationQuantizer, SpecsThatNeedTheDataAndMisuseAreErrorsNamingTheLayer) {
  std::string e = error_of([] {
    ActivationQuantizer q(make_spec(QuantFormat::kQfp8, kQfp8E3M4, BiasMode::kMse), "blocks.1.attn.qkv.input");
  });
  EXPECT_NE(e.find("blocks.1.attn.qkv.input"), std::string::npos) << e;
  EXPECT_NE(e.find("bias mse is not supported"), std::string::npos) << e;
  e = error_of([] { ActivationQuantizer q(make_spec(QuantFormat::kQfp8, std::nullopt), "head.input"); });
  EXPECT_NE(e.find("head.input: activation layout auto"), std::string::npos) << e;
  e = error_of([] {
    ActivationQuantizer q(make_spec(QuantFormat::kInt8, std::nullopt, BiasMode::kAmax, Granularity::kPerChannel), "fc.input");
  });
  EXPECT_NE(e.find("fc.input: activations are quantized per tensor"), std::string::npos) << e;
  // The factory checks its activation spec before making any layer.
  LayerFactory native;
  QuantLayerOptions o;
  o.activation.bias = BiasMode::kMse;
  e = error_of([&] { QuantLayerFactory f(native, o); });
  EXPECT_NE(e.find("quant.activation"), std::string::npos) << e;

  ActivationQuantizer q(make_spec(QuantFormat::kQfp8), "fc.input");
  e = error_of([&] { q.set_mode(ActivationMode::kFrozen); });
  EXPECT_NE(e.find("fc.input: cannot freeze"), std::string::npos) << e;
  q.set_mode(ActivationMode::kCalibrating);
  e = error_of([&] { q.freeze(); });
  EXPECT_NE(e.find("fc.input: freeze needs calibration batches"), std::string::npos) << e;
  Tensor bad = batch_with_amax(1.0f, 2);
  bad.data<float>()[3] = std::numeric_limits<float>::quiet_NaN();
  e = error_of([&] { q(bad); });
  EXPECT_NE(e.find("fc.input"), std::string::npos) << e;
}

// ---- the layer's weight parameters ----

TEST(QuantLayer, WeightParametersFollowTheWeightsUntilFrozen) {
  QuantLinear layer(64, 256, true, QuantLayerOptions::default_weight_spec(),
                    QuantLayerOptions::default_activation_spec(), "blocks.0.mlp.fc1");
  EXPECT_EQ(layer.describe(),
            "QuantLinear(64 -> 256, bias) weight qfp8 e3m4 per_channel mse, input qfp8 e3m4 per_tensor amax (dynamic)");
  set_values(layer.weight(), testing::uniform({256, 64}, 1, -0.1f, 0.1f));
  const QuantParams before = layer.weight_params();
  layer.freeze_weights();
  set_values(layer.weight(), testing::uniform({256, 64}, 1, -4.0f, 4.0f));  // 40x larger
  EXPECT_EQ(layer.weight_params().betas, before.betas) << "frozen: cached";
  layer.unfreeze_weights();
  const QuantParams after = layer.weight_params();
  EXPECT_EQ(after.betas.size(), 256u);
  EXPECT_LT(after.betas[0], before.betas[0]) << "unfrozen: chosen from the new weights";
  layer.freeze_weights();
  EXPECT_NE(layer.describe().find("weight qfp8 e3m4 per_channel mse (frozen: betas "), std::string::npos)
      << layer.describe();
}

// ---- the factory in real models ----

std::shared_ptr<Layer> make_model(const std::string& arch, LayerFactory& factory, uint64_t seed, int64_t depth = 4) {
  ModelSpec spec;
  spec.arch = arch;
  spec.depth = depth;
  Generator g(seed);
  return create_model(spec, factory, g);
}

void expect_same_state_layout(const Module& a, const Module& b) {
  const NamedTensors sa = a.state_dict(), sb = b.state_dict();
  ASSERT_EQ(sa.size(), sb.size());
  for (size_t i = 0; i < sa.size(); ++i) {
    EXPECT_EQ(sa[i].first, sb[i].first);
    EXPECT_EQ(sa[i].second.shape(), sb[i].second.shape()) << sa[i].first;
  }
}

TEST(QuantLayerFactory, SwapsQuantizedLayersIntoAViTHonouringExcludesAndKeepsTheStateDict) {
  InterpLayerOptions io;
  InterpSpec gelu;
  gelu.fn = InterpFn::kGelu;
  gelu.pieces = 256;
  gelu.domain = default_domain(InterpFn::kGelu);
  io.functions[InterpFn::kGelu] = gelu;
  InterpLayerFactory interp(io);
  QuantLayerOptions o;
  o.exclude = {"head", "patch_embed.*", "blocks.9.*"};
  QuantLayerFactory factory(interp, o);
  auto model = make_model("vit", factory, 1);

  const auto quantized = quant_layers(*model);
  ASSERT_EQ(quantized.size(), 16u);  // 4 blocks x (qkv, proj, fc1, fc2)
  ASSERT_EQ(factory.quantized_paths().size(), 16u);
  for (size_t i = 0; i < quantized.size(); ++i) EXPECT_EQ(quantized[i].first, factory.quantized_paths()[i]);
  EXPECT_EQ(quantized[0].first, "blocks.0.attn.qkv");
  EXPECT_EQ(dynamic_cast<QuantLayer*>(model->find_module("head")), nullptr);
  EXPECT_EQ(dynamic_cast<QuantLayer*>(model->find_module("patch_embed.proj")), nullptr);
  EXPECT_EQ(factory.unused_excludes(), std::vector<std::string>{"blocks.9.*"});

  std::map<std::string, std::string> impl;
  for (const auto& [name, d] : layer_implementations(*model)) impl[name] = d;
  EXPECT_EQ(impl["blocks.0.mlp.fc1"],
            "QuantLinear(64 -> 256, bias) weight qfp8 e3m4 per_channel mse, input qfp8 e3m4 per_tensor amax (dynamic)");
  EXPECT_EQ(impl["head"], "Linear(64 -> 10, bias)");
  EXPECT_NE(impl["blocks.0.mlp.act"].find("interp uniform gelu 256 pieces"), std::string::npos)
      << "activations come from the inner factory: " << impl["blocks.0.mlp.act"];

  // Same names and shapes as the fp32 model: checkpoints load strictly both ways.
  LayerFactory native;
  auto fp32 = make_model("vit", native, 2);
  expect_same_state_layout(*model, *fp32);
  EXPECT_TRUE(model->load_state_dict(fp32->state_dict(), true).ok());
  EXPECT_TRUE(fp32->load_state_dict(model->state_dict(), true).ok());
  EXPECT_TRUE(same_bits(model->find_tensor("blocks.2.mlp.fc2.weight"), fp32->find_tensor("blocks.2.mlp.fc2.weight")));
}

TEST(QuantLayerFactory, SwapsQuantizedConvolutionsIntoAResnet20) {
  LayerFactory native;
  QuantLayerOptions o;
  o.exclude = {"fc", "conv1"};  // "conv1" is the stem only: globs match the whole path
  QuantLayerFactory factory(native, o);
  auto model = make_model("resnet20", factory, 3);
  auto fp32 = make_model("resnet20", native, 4);
  int64_t convs = 0;
  for (const auto& [name, m] : fp32->named_modules()) convs += dynamic_cast<Conv2d*>(m) != nullptr;
  const auto quantized = quant_layers(*model);
  EXPECT_EQ(static_cast<int64_t>(quantized.size()), convs - 1);  // every conv but the stem
  for (const auto& [name, q] : quantized) EXPECT_NE(dynamic_cast<QuantConv2d*>(q), nullptr) << name;
  EXPECT_EQ(dynamic_cast<QuantLayer*>(model->find_module("conv1")), nullptr);
  EXPECT_NE(dynamic_cast<QuantLayer*>(model->find_module("layer1.0.conv1")), nullptr);
  EXPECT_NE(dynamic_cast<QuantLayer*>(model->find_module("layer2.0.downsample.0")), nullptr);
  EXPECT_TRUE(factory.unused_excludes().empty());
  expect_same_state_layout(*model, *fp32);
  EXPECT_TRUE(model->load_state_dict(fp32->state_dict(), true).ok());
}

// ---- what quantization does to logits ----

// A ViT (eval, seed 11 weights) with every Linear and Conv2d quantized by `c`, activation
// parameters calibrated on two batches and frozen, weights frozen (the PTQ state).
// fold_bn: every BatchNorm folded into its conv first (quant.fold_bn), before calibration.
std::shared_ptr<Layer> calibrated_model(const std::string& arch, const Case& c, const std::vector<std::string>& exclude,
                                        uint64_t seed = 11, bool fold_bn = false) {
  LayerFactory native;
  QuantLayerOptions o;
  o.weight = c.weight;
  o.activation = c.activation;
  o.exclude = exclude;
  QuantLayerFactory factory(native, o);
  auto model = make_model(arch, factory, seed);
  model->eval();
  if (fold_bn) fold_batch_norms(*model);
  NoGradGuard no_grad;
  set_activation_mode(*model, ActivationMode::kCalibrating);
  for (uint32_t b = 0; b < 2; ++b) model->forward(testing::uniform({8, 1, 28, 28}, 100 + b, -1.0f, 2.0f));
  freeze_activations(*model);
  freeze_weights(*model);
  return model;
}

Tensor logits(Layer& model, const Tensor& x) {
  NoGradGuard no_grad;
  return model.forward(x);
}

double rms(const Tensor& a) {
  double s = 0;
  for (int64_t i = 0; i < a.numel(); ++i) s += double(a.data<float>()[i]) * a.data<float>()[i];
  return std::sqrt(s / static_cast<double>(a.numel()));
}

double rms_diff(const Tensor& a, const Tensor& b) {
  double s = 0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    const double d = double(a.data<float>()[i]) - b.data<float>()[i];
    s += d * d;
  }
  return std::sqrt(s / static_cast<double>(a.numel()));
}

TEST(QuantLayerFactory, QuantizerStateRoundTripsAndAMissingEntryIsAnErrorNamingIt) {
  LayerFactory native;
  QuantLayerOptions o;
  QuantLayerFactory factory(native, o);
  auto model = make_model("vit", factory, 4, 1);
  model->eval();
  set_activation_mode(*model, ActivationMode::kCalibrating);
  model->forward(testing::uniform({2, 1, 28, 28}, 5, -1.0f, 1.0f));
  freeze_activations(*model);
  const NamedTensors state = activation_state_dict(*model);
  auto other = make_model("vit", factory, 5, 1);
  load_activation_state(*other, state);
  for (size_t i = 0; i < quant_layers(*model).size(); ++i)
    EXPECT_EQ(quant_layers(*other)[i].second->activation_quantizer().describe(),
              quant_layers(*model)[i].second->activation_quantizer().describe());
  NamedTensors missing(state.begin() + 1, state.end());
  const std::string msg = error_of([&] { load_activation_state(*other, missing); });
  EXPECT_NE(msg.find(state.front().first), std::string::npos) << msg;
}

TEST(QuantLayerFactory, QuantizationChangesViTLogitsByTheFormatsRelativeStep) {
  const Tensor x = testing::uniform({8, 1, 28, 28}, 7, -1.0f, 2.0f);
  LayerFactory native;
  auto fp32 = make_model("vit", native, 11);
  fp32->eval();
  const Tensor reference = logits(*fp32, x);
  auto relative_error = [&](QuantFormat format, Qfp8Layout layout) {
    const Case c{"", make_spec(format, layout, BiasMode::kAmax, Granularity::kPerChannel), make_spec(format, layout)};
    auto q = calibrated_model("vit", c, {});
    return rms_diff(logits(*q, x), reference) / rms(reference);
  };
  const double e3m4 = relative_error(QuantFormat::kQfp8, kQfp8E3M4);
  const double e5m2 = relative_error(QuantFormat::kQfp8, kQfp8E5M2);
  // Rounding to M mantissa bits moves a value by at most 2^-(M+1) of itself (RMS about
  // 2^-(M+1) / sqrt 3 for the uniform rounding error). Each quantized layer adds two such
  // errors (input, weight), independent, to its output; the ViT has 18 quantized layers on
  // one path (patch embedding, 4 per block, head). Were every layer's error to reach the
  // logits undamped, their relative RMS error would be 2^-(M+1) sqrt(2 * 18 / 3) = 3.5 *
  // 2^-(M+1); LayerNorm and the residual sums damp it (measured: e3m4 0.043 = 1.4 * 2^-5,
  // e5m2 0.146 = 1.2 * 2^-3). Bounds: 2^-(M+1) / 4 (the quantizers ran) .. 4 * 2^-(M+1).
  EXPECT_GT(e3m4, std::ldexp(1.0, -5) / 4);
  EXPECT_LT(e3m4, 4 * std::ldexp(1.0, -5));
  EXPECT_GT(e5m2, std::ldexp(1.0, -3) / 4);
  EXPECT_LT(e5m2, 4 * std::ldexp(1.0, -3));
  // Two mantissa bits fewer: ~4x the error; at least 2x.
  EXPECT_GT(e5m2, 2 * e3m4) << "e3m4 " << e3m4 << " e5m2 " << e5m2;
  // Format none changes nothing, bit for bit.
  const Case none{"none", make_spec(QuantFormat::kNone), make_spec(QuantFormat::kNone)};
  auto q = calibrated_model("vit", none, {});
  EXPECT_TRUE(same_bits(logits(*q, x), reference));
}

// ---- packed checkpoints ----

class PackedFile : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("qilin_quant_layers_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  std::filesystem::path dir_;
};

uint64_t header_length(const std::string& file) {
  std::ifstream in(file, std::ios::binary);
  unsigned char b[8] = {};
  in.read(reinterpret_cast<char*>(b), 8);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | b[i];
  return n;
}

// The data bytes the packed file must hold, from parameter counts (DESIGN.md §5): 1 byte per
// quantized weight element, each β (int32) or scale (float32) 4 bytes, an auto layout code 1
// byte per entry, every other state tensor at its own dtype's size.
uint64_t predicted_packed_data_bytes(Module& model) {
  std::map<std::string, QuantLayer*> by_weight;
  for (auto& [path, q] : quant_layers(model)) by_weight[join_path(path, "weight")] = q;
  uint64_t bytes = 0;
  for (const auto& [name, t] : model.state_dict()) {
    auto it = by_weight.find(name);
    if (it == by_weight.end() || it->second->weight_spec().format == QuantFormat::kNone) {
      bytes += t.nbytes();
    } else {
      const QuantSpec& s = it->second->weight_spec();
      const uint64_t entries = s.granularity == Granularity::kPerChannel ? t.size(0) : 1;
      bytes += t.numel() + 4 * entries + (s.format == QuantFormat::kQfp8 && !s.layout ? entries : 0);
    }
    if (it != by_weight.end() && it->second->activation_quantizer().spec().format != QuantFormat::kNone)
      bytes += 4;  // the frozen input β / scale
  }
  return bytes;
}

TEST_F(PackedFile, RoundTripGivesIdenticalLogitsAndTheFileIsTheSizeTheCountsPredict) {
  const Tensor x = testing::uniform({8, 1, 28, 28}, 21, -1.0f, 2.0f);
  std::vector<Case> cases = format_cases();
  cases.erase(cases.begin() + 1);  // e4m3: the e3m4 path with another layout
  for (const Case& c : cases) {
    auto model = calibrated_model("vit", c, {"head", "patch_embed.*"});
    const Tensor expected = logits(*model, x);
    std::map<std::string, std::string> metadata;
    const NamedTensors packed = packed_state_dict(*model, &metadata);
    save_safetensors(path("packed.safetensors"), packed, metadata);
    save_safetensors(path("fp32.safetensors"), model->state_dict());

    // A fresh model with other initial weights: everything must come from the file.
    LayerFactory native;
    QuantLayerOptions o;
    o.weight = c.weight;
    o.activation = c.activation;
    o.exclude = {"head", "patch_embed.*"};
    QuantLayerFactory factory(native, o);
    auto loaded = make_model("vit", factory, 99);
    loaded->eval();
    load_packed_state_dict(*loaded, load_safetensors(path("packed.safetensors")));
    EXPECT_TRUE(same_bits(logits(*loaded, x), expected)) << c.name;
    // The fp32 master weight is the fake-quantized weight.
    QuantLayer* q = quant_layers(*model)[3].second;
    Tensor wq = fake_quantize(q->quant_weight(), q->weight_params(), 0);
    EXPECT_TRUE(same_bits(loaded->find_tensor(quant_layers(*model)[3].first + ".weight"), wq)) << c.name;
    EXPECT_EQ(quant_layers(*loaded)[0].second->describe_quant(), quant_layers(*model)[0].second->describe_quant());

    const std::string file = path("packed.safetensors");
    const uint64_t size = std::filesystem::file_size(file);
    const uint64_t predicted = 8 + header_length(file) + predicted_packed_data_bytes(*model);
    EXPECT_NEAR(double(size), double(predicted), 0.01 * double(predicted)) << c.name;
    EXPECT_EQ(size, predicted) << c.name << ": the data part is exact";
    if (c.name == "qfp8 e3m4") {
      EXPECT_EQ(metadata["blocks.0.mlp.fc1.weight.qformat"], "qfp8 e3m4");
      EXPECT_EQ(metadata["blocks.0.mlp.fc1.input.qformat"], "qfp8 e3m4 frozen");
      const uint64_t fp32_size = std::filesystem::file_size(path("fp32.safetensors"));
      // The 16 quantized weights hold 196,608 of the ViT's 205,066 parameters and go from 4
      // bytes to 1; the other 8,458 values, 2,320 β and the header stay: data 0.29x, the
      // file 0.30x (measured 249,080 vs 825,008 bytes).
      EXPECT_LT(double(size), 0.31 * double(fp32_size)) << size << " vs " << fp32_size;
    }
  }
}

// resnet20 (every conv and the fc quantized): 269,968 of 272,186 parameters are conv weights.
// Data: 286,624 packed vs 1,095,184 fp32 bytes = 0.262x, under issue 5's 0.27x. The whole
// file is 0.274x: the header is 16.9 KB against 11.0 KB, since DESIGN.md §5 names each β
// tensor per layer (42 more entries: weight and input β of 21 layers) and each layer's
// format in the metadata.
TEST_F(PackedFile, AResnet20CheckpointsDataIsUnder027OfItsFp32File) {
  const Case c = format_cases()[0];
  auto model = calibrated_model("resnet20", c, {});
  const Tensor x = testing::uniform({4, 1, 28, 28}, 22, -1.0f, 2.0f);
  const Tensor expected = logits(*model, x);
  std::map<std::string, std::string> metadata;
  save_safetensors(path("packed.safetensors"), packed_state_dict(*model, &metadata), metadata);
  save_safetensors(path("fp32.safetensors"), model->state_dict());
  auto data_bytes = [&](const std::string& f) {
    return double(std::filesystem::file_size(path(f)) - 8 - header_length(path(f)));
  };
  EXPECT_LE(data_bytes("packed.safetensors") / data_bytes("fp32.safetensors"), 0.27);  // issue 5, "Must show" 5
  const double file_ratio = double(std::filesystem::file_size(path("packed.safetensors"))) /
                            double(std::filesystem::file_size(path("fp32.safetensors")));
  EXPECT_LE(file_ratio, 0.28);
  LayerFactory native;
  QuantLayerOptions o;
  o.weight = c.weight;
  o.activation = c.activation;
  QuantLayerFactory factory(native, o);
  auto loaded = make_model("resnet20", factory, 5);
  loaded->eval();
  load_packed_state_dict(*loaded, load_safetensors(path("packed.safetensors")));
  EXPECT_TRUE(same_bits(logits(*loaded, x), expected));
}

// Issue 5, Must show 5 with the shipped PTQ config's layers (stem conv1 and classifier fc kept
// fp32): with BN folded the packed file is under 0.27x the fp32 checkpoint; with the 19 BN
// layers kept it is not (their fp32 vectors and headers cost ~0.015x; docs/RESULTS.md).
TEST_F(PackedFile, AFoldedResnet20WithFp32StemAndClassifierIsUnder027OfItsFp32File) {
  auto model = calibrated_model("resnet20", format_cases()[0], {"conv1", "fc"}, 11, /*fold_bn=*/true);
  LayerFactory native;
  save_safetensors(path("fp32.safetensors"), make_model("resnet20", native, 11)->state_dict());
  std::map<std::string, std::string> metadata;
  save_safetensors(path("packed.safetensors"), packed_state_dict(*model, &metadata), metadata);
  const double ratio = double(std::filesystem::file_size(path("packed.safetensors"))) /
                       double(std::filesystem::file_size(path("fp32.safetensors")));
  EXPECT_LE(ratio, 0.27);
  EXPECT_GE(ratio, 0.25) << "1 byte per quantized weight cannot go below a quarter";
}

TEST_F(PackedFile, ExportAndImportErrorsNameTheTensorOrLayer) {
  const Case e3m4 = format_cases()[0];
  auto model = calibrated_model("vit", e3m4, {"head", "patch_embed.*"});
  std::map<std::string, std::string> metadata;
  save_safetensors(path("packed.safetensors"), packed_state_dict(*model, &metadata), metadata);
  const SafetensorsContents contents = load_safetensors(path("packed.safetensors"));

  // Another format in the model than in the file.
  const Case int8 = format_cases()[4];
  LayerFactory native;
  QuantLayerOptions o;
  o.weight = int8.weight;
  o.activation = int8.activation;
  o.exclude = {"head", "patch_embed.*"};
  QuantLayerFactory factory(native, o);
  auto other = make_model("vit", factory, 1);
  std::string e = error_of([&] { load_packed_state_dict(*other, contents); });
  EXPECT_NE(e.find("blocks.0.attn.qkv.weight.qformat is \"qfp8 e3m4\" but the layer quantizes with int8"),
            std::string::npos) << e;
  // An fp32 checkpoint is not a packed one.
  e = error_of([&] { load_packed_state_dict(*other, SafetensorsContents{model->state_dict(), {}}); });
  EXPECT_NE(e.find("not a packed checkpoint"), std::string::npos) << e;
  // A missing code tensor.
  SafetensorsContents missing = contents;
  missing.tensors.erase(std::remove_if(missing.tensors.begin(), missing.tensors.end(),
                                       [](const auto& kv) { return kv.first == "blocks.1.mlp.fc2.weight.qcodes"; }),
                        missing.tensors.end());
  auto fresh = calibrated_model("vit", e3m4, {"head", "patch_embed.*"}, 2);
  e = error_of([&] { load_packed_state_dict(*fresh, missing); });
  EXPECT_NE(e.find("blocks.1.mlp.fc2.weight.qcodes is missing"), std::string::npos) << e;
  // A NaN weight cannot be packed.
  Tensor w = model->find_tensor("blocks.1.attn.proj.weight");
  w.data<float>()[5] = std::numeric_limits<float>::quiet_NaN();
  e = error_of([&] { packed_state_dict(*model, nullptr); });
  EXPECT_NE(e.find("blocks.1.attn.proj.weight"), std::string::npos) << e;
}

// A copy of `contents` whose tensor `name` is a clone that `edit` changes.
SafetensorsContents with_tensor_edited(const SafetensorsContents& contents, const std::string& name,
                                       const std::function<void(Tensor&)>& edit) {
  SafetensorsContents out = contents;
  bool found = false;
  for (auto& [n, t] : out.tensors) {
    if (n != name) continue;
    t = t.clone();
    edit(t);
    found = true;
  }
  EXPECT_TRUE(found) << name;
  return out;
}

// Codes that an export never writes (NaN, Inf, int8's -128) and scales the kernels cannot
// use are a corrupt file: the import names the tensor and the element, before any tensor of
// the model changes.
TEST_F(PackedFile, ImportRejectsCodesAndScalesThatAnExportNeverWrites) {
  const std::vector<Case> cases = format_cases();
  struct Bad {
    size_t format_case;  // index into format_cases()
    uint8_t code;
    const char* what;
  };
  const std::vector<Bad> bad_codes = {{4, 0x80, "0x80 is -128 in int8"}, {5, 0x7F, "0x7F is NaN in fp8_e4m3"},
                                      {5, 0xFF, "0xFF is NaN in fp8_e4m3"}, {6, 0x7C, "0x7C is Inf in fp8_e5m2"},
                                      {6, 0xFE, "0xFE is NaN in fp8_e5m2"}};
  const std::string codes_name = "blocks.1.mlp.fc2.weight.qcodes";
  for (const Bad& b : bad_codes) {
    const Case& c = cases[b.format_case];
    auto model = calibrated_model("vit", c, {"head", "patch_embed.*"});
    std::map<std::string, std::string> metadata;
    const SafetensorsContents contents{packed_state_dict(*model, &metadata), metadata};
    const SafetensorsContents bad =
        with_tensor_edited(contents, codes_name, [&](Tensor& t) { t.data<uint8_t>()[7] = b.code; });
    auto fresh = calibrated_model("vit", c, {"head", "patch_embed.*"}, 2);
    const Tensor before = fresh->find_tensor("blocks.1.mlp.fc2.weight").clone();
    const std::string e = error_of([&] { load_packed_state_dict(*fresh, bad); });
    EXPECT_NE(e.find(codes_name + "[7] = " + b.what), std::string::npos) << c.name << ": " << e;
    EXPECT_TRUE(same_bits(fresh->find_tensor("blocks.1.mlp.fc2.weight"), before)) << c.name;
    // The file as exported loads.
    EXPECT_EQ(error_of([&] { load_packed_state_dict(*fresh, contents); }), "") << c.name;
  }
  // A finite scale under which codes decode to Inf: fp8's scale multiplies x, so a tiny one
  // blows the decoded values up; int8's multiplies the code.
  const std::string weight = "blocks.0.mlp.fc1.weight";
  for (const auto& [format_case, scale] : std::vector<std::pair<size_t, float>>{{5, 1e-38f}, {4, 1e38f}}) {
    const Case& c = cases[format_case];
    auto model = calibrated_model("vit", c, {"head", "patch_embed.*"});
    std::map<std::string, std::string> metadata;
    const SafetensorsContents contents{packed_state_dict(*model, &metadata), metadata};
    const SafetensorsContents bad = with_tensor_edited(contents, weight + ".qscale", [&](Tensor& t) {
      for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = scale;
    });
    auto fresh = calibrated_model("vit", c, {"head", "patch_embed.*"}, 2);
    const std::string e = error_of([&] { load_packed_state_dict(*fresh, bad); });
    EXPECT_NE(e.find(weight + ".qcodes["), std::string::npos) << c.name << ": " << e;
    EXPECT_NE(e.find("decodes to inf with " + weight + ".qscale["), std::string::npos) << c.name << ": " << e;
  }
  // An int8 scale below FLT_MIN (the kernels multiply by its reciprocal) is refused at load,
  // naming the tensor, not at the first forward.
  const Case& int8 = cases[4];
  auto model = calibrated_model("vit", int8, {"head", "patch_embed.*"});
  std::map<std::string, std::string> metadata;
  const SafetensorsContents contents{packed_state_dict(*model, &metadata), metadata};
  for (const std::string name : {"blocks.0.attn.qkv.weight.qscale", "blocks.0.attn.qkv.input.qscale"}) {
    const SafetensorsContents bad =
        with_tensor_edited(contents, name, [](Tensor& t) { t.data<float>()[0] = 1e-40f; });
    auto fresh = calibrated_model("vit", int8, {"head", "patch_embed.*"}, 2);
    const std::string e = error_of([&] { load_packed_state_dict(*fresh, bad); });
    EXPECT_NE(e.find(name.substr(0, name.size() - std::string(".qscale").size())), std::string::npos) << e;
    EXPECT_NE(e.find("is below FLT_MIN"), std::string::npos) << e;
  }
}

}  // namespace
}  // namespace qilin
