// timm VisionTransformer (models/vit.h): PatchEmbed, Mlp, Block, and the model.
#include "models/vit.h"

#include "core/ops/elementwise.h"
#include "core/ops/shape.h"
#include "layers/attention.h"
#include "layers/dropout.h"
#include "layers/init.h"
#include "layers/norm.h"
#include "layers/sequential.h"

namespace qilin {
namespace {

// timm's ViT LayerNorm: partial(nn.LayerNorm, eps=1e-6).
constexpr float kVitLayerNormEps = 1e-6f;
// The dropout stream's seed is the init seed with this salt, so init and dropout draws are
// independent streams that both follow from the one model seed.
constexpr uint64_t kDropoutSeedSalt = 0x9E3779B97F4A7C15ull;

// timm PatchEmbed: a patch x patch conv with stride patch, then [B, D, h, w] -> [B, h*w, D].
class PatchEmbed : public Layer {
 public:
  PatchEmbed(const ModelSpec& s, LayerFactory& f, const std::string& path) : img_size_(s.img_size) {
    Conv2dSpec c;
    c.in_channels = s.in_chans;
    c.out_channels = s.embed_dim;
    c.kernel = c.stride = s.patch_size;
    c.bias = true;
    proj = register_module("proj", f.conv2d(c, join_path(path, "proj")));
  }
  Tensor forward(const Tensor& x) override {
    QILIN_CHECK(x.dim() == 4 && x.size(2) == img_size_ && x.size(3) == img_size_,
                "vit: images must be [B, C, ", img_size_, ", ", img_size_, "], got ",
                shape_str(x.shape()));
    return transpose(flatten(proj->forward(x), 2), 1, 2);
  }
  std::string describe() const override { return "PatchEmbed"; }
  std::shared_ptr<Layer> proj;

