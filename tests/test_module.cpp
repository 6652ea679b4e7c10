// Module tree (names, order, modes, state dicts) and the layers: each against a
// double-precision reference or PyTorch's documented semantics.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "core/autograd.h"
#include "core/ops/reduce.h"
#include "core/random.h"
#include "core/safetensors.h"
#include "layers/activation.h"
#include "layers/attention.h"
#include "layers/conv.h"
#include "layers/dropout.h"
#include "layers/factory.h"
#include "layers/init.h"
#include "layers/linear.h"
#include "layers/norm.h"
#include "layers/pooling.h"
#include "layers/sequential.h"
#include "tests/testing.h"

namespace qilin {
namespace {

std::vector<std::string> names_of(const std::vector<std::pair<std::string, Tensor>>& entries) {
  std::vector<std::string> out;
  for (const auto& e : entries) out.push_back(e.first);
  return out;
}

// A module registering its own parameter and buffers AFTER a child, like timm's
// VisionTransformer (patch_embed before cls_token): PyTorch still lists own entries first.
class Toy : public Layer {
 public:
  Toy() {
    lin = register_module("lin", std::make_shared<Linear>(2, 3));
    a = register_parameter("a", Tensor::ones({2}));
    register_buffer("stat", Tensor::zeros({1}));
    register_buffer("scratch", Tensor::zeros({1}), /*persistent=*/false);
    bn = register_module("bn", std::make_shared<BatchNorm2d>(3));
    inner = register_module("inner", std::make_shared<Sequential>());
    inner->push_back(std::make_shared<Linear>(3, 1, /*bias=*/false));
    inner->push_back(std::make_shared<Activation>(ActivationKind::kReLU));
  }
  Tensor forward(const Tensor& x) override { return inner->forward(lin->forward(x)); }
  std::shared_ptr<Linear> lin;
  std::shared_ptr<BatchNorm2d> bn;
  std::shared_ptr<Sequential> inner;
  Tensor a;
};

void randomize(Module& m, uint64_t seed) {
  Generator gen(seed);
  for (auto& [name, t] : m.named_parameters()) fill_normal(t, gen, 0.0f, 1.0f);
  for (auto& [name, t] : m.named_buffers())
    if (t.dtype() == DType::kFloat32) fill_uniform(t, gen, 0.5f, 1.5f);
}

}  // namespace

// ---- names and order ----

TEST(Module, NamesAreDottedAndInPyTorchOrder) {
  Toy toy;
  // torch 1.13 on the same tree written with nn.Module (lin = nn.Linear(2, 3), then
  // a = nn.Parameter, register_buffer("stat"), register_buffer("scratch", persistent=False),
  // bn = nn.BatchNorm2d(3), inner = nn.Sequential(nn.Linear(3, 1, bias=False), nn.ReLU())):
  // list(t.state_dict()), [n for n, _ in t.named_parameters()], ... give exactly these.
  // state_dict() lists a module's params, then its persistent buffers, then children.
  const std::vector<std::string> state{
      "a", "stat", "lin.weight", "lin.bias", "bn.weight", "bn.bias", "bn.running_mean",
      "bn.running_var", "bn.num_batches_tracked", "inner.0.weight"};
  EXPECT_EQ(names_of(toy.state_dict()), state);
  EXPECT_EQ(names_of(toy.named_parameters()),
            (std::vector<std::string>{"a", "lin.weight", "lin.bias", "bn.weight", "bn.bias",
                                      "inner.0.weight"}));
  EXPECT_EQ(names_of(toy.named_buffers()),
            (std::vector<std::string>{"stat", "scratch", "bn.running_mean", "bn.running_var",
                                      "bn.num_batches_tracked"}));
  std::vector<std::string> modules;
  for (auto& [name, m] : toy.named_modules()) modules.push_back(name);
  EXPECT_EQ(modules, (std::vector<std::string>{"", "lin", "bn", "inner", "inner.0", "inner.1"}));
  EXPECT_EQ(toy.num_parameters(), 2 + 6 + 3 + 3 + 3 + 3);
  for (auto& [name, t] : toy.named_parameters()) EXPECT_TRUE(t.requires_grad()) << name;
  EXPECT_TRUE(toy.find_tensor("bn.running_var").same(toy.bn->running_var()));
  EXPECT_TRUE(toy.find_tensor("inner.0.weight").defined());
  EXPECT_FALSE(toy.find_tensor("inner.1.weight").defined());
  EXPECT_FALSE(toy.find_tensor("nope.weight").defined());
  EXPECT_EQ(toy.find_module("inner.1"), toy.inner->named_children()[1].second.get());
  EXPECT_EQ(toy.find_module(""), &toy);
  EXPECT_EQ(toy.find_module("inner.7"), nullptr);
}

TEST(Module, SharedTensorIsListedOnce) {
  Module m;
  auto l1 = m.register_module("l1", std::make_shared<Linear>(2, 2));
  auto holder = m.register_module("l2", std::make_shared<Module>());
  holder->register_parameter("w", l1->weight());
  EXPECT_EQ(names_of(m.named_parameters()),
            (std::vector<std::string>{"l1.weight", "l1.bias"}));
}

TEST(Module, BadRegistrationsAreErrors) {
  Module m;
  m.register_parameter("w", Tensor::zeros({2}));
  EXPECT_THROW(m.register_parameter("w", Tensor::zeros({2})), Error);
  EXPECT_THROW(m.register_buffer("w", Tensor::zeros({2})), Error);
  EXPECT_THROW(m.register_module("w", std::make_shared<Module>()), Error);
  EXPECT_THROW(m.register_parameter("a.b", Tensor::zeros({2})), Error);
  EXPECT_THROW(m.register_parameter("", Tensor::zeros({2})), Error);
  EXPECT_THROW(m.register_module("c", std::shared_ptr<Module>()), Error);
}

// ---- modes and gradients ----

TEST(Module, TrainAndEvalPropagateToEveryDescendant) {
  Toy toy;
  EXPECT_TRUE(toy.is_training());
  toy.eval();
  for (auto& [name, m] : toy.named_modules()) EXPECT_FALSE(m->is_training()) << name;
  toy.train();
  for (auto& [name, m] : toy.named_modules()) EXPECT_TRUE(m->is_training()) << name;
  toy.inner->eval();  // a subtree only
  EXPECT_TRUE(toy.is_training());
  EXPECT_FALSE(toy.find_module("inner.0")->is_training());
}

TEST(Module, ZeroGradDropsEveryGradient) {
  Toy toy;
  randomize(toy, 1);
  Tensor x = testing::uniform({4, 2}, 3);
  sum(toy.forward(x)).backward();
  EXPECT_TRUE(toy.lin->weight().grad().defined());
  toy.zero_grad();
  for (auto& [name, t] : toy.named_parameters()) EXPECT_FALSE(t.grad().defined()) << name;
}

// ---- state dicts ----

TEST(StateDict, RoundTripCopiesValuesIntoTheExistingTensors) {
  Toy src, dst;
  randomize(src, 1);
  randomize(dst, 2);
  src.bn->reset_running_stats();
  Tensor(src.find_tensor("bn.num_batches_tracked")).fill_(7.0f);
  const Tensor dst_weight = dst.lin->weight();  // an optimizer would hold this handle
  LoadReport report = dst.load_state_dict(src.state_dict());
  EXPECT_TRUE(report.ok()) << report.str();
  NamedTensors a = src.state_dict(), b = dst.state_dict();
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].first, b[i].first);
    EXPECT_FALSE(a[i].second.raw_data() == b[i].second.raw_data()) << "copied, not aliased";
    if (a[i].second.dtype() == DType::kFloat32) {
      EXPECT_EQ(a[i].second.to_vector(), b[i].second.to_vector()) << a[i].first;
    }
  }
  EXPECT_TRUE(dst.lin->weight().same(dst_weight));
  EXPECT_EQ(dst.bn->num_batches_tracked(), 7);
  EXPECT_EQ(dst_weight.to_vector(), src.lin->weight().to_vector());
}

