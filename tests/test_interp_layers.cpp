// The interpolated layers (layers/interp.h) and their config: gradients in both grad modes
// (DESIGN.md §4.1), the factory swapping them into a model without touching model code, and
// what enabling interp does to a ViT's logits.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "core/autograd.h"
#include "core/interp.h"
#include "core/ops/elementwise.h"
#include "core/ops/interp.h"
#include "core/ops/reduce.h"
#include "core/ops/softmax.h"
#include "core/ops/unary.h"
#include "core/random.h"
#include "layers/interp.h"
#include "models/registry.h"
#include "tests/testing.h"
#include "train/config.h"
#include "train/run_support.h"

namespace qilin {
namespace {

using testing::check_gradients;
using testing::GradCheckOptions;

std::shared_ptr<const InterpTable> table(InterpFn fn, int64_t pieces, InterpGrad grad) {
  InterpSpec spec;
  spec.fn = fn;
  spec.pieces = pieces;
  spec.domain = default_domain(fn);
  spec.grad = grad;
  return InterpTable::get(spec);
}

// Inputs near piece centres (offset < width / 4), so x ± eps stays in one piece: the forward
// is linear there and central differences see exactly the slope. Some inputs lie outside
// the domain on both sides.
Tensor inputs_inside_pieces(const InterpTable& t, int64_t count, uint32_t seed) {
  const InterpDomain d = t.spec().domain;
  const double width = (d.hi() - d.lo()) / static_cast<double>(t.pieces());
  std::mt19937 gen(seed);
  std::uniform_int_distribution<int64_t> piece(0, t.pieces() - 1);
  std::uniform_real_distribution<double> offset(-0.25 * width, 0.25 * width);
  Tensor x = Tensor::empty({count});
  for (int64_t i = 0; i < count; ++i)
    x.data<float>()[i] = static_cast<float>(d.lo() + (static_cast<double>(piece(gen)) + 0.5) * width + offset(gen));
  x.data<float>()[0] = static_cast<float>(d.lo() - 1.5);
  x.data<float>()[1] = static_cast<float>(d.hi() + 1.5);
  return x;
}

TEST(InterpActivation, SlopeGradientsAreTheForwardsDerivativeByFiniteDifferences) {
  for (InterpFn fn : {InterpFn::kGelu, InterpFn::kSigmoid, InterpFn::kTanh, InterpFn::kSilu}) {
    auto t = table(fn, 64, InterpGrad::kSlope);
    GradCheckOptions opt;
    opt.eps = 1e-3;  // << the 64-piece width (>= 0.125)
    check_gradients([&](const std::vector<Tensor>& in) { return interp_activation(in[0], t); },
                    {inputs_inside_pieces(*t, 200, 1)}, opt, to_string(fn));
  }
}

// The backward writes dx over the incoming gradient only when nobody else holds it
// (grad_buffer): the caller's seed keeps its values; mul's fresh gradient is overwritten.
// Either way dx is dy times the scalar derivative, bit for bit.
TEST(InterpActivation, BackwardWritesOverOnlyAnUnsharedGradient) {
  for (InterpGrad grad : {InterpGrad::kSlope, InterpGrad::kTable}) {
    auto t = table(InterpFn::kTanh, 256, grad);
    Tensor x = testing::uniform({1000}, 3, -5.0f, 5.0f);
    x.set_requires_grad(true);
    const Tensor seed = testing::uniform({1000}, 4, -1.0f, 1.0f);
    const Tensor seed_copy = seed.clone();
    interp_activation(x, t).backward(seed);
    for (int64_t i = 0; i < x.numel(); ++i) {
      ASSERT_EQ(seed.data<float>()[i], seed_copy.data<float>()[i]) << "seed element " << i;
      ASSERT_EQ(x.grad().data<float>()[i], seed.data<float>()[i] * t->derivative(x.data<float>()[i])) << i;
    }
    x.zero_grad();
    (interp_activation(x, t) * 2.0f).backward(seed);
    for (int64_t i = 0; i < x.numel(); ++i) {
      ASSERT_EQ(x.grad().data<float>()[i], 2.0f * seed.data<float>()[i] * t->derivative(x.data<float>()[i])) << i;
    }
  }
}

TEST(InterpActivation, TableGradientsFollowTheTrueDerivativeWithinTheTablesError) {
  for (InterpFn fn : {InterpFn::kGelu, InterpFn::kSigmoid, InterpFn::kTanh, InterpFn::kSilu}) {
    auto t = table(fn, 1024, InterpGrad::kTable);
    Tensor x = testing::uniform({4096}, 2, static_cast<float>(t->spec().domain.lo()),
                                static_cast<float>(t->spec().domain.hi()));
    x.set_requires_grad(true);
    sum(interp_activation(x, t)).backward();
    // f' interpolated by 1024 chords: error <= max|f'''| h^2 / 8 with h = 8 / 1024 (gelu:
    // |f'''| <= 1.2; silu on [-16, 16] has h = 1/32 and |f'''| <= 0.5): below 1e-4.
    for (int64_t i = 0; i < x.numel(); ++i) {
      const double xi = x.data<float>()[i];
      EXPECT_NEAR(x.grad().data<float>()[i], interp_fn_derivative(fn, xi), 1e-4) << to_string(fn) << " x " << xi;
    }
  }
}

TEST(InterpActivation, IgeluBackwardIsItsDerivative) {
  InterpSpec spec;
  spec.fn = InterpFn::kGelu;
  spec.method = InterpMethod::kIgelu;
  auto t = InterpTable::get(spec);
  // Away from the kink of i-GELU's clip at |x| = 1.769 sqrt 2.
  Tensor x = testing::uniform({300}, 3, -2.4f, 2.4f);
  check_gradients([&](const std::vector<Tensor>& in) { return interp_activation(in[0], t); }, {x});
}

// Rows whose entries sit at exp-table piece centres below the row's max.
Tensor softmax_inputs(const InterpTable& t, int64_t rows, int64_t cols, uint32_t seed) {
  const double width = 16.0 / static_cast<double>(t.pieces());
  std::mt19937 gen(seed);
  std::uniform_int_distribution<int64_t> piece(0, t.pieces() - 1);
  std::uniform_real_distribution<double> offset(-0.25 * width, 0.25 * width), top(-1.0, 1.0);
  Tensor x = Tensor::empty({rows, cols});
  for (int64_t r = 0; r < rows; ++r) {
    const double max = top(gen);
    for (int64_t c = 0; c < cols; ++c) {
      // s = x - max in the middle of a piece of [-16, 0); column r % cols holds the max.
      const double s = c == r % cols ? 0.0 : -16.0 + (static_cast<double>(piece(gen)) + 0.5) * width + offset(gen);
      x.data<float>()[r * cols + c] = static_cast<float>(max + s);
    }
  }
  return x;
}

TEST(InterpSoftmax, SlopeGradientIsTheExactDerivativeOfTheTableForward) {
  auto t = table(InterpFn::kExp, 64, InterpGrad::kSlope);
  GradCheckOptions opt;
  opt.eps = 1e-3;
  check_gradients([&](const std::vector<Tensor>& in) { return interp_softmax(in[0], t); },
                  {softmax_inputs(*t, 6, 9, 4)}, opt);
}

TEST(InterpSoftmax, TableGradientIsTheSoftmaxBackwardFromItsOutput) {
  auto t = table(InterpFn::kExp, 4096, InterpGrad::kTable);
  Tensor x = testing::uniform({5, 7}, 5, -3.0f, 3.0f);
  x.set_requires_grad(true);
  Tensor w = testing::uniform({5, 7}, 6);
  Tensor y = interp_softmax(x, t);
  sum(y * w).backward();
  // dx = y (w - sum(w y)) per row, with the table softmax's own y.
  for (int64_t r = 0; r < 5; ++r) {
    double dot = 0;
    for (int64_t c = 0; c < 7; ++c) dot += double(y.data<float>()[r * 7 + c]) * w.data<float>()[r * 7 + c];
    for (int64_t c = 0; c < 7; ++c) {
      const double yc = y.data<float>()[r * 7 + c];
      EXPECT_NEAR(x.grad().data<float>()[r * 7 + c], yc * (w.data<float>()[r * 7 + c] - dot), 1e-6);
    }
  }
}

TEST(InterpSoftmax, AgreesWithSoftmaxWithinTheExpTablesError) {
  auto t = table(InterpFn::kExp, 4096, InterpGrad::kSlope);
  Tensor x = testing::uniform({64, 50}, 7, -8.0f, 8.0f);
  Tensor a = interp_softmax(x, t), b = softmax(x);
  // exp on [-16, 0] with 4096 pieces: |error| <= h^2 / 8 = (1/256)^2 / 8 ≈ 1.9e-6 (relative to
  // e^s, whose largest value 1 is at the max), so probabilities move by a few 1e-6.
  double worst = 0;
  for (int64_t i = 0; i < x.numel(); ++i)
    worst = std::max(worst, std::abs(double(a.data<float>()[i]) - b.data<float>()[i]));
  EXPECT_LT(worst, 4e-6);
  EXPECT_GT(worst, 0.0);  // the table really ran
}

// ---- the factory, in a model ----

Tensor vit_logits(LayerFactory& factory, const Tensor& x) {
  ModelSpec spec;
  spec.arch = "vit";
  Generator g(11);
  auto model = create_model(spec, factory, g);
  model->eval();
  NoGradGuard no_grad;
  return model->forward(x);
}

double max_abs_diff(const Tensor& a, const Tensor& b) {
  double worst = 0;
  for (int64_t i = 0; i < a.numel(); ++i)
    worst = std::max(worst, std::abs(double(a.data<float>()[i]) - b.data<float>()[i]));
  return worst;
}

TEST(InterpLayerFactory, PutsTablesIntoAViTAndTheLogitsMoveByTheTablesErrorAndNoMore) {
  Tensor x = testing::uniform({8, 1, 28, 28}, 8, -1.0f, 2.0f);
  LayerFactory native;
  const Tensor reference = vit_logits(native, x);
  std::vector<double> moved;
  for (int64_t pieces : {16, 256, 4096}) {
    InterpLayerOptions o;
    for (InterpFn fn : {InterpFn::kGelu, InterpFn::kExp}) o.functions[fn] = table(fn, pieces, InterpGrad::kSlope)->spec();
    InterpLayerFactory factory(o);
    moved.push_back(max_abs_diff(vit_logits(factory, x), reference));
    EXPECT_TRUE(factory.unused().empty());
  }
  // Each 16x more pieces cuts the tables' error ~256x (h^2); the logits follow it down.
  EXPECT_GT(moved[0], 20 * moved[1]);
  EXPECT_GT(moved[1], 20 * moved[2]);
  EXPECT_GT(moved[2], 0.0);   // 4096 pieces still differ: the tables ran
  EXPECT_LT(moved[2], 1e-4);  // GELU's 4096-piece error is ~3e-7, exp's ~2e-6
}

TEST(InterpLayerFactory, NamesEveryTableInTheLayerListAndReportsUnusedFunctions) {
  InterpLayerOptions o;
  for (InterpFn fn : {InterpFn::kGelu, InterpFn::kExp, InterpFn::kSigmoid})
    o.functions[fn] = table(fn, 1024, InterpGrad::kSlope)->spec();
  InterpLayerFactory factory(o);
  ModelSpec spec;
  spec.arch = "vit";
  spec.depth = 2;
  Generator g(1);
  auto model = create_model(spec, factory, g);
  int tables = 0;
  for (const auto& [name, impl] : layer_implementations(*model)) {
    if (name.find("mlp.act") != std::string::npos) {
      EXPECT_EQ(impl, "interp uniform gelu 1024 pieces [-5, 3] grad slope") << name;
      ++tables;
    }
    if (impl.find("Softmax") != std::string::npos) {
      EXPECT_NE(impl.find("interp uniform exp 1024 pieces [-16, 0]"), std::string::npos) << name << ": " << impl;
      ++tables;
    }
  }
  EXPECT_EQ(tables, 4);  // 2 blocks x (GELU, softmax)
  ASSERT_EQ(factory.unused().size(), 1u);
  EXPECT_EQ(factory.unused()[0], InterpFn::kSigmoid);
}

// ---- config ----

Config interp_config(std::vector<std::string> overrides) {
  return load_config_text("model: {arch: vit}\ndata: {dataset: synthetic, val_size: 256}\noptim: {name: adamw, lr: 1.0e-3, epochs: 1}\n",
                          "interp.yaml", overrides);
}

std::string config_error(std::vector<std::string> overrides) {
  try {
    interp_config(std::move(overrides));
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST(InterpConfig, TheSectionGivesEachFunctionsSpec) {
  Config c = interp_config({"interp.enabled=true", "interp.segments=256", "interp.functions.gelu.segments=1024",
                            "interp.grad=table", "interp.functions.tanh.domain=[-2, 2]"});
  InterpSpec gelu = interp_spec(c.interp, InterpFn::kGelu);
  EXPECT_EQ(gelu.pieces, 1024);
  EXPECT_EQ(gelu.grad, InterpGrad::kTable);
  EXPECT_EQ(interp_spec(c.interp, InterpFn::kExp).pieces, 256);
  InterpSpec tanh_spec = interp_spec(c.interp, InterpFn::kTanh);
  EXPECT_EQ(tanh_spec.domain.lo(), -2.0);
  EXPECT_EQ(tanh_spec.domain.hi(), 2.0);
  EXPECT_EQ(interp_spec(c.interp, InterpFn::kExp).domain.lo(), -16.0);
  // method igelu: GELU only; the others run natively.
  Config ig = interp_config({"interp.enabled=true", "interp.method=igelu"});
  EXPECT_EQ(interp_spec(ig.interp, InterpFn::kGelu).method, InterpMethod::kIgelu);
  EXPECT_EQ(interp_spec(ig.interp, InterpFn::kExp).method, InterpMethod::kNative);
}

TEST(InterpConfig, APieceCountOrDomainThatIsNotAPowerOfTwoNamesItsKey) {
  std::string e = config_error({"interp.enabled=true", "interp.segments=1000"});
  EXPECT_NE(e.find("interp.segments = 1000"), std::string::npos) << e;
  e = config_error({"interp.enabled=true", "interp.functions.gelu.segments=48"});
  EXPECT_NE(e.find("interp.functions.gelu.segments = 48"), std::string::npos) << e;
  e = config_error({"interp.enabled=true", "interp.functions.gelu.domain=[-5, 2]"});
  EXPECT_NE(e.find("interp.functions.gelu.domain = [-5, 2]"), std::string::npos) << e;
  e = config_error({"interp.enabled=true", "interp.segments=131072"});
  EXPECT_NE(e.find("interp.segments"), std::string::npos) << e;
  e = config_error({"interp.enabled=true", "interp.method=cubic"});
  EXPECT_NE(e.find("interp.method"), std::string::npos) << e;
  // Disabled, nothing is checked beyond the schema.
  EXPECT_EQ(config_error({"interp.functions.gelu.domain=[-5, 2]"}), "");
}

}  // namespace
}  // namespace qilin
