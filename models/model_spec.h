// ModelSpec: the typed description of a model (train/ fills it from the `model` section of
// a config; nothing here parses strings). Sizes are parameters; the defaults are the
// project's Fashion-MNIST models (1x28x28 images, 10 classes). Fields an arch does not use
// are ignored by it. Empty per-stage lists mean the arch's default (models/registry.h).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace qilin {

struct ModelSpec {
  std::string arch = "vit";  // vit, resnet18, resnet34, resnet20, regnety, mlp
  int64_t img_size = 28;
  int64_t in_chans = 1;
  int64_t num_classes = 10;

  // vit (timm VisionTransformer)
  int64_t patch_size = 4;
  int64_t embed_dim = 64;
  int64_t depth = 4;
  int64_t num_heads = 4;
  float mlp_ratio = 4.0f;
  float drop_rate = 0.0f;       // after the position embedding, in the MLP, after attn proj
  float attn_drop_rate = 0.0f;  // on the attention probabilities

  // CNNs: per-stage output widths and block counts.
  // resnet18: 64/128/256/512 x 2/2/2/2; resnet34: x 3/4/6/3; resnet20: 16/32/64 x 3/3/3;
  // regnety: 24/56/152 x 1/2/4.
  std::vector<int64_t> widths;
  std::vector<int64_t> depths;
  std::optional<float> bn_momentum = 0.1f;  // nullopt: cumulative average (PyTorch None)
  float bn_eps = 1e-5f;

  // regnety (timm RegNet with SE)
  int64_t stem_width = 32;
  int64_t group_width = 8;   // channels per group of the 3x3 conv
  float bottle_ratio = 1.0f;
  float se_ratio = 0.25f;    // SE reduction channels = round(block input channels * ratio)

  // mlp: hidden widths (default 256/128)
  std::vector<int64_t> hidden;
};

}  // namespace qilin