TEST(StateDict, RoundTripThroughSafetensorsKeepsInt64Counter) {
  Toy src, dst;
  randomize(src, 4);
  Tensor(src.find_tensor("bn.num_batches_tracked")).fill_(3.0f);
  const std::string path = ::testing::TempDir() + "qilin_test_module_state.safetensors";
  save_safetensors(path, src.state_dict());
  SafetensorsContents file = load_safetensors(path);
  Tensor counter = file.find("bn.num_batches_tracked");
  ASSERT_TRUE(counter.defined());
  EXPECT_EQ(counter.dtype(), DType::kInt64);
  dst.load_state_dict(file.tensors);
  EXPECT_EQ(dst.bn->num_batches_tracked(), 3);
  EXPECT_EQ(dst.a.to_vector(), src.a.to_vector());
  std::remove(path.c_str());
}

TEST(StateDict, StrictLoadListsEveryProblemAndLoadsNothing) {
  Toy src, dst;
  randomize(src, 1);
  randomize(dst, 2);
  NamedTensors state;
  for (auto& [name, t] : src.state_dict()) {
    if (name == "lin.bias" || name == "bn.running_var") continue;              // missing
    if (name == "inner.0.weight") {
      state.emplace_back(name, Tensor::zeros({1, 4}));                          // shape
      continue;
    }
    state.emplace_back(name, t);
  }
  state.emplace_back("extra.weight", Tensor::zeros({2}));                       // unexpected
  state.emplace_back("lin.bias_typo", Tensor::zeros({3}));
  const std::vector<float> before = dst.lin->weight().to_vector();
  try {
    dst.load_state_dict(state, /*strict=*/true);
    FAIL() << "strict load accepted a mismatched state dict";
  } catch (const Error& e) {
    const std::string msg = e.what();
    for (const char* key : {"missing: lin.bias", "missing: bn.running_var",
                            "unexpected: extra.weight", "unexpected: lin.bias_typo",
                            "shape: inner.0.weight: module [1, 3], state dict [1, 4]",
                            "5 problem(s)"})
      EXPECT_NE(msg.find(key), std::string::npos) << "no '" << key << "' in:\n" << msg;
  }
  EXPECT_EQ(dst.lin->weight().to_vector(), before) << "a failed strict load changed weights";

  LoadReport report = dst.load_state_dict(state, /*strict=*/false);
  EXPECT_EQ(report.missing, (std::vector<std::string>{"lin.bias", "bn.running_var"}));
  EXPECT_EQ(report.unexpected, (std::vector<std::string>{"extra.weight", "lin.bias_typo"}));
  ASSERT_EQ(report.shape_mismatch.size(), 1u);
  EXPECT_EQ(report.shape_mismatch[0].name, "inner.0.weight");
  EXPECT_EQ(report.shape_mismatch[0].expected, (Shape{1, 3}));
  EXPECT_EQ(report.shape_mismatch[0].got, (Shape{1, 4}));
  EXPECT_EQ(dst.lin->weight().to_vector(), src.lin->weight().to_vector()) << "matching entries load";
}

