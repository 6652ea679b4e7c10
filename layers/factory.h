// LayerFactory: the ONE place models obtain their swappable layers from. Every activation,
// softmax, Linear and Conv2d of every model is made here, given the dotted name the layer
// will get ("blocks.0.mlp.act"), so a later configuration swaps in interpolated
// activations/softmax (DESIGN.md §4.1) or QFP8 quantized Linear/Conv2d (§4.2) for some or
// all paths by overriding these methods, without touching model code.
//
// The default implementation makes the native layers. Layers come back uninitialised
// (zeros); models initialise them by parameter name (layers/init.h), so a replacement must
// keep the native parameter names and shapes (weight [out, in] / [O, C/groups, K, K], bias).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "layers/activation.h"
#include "layers/conv.h"
#include "layers/linear.h"
#include "layers/module.h"

namespace qilin {

class LayerFactory {
 public:
  virtual ~LayerFactory() = default;
  virtual std::shared_ptr<Layer> activation(ActivationKind kind, const std::string& path) {
    return std::make_shared<Activation>(kind);
  }
  // Softmax over the last dim.
  virtual std::shared_ptr<Layer> softmax(const std::string& path) {
    return std::make_shared<Softmax>();
  }
  virtual std::shared_ptr<Layer> linear(int64_t in_features, int64_t out_features, bool bias,
                                        const std::string& path) {
    return std::make_shared<Linear>(in_features, out_features, bias);
  }
  virtual std::shared_ptr<Layer> conv2d(const Conv2dSpec& spec, const std::string& path) {
    return std::make_shared<Conv2d>(spec);
  }
};

// Joins a parent path and a child name: join_path("blocks.0", "mlp") == "blocks.0.mlp".
inline std::string join_path(const std::string& parent, const std::string& child) {
  return parent.empty() ? child : parent + "." + child;
}

}  // namespace qilin
