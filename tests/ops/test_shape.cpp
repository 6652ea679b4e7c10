#include <gtest/gtest.h>

#include <numeric>

#include "core/ops/shape.h"
#include "tests/testing.h"

namespace qilin {
namespace {

// Reference permute: out index -> x index by explicit strides, in double.
std::vector<double> permute_reference(const Tensor& x, const std::vector<int64_t>& perm) {
  std::vector<float> xv = x.to_vector();
  const Shape& xs = x.shape();
  std::vector<int64_t> strides = contiguous_strides(xs);
  Shape os(perm.size());
  for (size_t k = 0; k < perm.size(); ++k) os[k] = xs[perm[k]];
  std::vector<double> out(xv.size());
  for (int64_t i = 0; i < static_cast<int64_t>(out.size()); ++i) {
    int64_t rem = i, off = 0;
    for (int64_t k = static_cast<int64_t>(os.size()) - 1; k >= 0; --k) {
      off += (rem % os[k]) * strides[perm[k]];
      rem /= os[k];
    }
    out[i] = xv[off];
  }
  return out;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

// Layout ops move values without arithmetic: results must be bit-exact (tolerance 0).
struct PermuteCase {
  Shape shape;
  std::vector<int64_t> perm;
};
const PermuteCase kPermutes[] = {
    {{4, 6, 3, 4, 16}, {2, 0, 3, 1, 4}},  // ViT qkv split [B,N,3,H,D] -> [3,B,H,N,D]
    {{4, 4, 6, 16}, {0, 2, 1, 3}},        // heads back [B,H,N,D] -> [B,N,H,D]
    {{3, 37, 45}, {0, 2, 1}},             // batched transpose of the last two dims (tiled)
    {{5, 1, 7}, {2, 1, 0}},               // size-1 dim
    {{2, 3, 4, 5}, {3, 2, 1, 0}},         // full reversal (strided rows)
    {{2, 3, 4}, {0, 1, 2}},               // identity
    {{300, 200}, {1, 0}},                 // large enough to run threaded
};

}  // namespace

TEST(Permute, ForwardMatchesIndexArithmetic) {
  for (const PermuteCase& c : kPermutes) {
    Tensor x = testing::uniform(c.shape, 1);
    Tensor y = permute(x, c.perm);
    Shape expected;
    for (int64_t p : c.perm) expected.push_back(c.shape[p]);
    EXPECT_EQ(y.shape(), expected);
    testing::expect_close(y, permute_reference(x, c.perm), 0, 0, shape_str(c.shape));
  }
}

TEST(Permute, IntegerTensorsKeepTheirBits) {
  Tensor x = Tensor::from_vector_i64({1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor y = permute(x, {1, 0});
  ASSERT_EQ(y.dtype(), DType::kInt64);
  const int64_t* p = y.data<int64_t>();
  EXPECT_EQ(std::vector<int64_t>(p, p + 6), (std::vector<int64_t>{1, 4, 2, 5, 3, 6}));
}

TEST(Permute, BackwardMatchesFiniteDifferences) {
  testing::check_gradients(
      [](const std::vector<Tensor>& in) {
        return permute(in[0], {2, 0, 3, 1, 4});
      },
      {testing::uniform({2, 3, 3, 2, 2}, 2)}, {}, "qkv permute");
  testing::check_gradients([](const std::vector<Tensor>& in) { return transpose(in[0], -1, -2); },
                           {testing::uniform({2, 3, 4}, 3)}, {}, "transpose");
}

TEST(Permute, BadDimsAreErrors) {
  std::string repeated = error_of([] { permute(Tensor::zeros({2, 3}), {0, 0}); });
  EXPECT_NE(repeated.find("permute"), std::string::npos) << repeated;
  EXPECT_THROW(permute(Tensor::zeros({2, 3}), {0}), Error);
  EXPECT_THROW(transpose(Tensor::zeros({2, 3}), 0, 2), Error);
}

TEST(Transpose, SwapsTwoDims) {
  Tensor x = testing::uniform({2, 3, 4}, 4);
  testing::expect_close(transpose(x, 0, 2), permute_reference(x, {2, 1, 0}), 0, 0, "transpose");
}

TEST(Expand, ForwardBroadcastsAndBackwardSums) {
  Tensor x = testing::uniform({3, 1}, 5);
  Tensor y = expand(x, {2, 3, 4});
  EXPECT_EQ(y.shape(), (Shape{2, 3, 4}));
  std::vector<float> xv = x.to_vector();
  std::vector<double> expected;
  for (int a = 0; a < 2; ++a)
    for (int b = 0; b < 3; ++b)
      for (int c = 0; c < 4; ++c) expected.push_back(xv[b]);
  testing::expect_close(y, expected, 0, 0, "expand");
  EXPECT_EQ(expand(x, {-1, 5}).shape(), (Shape{3, 5}));
  testing::check_gradients(
      [](const std::vector<Tensor>& in) {
        return expand(in[0], {2, 3, 4});
      },
      {x}, {}, "expand");
  std::string bad = error_of([] { expand(Tensor::zeros({3, 2}), {3, 4}); });
  EXPECT_NE(bad.find("[3, 2]"), std::string::npos) << bad;
}

TEST(Flatten, IsAViewThatMergesDims) {
  Tensor x = testing::uniform({2, 3, 4, 5}, 6);
  Tensor y = flatten(x, 1, 2);
  EXPECT_EQ(y.shape(), (Shape{2, 12, 5}));
  EXPECT_EQ(y.data<float>(), x.data<float>());  // shares storage
  EXPECT_EQ(flatten(x).shape(), (Shape{2, 60}));
  EXPECT_EQ(flatten(x, 0).shape(), (Shape{120}));
  testing::check_gradients([](const std::vector<Tensor>& in) { return flatten(in[0]); },
                           {testing::uniform({2, 3, 2}, 7)}, {}, "flatten");
}

TEST(Concat, ForwardPlacesInputsInOrder) {
  Tensor a = testing::uniform({2, 1, 3}, 8), b = testing::uniform({2, 2, 3}, 9);
  Tensor y = concat({a, b}, 1);
  EXPECT_EQ(y.shape(), (Shape{2, 3, 3}));
  std::vector<float> av = a.to_vector(), bv = b.to_vector();
  std::vector<double> expected;
  for (int o = 0; o < 2; ++o) {
    for (int i = 0; i < 3; ++i) expected.push_back(av[o * 3 + i]);
    for (int i = 0; i < 6; ++i) expected.push_back(bv[o * 6 + i]);
  }
  testing::expect_close(y, expected, 0, 0, "concat dim 1");
  // The ViT prepends its class token along dim 1 exactly so.
  testing::expect_close(concat({a, b}, -2), expected, 0, 0, "concat dim -2");
}

TEST(Concat, BackwardMatchesFiniteDifferences) {
  testing::check_gradients(
      [](const std::vector<Tensor>& in) {
        return concat({in[0], in[1], in[2]}, 0);
      },
      {testing::uniform({1, 4}, 10), testing::uniform({3, 4}, 11), testing::uniform({2, 4}, 12)},
      {}, "concat dim 0");
  testing::check_gradients(
      [](const std::vector<Tensor>& in) {
        return concat({in[0], in[1]}, 2);
      },
      {testing::uniform({2, 2, 1}, 13), testing::uniform({2, 2, 3}, 14)}, {}, "concat last dim");
}

TEST(Concat, MismatchedShapesNameTheTensor) {
  std::string msg = error_of([] { concat({Tensor::zeros({2, 3}), Tensor::zeros({3, 3})}, 1); });
  EXPECT_NE(msg.find("concat: tensor 1"), std::string::npos) << msg;
  EXPECT_THROW(concat({}, 0), Error);
}

TEST(Slice, FollowsPyTorchSlicingWithSteps) {
  Tensor x = Tensor::arange(10).reshape({2, 5});
  testing::expect_close(slice(x, 1, 1, 4), std::vector<double>{1, 2, 3, 6, 7, 8}, 0, 0, "1:4");
  testing::expect_close(slice(x, 1, 0, 5, 2), std::vector<double>{0, 2, 4, 5, 7, 9}, 0, 0, "::2");
  testing::expect_close(slice(x, 1, -2, 100), std::vector<double>{3, 4, 8, 9}, 0, 0, "-2:");
  testing::expect_close(slice(x, 0, 1, 2), std::vector<double>{5, 6, 7, 8, 9}, 0, 0, "rows");
  EXPECT_EQ(slice(x, 1, 4, 2).shape(), (Shape{2, 0}));  // empty, as in PyTorch
  EXPECT_THROW(slice(x, 1, 0, 5, 0), Error);
}

TEST(Slice, BackwardMatchesFiniteDifferences) {
  testing::check_gradients([](const std::vector<Tensor>& in) { return slice(in[0], 1, 1, 6, 2); },
                           {testing::uniform({3, 7, 2}, 15)}, {}, "slice with step");
}

TEST(IndexSelect, ForwardPicksEntriesWithInt64AndInt32Indices) {
  Tensor x = Tensor::arange(12).reshape({3, 4});
  Tensor i64 = Tensor::from_vector_i64({3, 0, 3}, {3});
  Tensor i32 = Tensor::from_vector_i32({2, 0}, {2});
  testing::expect_close(index_select(x, 1, i64), std::vector<double>{3, 0, 3, 7, 4, 7, 11, 8, 11},
                        0, 0, "int64 dim 1");
  testing::expect_close(index_select(x, 0, i32), std::vector<double>{8, 9, 10, 11, 0, 1, 2, 3}, 0,
                        0, "int32 dim 0");
}

TEST(IndexSelect, BackwardAddsRepeatedIndices) {
  Tensor idx = Tensor::from_vector_i64({1, 1, 0, 2}, {4});
  testing::check_gradients(
      [idx](const std::vector<Tensor>& in) { return index_select(in[0], 1, idx); },
      {testing::uniform({2, 3, 2}, 16)}, {}, "index_select dim 1");
  testing::check_gradients(
      [idx](const std::vector<Tensor>& in) { return index_select(in[0], 0, idx); },
      {testing::uniform({3, 40}, 17)}, {}, "index_select dim 0 (columns split)");
}

TEST(IndexSelect, OutOfRangeIndexNamesValueAndSize) {
  std::string msg = error_of([] {
    index_select(Tensor::zeros({2, 3}), 1, Tensor::from_vector_i64({0, 7}, {2}));
  });
  EXPECT_NE(msg.find("index 7"), std::string::npos) << msg;
  EXPECT_NE(msg.find("size 3"), std::string::npos) << msg;
  EXPECT_THROW(index_select(Tensor::zeros({2, 3}), 1, Tensor::from_vector_i32({-1}, {1})), Error);
  EXPECT_THROW(index_select(Tensor::zeros({2, 3}), 1, Tensor::zeros({1})), Error);  // float index
}

TEST(Gather, ForwardMatchesTorchGather) {
  // torch.gather(x, 1, idx) with x = arange(6).view(2, 3), idx = [[2, 0], [1, 1]]
  Tensor x = Tensor::arange(6).reshape({2, 3});
  Tensor idx = Tensor::from_vector_i64({2, 0, 1, 1}, {2, 2});
  testing::expect_close(gather(x, 1, idx), std::vector<double>{2, 0, 4, 4}, 0, 0, "dim 1");
  Tensor idx0 = Tensor::from_vector_i32({1, 0, 1}, {1, 3});
  testing::expect_close(gather(x, 0, idx0), std::vector<double>{3, 1, 5}, 0, 0, "dim 0 int32");
}

TEST(Gather, BackwardMatchesFiniteDifferences) {
  Tensor idx = Tensor::from_vector_i64({0, 2, 2, 1, 0, 0}, {2, 3, 1});
  testing::check_gradients([idx](const std::vector<Tensor>& in) { return gather(in[0], 1, idx); },
                           {testing::uniform({2, 3, 1}, 18)}, {}, "gather dim 1");
}

TEST(Gather, BadIndexIsAnError) {
  std::string msg = error_of([] {
    gather(Tensor::zeros({2, 3}), 1, Tensor::from_vector_i64({0, 3}, {2, 1}));
  });
  EXPECT_NE(msg.find("index 3"), std::string::npos) << msg;
  EXPECT_NE(msg.find("size 3"), std::string::npos) << msg;
  std::string shape = error_of([] {
    gather(Tensor::zeros({2, 3}), 1, Tensor::from_vector_i64({0}, {1}));
  });
  EXPECT_NE(shape.find("gather"), std::string::npos) << shape;
}

}  // namespace qilin

namespace qilin {

TEST(Unbind, RowsAreViewsAndGradientsMeetInOneBuffer) {
  Tensor x = testing::uniform({3, 2, 4}, 21);
  std::vector<Tensor> rows = unbind(x, 0);
  ASSERT_EQ(rows.size(), 3u);
  std::vector<float> xv = x.to_vector();
  for (int64_t i = 0; i < 3; ++i) {
    EXPECT_EQ(rows[i].shape(), (Shape{2, 4}));
    EXPECT_EQ(rows[i].to_vector(), std::vector<float>(xv.begin() + i * 8, xv.begin() + (i + 1) * 8));
  }
  // Every output used, some twice, one unused, and a non-leading dim.
  testing::check_gradients(
      [](const std::vector<Tensor>& in) {
        std::vector<Tensor> r = unbind(in[0], 0);
        return r[0] * r[2] + r[2];
      },
      {x}, {}, "unbind dim 0");
  testing::check_gradients(
      [](const std::vector<Tensor>& in) {
        std::vector<Tensor> r = unbind(in[0], 2);
        return r[1] * 2.0f - r[3];
      },
      {x}, {}, "unbind dim 2");
}

TEST(Unbind, ZeroDimTensorIsAnError) { EXPECT_THROW(unbind(Tensor::scalar(1.0f), 0), Error); }

}  // namespace qilin