TEST(StateDict, ConvertsDtypesOnlyWithoutLoss) {
  BatchNorm2d bn(2);
  NamedTensors state = bn.state_dict();
  for (auto& [name, t] : state)
    if (name == "num_batches_tracked") t = Tensor::full({}, 5.0f);  // F32 holding an integer
  EXPECT_TRUE(bn.load_state_dict(state).ok());
  EXPECT_EQ(bn.num_batches_tracked(), 5);
  for (auto& [name, t] : state)
    if (name == "num_batches_tracked") t = Tensor::full({}, 1.5f);
  try {
    bn.load_state_dict(state);
    FAIL() << "1.5 loaded into an int64 counter";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("num_batches_tracked"), std::string::npos) << e.what();
  }
  // Integers into float parameters are exact.
  for (auto& [name, t] : state)
    if (name == "weight") t = Tensor::from_vector_i64({3, -4}, {2});
  for (auto& [name, t] : state)
    if (name == "num_batches_tracked") t = Tensor::from_vector_i64({9}, {});
  EXPECT_TRUE(bn.load_state_dict(state).ok());
  EXPECT_EQ(bn.weight().to_vector(), (std::vector<float>{3.0f, -4.0f}));
}

// ---- layers ----

TEST(Linear, ForwardMatchesDoubleReference) {
  Linear lin(5, 3);
  Generator gen(1);
  init_torch_default(lin, gen);
  Tensor x = testing::uniform({4, 5}, 2);
  std::vector<float> w = lin.weight().to_vector(), b = lin.bias().to_vector(), xv = x.to_vector();
  std::vector<double> ref(12);
  for (int i = 0; i < 4; ++i)
    for (int o = 0; o < 3; ++o) {
      double s = b[o];
      for (int k = 0; k < 5; ++k) s += static_cast<double>(xv[i * 5 + k]) * w[o * 5 + k];
      ref[i * 3 + o] = s;
    }
  // A 5-term float32 dot product: a few ulps of the largest term.
  testing::expect_close(lin.forward(x), ref, 1e-6, 1e-5, "linear");
  EXPECT_EQ(lin.describe(), "Linear(5 -> 3, bias)");
  EXPECT_EQ(Linear(2, 4, false).describe(), "Linear(2 -> 4, no bias)");
  // PyTorch's default init: U(-1/sqrt(5), 1/sqrt(5)).
  for (float v : w) EXPECT_LE(std::fabs(v), 1.0f / std::sqrt(5.0f));
}

