#include "layers/attention.h"

#include <cmath>

#include "core/ops/elementwise.h"
#include "core/ops/matmul.h"
#include "core/ops/shape.h"
#include "layers/dropout.h"

namespace qilin {

MultiHeadSelfAttention::MultiHeadSelfAttention(const AttentionSpec& spec, LayerFactory& factory,
                                               const std::string& path,
                                               std::shared_ptr<Generator> dropout_generator)
    : spec_(spec) {
  QILIN_CHECK(spec.dim > 0 && spec.num_heads > 0 && spec.dim % spec.num_heads == 0,
              "MultiHeadSelfAttention: dim ", spec.dim, " is not a positive multiple of ",
              spec.num_heads, " heads");
  head_dim_ = spec.dim / spec.num_heads;
  // timm: self.scale = head_dim ** -0.5 (Python double, used as a float multiplier).
  scale_ = static_cast<float>(std::pow(static_cast<double>(head_dim_), -0.5));
  // Registration order = timm's module order (qkv, attn_drop, proj, proj_drop); the
  // softmax, a function call in timm, is a module here so it can be swapped.
  qkv_ = register_module("qkv", factory.linear(spec.dim, 3 * spec.dim, spec.qkv_bias,
                                               join_path(path, "qkv")));
  softmax_ = register_module("softmax", factory.softmax(join_path(path, "softmax")));
  attn_drop_ = register_module("attn_drop", std::make_shared<Dropout>(spec.attn_drop, dropout_generator));
  proj_ = register_module("proj", factory.linear(spec.dim, spec.dim, true, join_path(path, "proj")));
  proj_drop_ = register_module("proj_drop", std::make_shared<Dropout>(spec.proj_drop, dropout_generator));
}

Tensor MultiHeadSelfAttention::forward(const Tensor& x) {
  QILIN_CHECK(x.dim() == 3 && x.size(2) == spec_.dim, "MultiHeadSelfAttention(", spec_.dim,
              "): expected [B, N, ", spec_.dim, "], got ", shape_str(x.shape()));
  const int64_t B = x.size(0), N = x.size(1), C = spec_.dim, H = spec_.num_heads, D = head_dim_;
  // [B, N, 3C] -> [B, N, 3, H, D] -> [3, B, H, N, D]; q, k, v are views of its three rows
  // (unbind: their gradients meet in one buffer).
  Tensor heads = permute(qkv_->forward(x).reshape({B, N, 3, H, D}), {2, 0, 3, 1, 4});
  std::vector<Tensor> qkv = unbind(heads, 0);
  const Tensor& q = qkv[0];
  const Tensor& k = qkv[1];
  const Tensor& v = qkv[2];
  // (q * scale) k^T with the scale folded into the GEMM.
  Tensor attn = matmul(q, k, /*trans_a=*/false, /*trans_b=*/true, scale_);  // [B, H, N, N]
  attn = attn_drop_->forward(softmax_->forward(attn));
  Tensor y = transpose(matmul(attn, v), 1, 2).reshape({B, N, C});  // [B, H, N, D] -> [B, N, C]
  return proj_drop_->forward(proj_->forward(y));
}

std::string MultiHeadSelfAttention::describe() const {
  return str_cat("MultiHeadSelfAttention(", spec_.dim, ", ", spec_.num_heads, " heads of ",
                 head_dim_, ")");
}

}  // namespace qilin