 private:
  int64_t img_size_;
};

// timm Mlp: fc1, act (GELU), drop1, fc2, drop2.
class Mlp : public Layer {
 public:
  Mlp(int64_t dim, int64_t hidden, float drop, LayerFactory& f, const std::string& path,
      const std::shared_ptr<Generator>& gen) {
    fc1 = register_module("fc1", f.linear(dim, hidden, true, join_path(path, "fc1")));
    act = register_module("act", f.activation(ActivationKind::kGELU, join_path(path, "act")));
    drop1 = register_module("drop1", std::make_shared<Dropout>(drop, gen));
    fc2 = register_module("fc2", f.linear(hidden, dim, true, join_path(path, "fc2")));
    drop2 = register_module("drop2", std::make_shared<Dropout>(drop, gen));
  }
  Tensor forward(const Tensor& x) override {
    return drop2->forward(fc2->forward(drop1->forward(act->forward(fc1->forward(x)))));
  }
  std::string describe() const override { return "Mlp"; }
  std::shared_ptr<Layer> fc1, act, drop1, fc2, drop2;
};

// timm Block (pre-norm): x = x + attn(norm1(x)); x = x + mlp(norm2(x)).
class Block : public Layer {
 public:
  Block(const ModelSpec& s, LayerFactory& f, const std::string& path,
        const std::shared_ptr<Generator>& gen) {
    AttentionSpec a;
    a.dim = s.embed_dim;
    a.num_heads = s.num_heads;
    a.qkv_bias = true;
    a.attn_drop = s.attn_drop_rate;
    a.proj_drop = s.drop_rate;
    // timm: mlp_hidden_dim = int(dim * mlp_ratio)
    const auto hidden = static_cast<int64_t>(static_cast<double>(s.embed_dim) * s.mlp_ratio);
    norm1 = register_module("norm1", std::make_shared<LayerNorm>(s.embed_dim, kVitLayerNormEps));
    attn = register_module("attn", std::make_shared<MultiHeadSelfAttention>(a, f, join_path(path, "attn"), gen));
    norm2 = register_module("norm2", std::make_shared<LayerNorm>(s.embed_dim, kVitLayerNormEps));
    mlp = register_module("mlp", std::make_shared<Mlp>(s.embed_dim, hidden, s.drop_rate, f,
                                                       join_path(path, "mlp"), gen));
  }
  Tensor forward(const Tensor& x) override {
    Tensor y = x + attn->forward(norm1->forward(x));
    return y + mlp->forward(norm2->forward(y));
  }
  std::string describe() const override { return "Block(pre-norm)"; }
  std::shared_ptr<Layer> norm1, norm2;
  std::shared_ptr<MultiHeadSelfAttention> attn;
  std::shared_ptr<Mlp> mlp;
};

}  // namespace

VisionTransformer::VisionTransformer(const ModelSpec& spec, LayerFactory& factory,
                                     Generator& init_gen)
    : spec_(spec) {
  QILIN_CHECK(spec.img_size > 0 && spec.patch_size > 0 && spec.img_size % spec.patch_size == 0,
              "vit: img_size ", spec.img_size, " must be a positive multiple of patch_size ",
              spec.patch_size);
  QILIN_CHECK(spec.embed_dim > 0 && spec.num_heads > 0 && spec.embed_dim % spec.num_heads == 0,
              "vit: embed_dim ", spec.embed_dim, " must be a positive multiple of num_heads ",
              spec.num_heads);
  QILIN_CHECK(spec.depth >= 1 && spec.in_chans >= 1 && spec.num_classes >= 1 &&
                  spec.mlp_ratio * spec.embed_dim >= 1.0f,
              "vit: depth ", spec.depth, ", in_chans ", spec.in_chans, ", num_classes ",
              spec.num_classes, ", mlp_ratio ", spec.mlp_ratio, " must be positive");
  const int64_t D = spec.embed_dim;
  const int64_t grid = spec.img_size / spec.patch_size;
  dropout_gen_ = std::make_shared<Generator>(init_gen.seed() ^ kDropoutSeedSalt);

  // timm registration order: patch_embed, cls_token, pos_embed, pos_drop, blocks, norm, head
  // (own parameters list first in named_parameters/state_dict either way).
  patch_embed_ = register_module("patch_embed", std::make_shared<PatchEmbed>(spec, factory, "patch_embed"));
  cls_token_ = register_parameter("cls_token", Tensor::zeros({1, 1, D}));
  pos_embed_ = register_parameter("pos_embed", Tensor::zeros({1, grid * grid + 1, D}));
  pos_drop_ = register_module("pos_drop", std::make_shared<Dropout>(spec.drop_rate, dropout_gen_));
  auto blocks = std::make_shared<Sequential>();
  for (int64_t i = 0; i < spec.depth; ++i)
    blocks->push_back(std::make_shared<Block>(spec, factory, str_cat("blocks.", i), dropout_gen_));
  blocks_ = register_module("blocks", blocks);
  norm_ = register_module("norm", std::make_shared<LayerNorm>(D, kVitLayerNormEps));
  head_ = register_module("head", factory.linear(D, spec.num_classes, true, "head"));

  // timm VisionTransformer.init_weights('') then init_weights_vit_timm on every Linear.
  init_torch_default(*static_cast<PatchEmbed&>(*patch_embed_).proj, init_gen);
  fill_trunc_normal(pos_embed_, init_gen, 0.02f);
  fill_normal(cls_token_, init_gen, 0.0f, 1e-6f);
  for (size_t i = 0; i < blocks->size(); ++i) {
    auto& block = static_cast<Block&>(*(*blocks)[i]);
    init_trunc_normal_zero_bias(*block.attn->qkv(), init_gen);
    init_trunc_normal_zero_bias(*block.attn->proj(), init_gen);
    init_trunc_normal_zero_bias(*block.mlp->fc1, init_gen);
    init_trunc_normal_zero_bias(*block.mlp->fc2, init_gen);
  }
  init_trunc_normal_zero_bias(*head_, init_gen);
}

Tensor VisionTransformer::forward(const Tensor& images) {
  Tensor x = patch_embed_->forward(images);  // [B, L, D]
  const int64_t B = x.size(0), D = spec_.embed_dim;
  x = concat({expand(cls_token_, {B, 1, D}), x}, 1);  // [B, L + 1, D]
  x = pos_drop_->forward(x + pos_embed_);
  x = norm_->forward(blocks_->forward(x));
  return head_->forward(slice(x, 1, 0, 1).reshape({B, D}));  // class token -> [B, classes]
}

std::string VisionTransformer::describe() const {
  return str_cat("VisionTransformer(", spec_.img_size, "x", spec_.img_size, "x", spec_.in_chans,
                 ", patch ", spec_.patch_size, ", dim ", spec_.embed_dim, ", depth ", spec_.depth,
                 ", heads ", spec_.num_heads, ", mlp_ratio ", spec_.mlp_ratio, ", classes ",
                 spec_.num_classes, ")");
}

}  // namespace qilin