TEST(BatchNorm2d, TrainingStatsMatchPyTorchFormulas) {
  const int64_t N = 3, C = 2, H = 2, W = 3, M = N * H * W;
  BatchNorm2d bn(C);
  Tensor(bn.weight()).copy_(Tensor::from_vector({1.5f, -0.5f}, {C}));
  Tensor(bn.bias()).copy_(Tensor::from_vector({0.25f, 2.0f}, {C}));
  std::vector<double> run_mean(C, 0.0), run_var(C, 1.0);
  for (int step = 0; step < 2; ++step) {
    Tensor x = testing::uniform({N, C, H, W}, 10 + step, -2.0f, 3.0f);
    std::vector<float> xv = x.to_vector();
    std::vector<double> ref(xv.size());
    for (int64_t c = 0; c < C; ++c) {
      double mean = 0, sq = 0;
      for (int64_t n = 0; n < N; ++n)
        for (int64_t i = 0; i < H * W; ++i) mean += xv[(n * C + c) * H * W + i];
      mean /= M;
      for (int64_t n = 0; n < N; ++n)
        for (int64_t i = 0; i < H * W; ++i) sq += std::pow(xv[(n * C + c) * H * W + i] - mean, 2);
      const double var = sq / M, unbiased = sq / (M - 1);
      const double g = c == 0 ? 1.5 : -0.5, b = c == 0 ? 0.25 : 2.0;
      for (int64_t n = 0; n < N; ++n)
        for (int64_t i = 0; i < H * W; ++i) {
          const int64_t k = (n * C + c) * H * W + i;
          ref[k] = (xv[k] - mean) / std::sqrt(var + 1e-5) * g + b;
        }
      // momentum 0.1: r = 0.9 r + 0.1 batch, unbiased variance.
      run_mean[c] = 0.9 * run_mean[c] + 0.1 * mean;
      run_var[c] = 0.9 * run_var[c] + 0.1 * unbiased;
    }
    // Normalised values are O(1): float32 mean/variance over 18 values, ~1e-6.
    testing::expect_close(bn.forward(x), ref, 2e-5, 2e-5, "bn train");
    testing::expect_close(bn.running_mean(), run_mean, 1e-6, 1e-5, "running_mean");
    testing::expect_close(bn.running_var(), run_var, 1e-6, 1e-5, "running_var");
    EXPECT_EQ(bn.num_batches_tracked(), step + 1);
  }
  // Eval: normalise by the running statistics; no update, no count.
  bn.eval();
  Tensor x = testing::uniform({N, C, H, W}, 20);
  std::vector<float> xv = x.to_vector();
  std::vector<double> ref(xv.size());
  for (int64_t k = 0; k < static_cast<int64_t>(xv.size()); ++k) {
    const int64_t c = (k / (H * W)) % C;
    const double g = c == 0 ? 1.5 : -0.5, b = c == 0 ? 0.25 : 2.0;
    ref[k] = (xv[k] - run_mean[c]) / std::sqrt(run_var[c] + 1e-5) * g + b;
  }
  testing::expect_close(bn.forward(x), ref, 2e-5, 2e-5, "bn eval");
  EXPECT_EQ(bn.num_batches_tracked(), 2);
  testing::expect_close(bn.running_mean(), run_mean, 1e-6, 1e-5, "running_mean unchanged in eval");
}

