#include <gtest/gtest.h>

#include "core/autograd.h"
#include "core/ops/elementwise.h"
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

}  // namespace qilin
