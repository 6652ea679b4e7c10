// ResNet with torchvision's BasicBlock and torchvision's names exactly:
//   conv1, bn1, (maxpool), layer<s>.<b>.{conv1, bn1, conv2, bn2, downsample.0, downsample.1},
//   fc
// Two stems: kImageNet (torchvision resnet18/34: 7x7 stride-2 conv, BN, ReLU, 3x3 stride-2
// max pool) and kCifar (ResNet-20 of He et al. 2016 §4.2: 3x3 stride-1 conv, BN, ReLU, no
// pool). Stage s > 1 starts with stride 2; a block whose stride or width changes gets a
// downsample (1x1 conv with that stride, no bias, then BN), torchvision's option B. Convs
// have no bias. Adaptive average pool to 1x1, then fc.
// Init as torchvision: convs kaiming_normal(fan_out, relu), BN 1/0, fc PyTorch's Linear
// default U(-1/sqrt(in), 1/sqrt(in)).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/random.h"
#include "layers/factory.h"
#include "layers/module.h"

namespace qilin {

enum class ResNetStem : uint8_t { kImageNet, kCifar };

struct ResNetSpec {
  ResNetStem stem = ResNetStem::kCifar;
  std::vector<int64_t> widths{16, 32, 64};
  std::vector<int64_t> depths{3, 3, 3};  // BasicBlocks per stage
  int64_t in_chans = 1;
  int64_t num_classes = 10;
  std::optional<float> bn_momentum = 0.1f;
  float bn_eps = 1e-5f;
};

class ResNet : public Layer {
 public:
  ResNet(const ResNetSpec& spec, LayerFactory& factory, Generator& init_gen);
  // images: [B, in_chans, H, W] -> logits [B, num_classes]
  Tensor forward(const Tensor& images) override;
  std::string describe() const override;

 private:
  ResNetSpec spec_;
  std::shared_ptr<Layer> conv1_, bn1_, relu_, maxpool_, avgpool_, fc_;
  std::vector<std::shared_ptr<Layer>> stages_;
};

}  // namespace qilin
