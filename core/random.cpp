// Tensors drawn from a Generator's Philox stream (core/philox.h defines the stream).
// Each draw reserves whole 128-bit blocks with Generator::advance, so consecutive draws
// never share a block and a saved (seed, offset) replays every later draw exactly.
#include "core/random.h"

#include <cmath>
#include <utility>
#include <vector>

#include "core/dispatch.h"
#include "core/profiler.h"
#include "kernels/cpu/random.h"

namespace qilin {
namespace {

uint64_t blocks_for(int64_t n) { return static_cast<uint64_t>((n + 3) / 4); }

}  // namespace

Tensor rand_uniform(const Shape& shape, Generator& gen, float lo, float hi) {
  ProfileScope scope("rand_uniform");
  QILIN_CHECK(lo <= hi, "rand_uniform: lo ", lo, " > hi ", hi);
  Tensor out = Tensor::empty(shape);
  const int64_t n = out.numel();
  const uint64_t block0 = gen.advance(blocks_for(n));
  QILIN_DISPATCH(out.device(), philox_uniform_fill, out.data<float>(), n, gen.seed(), block0,
                 lo, hi);
  return out;
}

Tensor rand_normal(const Shape& shape, Generator& gen, float mean, float std) {
  ProfileScope scope("rand_normal");
  QILIN_CHECK(std >= 0.0f, "rand_normal: std ", std, " < 0");
  Tensor out = Tensor::empty(shape);
  const int64_t n = out.numel();
  const uint64_t block0 = gen.advance(blocks_for(n));
  QILIN_DISPATCH(out.device(), philox_normal_fill, out.data<float>(), n, gen.seed(), block0,
                 mean, std);
  return out;
}

// Rejection in rounds: round r draws one fresh normal for each element still outside
// [lo, hi] (the k-th pending element, in index order, takes value k of the round), so
// every value is a function of the seed and the stream position alone.
Tensor rand_trunc_normal(const Shape& shape, Generator& gen, float mean, float std, float lo,
                         float hi) {
  ProfileScope scope("rand_trunc_normal");
  QILIN_CHECK(lo < hi, "rand_trunc_normal: empty interval [", lo, ", ", hi, "]");
  QILIN_CHECK(std > 0.0f, "rand_trunc_normal: std ", std, " must be > 0");
  // P(inside) for the interval: refuse intervals so far in a tail that rejection would
  // effectively never finish (timm's trunc_normal_ warns for the same case).
  const double a = (static_cast<double>(lo) - mean) / std, b = (static_cast<double>(hi) - mean) / std;
  const double mass = 0.5 * (std::erfc(-b / std::sqrt(2.0)) - std::erfc(-a / std::sqrt(2.0)));
  QILIN_CHECK(mass > 1e-4, "rand_trunc_normal: [", lo, ", ", hi, "] holds only ", mass,
              " of Normal(", mean, ", ", std, ")");
  Tensor out = Tensor::empty(shape);
  const int64_t n = out.numel();
  float* o = out.data<float>();
  std::vector<int64_t> pending(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) pending[static_cast<size_t>(i)] = i;
  std::vector<float> draw;
  while (!pending.empty()) {
    const int64_t m = static_cast<int64_t>(pending.size());
    draw.resize(pending.size());
    const uint64_t block0 = gen.advance(blocks_for(m));
    QILIN_DISPATCH(out.device(), philox_normal_fill, draw.data(), m, gen.seed(), block0, mean,
                   std);
    size_t still = 0;
    for (size_t k = 0; k < pending.size(); ++k) {
      const float v = draw[k];
      if (v >= lo && v <= hi) {
        o[pending[k]] = v;
      } else {
        pending[still++] = pending[k];
      }
    }
    pending.resize(still);
  }
  return out;
}

// Fisher-Yates from the top: step i (n-1 down to 1) swaps i with j = floor(r * (i + 1) /
// 2^64) (Lemire's multiply-shift), r the 64 random bits of lanes 2i', 2i'+1 of the draw.
// Its bias is at most n / 2^64.
Tensor randperm(int64_t n, Generator& gen) {
  ProfileScope scope("randperm");
  QILIN_CHECK(n >= 0, "randperm: n = ", n, " < 0");
  Tensor out = Tensor::empty({n}, DType::kInt64);
  int64_t* p = out.data<int64_t>();
  for (int64_t i = 0; i < n; ++i) p[i] = i;
  if (n < 2) return out;
  std::vector<uint32_t> bits(static_cast<size_t>(2 * n));
  const uint64_t block0 = gen.advance(blocks_for(2 * n));
  QILIN_DISPATCH(out.device(), philox_bits_fill, bits.data(), 2 * n, gen.seed(), block0);
  for (int64_t i = n - 1; i >= 1; --i) {
    const uint64_t r = (static_cast<uint64_t>(bits[2 * i + 1]) << 32) | bits[2 * i];
    const auto j = static_cast<int64_t>(
        (static_cast<unsigned __int128>(r) * static_cast<uint64_t>(i + 1)) >> 64);
    std::swap(p[i], p[j]);
  }
  return out;
}

}  // namespace qilin
