// MLP classifier: Flatten, then Linear/ReLU pairs, then a Linear head. Names:
//   flatten, fc1, act1, fc2, act2, ..., fc<K+1>   (K hidden layers; fc<K+1> is the head)
// so the state dict holds fc1.weight, fc1.bias, ..., fc<K+1>.bias. Init: PyTorch's
// nn.Linear default, U(-1/sqrt(in), 1/sqrt(in)) for weight and bias.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/random.h"
#include "layers/factory.h"
#include "layers/module.h"

namespace qilin {

class MlpClassifier : public Layer {
 public:
  // in_features: C * H * W of the images; hidden: widths of the hidden layers (may be empty:
  // a linear classifier).
  MlpClassifier(int64_t in_features, const std::vector<int64_t>& hidden, int64_t num_classes,
      LayerFactory& factory, Generator& init_gen);
  // images: [B, ...] with in_features elements per image -> logits [B, num_classes]
  Tensor forward(const Tensor& images) override;
  std::string describe() const override;

 private:
  int64_t in_features_, num_classes_;
  std::vector<int64_t> hidden_;
  std::shared_ptr<Layer> flatten_;
  std::vector<std::shared_ptr<Layer>> layers_;  // fc1, act1, ..., head, in order
};

}  // namespace qilin
