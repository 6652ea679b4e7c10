// Weight initialisation as timm and torchvision do it, drawn from a qilin Generator so a
// model is a pure function of its seed. Each helper fills a module's own parameters by
// name ("weight", "bias"), so it works on any layer a LayerFactory returns as long as that
// layer keeps the native names. All fills are in place and record no graph.
#pragma once

#include <cmath>
#include <cstdint>

#include "core/random.h"
#include "layers/module.h"

namespace qilin {

// fan_in / fan_out of a Linear [out, in] or conv [O, C/g, KH, KW] weight, as
// torch.nn.init._calculate_fan_in_and_fan_out (no division by groups).
inline int64_t weight_fan_in(const Tensor& w) { return w.numel() / w.size(0); }
inline int64_t weight_fan_out(const Tensor& w) { return w.numel() / w.size(1); }

inline void fill_normal(Tensor t, Generator& gen, float mean, float std) {
  t.copy_(rand_normal(t.shape(), gen, mean, std));
}
inline void fill_uniform(Tensor t, Generator& gen, float lo, float hi) {
  t.copy_(rand_uniform(t.shape(), gen, lo, hi));
}
// timm's trunc_normal_(t, std, a=-2, b=2): the cut is at absolute values +-2, not +-2 std.
inline void fill_trunc_normal(Tensor t, Generator& gen, float std, float lo = -2.0f,
                              float hi = 2.0f) {
  t.copy_(rand_trunc_normal(t.shape(), gen, 0.0f, std, lo, hi));
}

// A module's own parameter, which must exist.
inline Tensor own_param(Module& m, const char* name) {
  Tensor t = m.find_tensor(name);
  QILIN_CHECK(t.defined(), "init: layer ", m.describe(), " has no parameter '", name, "'");
  return t;
}

// torch.nn.Linear / Conv2d reset_parameters(): weight kaiming_uniform_(a=sqrt(5)), i.e.
// U(-1/sqrt(fan_in), 1/sqrt(fan_in)), and the bias U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
inline void init_torch_default(Module& layer, Generator& gen) {
  Tensor w = own_param(layer, "weight");
  const float bound = static_cast<float>(1.0 / std::sqrt(static_cast<double>(weight_fan_in(w))));
  fill_uniform(w, gen, -bound, bound);
  Tensor b = layer.find_tensor("bias");
  if (b.defined()) fill_uniform(b, gen, -bound, bound);
}

// timm ViT (init_weights_vit_timm): Linear weight trunc_normal_(std .02), bias zeros.
inline void init_trunc_normal_zero_bias(Module& layer, Generator& gen, float std = 0.02f) {
  fill_trunc_normal(own_param(layer, "weight"), gen, std);
  Tensor b = layer.find_tensor("bias");
  if (b.defined()) b.fill_(0.0f);
}

// torchvision ResNet: kaiming_normal_(mode="fan_out", nonlinearity="relu"): N(0, 2/fan_out)
// with fan_out = O * KH * KW. `fan_out_divisor`: timm RegNet divides fan_out by groups.
// The bias, if any, is zeroed (timm RegNet; torchvision's convs have none).
inline void init_kaiming_normal_fan_out(Module& layer, Generator& gen, int64_t fan_out_divisor = 1) {
  Tensor w = own_param(layer, "weight");
  // timm: fan_out //= groups (integer division).
  const int64_t fan_out = weight_fan_out(w) / fan_out_divisor;
  fill_normal(w, gen, 0.0f, static_cast<float>(std::sqrt(2.0 / static_cast<double>(fan_out))));
  Tensor b = layer.find_tensor("bias");
  if (b.defined()) b.fill_(0.0f);
}

}  // namespace qilin
