// CPU fills over the Philox4x32-10 stream. Blocks are computed kGroup at a time in
// structure-of-arrays form so the compiler vectorizes the rounds (vpmuludq does the
// 32x32->64 products); threads take disjoint ranges of blocks.
#include "kernels/cpu/random.h"

#include <cmath>

#include "kernels/cpu/parallel.h"

namespace qilin::kernels::cpu {
namespace {

constexpr int kGroup = 16;  // blocks per vectorized batch: two AVX-512 / four AVX2 registers
constexpr float kTwoPi = 6.283185307179586f;

// out[lane][j] = lane `lane` of block `first + j`, j < kGroup.
inline void philox_group(uint64_t seed, uint64_t first, uint32_t out[4][kGroup]) {
  uint32_t c0[kGroup], c1[kGroup], c2[kGroup], c3[kGroup];
  for (int j = 0; j < kGroup; ++j) {
    const uint64_t b = first + static_cast<uint64_t>(j);
    c0[j] = static_cast<uint32_t>(b);
    c1[j] = static_cast<uint32_t>(b >> 32);
    c2[j] = 0;
    c3[j] = 0;
  }
  uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
  for (int r = 0; r < philox::kRounds; ++r) {
    if (r > 0) {
      k0 += philox::kW0;
      k1 += philox::kW1;
    }
#pragma omp simd
    for (int j = 0; j < kGroup; ++j) {
      const uint64_t p0 = static_cast<uint64_t>(philox::kM0) * c0[j];
      const uint64_t p1 = static_cast<uint64_t>(philox::kM1) * c2[j];
      const uint32_t n0 = static_cast<uint32_t>(p1 >> 32) ^ c1[j] ^ k0;
      const uint32_t n2 = static_cast<uint32_t>(p0 >> 32) ^ c3[j] ^ k1;
      c1[j] = static_cast<uint32_t>(p1);
      c3[j] = static_cast<uint32_t>(p0);
      c0[j] = n0;
      c2[j] = n2;
    }
  }
  for (int j = 0; j < kGroup; ++j) {
    out[0][j] = c0[j];
    out[1][j] = c1[j];
    out[2][j] = c2[j];
    out[3][j] = c3[j];
  }
}

// Calls emit(i, bits) for every element i in [0, n) with its 32 random bits, split across
// threads by blocks. `cost` is the work per element for the parallel threshold.
template <typename Emit>
void for_each_bits(int64_t n, uint64_t seed, uint64_t block0, int64_t cost, Emit&& emit) {
  const int64_t n_blocks = (n + 3) / 4;
  const int64_t n_groups = (n_blocks + kGroup - 1) / kGroup;
  parallel_for(n_groups, 4 * kGroup * cost, [&](int64_t g_begin, int64_t g_end) {
    uint32_t bits[4][kGroup];
    for (int64_t g = g_begin; g < g_end; ++g) {
      const int64_t first_block = g * kGroup;
      philox_group(seed, block0 + static_cast<uint64_t>(first_block), bits);
      const int64_t first = first_block * 4;
      if (first + 4 * kGroup <= n) {
        for (int j = 0; j < kGroup; ++j)
          for (int lane = 0; lane < 4; ++lane) emit(first + 4 * j + lane, bits[lane][j]);
      } else {
        for (int j = 0; j < kGroup; ++j)
          for (int lane = 0; lane < 4; ++lane) {
            const int64_t i = first + 4 * j + lane;
            if (i < n) emit(i, bits[lane][j]);
          }
      }
    }
  });
}

}  // namespace

void philox_bits_fill(uint32_t* out, int64_t n, uint64_t seed, uint64_t block0) {
  for_each_bits(n, seed, block0, 4, [out](int64_t i, uint32_t b) { out[i] = b; });
}

void philox_uniform_fill(float* out, int64_t n, uint64_t seed, uint64_t block0, float lo,
                         float hi) {
  const float range = hi - lo;
  for_each_bits(n, seed, block0, 4,
                [=](int64_t i, uint32_t b) { out[i] = lo + range * philox::to_unit(b); });
}

void philox_normal_fill(float* out, int64_t n, uint64_t seed, uint64_t block0, float mean,
                        float std) {
  const int64_t n_blocks = (n + 3) / 4;
  parallel_for(n_blocks, 64, [&](int64_t b_begin, int64_t b_end) {
    for (int64_t b = b_begin; b < b_end; ++b) {
      const philox::Block blk = philox::stream_block(seed, block0 + static_cast<uint64_t>(b));
      float z[4];
      for (int pair = 0; pair < 2; ++pair) {
        const float u1 = philox::to_unit_open0(blk.v[2 * pair]);
        const float u2 = philox::to_unit(blk.v[2 * pair + 1]);
        const float r = std::sqrt(-2.0f * std::log(u1));
        z[2 * pair] = r * std::cos(kTwoPi * u2);
        z[2 * pair + 1] = r * std::sin(kTwoPi * u2);
      }
      for (int lane = 0; lane < 4; ++lane) {
        const int64_t i = 4 * b + lane;
        if (i < n) out[i] = mean + std * z[lane];
      }
    }
  });
}

void dropout_apply(float* out, const float* in, int64_t n, float p, uint64_t seed,
                   uint64_t block0) {
  const float scale = 1.0f / (1.0f - p);
  for_each_bits(n, seed, block0, 8, [=](int64_t i, uint32_t b) {
    out[i] = philox::to_unit(b) < p ? 0.0f : in[i] * scale;
  });
}

}  // namespace qilin::kernels::cpu