TEST(BatchNorm2d, CumulativeMomentumAveragesBatchesExactly) {
  // PyTorch momentum=None (DESIGN.md §4.3): after a reset, running stats are the plain
  // mean of the per-batch means and unbiased variances.
  const int64_t N = 2, C = 3, H = 2, W = 2, M = N * H * W;
  BatchNorm2d bn(C, 1e-5f, std::nullopt);
  EXPECT_EQ(bn.describe(), "BatchNorm2d(3, eps 1e-05, momentum cumulative)");
  bn.forward(testing::uniform({N, C, H, W}, 99));  // stale statistics, then reset
  bn.reset_running_stats();
  EXPECT_EQ(bn.num_batches_tracked(), 0);
  std::vector<double> mean_sum(C, 0), var_sum(C, 0);
  const int batches = 4;
  for (int step = 0; step < batches; ++step) {
    Tensor x = testing::uniform({N, C, H, W}, 30 + step, -1.0f, 2.0f);
    std::vector<float> xv = x.to_vector();
    for (int64_t c = 0; c < C; ++c) {
      double mean = 0, sq = 0;
      for (int64_t n = 0; n < N; ++n)
        for (int64_t i = 0; i < H * W; ++i) mean += xv[(n * C + c) * H * W + i];
      mean /= M;
      for (int64_t n = 0; n < N; ++n)
        for (int64_t i = 0; i < H * W; ++i) sq += std::pow(xv[(n * C + c) * H * W + i] - mean, 2);
      mean_sum[c] += mean;
      var_sum[c] += sq / (M - 1);
    }
    bn.forward(x);
  }
  for (int64_t c = 0; c < C; ++c) {
    mean_sum[c] /= batches;
    var_sum[c] /= batches;
  }
  testing::expect_close(bn.running_mean(), mean_sum, 1e-6, 1e-5, "cumulative mean");
  testing::expect_close(bn.running_var(), var_sum, 1e-6, 1e-5, "cumulative var");
  EXPECT_EQ(bn.num_batches_tracked(), batches);
}

TEST(BatchNorm2d, TrainingBackwardMatchesFiniteDifferences) {
  BatchNorm2d bn(3);
  Tensor(bn.weight()).copy_(testing::uniform({3}, 1, 0.5f, 1.5f));
  Tensor(bn.bias()).copy_(testing::uniform({3}, 2));
  std::vector<Tensor> inputs{testing::uniform({3, 3, 2, 2}, 3, -2.0f, 2.0f), bn.weight(), bn.bias()};
  testing::check_gradients([&](const std::vector<Tensor>& in) { return bn.forward(in[0]); }, inputs,
                           {}, "batch_norm2d train");
  bn.eval();
  testing::check_gradients([&](const std::vector<Tensor>& in) { return bn.forward(in[0]); }, inputs,
                           {}, "batch_norm2d eval");
}

