#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "core/ops/matmul.h"
#include "kernels/cpu/gemm.h"
#include "tests/testing.h"

namespace qilin {
namespace {

// Double-precision op(a) op(b) under matmul's batching rules: b 2-D is shared by every
// batch entry of a (the folded case computes the same numbers), a 2-D by every entry of b.
std::vector<double> reference(const Tensor& a, const Tensor& b, bool ta, bool tb) {
  std::vector<float> av = a.to_vector(), bv = b.to_vector();
  const int64_t ar = a.size(-2), ac = a.size(-1), br = b.size(-2), bc = b.size(-1);
  const int64_t m = ta ? ac : ar, k = ta ? ar : ac, n = tb ? br : bc;
  const int64_t a_batch = a.numel() / (ar * ac), b_batch = b.numel() / (br * bc);
  const int64_t batch = std::max(a_batch, b_batch);
  std::vector<double> out(batch * m * n);
  for (int64_t p = 0; p < batch; ++p) {
    const float* A = av.data() + (a_batch == 1 ? 0 : p) * ar * ac;
    const float* B = bv.data() + (b_batch == 1 ? 0 : p) * br * bc;
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        double s = 0;
        for (int64_t l = 0; l < k; ++l)
          s += double(ta ? A[l * ac + i] : A[i * ac + l]) *
               double(tb ? B[j * bc + l] : B[l * bc + j]);
        out[(p * m + i) * n + j] = s;
      }
  }
  return out;
}

// Operand shapes for C = op(A) op(B) with op(A) [.., m, k], op(B) [.., k, n].
Shape operand(Shape batch, int64_t rows, int64_t cols, bool trans) {
  batch.push_back(trans ? cols : rows);
  batch.push_back(trans ? rows : cols);
  return batch;
}

struct Geometry {
  const char* name;
  Shape a_batch, b_batch;
  int64_t m, n, k;
};
const Geometry kGeometries[] = {
    {"2-D", {}, {}, 5, 7, 3},
    {"folded N-D x 2-D", {2, 3}, {}, 4, 6, 5},
    {"batched", {2, 3}, {2, 3}, 4, 3, 6},
    {"2-D shared x N-D", {}, {3}, 3, 4, 5},
    {"size-1 dims", {1}, {1}, 1, 1, 1},
};

// Float32 dot products of k terms of size <= 1 err by at most ~k * 6e-8 * sum|a_l b_l|.
// atol 1e-5 and rtol 1e-5 cover k up to ~100 with room; a wrong element misses by O(0.1).
constexpr double kAtol = 1e-5, kRtol = 1e-5;

}  // namespace

TEST(Matmul, ForwardMatchesDoubleReferenceForEveryTransposeAndBatching) {
  for (const Geometry& g : kGeometries) {
    for (int flags = 0; flags < 4; ++flags) {
      const bool ta = flags & 1, tb = flags & 2;
      Tensor a = testing::uniform(operand(g.a_batch, g.m, g.k, ta), 1);
      Tensor b = testing::uniform(operand(g.b_batch, g.k, g.n, tb), 2);
      Tensor c = matmul(a, b, ta, tb);
      Shape expected = g.a_batch.size() >= g.b_batch.size() ? g.a_batch : g.b_batch;
      expected.push_back(g.m);
      expected.push_back(g.n);
      EXPECT_EQ(c.shape(), expected) << g.name;
      testing::expect_close(c, reference(a, b, ta, tb), kAtol, kRtol,
                            str_cat(g.name, " ta=", ta, " tb=", tb));
    }
  }
}

TEST(Matmul, AttentionSizedBatchesMatchReference) {
  // ViT attention: many small products (threaded over the batch), q k^T and p v.
  Tensor q = testing::uniform({96, 50, 16}, 3), k = testing::uniform({96, 50, 16}, 4);
  Tensor scores = matmul(q, k, false, true);
  testing::expect_close(scores, reference(q, k, false, true), kAtol, kRtol, "q k^T");
  Tensor p = testing::uniform({96, 50, 50}, 5);
  testing::expect_close(matmul(p, q), reference(p, q, false, false), kAtol, kRtol, "p v");
  testing::expect_close(matmul(p, q, true, false), reference(p, q, true, false), kAtol, kRtol,
                        "p^T dO");
}

TEST(Matmul, LargeBatchedProductsMatchReference) {
  // Above the small-product threshold each product runs on all threads, one after another.
  Tensor a = testing::uniform({2, 128, 96}, 6), b = testing::uniform({2, 128, 96}, 7);
  // k = 96: the bound grows with k; 3e-5 keeps a 10x margin.
  testing::expect_close(matmul(a, b, false, true), reference(a, b, false, true), 3e-5, 1e-5,
                        "[2,128,96] x [2,128,96]^T");
}

