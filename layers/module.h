// Module: the tree every layer and model is built from (PyTorch's nn.Module, minus hooks).
// A module owns named parameters (leaf tensors with requires_grad), named buffers (state
// that is not trained: BatchNorm running statistics), and named child modules. Names are
// dotted paths ("blocks.0.attn.qkv.weight"), listed in registration order exactly as
// PyTorch lists them, so a state dict here is a state dict there (DESIGN.md §5).
//
// Layer adds the one-input forward every layer and model implements.
//
// Not here: the layers themselves (layers/*.h), weight init (layers/init.h), the factory
// that picks layer implementations (layers/factory.h).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/safetensors.h"
#include "core/tensor.h"

namespace qilin {

// One state-dict entry whose shape differs from the module's tensor of that name.
struct ShapeMismatch {
  std::string name;
  Shape expected;  // the module's
  Shape got;       // the state dict's
};

// What load_state_dict found. Names are full dotted names.
struct LoadReport {
  std::vector<std::string> missing;     // in the module, absent from the state dict
  std::vector<std::string> unexpected;  // in the state dict, unknown to the module
  std::vector<ShapeMismatch> shape_mismatch;
  // Entries whose dtype cannot be converted to the module's without loss, and names given
  // twice, each with the reason ("step: F32 value 1.5 is not an integer for I64").
  std::vector<std::string> bad_value;
  bool ok() const {
    return missing.empty() && unexpected.empty() && shape_mismatch.empty() && bad_value.empty();
  }
  // Every problem, one per line, e.g. "missing: head.bias" or "shape: fc.weight: module
  // [10, 64], state dict [1000, 64]"; empty when ok().
  std::string str() const;
};

class Module {
 public:
  Module() = default;
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // ---- building the tree (names: non-empty, no '.', unique within this module) ----
  // Stores `value` as a parameter (sets requires_grad) and returns the same handle.
  Tensor register_parameter(const std::string& name, Tensor value);
  // Persistent buffers go into state_dict(); non-persistent ones do not (PyTorch's rule).
  Tensor register_buffer(const std::string& name, Tensor value, bool persistent = true);
  template <typename M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> child) {
    add_child(name, child);
    return child;
  }

  // ---- the tree, PyTorch's order: own entries first, then each child's, recursively ----
  // Each tensor listed once (the first name wins when a tensor is shared, as PyTorch).
  std::vector<std::pair<std::string, Tensor>> named_parameters() const;
  std::vector<std::pair<std::string, Tensor>> named_buffers() const;  // persistent or not
  std::vector<Tensor> parameters() const;
  // This module first, named "", then every descendant in pre-order.
  std::vector<std::pair<std::string, Module*>> named_modules();
  std::vector<std::pair<std::string, const Module*>> named_modules() const;
  const std::vector<std::pair<std::string, std::shared_ptr<Module>>>& named_children() const {
    return children_;
  }
  // A parameter or buffer by dotted name ("layer1.0.bn1.running_mean"); undefined if none.
  Tensor find_tensor(const std::string& dotted_name) const;
  // A descendant by dotted name ("blocks.0.mlp.act"); null if none; "" is this module.
  Module* find_module(const std::string& dotted_name);
  int64_t num_parameters() const;  // total elements over named_parameters()

  // ---- modes and gradients ----
  // Sets training mode on this module and every descendant.
  void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }
  void zero_grad();  // drops every parameter's .grad (PyTorch's set_to_none=True)

  // ---- state dicts (DESIGN.md §5 checkpoints) ----
  // Per module: its parameters, then its persistent buffers, then each child's entries,
  // recursively: torch.nn.Module.state_dict()'s order. The tensors alias this module's
  // (detached handles, no copy): clone them for a snapshot.
  NamedTensors state_dict() const;
  // Copies values into the existing tensors (optimizers' references stay valid); converts
  // dtypes where no value changes (I64/I32 <-> F32 integers: num_batches_tracked).
  // strict: every problem is collected first, and if there is any, one Error listing all of
  // them is thrown before anything is copied. Not strict: every entry that matches in name,
  // shape and dtype is copied and the rest reported (PyTorch would still raise on a shape
  // mismatch; we report it, so a caller can re-head a model).
  LoadReport load_state_dict(const NamedTensors& state, bool strict = true);

  // The implementation in words, e.g. "Linear(64 -> 256, bias)"; run summaries list it per
  // module (DESIGN.md §5 summary.json).
  virtual std::string describe() const { return "Module"; }

 protected:
  // Called by train() on each module after its flag is set (layers that cache per mode).
  virtual void on_train_mode_changed() {}
  // Removes this module's own parameter or buffer `name` from the tree (named_parameters,
  // state_dict, ...); the tensor itself lives on in whoever holds a handle. For a layer
  // that stops owning state, e.g. a BatchNorm2d folded into its convolution.
  void unregister_tensor(const std::string& name);

 private:
  struct Entry {
    std::string name;
    Tensor tensor;
    bool persistent = true;
  };
  void add_child(const std::string& name, std::shared_ptr<Module> child);
  void check_new_name(const std::string& name) const;
  template <typename Fn>
  void visit(const std::string& prefix, Fn&& fn) const;

  std::vector<Entry> params_;
  std::vector<Entry> buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  bool training_ = true;
};

// A module with one tensor in and one out: every layer and every model.
class Layer : public Module {
 public:
  virtual Tensor forward(const Tensor& x) = 0;
  Tensor operator()(const Tensor& x) { return forward(x); }
};

}  // namespace qilin