TEST(BatchNorm2d, WrongChannelCountIsAnError) {
  BatchNorm2d bn(4);
  EXPECT_THROW(bn.forward(Tensor::zeros({2, 3, 2, 2})), Error);
}

TEST(LayerNorm, ForwardMatchesDoubleReferenceWithTimmEps) {
  LayerNorm ln(6, 1e-6f);
  Tensor(ln.weight()).copy_(testing::uniform({6}, 1, 0.5f, 1.5f));
  Tensor(ln.bias()).copy_(testing::uniform({6}, 2));
  Tensor x = testing::uniform({2, 3, 6}, 3, -2.0f, 2.0f);
  std::vector<float> xv = x.to_vector(), g = ln.weight().to_vector(), b = ln.bias().to_vector();
  std::vector<double> ref(xv.size());
  for (size_t r = 0; r < xv.size() / 6; ++r) {
    double mean = 0, var = 0;
    for (int k = 0; k < 6; ++k) mean += xv[r * 6 + k];
    mean /= 6;
    for (int k = 0; k < 6; ++k) var += std::pow(xv[r * 6 + k] - mean, 2);
    var /= 6;
    for (int k = 0; k < 6; ++k)
      ref[r * 6 + k] = (xv[r * 6 + k] - mean) / std::sqrt(var + 1e-6) * g[k] + b[k];
  }
  testing::expect_close(ln.forward(x), ref, 1e-5, 1e-5, "layer_norm");
  EXPECT_EQ(ln.describe(), "LayerNorm(6, eps 1e-06)");
  EXPECT_THROW(ln.forward(Tensor::zeros({2, 5})), Error);
}

TEST(Dropout, IdentityInEvalOrAtZeroAndInvertedInTraining) {
  auto gen = std::make_shared<Generator>(5);
  Dropout drop(0.5f, gen);
  Tensor x = testing::uniform({1000}, 1, 1.0f, 2.0f);
  drop.eval();
  EXPECT_TRUE(drop.forward(x).same(x));
  EXPECT_EQ(gen->state().offset, 0u) << "eval must not consume the stream";
  drop.train();
  Tensor y = drop.forward(x);
  EXPECT_GT(gen->state().offset, 0u);
  std::vector<float> xv = x.to_vector(), yv = y.to_vector();
  int zeros = 0;
  for (size_t i = 0; i < xv.size(); ++i) {
    if (yv[i] == 0.0f) {
      ++zeros;
    } else {
      EXPECT_FLOAT_EQ(yv[i], xv[i] * 2.0f);  // kept values scaled by 1 / (1 - p)
    }
  }
  EXPECT_GT(zeros, 400);  // Binomial(1000, 0.5): 400..600 with overwhelming probability
  EXPECT_LT(zeros, 600);
  Dropout none(0.0f, std::shared_ptr<Generator>());
  EXPECT_TRUE(none.forward(x).same(x));
  EXPECT_THROW(Dropout(0.5f, std::shared_ptr<Generator>()), Error);
  EXPECT_THROW(Dropout(1.0f, uint64_t{1}), Error);
}

TEST(Activation, EachKindMatchesItsFormula) {
  Tensor x = Tensor::from_vector({-2.0f, -0.5f, 0.0f, 0.75f, 3.0f}, {5});
  const std::vector<float> xv = x.to_vector();
  struct Case {
    ActivationKind kind;
    const char* name;
    double (*f)(double);
  };
  const Case cases[] = {
      {ActivationKind::kReLU, "ReLU", [](double v) { return v > 0 ? v : 0.0; }},
      {ActivationKind::kGELU, "GELU(erf)", [](double v) { return 0.5 * v * (1 + std::erf(v / std::sqrt(2.0))); }},
      {ActivationKind::kGELUTanh, "GELU(tanh)",
       [](double v) { return 0.5 * v * (1 + std::tanh(std::sqrt(2 / M_PI) * (v + 0.044715 * v * v * v))); }},
      {ActivationKind::kSigmoid, "Sigmoid", [](double v) { return 1 / (1 + std::exp(-v)); }},
      {ActivationKind::kTanh, "Tanh", [](double v) { return std::tanh(v); }},
      {ActivationKind::kSiLU, "SiLU", [](double v) { return v / (1 + std::exp(-v)); }},
  };
  for (const Case& c : cases) {
    Activation act(c.kind);
    EXPECT_EQ(act.describe(), c.name);
    std::vector<double> ref;
    for (float v : xv) ref.push_back(c.f(v));
    // Single float32 functions: within a few ulps.
    testing::expect_close(act.forward(x), ref, 1e-6, 1e-5, c.name);
  }
}