TEST(Matmul, EmptyInnerDimGivesZeros) {
  Tensor a = Tensor::empty({3, 0}), b = Tensor::empty({0, 4});
  testing::expect_close(matmul(a, b), std::vector<double>(12, 0.0), 0, 0, "k = 0");
  EXPECT_EQ(matmul(Tensor::empty({0, 5}), testing::uniform({5, 2}, 1)).shape(), (Shape{0, 2}));
}

TEST(Matmul, BadShapesNameTheOpAndShapes) {
  auto message = [](auto f) {
    try {
      f();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  std::string inner = message([] { matmul(Tensor::zeros({2, 3}), Tensor::zeros({4, 5})); });
  EXPECT_NE(inner.find("matmul"), std::string::npos) << inner;
  EXPECT_NE(inner.find("[2, 3] x [4, 5]"), std::string::npos) << inner;
  std::string batch = message([] { matmul(Tensor::zeros({2, 2, 3}), Tensor::zeros({3, 3, 4})); });
  EXPECT_NE(batch.find("batch dims differ"), std::string::npos) << batch;
  std::string one_d = message([] { matmul(Tensor::zeros({3}), Tensor::zeros({3, 4})); });
  EXPECT_NE(one_d.find(">= 2 dims"), std::string::npos) << one_d;
}

TEST(Matmul, BackwardMatchesFiniteDifferencesForEveryTransposeAndBatching) {
  for (const Geometry& g : kGeometries) {
    for (int flags = 0; flags < 4; ++flags) {
      const bool ta = flags & 1, tb = flags & 2;
      Tensor a = testing::uniform(operand(g.a_batch, g.m, g.k, ta), 8);
      Tensor b = testing::uniform(operand(g.b_batch, g.k, g.n, tb), 9);
      testing::check_gradients(
          [ta, tb](const std::vector<Tensor>& in) { return matmul(in[0], in[1], ta, tb); }, {a, b},
          {}, str_cat(g.name, " ta=", ta, " tb=", tb));
    }
  }
}

TEST(Matmul, BackwardWithSharedTransposedOperand) {
  // a [2, k, m] with trans_a against a 2-D b: b is shared per batch entry (not folded).
  for (bool tb : {false, true}) {
    Tensor a = testing::uniform({2, 4, 3}, 10),
           b = testing::uniform(tb ? Shape{5, 4} : Shape{4, 5}, 11);
    testing::expect_close(matmul(a, b, true, tb), reference(a, b, true, tb), kAtol, kRtol,
                          "shared b forward");
    testing::check_gradients(
        [tb](const std::vector<Tensor>& in) { return matmul(in[0], in[1], true, tb); }, {a, b}, {},
        str_cat("shared b, tb=", tb));
  }
}

TEST(Matmul, AlphaScalesTheProductAndItsGradients) {
  // Attention's q k^T / sqrt(d) folds the scale into the GEMM; every batching path takes it.
  for (const Geometry& g : kGeometries) {
    for (int flags = 0; flags < 4; ++flags) {
      const bool ta = flags & 1, tb = flags & 2;
      Tensor a = testing::uniform(operand(g.a_batch, g.m, g.k, ta), 12);
      Tensor b = testing::uniform(operand(g.b_batch, g.k, g.n, tb), 13);
      std::vector<double> ref = reference(a, b, ta, tb);
      for (double& v : ref) v *= 0.25;
      testing::expect_close(matmul(a, b, ta, tb, 0.25f), ref, kAtol, kRtol,
                            str_cat(g.name, " alpha ta=", ta, " tb=", tb));
      testing::check_gradients(
          [ta, tb](const std::vector<Tensor>& in) { return matmul(in[0], in[1], ta, tb, -1.5f); },
          {a, b}, {}, str_cat(g.name, " alpha ta=", ta, " tb=", tb));
    }
  }
}

TEST(Linear, ForwardMatchesDoubleReferenceWithAndWithoutBias) {
  for (const Shape& xs : {Shape{7}, Shape{5, 7}, Shape{2, 3, 7}}) {
    Tensor x = testing::uniform(xs, 12), w = testing::uniform({4, 7}, 13),
           b = testing::uniform({4}, 14);
    std::vector<float> xv = x.to_vector(), wv = w.to_vector(), bv = b.to_vector();
    const int64_t rows = x.numel() / 7;
    std::vector<double> with_bias(rows * 4), no_bias(rows * 4);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t o = 0; o < 4; ++o) {
        double s = 0;
        for (int64_t i = 0; i < 7; ++i) s += double(xv[r * 7 + i]) * wv[o * 7 + i];
        no_bias[r * 4 + o] = s;
        with_bias[r * 4 + o] = s + bv[o];
      }
    Shape ys = xs;
    ys.back() = 4;
    Tensor y = linear(x, w, b);
    EXPECT_EQ(y.shape(), ys);
    testing::expect_close(y, with_bias, kAtol, kRtol, "linear with bias " + shape_str(xs));
    testing::expect_close(linear(x, w, Tensor()), no_bias, kAtol, kRtol,
                          "linear without bias " + shape_str(xs));
  }
}

TEST(Linear, ViTSizedForwardMatchesReference) {
  // Large enough for OpenBLAS to thread the GEMM and for the bias rows to split.
  Tensor x = testing::uniform({640, 64}, 15), w = testing::uniform({192, 64}, 16);
  Tensor b = testing::uniform({192}, 17);
  Tensor y = linear(x, w, b);
  Tensor expected = add(matmul(x, w, false, true), b);
  // Same products, the bias added inside or after the GEMM: rounding differs by ~1 ulp.
  testing::expect_close(y, expected, 1e-5, 1e-5, "linear [640,64] -> 192");
}

TEST(Linear, BackwardMatchesFiniteDifferencesWithAndWithoutBias) {
  for (const Shape& xs : {Shape{6}, Shape{3, 6}, Shape{2, 2, 6}}) {
    Tensor x = testing::uniform(xs, 18), w = testing::uniform({5, 6}, 19),
           b = testing::uniform({5}, 20);
    testing::check_gradients(
        [](const std::vector<Tensor>& in) { return linear(in[0], in[1], in[2]); }, {x, w, b}, {},
        "linear with bias " + shape_str(xs));
    testing::check_gradients(
        [](const std::vector<Tensor>& in) { return linear(in[0], in[1], Tensor()); }, {x, w}, {},
        "linear without bias " + shape_str(xs));
  }
}

TEST(Linear, BiasGradientSumsManyRowsAccurately) {
  // db = column sums of dY over 6400 rows (the ViT's token count): exact in double.
  Tensor x = testing::uniform({6400, 8}, 21), w = testing::uniform({16, 8}, 22);
  Tensor b = Tensor::zeros({16}).set_requires_grad();
  Tensor gy = testing::uniform({6400, 16}, 23);
  linear(x, w, b).backward(gy);
  std::vector<float> g = gy.to_vector();
  std::vector<double> expected(16, 0.0);
  for (int64_t r = 0; r < 6400; ++r)
    for (int64_t o = 0; o < 16; ++o) expected[o] += g[r * 16 + o];
  // Double accumulation then one rounding: within 1 ulp of a value of size ~50.
  testing::expect_close(b.grad(), expected, 1e-5, 2e-7, "bias gradient");
}

TEST(Linear, MismatchedWeightNamesShapes) {
  try {
    linear(Tensor::zeros({2, 3}), Tensor::zeros({4, 5}), Tensor());
    FAIL() << "no error";
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("linear"), std::string::npos) << msg;
    EXPECT_NE(msg.find("[4, 5]"), std::string::npos) << msg;
  }
  EXPECT_THROW(linear(Tensor::zeros({2, 3}), Tensor::zeros({4, 3}), Tensor::zeros({5})), Error);
}

