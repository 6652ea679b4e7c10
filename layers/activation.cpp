// Native activations and softmax: thin layers over the core ops.
#include "layers/activation.h"

#include "core/ops/softmax.h"
#include "core/ops/unary.h"

namespace qilin {

const char* activation_name(ActivationKind kind) {
  switch (kind) {
    case ActivationKind::kReLU: return "ReLU";
    case ActivationKind::kGELU: return "GELU(erf)";
    case ActivationKind::kGELUTanh: return "GELU(tanh)";
    case ActivationKind::kSigmoid: return "Sigmoid";
    case ActivationKind::kTanh: return "Tanh";
    case ActivationKind::kSiLU: return "SiLU";
  }
  return "?";
}

Tensor Activation::forward(const Tensor& x) {
  switch (kind_) {
    case ActivationKind::kReLU: return relu(x);
    case ActivationKind::kGELU: return gelu(x, GeluApprox::kNone);
    case ActivationKind::kGELUTanh: return gelu(x, GeluApprox::kTanh);
    case ActivationKind::kSigmoid: return sigmoid(x);
    case ActivationKind::kTanh: return tanh(x);
    case ActivationKind::kSiLU: return silu(x);
  }
  QILIN_FAIL("Activation: unknown kind ", static_cast<int>(kind_));
}

Tensor Softmax::forward(const Tensor& x) { return softmax(x); }

}  // namespace qilin