TEST(Pooling, ShapesAndDescriptions) {
  Tensor x = testing::uniform({2, 3, 7, 7}, 1);
  EXPECT_EQ(MaxPool2d(3, 2, 1).forward(x).shape(), (Shape{2, 3, 4, 4}));
  EXPECT_EQ(AvgPool2d(2, 2).forward(x).shape(), (Shape{2, 3, 3, 3}));
  EXPECT_EQ(AdaptiveAvgPool2d(1, 1).forward(x).shape(), (Shape{2, 3, 1, 1}));
  EXPECT_EQ(Flatten().forward(x).shape(), (Shape{2, 147}));
  EXPECT_TRUE(Identity().forward(x).same(x));
  EXPECT_EQ(MaxPool2d(3, 2, 1).describe(), "MaxPool2d(3x3, stride 2, pad 1)");
  EXPECT_THROW(MaxPool2d(2, 2, 2), Error);  // padding over half the kernel, as PyTorch
}

TEST(Sequential, NamesChildrenByIndexAndChainsThem) {
  Sequential seq;
  auto l0 = seq.push_back(std::make_shared<Linear>(3, 4));
  seq.push_back(std::make_shared<Activation>(ActivationKind::kReLU));
  seq.push_back(std::make_shared<Linear>(4, 2));
  EXPECT_EQ(names_of(seq.named_parameters()),
            (std::vector<std::string>{"0.weight", "0.bias", "2.weight", "2.bias"}));
  Generator gen(3);
  for (auto& [name, t] : seq.named_parameters()) fill_normal(t, gen, 0.0f, 1.0f);
  Tensor x = testing::uniform({5, 3}, 4);
  Tensor expected = seq[2]->forward(seq[1]->forward(l0->forward(x)));
  EXPECT_EQ(seq.forward(x).to_vector(), expected.to_vector());
}

// ---- attention ----

namespace {

// timm Attention in double: qkv = x W^T + b, heads split, softmax(q*scale k^T) v, proj.
std::vector<double> attention_reference(const std::vector<float>& x, const std::vector<float>& wqkv,
                                        const std::vector<float>& bqkv, const std::vector<float>& wp,
                                        const std::vector<float>& bp, int B, int N, int C, int H) {
  const int D = C / H;
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));
  std::vector<double> qkv(B * N * 3 * C), y(B * N * C), out(B * N * C);
  for (int t = 0; t < B * N; ++t)
    for (int o = 0; o < 3 * C; ++o) {
      double s = bqkv[o];
      for (int k = 0; k < C; ++k) s += static_cast<double>(x[t * C + k]) * wqkv[o * C + k];
      qkv[t * 3 * C + o] = s;
    }
  // qkv row t = [q (H x D) | k (H x D) | v (H x D)], as reshape(B, N, 3, H, D).
  auto at = [&](int b, int n, int which, int h, int d) {
    return qkv[(b * N + n) * 3 * C + which * C + h * D + d];
  };
  for (int b = 0; b < B; ++b)
    for (int h = 0; h < H; ++h)
      for (int i = 0; i < N; ++i) {
        std::vector<double> logits(N);
        double mx = -1e300, den = 0;
        for (int j = 0; j < N; ++j) {
          double s = 0;
          for (int d = 0; d < D; ++d) s += at(b, i, 0, h, d) * scale * at(b, j, 1, h, d);
          logits[j] = s;
          mx = std::max(mx, s);
        }
        for (int j = 0; j < N; ++j) den += (logits[j] = std::exp(logits[j] - mx));
        for (int d = 0; d < D; ++d) {
          double s = 0;
          for (int j = 0; j < N; ++j) s += logits[j] / den * at(b, j, 2, h, d);
          y[(b * N + i) * C + h * D + d] = s;  // transpose(1, 2).reshape(B, N, C)
        }
      }
  for (int t = 0; t < B * N; ++t)
    for (int o = 0; o < C; ++o) {
      double s = bp[o];
      for (int k = 0; k < C; ++k) s += y[t * C + k] * wp[o * C + k];
      out[t * C + o] = s;
    }
  return out;
}

}  // namespace

