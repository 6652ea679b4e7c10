// The CPU fills built on the Philox4x32-10 stream of core/philox.h (its file comment defines
// the stream: element i of a draw starting at block b0 is lane i % 4 of block b0 + i / 4).
#pragma once

#include <cstdint>

#include "core/philox.h"

namespace qilin::kernels::cpu {

// Raw 32-bit outputs: out[i] = lane i % 4 of block block0 + i / 4. (writes)
void philox_bits_fill(uint32_t* out, int64_t n, uint64_t seed, uint64_t block0);

// out[i] = lo + (hi - lo) * to_unit(bits[i]). (writes)
void philox_uniform_fill(float* out, int64_t n, uint64_t seed, uint64_t block0, float lo,
                         float hi);

// Box-Muller: lanes (0, 1) and (2, 3) of each block give u1 = to_unit_open0, u2 = to_unit
// and the pair r cos(2 pi u2), r sin(2 pi u2) with r = sqrt(-2 ln u1); out = mean + std z.
// (writes)
void philox_normal_fill(float* out, int64_t n, uint64_t seed, uint64_t block0, float mean,
                        float std);

// Inverted dropout with the mask recomputed from the stream: element i is dropped when
// to_unit(bits[i]) < p, else scaled by 1 / (1 - p). Forward applies it to x, backward to
// dy with the same (seed, block0): the same mask, and no mask kept in memory. (writes)
void dropout_apply(float* out, const float* in, int64_t n, float p, uint64_t seed,
                   uint64_t block0);

}  // namespace qilin::kernels::cpu
