// RegNetY-style CNN (Radosavovic et al. 2020, "Designing Network Design Spaces"): timm's
// regnet.RegNet with Y blocks (SE), timm's names exactly:
//   stem.{conv,bn}, s<i>.b<j>.{conv1,conv2,conv3}.{conv,bn}, s<i>.b<j>.se.{fc1,fc2},
//   s<i>.b<j>.downsample.{conv,bn}, head.fc
// Block (timm regnet.Bottleneck): conv1 1x1+BN+ReLU, conv2 3x3 grouped (groups = width /
// group_width) stride s +BN+ReLU, SE (mean over H, W; fc1 1x1 conv with bias; ReLU; fc2
// 1x1 conv with bias; Sigmoid gate multiplies), conv3 1x1+BN, plus the shortcut
// (downsample 1x1 conv stride s + BN when the width or stride changes), then ReLU.
// Stem: 3x3 stride-2 conv + BN + ReLU; every stage starts with stride 2. Head: global
// average pool, fc. Activations are named "<...>.act" (timm keeps them inside bn.act).
// Init as timm's _init_weights: conv N(0, 2 / (k*k*out / groups)) with zero bias, BN 1/0
// except each block's conv3.bn weight 0 (zero_init_last), fc N(0, .01) with zero bias.
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

struct RegNetSpec {
  int64_t in_chans = 1;
  int64_t num_classes = 10;
  int64_t stem_width = 32;
  std::vector<int64_t> widths{24, 56, 152};
  std::vector<int64_t> depths{1, 2, 4};
  int64_t group_width = 8;
  float bottle_ratio = 1.0f;
  float se_ratio = 0.25f;  // 0: no SE
  std::optional<float> bn_momentum = 0.1f;
  float bn_eps = 1e-5f;
};

class RegNet : public Layer {
 public:
  RegNet(const RegNetSpec& spec, LayerFactory& factory, Generator& init_gen);
  // images: [B, in_chans, H, W] -> logits [B, num_classes]
  Tensor forward(const Tensor& images) override;
  std::string describe() const override;

 private:
  RegNetSpec spec_;
  std::shared_ptr<Layer> stem_, head_;
  std::vector<std::shared_ptr<Layer>> stages_;
};

}  // namespace qilin