TEST(Gemm, BetaAccumulatesAndLeadingDimsSelectSubmatrices) {
  // C[2x3] (ldc 4) = 2 * A[2x2 of a 2x5 buffer] B[2x3 of a 2x4 buffer] + 0.5 C.
  std::vector<float> a = {1, 2, 9, 9, 9, 3, 4, 9, 9, 9};
  std::vector<float> b = {1, 0, 2, 9, 0, 1, 3, 9};
  std::vector<float> c = {1, 1, 1, 7, 2, 2, 2, 7};
  kernels::cpu::gemm(false, false, 2, 3, 2, 2.0f, a.data(), 5, b.data(), 4, 0.5f, c.data(), 4);
  // A B = [[1, 2, 8], [3, 4, 18]]
  const std::vector<float> expected = {2.5f, 4.5f, 16.5f, 7, 7, 9, 37, 7};
  for (size_t i = 0; i < c.size(); ++i) EXPECT_EQ(c[i], expected[i]) << i;
}

TEST(Gemm, BetaZeroOverwritesNaN) {
  std::vector<float> a = {1, 2}, b = {3, 4};
  std::vector<float> c = {std::numeric_limits<float>::quiet_NaN()};
  kernels::cpu::gemm(false, false, 1, 1, 2, 1.0f, a.data(), 2, b.data(), 1, 0.0f, c.data(), 1);
  EXPECT_EQ(c[0], 11.0f);
}

TEST(Gemm, OpenBlasNeverRunsItsSse3FallbackOnThisBuild) {
  // qilin is built for x86-64-v3 (AVX2): OpenBLAS's Prescott kernels are 3-4x slower.
  const std::string backend = kernels::cpu::gemm_backend();
  EXPECT_EQ(backend.find("core Prescott"), std::string::npos) << backend;
}

}  // namespace qilin