TEST(MultiHeadSelfAttention, ForwardMatchesDoublePrecisionTimmFormula) {
  const int B = 2, N = 5, C = 8, H = 2;
  LayerFactory factory;
  AttentionSpec spec;
  spec.dim = C;
  spec.num_heads = H;
  MultiHeadSelfAttention attn(spec, factory, "attn");
  EXPECT_EQ(names_of(attn.named_parameters()),
            (std::vector<std::string>{"qkv.weight", "qkv.bias", "proj.weight", "proj.bias"}));
  EXPECT_FLOAT_EQ(attn.scale(), 0.5f);  // D = 4
  Generator gen(11);
  for (auto& [name, t] : attn.named_parameters()) fill_normal(t, gen, 0.0f, 0.5f);
  Tensor x = testing::uniform({B, N, C}, 12, -1.5f, 1.5f);
  auto ref = attention_reference(x.to_vector(), attn.find_tensor("qkv.weight").to_vector(),
                                 attn.find_tensor("qkv.bias").to_vector(),
                                 attn.find_tensor("proj.weight").to_vector(),
                                 attn.find_tensor("proj.bias").to_vector(), B, N, C, H);
  // Three float32 GEMM/softmax stages over O(1) values: ~1e-6 relative each.
  testing::expect_close(attn.forward(x), ref, 2e-5, 2e-5, "attention");
  EXPECT_EQ(attn.describe(), "MultiHeadSelfAttention(8, 2 heads of 4)");
  EXPECT_THROW(attn.forward(Tensor::zeros({2, 5, 6})), Error);
}

TEST(MultiHeadSelfAttention, BackwardMatchesFiniteDifferences) {
  LayerFactory factory;
  AttentionSpec spec;
  spec.dim = 4;
  spec.num_heads = 2;
  MultiHeadSelfAttention attn(spec, factory, "attn");
  Generator gen(21);
  for (auto& [name, t] : attn.named_parameters()) fill_normal(t, gen, 0.0f, 0.5f);
  std::vector<Tensor> inputs{testing::uniform({2, 3, 4}, 22)};
  for (auto& [name, t] : attn.named_parameters()) inputs.push_back(t);
  testing::check_gradients([&](const std::vector<Tensor>& in) { return attn.forward(in[0]); },
                           inputs, {}, "attention");
}

TEST(LayerFactory, DefaultMakesTheNativeLayers) {
  LayerFactory f;
  EXPECT_EQ(f.activation(ActivationKind::kGELU, "a")->describe(), "GELU(erf)");
  EXPECT_EQ(f.softmax("s")->describe(), "Softmax(last dim)");
  EXPECT_EQ(f.linear(64, 256, true, "l")->describe(), "Linear(64 -> 256, bias)");
  Conv2dSpec c;
  c.in_channels = 16;
  c.out_channels = 32;
  c.kernel = 3;
  c.stride = 2;
  c.padding = 1;
  c.bias = false;
  EXPECT_EQ(f.conv2d(c, "c")->describe(), "Conv2d(16 -> 32, 3x3, stride 2, pad 1, groups 1, no bias)");
  EXPECT_EQ(join_path("blocks.0", "mlp"), "blocks.0.mlp");
  EXPECT_EQ(join_path("", "head"), "head");
}

}  // namespace qilin
