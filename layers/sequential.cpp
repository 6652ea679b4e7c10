#include "layers/sequential.h"

namespace qilin {

Sequential::Sequential(std::vector<std::shared_ptr<Layer>> layers) {
  for (auto& layer : layers) append(std::move(layer));
}

void Sequential::append(std::shared_ptr<Layer> layer) {
  QILIN_CHECK(layer != nullptr, "Sequential: null layer at index ", layers_.size());
  register_module(std::to_string(layers_.size()), layer);
  layers_.push_back(std::move(layer));
}

Tensor Sequential::forward(const Tensor& x) {
  Tensor y = x;
  for (auto& layer : layers_) y = layer->forward(y);
  return y;
}

std::string Sequential::describe() const {
  return str_cat("Sequential(", layers_.size(), " layers)");
}

}  // namespace qilin
