// Dropout: identity where it must be, the drop rate and 1/(1-p) scale, a mask fixed by the
// generator's state, and a backward that applies the forward's mask.
#include <gtest/gtest.h>

#include <cmath>

#include "core/ops/dropout.h"
#include "core/random.h"
#include "tests/testing.h"

namespace qilin {

TEST(Dropout, IdentityInEvalAndAtPZero) {
  Generator g(5);
  Tensor x = testing::uniform({4, 33}, 1);
  EXPECT_TRUE(dropout(x, 0.5f, /*training=*/false, g).same(x));
  EXPECT_TRUE(dropout(x, 0.0f, /*training=*/true, g).same(x));
  // Neither consumed random numbers.
  EXPECT_EQ(g.state().offset, 0u);
}

TEST(Dropout, DropsAboutPAndScalesTheRestByOneOverOneMinusP) {
  for (float p : {0.1f, 0.5f, 0.9f}) {
    Generator g(6);
    const int64_t n = 200000;
    Tensor x = testing::uniform({n}, 2, 0.5f, 1.5f);  // never 0: a zero output means dropped
    Tensor y = dropout(x, p, true, g);
    std::vector<float> xv = x.to_vector(), yv = y.to_vector();
    int64_t dropped = 0;
    for (int64_t i = 0; i < n; ++i) {
      if (yv[i] == 0.0f) {
        ++dropped;
      } else {
        // x * (1/(1-p)) rounded once or twice: within 2 ulp of the double product.
        ASSERT_NEAR(yv[i], xv[i] / (1.0 - p), 2.5e-7 * std::fabs(yv[i])) << "p " << p;
      }
    }
    // Binomial(n, p): standard deviation sqrt(n p (1-p)) <= 224; allow 5 of them.
    EXPECT_NEAR(static_cast<double>(dropped), p * n, 5 * std::sqrt(n * p * (1 - p))) << p;
  }
}

TEST(Dropout, PEqualOneDropsEverything) {
  Generator g(7);
  std::vector<float> y = dropout(testing::uniform({100}, 3), 1.0f, true, g).to_vector();
  for (float v : y) EXPECT_EQ(v, 0.0f);
}

TEST(Dropout, SameGeneratorStateGivesTheSameMask) {
  Tensor x = testing::uniform({3, 1000}, 4, 0.5f, 1.5f);
  Generator a(8), b(8);
  std::vector<float> ya = dropout(x, 0.3f, true, a).to_vector();
  EXPECT_EQ(dropout(x, 0.3f, true, b).to_vector(), ya);
  // The next call draws a fresh mask.
  EXPECT_NE(dropout(x, 0.3f, true, a).to_vector(), ya);
  // A restored state replays the first mask.
  Generator c(8);
  PhiloxState start = c.state();
  dropout(x, 0.3f, true, c);
  c.set_state(start);
  EXPECT_EQ(dropout(x, 0.3f, true, c).to_vector(), ya);
}

TEST(Dropout, BackwardAppliesTheForwardMask) {
  // y = x * m / (1-p), so dL/dx = dL/dy * m / (1-p): with upstream w, dx = w where y = x*s,
  // 0 where dropped.
  const float p = 0.4f;
  Generator g(9);
  Tensor x = testing::uniform({7, 129}, 5, 0.5f, 1.5f).set_requires_grad(true);
  Tensor y = dropout(x, p, true, g);
  Tensor w = testing::uniform(y.shape(), 6);
  y.backward(w);
  std::vector<float> yv = y.to_vector(), wv = w.to_vector(), gv = x.grad().to_vector();
  std::vector<double> expected(yv.size());
  for (size_t i = 0; i < yv.size(); ++i) expected[i] = yv[i] == 0.0f ? 0.0 : wv[i] / (1.0 - p);
  testing::expect_close(x.grad(), expected, 0, 2.5e-7, "dropout grad");
  // The same through finite differences (the mask is fixed by re-seeding each evaluation).
  testing::check_gradients(
      [p](const std::vector<Tensor>& in) {
        Generator fixed(10);
        return dropout(in[0], p, true, fixed);
      },
      {testing::uniform({5, 11}, 7)}, {}, "dropout");
}

TEST(Dropout, BadProbabilityNamesTheOp) {
  Generator g(11);
  Tensor x = testing::uniform({4}, 8);
  EXPECT_THROW(dropout(x, -0.1f, true, g), Error);
  EXPECT_THROW(dropout(x, 1.5f, true, g), Error);
  try {
    dropout(x, 1.5f, true, g);
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("dropout"), std::string::npos);
  }
}

}  // namespace qilin
