// Philox4x32-10 (Salmon, Moraes, Dror, Shaw: "Parallel random numbers: as easy as 1, 2, 3",
// SC'11; Random123's philox.h): the block function every random stream of qilin draws from
// (core/random.h's Generator, the CPU fills in kernels/cpu/random.h, the data loader's
// per-sample streams in data/transforms.h).
//
// The stream of a Generator with key `seed` is a sequence of 128-bit blocks; block b is
// philox4x32_10(counter = {lo32(b), hi32(b), 0, 0}, key = {lo32(seed), hi32(seed)}), and
// element i of a draw that starts at block b0 is lane i % 4 of block b0 + i / 4. Every
// element is therefore a pure function of (seed, counter): results do not depend on the
// thread count or on how a kernel splits the work, and a CUDA kernel computing the same
// function gives the same numbers.
//
// Header-only and QILIN_HOST_DEVICE inline so a CUDA backend can include it and share it.
#pragma once

#include <cstdint>

#include "core/host_device.h"

namespace qilin::philox {

// Random123 philox.h: PHILOX_M4x32_0/1 (multipliers) and PHILOX_W32_0/1 (Weyl key bumps:
// the golden ratio and sqrt(3) - 1 in 0.32 fixed point).
constexpr uint32_t kM0 = 0xD2511F53u;
constexpr uint32_t kM1 = 0xCD9E8D57u;
constexpr uint32_t kW0 = 0x9E3779B9u;
constexpr uint32_t kW1 = 0xBB67AE85u;
constexpr int kRounds = 10;

struct Block {
  uint32_t v[4];
};

// One Philox round: two 32x32->64 products, the halves swapped and xored with the key.
QILIN_HOST_DEVICE inline Block round(const Block& c, uint32_t k0, uint32_t k1) {
  const uint64_t p0 = static_cast<uint64_t>(kM0) * c.v[0];
  const uint64_t p1 = static_cast<uint64_t>(kM1) * c.v[2];
  Block r;
  r.v[0] = static_cast<uint32_t>(p1 >> 32) ^ c.v[1] ^ k0;
  r.v[1] = static_cast<uint32_t>(p1);
  r.v[2] = static_cast<uint32_t>(p0 >> 32) ^ c.v[3] ^ k1;
  r.v[3] = static_cast<uint32_t>(p0);
  return r;
}

// Philox4x32-10 of `counter` under key (k0, k1): ten rounds, the key bumped between them.
QILIN_HOST_DEVICE inline Block philox4x32_10(Block counter, uint32_t k0, uint32_t k1) {
  for (int r = 0; r < kRounds; ++r) {
    if (r > 0) {
      k0 += kW0;
      k1 += kW1;
    }
    counter = round(counter, k0, k1);
  }
  return counter;
}

// Block `block` of the stream keyed by `seed` (see the file comment).
QILIN_HOST_DEVICE inline Block stream_block(uint64_t seed, uint64_t block) {
  Block c{{static_cast<uint32_t>(block), static_cast<uint32_t>(block >> 32), 0u, 0u}};
  return philox4x32_10(c, static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
}

// Uniform in [0, 1): the top 24 bits scaled by 2^-24 (every value exact in float32).
QILIN_HOST_DEVICE inline float to_unit(uint32_t bits) {
  return static_cast<float>(bits >> 8) * 0x1p-24f;
}
// Uniform in (0, 1]: for log() in Box-Muller, which must never see 0.
QILIN_HOST_DEVICE inline float to_unit_open0(uint32_t bits) {
  return static_cast<float>((bits >> 8) + 1u) * 0x1p-24f;
}

}  // namespace qilin::philox
