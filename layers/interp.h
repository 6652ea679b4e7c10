// Interpolated layers (DESIGN.md §4.1) and the factory that puts them into any model by
// configuration, without editing model code:
//   InterpActivation   gelu / sigmoid / tanh / silu through a table (or i-GELU, or native)
//   InterpSoftmax      softmax with the table exp (attention's softmax)
//   InterpLayerFactory a LayerFactory (layers/factory.h) that makes these for the configured
//                      functions and the native layers for everything else, and remembers
//                      which configured functions the model used.
#pragma once

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "core/interp.h"
#include "layers/factory.h"

namespace qilin {

class InterpActivation : public Layer {
 public:
  explicit InterpActivation(std::shared_ptr<const InterpTable> table);
  Tensor forward(const Tensor& x) override;
  std::string describe() const override { return table_->describe(); }
  const InterpTable& table() const { return *table_; }

 private:
  std::shared_ptr<const InterpTable> table_;
};

class InterpSoftmax : public Layer {
 public:
  explicit InterpSoftmax(std::shared_ptr<const InterpTable> exp_table);  // fn must be kExp
  Tensor forward(const Tensor& x) override;
  std::string describe() const override { return "Softmax(last dim) with " + table_->describe(); }
  const InterpTable& table() const { return *table_; }

 private:
  std::shared_ptr<const InterpTable> table_;
};

// The interp config (train/config.h's `interp` section) as the factory needs it: one spec per
// function to replace (fn kExp stands for the softmax).
struct InterpLayerOptions {
  std::map<InterpFn, InterpSpec> functions;
};

class InterpLayerFactory : public LayerFactory {
 public:
  explicit InterpLayerFactory(InterpLayerOptions options);
  std::shared_ptr<Layer> activation(ActivationKind kind, const std::string& path) override;
  std::shared_ptr<Layer> softmax(const std::string& path) override;

  // The configured functions no layer asked for (listed once in the run log).
  std::vector<InterpFn> unused() const;

 private:
  // The interpolated layer for fn, or nullptr when fn is not configured.
  std::shared_ptr<Layer> make(InterpFn fn);
  InterpLayerOptions options_;
  std::set<InterpFn> used_;
};

// The function a native activation computes, if a table can replace it (ReLU and the tanh
// approximation of GELU have none).
bool interp_fn_of(ActivationKind kind, InterpFn* fn);

}  // namespace qilin
