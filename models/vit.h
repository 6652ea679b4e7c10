// VisionTransformer: timm's vision_transformer.VisionTransformer (class token, learned
// position embedding, pre-norm blocks, classifier on the class token after the final
// norm), with timm's parameter names exactly:
//   cls_token [1, 1, D], pos_embed [1, L + 1, D], patch_embed.proj.{weight,bias},
//   blocks.<i>.{norm1, attn.qkv, attn.proj, norm2, mlp.fc1, mlp.fc2}.{weight,bias},
//   norm.{weight,bias}, head.{weight,bias}
// LayerNorm eps 1e-6, exact-erf GELU, no drop_path / layer scale. Weight init as timm
// 0.9's init_weights (default mode): pos_embed trunc_normal(.02), cls_token normal(1e-6),
// every Linear trunc_normal(.02) with zero bias, LayerNorm 1/0, patch_embed.proj PyTorch's
// Conv2d default.
#pragma once

#include <memory>
#include <string>

#include "core/random.h"
#include "layers/factory.h"
#include "layers/module.h"
#include "models/model_spec.h"

namespace qilin {

class VisionTransformer : public Layer {
 public:
  // Uses img_size, in_chans, num_classes, patch_size, embed_dim, depth, num_heads,
  // mlp_ratio, drop_rate, attn_drop_rate.
  VisionTransformer(const ModelSpec& spec, LayerFactory& factory, Generator& init_gen);
  // images: [B, in_chans, img_size, img_size] -> logits [B, num_classes]
  Tensor forward(const Tensor& images) override;
  std::string describe() const override;

  // The stream every Dropout of this model draws from (seeded from init_gen's seed);
  // checkpoints save its state.
  const std::shared_ptr<Generator>& dropout_generator() const { return dropout_gen_; }

 private:
  ModelSpec spec_;
  std::shared_ptr<Generator> dropout_gen_;
  Tensor cls_token_, pos_embed_;
  std::shared_ptr<Layer> patch_embed_, pos_drop_, blocks_, norm_, head_;
};

}  // namespace qilin
