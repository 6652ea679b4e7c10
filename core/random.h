// Counter-based random numbers: Philox4x32-10 (Salmon et al., SC'11), the generator
// cuRAND and PyTorch's CUDA backend use. A Generator is (seed, offset): element i of a
// draw is a pure function of (seed, offset + i), so the CPU and a later CUDA backend give
// the same numbers, and saving (seed, offset) saves the stream exactly.
#pragma once

#include <cstdint>

#include "core/tensor.h"

#if defined(__CUDACC__)
#define QILIN_HOST_DEVICE __host__ __device__
#else
#define QILIN_HOST_DEVICE
#endif

namespace qilin {

struct PhiloxState {
  uint64_t seed = 0;
  uint64_t offset = 0;  // counter of 128-bit blocks already consumed
};

class Generator {
 public:
  explicit Generator(uint64_t seed = 0) { state_.seed = seed; }
  PhiloxState state() const { return state_; }
  void set_state(const PhiloxState& s) { state_ = s; }
  uint64_t seed() const { return state_.seed; }
  // Reserves `blocks` 128-bit blocks (4 uint32 each) and returns the first block's counter.
  uint64_t advance(uint64_t blocks) {
    uint64_t start = state_.offset;
    state_.offset += blocks;
    return start;
  }

 private:
  PhiloxState state_;
};

// Fresh tensors from a generator (no graph).
Tensor rand_uniform(const Shape& shape, Generator& gen, float lo = 0.0f, float hi = 1.0f);
Tensor rand_normal(const Shape& shape, Generator& gen, float mean = 0.0f, float std = 1.0f);
// Normal(mean, std) redrawn until inside [lo, hi] (timm's trunc_normal_).
Tensor rand_trunc_normal(const Shape& shape, Generator& gen, float mean, float std, float lo,
                         float hi);
// A permutation of 0..n-1 (int64).
Tensor randperm(int64_t n, Generator& gen);

}  // namespace qilin
