// Native activations (ReLU, GELU exact or tanh, Sigmoid, Tanh, SiLU) and Softmax over the
// last dim, each a parameter-free Layer over the core/ops/unary.h and softmax.h ops. Models
// never make these directly: they ask a LayerFactory (layers/factory.h).
#pragma once

#include <cstdint>
#include <string>

#include "layers/module.h"

namespace qilin {

enum class ActivationKind : uint8_t { kReLU, kGELU, kGELUTanh, kSigmoid, kTanh, kSiLU };

// "ReLU", "GELU(erf)", "GELU(tanh)", "Sigmoid", "Tanh", "SiLU".
const char* activation_name(ActivationKind kind);

class Activation : public Layer {
 public:
  explicit Activation(ActivationKind kind) : kind_(kind) {}
  Tensor forward(const Tensor& x) override;
  std::string describe() const override { return activation_name(kind_); }
  ActivationKind kind() const { return kind_; }

 private:
  ActivationKind kind_;
};

class Softmax : public Layer {
 public:
  Tensor forward(const Tensor& x) override;
  std::string describe() const override { return "Softmax(last dim)"; }
};

}  // namespace qilin
