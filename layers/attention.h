// MultiHeadSelfAttention: timm's vision_transformer.Attention (timm 0.6-0.9), same
// parameter names (qkv.{weight,bias}, proj.{weight,bias}) and the same arithmetic:
//   qkv = x W_qkv^T + b            [B, N, 3C] -> [B, N, 3, H, D] -> [3, B, H, N, D]
//   attn = softmax((q * D^-0.5) k^T)   [B, H, N, N]   (k^T by matmul's trans_b, no copy)
//   y = proj((attn_drop(attn) v) transposed back to [B, N, C]), then proj_drop
// qkv, proj and the softmax come from the LayerFactory, so interpolated softmax or QFP8
// Linear swap in by configuration (paths "<path>.qkv", "<path>.softmax", "<path>.proj").
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "core/random.h"
#include "layers/factory.h"
#include "layers/module.h"

namespace qilin {

struct AttentionSpec {
  int64_t dim = 64;
  int64_t num_heads = 4;
  bool qkv_bias = true;
  float attn_drop = 0.0f;  // on the attention probabilities
  float proj_drop = 0.0f;  // on the output
};

class MultiHeadSelfAttention : public Layer {
 public:
  // `path`: this module's dotted name, for the factory. `dropout_generator` is needed when
  // either drop rate is positive.
  MultiHeadSelfAttention(const AttentionSpec& spec, LayerFactory& factory,
                         const std::string& path,
                         std::shared_ptr<Generator> dropout_generator = nullptr);
  // x: [B, N, C] -> [B, N, C]
  Tensor forward(const Tensor& x) override;
  // "MultiHeadSelfAttention(64, 4 heads of 16)"
  std::string describe() const override;

  const std::shared_ptr<Layer>& qkv() const { return qkv_; }
  const std::shared_ptr<Layer>& proj() const { return proj_; }
  float scale() const { return scale_; }

 private:
  AttentionSpec spec_;
  int64_t head_dim_;
  float scale_;
  std::shared_ptr<Layer> qkv_, softmax_, attn_drop_, proj_, proj_drop_;
};

}  // namespace qilin
