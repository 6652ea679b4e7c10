// Inverted dropout. The mask is never stored: forward reserves a range of the generator's
// Philox stream, and backward regenerates the same mask from (seed, first block) while it
// scales the gradient (kernels/cpu/random.h, dropout_apply). That saves PyTorch's
// one-byte-per-element mask and a pass over it.
#include "core/ops/dropout.h"

#include "core/autograd.h"
#include "core/dispatch.h"
#include "core/profiler.h"
#include "kernels/cpu/random.h"

namespace qilin {

Tensor dropout(const Tensor& x, float p, bool training, Generator& gen) {
  ProfileScope scope("dropout");
  QILIN_CHECK(p >= 0.0f && p <= 1.0f, "dropout: p = ", p, " is outside [0, 1]");
  QILIN_CHECK(x.dtype() == DType::kFloat32, "dropout: expected float32, got ", x.str());
  if (!training || p == 0.0f) return x;
  const int64_t n = x.numel();
  const uint64_t seed = gen.seed();
  const uint64_t block0 = gen.advance(static_cast<uint64_t>((n + 3) / 4));
  Tensor out = Tensor::empty(x.shape(), DType::kFloat32, x.device());
  QILIN_DISPATCH(x.device(), dropout_apply, out.data<float>(), x.data<float>(), n, p, seed,
                 block0);
  return record_op(out, "dropout", {x}, [p, seed, block0](const Tensor& gy, GradSlots& g) {
    Tensor dx = Tensor::empty(gy.shape(), DType::kFloat32, gy.device());
    QILIN_DISPATCH(gy.device(), dropout_apply, dx.data<float>(), gy.data<float>(), gy.numel(),
                   p, seed, block0);
    g.add(0, dx);
  });
}

}  // namespace qilin
