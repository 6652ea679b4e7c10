// Elementwise unary math and activations, each differentiable:
// exp, log, sqrt, pow (scalar exponent), relu, gelu (exact erf form, or the tanh
// approximation), sigmoid, tanh, silu.
#pragma once

#include "core/tensor.h"

namespace qilin {

enum class GeluApprox : uint8_t { kNone, kTanh };  // kNone: x/2 (1 + erf(x/sqrt 2))

Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor sqrt(const Tensor& x);
Tensor pow(const Tensor& x, float exponent);
Tensor relu(const Tensor& x);
Tensor gelu(const Tensor& x, GeluApprox approx = GeluApprox::kNone);
Tensor sigmoid(const Tensor& x);
Tensor tanh(const Tensor& x);
Tensor silu(const Tensor& x);

}  // namespace qilin
