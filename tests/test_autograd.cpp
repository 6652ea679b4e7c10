#include <gtest/gtest.h>

#include "core/autograd.h"
#include "core/ops/elementwise.h"
#include "core/ops/unary.h"
#include "tests/testing.h"

namespace qilin {

TEST(Autograd, ChainAndFanOutAccumulate) {
  // y = x*x + 3x; dy/dx = 2x + 3 (x is used three times).
  Tensor x = Tensor::from_vector({1.0f, -2.0f, 0.5f}, {3}).set_requires_grad();
  Tensor y = x * x + x * 3.0f;
  y.backward(Tensor::ones({3}));
  testing::expect_close(x.grad(), std::vector<double>{5.0, -1.0, 4.0}, 0, 1e-7, "dy/dx");
}

TEST(Autograd, GradientsAccumulateAcrossBackwardCalls) {
  Tensor x = Tensor::from_vector({2.0f}, {1}).set_requires_grad();
  (x * 2.0f).backward();
  (x * 3.0f).backward();
  EXPECT_FLOAT_EQ(x.grad().item(), 5.0f);
  x.zero_grad();
  EXPECT_FALSE(x.grad().defined());
}

TEST(Autograd, BackwardWithoutRequiresGradIsAnError) {
  Tensor x = Tensor::ones({1});
  Tensor y = x * 2.0f;
  try {
    y.backward();
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("does not require grad"), std::string::npos);
  }
}

TEST(Autograd, NoGradGuardRecordsNothing) {
  Tensor x = Tensor::ones({2}).set_requires_grad();
  {
    NoGradGuard guard;
    Tensor y = x * 2.0f;
    EXPECT_FALSE(y.requires_grad());
    EXPECT_FALSE(y.grad_fn());
  }
  EXPECT_TRUE((x * 2.0f).requires_grad());
}

TEST(Autograd, DetachCutsTheGraph) {
  Tensor x = Tensor::ones({2}).set_requires_grad();
  Tensor y = (x * 2.0f).detach();
  EXPECT_FALSE(y.requires_grad());
  Tensor z = x * y;
  z.backward(Tensor::ones({2}));
  testing::expect_close(x.grad(), std::vector<double>{2.0, 2.0}, 0, 0, "dz/dx");
}

TEST(Autograd, ImplicitGradientNeedsAScalar) {
  Tensor x = Tensor::ones({3}).set_requires_grad();
  EXPECT_THROW((x * 2.0f).backward(), Error);
}

TEST(Autograd, SecondBackwardWithoutRetainGraphIsAnError) {
  Tensor x = Tensor::ones({1}).set_requires_grad();
  Tensor y = (x * x) * 2.0f;
  y.backward();
  EXPECT_THROW(y.backward(), Error);
  Tensor z = (x * x) * 2.0f;
  x.zero_grad();
  z.backward(Tensor(), /*retain_graph=*/true);
  z.backward();
  EXPECT_FLOAT_EQ(x.grad().item(), 8.0f);
}

TEST(Autograd, LeafGradientsNeverAliasEachOther) {
  // add's backward hands the same tensor to both inputs; scaling one leaf's .grad in
  // place must not change the other's.
  Tensor a = Tensor::ones({2}).set_requires_grad();
  Tensor b = Tensor::ones({2}).set_requires_grad();
  (a + b).backward(Tensor::ones({2}));
  a.grad().data<float>()[0] = 7.0f;
  EXPECT_EQ(b.grad().data<float>()[0], 1.0f);
}

TEST(Autograd, ReshapeAndViewRowsAreDifferentiable) {
  testing::check_gradients(
      [](const std::vector<Tensor>& in) { return in[0].reshape({3, 2}) * 2.0f; },
      {testing::uniform({2, 3}, 1)}, {}, "reshape");
  testing::check_gradients(
      [](const std::vector<Tensor>& in) { return in[0].view_rows(1, 3); },
      {testing::uniform({4, 2}, 2)}, {}, "view_rows");
}

}  // namespace qilin

namespace qilin {

TEST(Autograd, LeafGradientNeverAliasesTheCallersGradOutput) {
  // add's backward passes the seed straight through: the leaf must get its own copy.
  Tensor x = Tensor::ones({2}).set_requires_grad();
  Tensor seed = Tensor::ones({2});
  (x * 2.0f + x).backward(seed);
  x.grad().data<float>()[0] = 42.0f;
  EXPECT_EQ(seed.data<float>()[0], 1.0f);
  Tensor z = Tensor::ones({2}).set_requires_grad();
  (z + 1.0f).backward(seed);
  z.grad().data<float>()[1] = 42.0f;
  EXPECT_EQ(seed.data<float>()[1], 1.0f);
}

TEST(Autograd, GradientsOfATensorUsedManyTimesSumCorrectly) {
  // Many consumers of one intermediate: accumulation (in place where possible) must sum.
  Tensor x = Tensor::from_vector({1.0f, 2.0f}, {2}).set_requires_grad();
  Tensor h = x * 3.0f;
  Tensor y = h * 1.0f + h * 2.0f + h * 4.0f + h;
  y.backward(Tensor::ones({2}));
  testing::expect_close(x.grad(), std::vector<double>{24.0, 24.0}, 0, 0, "dy/dx");
}

TEST(Autograd, GradBufferReusesOnlyAnUnsharedGradient) {
  const Tensor like = Tensor::zeros({4});
  {
    Tensor g = Tensor::ones({4});
    const float* data = g.data<float>();
    EXPECT_EQ(grad_buffer(std::move(g), like).data<float>(), data) << "the only handle";
  }
  Tensor shared = Tensor::ones({4});
  Tensor other = shared;  // a second handle: someone else may read the values
  EXPECT_NE(grad_buffer(shared, like).data<float>(), shared.data<float>());
  Tensor base = Tensor::ones({2, 4});
  EXPECT_NE(grad_buffer(base.view_rows(0, 1).reshape({4}), like).data<float>(), base.data<float>())
      << "a view shares its storage";
  const Tensor other_shape = grad_buffer(Tensor::ones({2, 2}), like);
  EXPECT_EQ(other_shape.shape(), like.shape()) << "another shape: a new buffer of like's";
}

TEST(Autograd, InPlaceBackwardsLeaveTheCallersGradOutputAlone) {
  // tanh's backward receives the seed itself: shared with the caller, so it must not write
  // dx over it. exp's receives mul's fresh gradient, which it may overwrite.
  Tensor x = Tensor::from_vector({0.5f, -1.0f, 2.0f}, {3}).set_requires_grad();
  Tensor seed = Tensor::from_vector({1.0f, 2.0f, 3.0f}, {3});
  tanh(x).backward(seed);
  testing::expect_close(seed, std::vector<double>{1.0, 2.0, 3.0}, 0, 0, "seed after tanh");
  std::vector<double> expected;
  for (int i = 0; i < 3; ++i) {
    const double t = std::tanh(static_cast<double>(x.data<float>()[i]));
    expected.push_back((i + 1) * (1 - t * t));
  }
  testing::expect_close(x.grad(), expected, 1e-6, 1e-6, "dtanh");
  x.zero_grad();
  (exp(x) * 2.0f).backward(seed);
  std::vector<double> dexp;
  for (int i = 0; i < 3; ++i) dexp.push_back(2.0 * (i + 1) * std::exp(static_cast<double>(x.data<float>()[i])));
  testing::expect_close(x.grad(), dexp, 1e-6, 1e-6, "d(2 exp)");
  testing::expect_close(seed, std::vector<double>{1.0, 2.0, 3.0}, 0, 0, "seed after exp");
}

}  // namespace qilin
