// Sequential (torch.nn.Sequential): layers applied in order, named "0", "1", ...
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "layers/module.h"

namespace qilin {

class Sequential : public Layer {
 public:
  Sequential() = default;
  explicit Sequential(std::vector<std::shared_ptr<Layer>> layers);
  // Appends `layer` under the next index name and returns it.
  template <typename L>
  std::shared_ptr<L> push_back(std::shared_ptr<L> layer) {
    append(layer);
    return layer;
  }
  Tensor forward(const Tensor& x) override;
  std::string describe() const override;  // "Sequential(3 layers)"

  size_t size() const { return layers_.size(); }
  const std::shared_ptr<Layer>& operator[](size_t i) const { return layers_.at(i); }

 private:
  void append(std::shared_ptr<Layer> layer);
  std::vector<std::shared_ptr<Layer>> layers_;
};

}  // namespace qilin
