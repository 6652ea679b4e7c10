#include "models/mlp.h"

#include "layers/init.h"
#include "layers/pooling.h"

namespace qilin {

MlpClassifier::MlpClassifier(int64_t in_features, const std::vector<int64_t>& hidden, int64_t num_classes,
         LayerFactory& factory, Generator& init_gen)
    : in_features_(in_features), num_classes_(num_classes), hidden_(hidden) {
  QILIN_CHECK(in_features > 0 && num_classes > 0, "mlp: in_features ", in_features,
              " and num_classes ", num_classes, " must be positive");
  flatten_ = register_module("flatten", std::make_shared<Flatten>(1, -1));
  int64_t in = in_features;
  for (size_t i = 0; i <= hidden.size(); ++i) {
    const bool head = i == hidden.size();
    const int64_t out = head ? num_classes : hidden[i];
    QILIN_CHECK(out > 0, "mlp: hidden width ", out, " at layer ", i + 1, " must be positive");
    const std::string fc = str_cat("fc", i + 1);
    auto linear = register_module(fc, factory.linear(in, out, true, fc));
    init_torch_default(*linear, init_gen);
    layers_.push_back(linear);
    if (!head) {
      const std::string act = str_cat("act", i + 1);
      layers_.push_back(register_module(act, factory.activation(ActivationKind::kReLU, act)));
    }
    in = out;
  }
}

Tensor MlpClassifier::forward(const Tensor& images) {
  Tensor x = flatten_->forward(images);
  QILIN_CHECK(x.dim() == 2 && x.size(1) == in_features_, "mlp: images ", shape_str(images.shape()),
              " do not flatten to [B, ", in_features_, "]");
  for (auto& layer : layers_) x = layer->forward(x);
  return x;
}

std::string MlpClassifier::describe() const {
  std::string widths = std::to_string(in_features_);
  for (int64_t h : hidden_) widths += " -> " + std::to_string(h);
  return str_cat("Mlp(", widths, " -> ", num_classes_, ", ReLU)");
}

}  // namespace qilin
