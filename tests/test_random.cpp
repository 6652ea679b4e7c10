// Philox4x32-10 against Random123's published known answers, the stream layout, the
// Generator's determinism and state round-trip, and the moments of each distribution.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/random.h"
#include "core/philox.h"
#include "kernels/cpu/random.h"

namespace qilin {
namespace {

struct Kat {
  philox::Block counter;
  uint32_t key[2];
  philox::Block expected;
};

// Random123 1.14 tests/kat_vectors, the three "philox4x32 10" lines
// (counter[4] key[2] -> output[4]).
const Kat kKats[] = {
    {{{0x00000000u, 0x00000000u, 0x00000000u, 0x00000000u}},
     {0x00000000u, 0x00000000u},
     {{0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}}},
    {{{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}},
     {0xffffffffu, 0xffffffffu},
     {{0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu}}},
    {{{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}},
     {0xa4093822u, 0x299f31d0u},
     {{0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}}},
};

struct Moments {
  double mean = 0, var = 0;
};
Moments moments(const std::vector<float>& v) {
  Moments m;
  for (float x : v) m.mean += x;
  m.mean /= static_cast<double>(v.size());
  for (float x : v) m.var += (x - m.mean) * (x - m.mean);
  m.var /= static_cast<double>(v.size() - 1);
  return m;
}

}  // namespace

TEST(Philox, BlockFunctionMatchesRandom123KnownAnswers) {
  for (const Kat& k : kKats) {
    philox::Block out = philox::philox4x32_10(k.counter, k.key[0], k.key[1]);
    for (int lane = 0; lane < 4; ++lane)
      EXPECT_EQ(out.v[lane], k.expected.v[lane]) << "lane " << lane << " key " << k.key[0];
  }
}

TEST(Philox, BitsFillIsTheBlockStreamAtAnyThreadCount) {
  // Element i of a draw at block b0 is lane i % 4 of block b0 + i / 4, keyed by the seed
  // (lo, hi), whatever the thread count and however the length splits into vector groups.
  const uint64_t seed = 0x299f31d0a4093822ull, block0 = 0xfffffffeull;  // crosses 2^32
  for (int64_t n : {1, 3, 4, 5, 63, 64, 65, 1000, 100003}) {
    std::vector<uint32_t> one(static_cast<size_t>(n)), two(static_cast<size_t>(n));
    const int threads = omp_get_max_threads();
    omp_set_num_threads(1);
    kernels::cpu::philox_bits_fill(one.data(), n, seed, block0);
    omp_set_num_threads(2);
    kernels::cpu::philox_bits_fill(two.data(), n, seed, block0);
    omp_set_num_threads(threads);
    EXPECT_EQ(one, two) << "n = " << n;
    for (int64_t i = 0; i < n; i += std::max<int64_t>(1, n / 50)) {
      philox::Block b = philox::stream_block(seed, block0 + static_cast<uint64_t>(i / 4));
      EXPECT_EQ(one[static_cast<size_t>(i)], b.v[i % 4]) << "n = " << n << ", i = " << i;
    }
  }
  // stream_block is philox4x32_10 with counter {lo(b), hi(b), 0, 0} and key {lo(s), hi(s)}.
  philox::Block direct = philox::philox4x32_10({{0xfffffffeu, 0u, 0u, 0u}}, 0xa4093822u,
                                               0x299f31d0u);
  philox::Block via = philox::stream_block(seed, block0);
  for (int lane = 0; lane < 4; ++lane) EXPECT_EQ(direct.v[lane], via.v[lane]);
}

TEST(Generator, SameSeedSameNumbersDifferentSeedDifferentNumbers) {
  Generator a(42), b(42), c(43);
  std::vector<float> va = rand_uniform({1000}, a).to_vector();
  std::vector<float> vb = rand_uniform({1000}, b).to_vector();
  std::vector<float> vc = rand_uniform({1000}, c).to_vector();
  EXPECT_EQ(va, vb);
  EXPECT_NE(va, vc);
  // A second draw continues the stream: it differs from the first.
  EXPECT_NE(rand_uniform({1000}, a).to_vector(), va);
}

TEST(Generator, DrawsReserveWholeBlocks) {
  Generator g(7);
  rand_uniform({5}, g);  // 5 values: 2 blocks
  EXPECT_EQ(g.state().offset, 2u);
  rand_normal({8}, g);
  EXPECT_EQ(g.state().offset, 4u);
  randperm(3, g);  // 6 x 32 bits: 2 blocks
  EXPECT_EQ(g.state().offset, 6u);
}

TEST(Generator, SavedStateReplaysTheSameStream) {
  Generator g(123);
  rand_normal({17}, g);
  PhiloxState saved = g.state();
  std::vector<float> u1 = rand_uniform({33}, g).to_vector();
  std::vector<float> n1 = rand_normal({10}, g).to_vector();
  std::vector<float> t1 = rand_trunc_normal({50}, g, 0.0f, 1.0f, -0.5f, 0.5f).to_vector();
  Tensor perm1 = randperm(20, g);
  Generator h(999);
  h.set_state(saved);
  EXPECT_EQ(rand_uniform({33}, h).to_vector(), u1);
  EXPECT_EQ(rand_normal({10}, h).to_vector(), n1);
  EXPECT_EQ(rand_trunc_normal({50}, h, 0.0f, 1.0f, -0.5f, 0.5f).to_vector(), t1);
  Tensor perm2 = randperm(20, h);
  EXPECT_TRUE(std::equal(perm1.data<int64_t>(), perm1.data<int64_t>() + 20,
                         perm2.data<int64_t>()));
  EXPECT_EQ(h.state().offset, g.state().offset);
}

TEST(RandUniform, MomentsAndRangeMatchUniform) {
  // n = 1e6: the standard error of the mean of U(0,1) is 0.29/1000 = 2.9e-4 and of the
  // variance about 9e-5; tolerances are ~5 standard errors.
  Generator g(1);
  std::vector<float> v = rand_uniform({1000000}, g, -2.0f, 3.0f).to_vector();
  for (float x : v) {
    ASSERT_GE(x, -2.0f);
    ASSERT_LT(x, 3.0f);
  }
  Moments m = moments(v);
  EXPECT_NEAR(m.mean, 0.5, 5 * 5 * 2.9e-4);         // range 5: scaled error
  EXPECT_NEAR(m.var, 25.0 / 12.0, 25 * 5 * 9e-5);
  // Unit stream: the 24-bit grid values stay in [0, 1).
  std::vector<float> u = rand_uniform({4096}, g).to_vector();
  EXPECT_LT(*std::max_element(u.begin(), u.end()), 1.0f);
  EXPECT_GE(*std::min_element(u.begin(), u.end()), 0.0f);
}

TEST(RandNormal, MomentsMatchNormal) {
  // n = 1e6: standard error of the mean 1e-3, of the variance sqrt(2/n) = 1.4e-3;
  // fourth moment 3 within 0.02 (its standard error is sqrt(96/n) ~ 1e-2).
  Generator g(2);
  std::vector<float> v = rand_normal({1000000}, g, 0.0f, 1.0f).to_vector();
  Moments m = moments(v);
  EXPECT_NEAR(m.mean, 0.0, 5e-3);
  EXPECT_NEAR(m.var, 1.0, 7e-3);
  double m4 = 0;
  int64_t beyond3 = 0;
  for (float x : v) {
    m4 += static_cast<double>(x) * x * x * x;
    ASSERT_TRUE(std::isfinite(x));
    if (std::fabs(x) > 3) ++beyond3;
  }
  EXPECT_NEAR(m4 / v.size(), 3.0, 0.05);
  // P(|z| > 3) = 0.0027: 2700 expected, standard deviation ~52.
  EXPECT_NEAR(static_cast<double>(beyond3), 2700.0, 260.0);
  // mean and std are applied as mean + std z.
  Generator g2(2);
  std::vector<float> w = rand_normal({1000000}, g2, 3.0f, 0.5f).to_vector();
  for (size_t i = 0; i < 1000; ++i) EXPECT_FLOAT_EQ(w[i], 3.0f + 0.5f * v[i]);
}

TEST(RandTruncNormal, StaysInsideAndKeepsTheTruncatedMoments) {
  // Normal(1, 2) cut to [0, 3] = [-0.5, 1] sigma: the truncated mean is
  // 1 + 2 (phi(-0.5) - phi(1)) / (Phi(1) - Phi(-0.5)) = 1 + 2 (0.35207 - 0.24197) / 0.53281
  // = 1.41328. n = 2e5, sd of the result ~0.86: the mean's standard error is 2e-3.
  Generator g(3);
  std::vector<float> v = rand_trunc_normal({200000}, g, 1.0f, 2.0f, 0.0f, 3.0f).to_vector();
  for (float x : v) {
    ASSERT_GE(x, 0.0f);
    ASSERT_LE(x, 3.0f);
  }
  EXPECT_NEAR(moments(v).mean, 1.41328, 1e-2);
  EXPECT_THROW(rand_trunc_normal({4}, g, 0.0f, 1.0f, 1.0f, 1.0f), Error);
  EXPECT_THROW(rand_trunc_normal({4}, g, 0.0f, 1.0f, 20.0f, 30.0f), Error);
}

TEST(Randperm, IsAPermutationAndUniformOverPositions) {
  Generator g(4);
  for (int64_t n : {0, 1, 2, 17, 1000}) {
    Tensor p = randperm(n, g);
    ASSERT_EQ(p.dtype(), DType::kInt64);
    std::vector<int64_t> v(p.data<int64_t>(), p.data<int64_t>() + n);
    std::sort(v.begin(), v.end());
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(v[i], i) << "n = " << n;
  }
  // Where element 0 lands over 40000 permutations of 4: 10000 per slot, sd ~87.
  int64_t count[4] = {0, 0, 0, 0};
  for (int t = 0; t < 40000; ++t) {
    Tensor p = randperm(4, g);
    for (int i = 0; i < 4; ++i)
      if (p.data<int64_t>()[i] == 0) ++count[i];
  }
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(static_cast<double>(count[i]), 10000.0, 500.0);
  EXPECT_THROW(randperm(-1, g), Error);
}

}  // namespace qilin
