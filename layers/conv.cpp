#include "layers/conv.h"

#include <cmath>
#include <vector>

#include "core/autograd.h"
#include "core/ops/conv.h"
#include "layers/norm.h"

namespace qilin {

Conv2d::Conv2d(const Conv2dSpec& spec) : spec_(spec) {
  QILIN_CHECK(spec.in_channels > 0 && spec.out_channels > 0 && spec.kernel > 0 &&
                  spec.stride > 0 && spec.padding >= 0 && spec.groups > 0,
              "Conv2d: bad spec in ", spec.in_channels, " out ", spec.out_channels, " kernel ",
              spec.kernel, " stride ", spec.stride, " padding ", spec.padding, " groups ",
              spec.groups);
  QILIN_CHECK(spec.in_channels % spec.groups == 0 && spec.out_channels % spec.groups == 0,
              "Conv2d: groups ", spec.groups, " must divide in ", spec.in_channels, " and out ",
              spec.out_channels);
  weight_ = register_parameter(
      "weight", Tensor::zeros({spec.out_channels, spec.in_channels / spec.groups, spec.kernel,
                               spec.kernel}));
  if (spec.bias) bias_ = register_parameter("bias", Tensor::zeros({spec.out_channels}));
}

Tensor Conv2d::forward(const Tensor& x) {
  Conv2dParams p;
  p.stride_h = p.stride_w = spec_.stride;
  p.pad_h = p.pad_w = spec_.padding;
  p.groups = spec_.groups;
  return conv2d(x, weight_, bias_, p);
}

void Conv2d::fold_batch_norm(BatchNorm2d& bn) {
  const int64_t out = spec_.out_channels;
  QILIN_CHECK(!bn.folded(), "Conv2d::fold_batch_norm: ", describe(), ": the BatchNorm2d(",
              bn.num_features(), ") is already folded");
  QILIN_CHECK(bn.num_features() == out, "Conv2d::fold_batch_norm: ", describe(), " has ", out,
              " output channels, the BatchNorm2d ", bn.num_features());
  QILIN_CHECK(weight_.device().is_cpu() && weight_.dtype() == DType::kFloat32,
              "Conv2d::fold_batch_norm: weight ", weight_.str(), " must be float32 on the CPU");
  const std::vector<float> gamma = bn.weight().to_vector(), beta = bn.bias().to_vector();
  const std::vector<float> mean = bn.running_mean().to_vector(), var = bn.running_var().to_vector();
  NoGradGuard no_grad;
  if (!bias_.defined()) {
    bias_ = register_parameter("bias", Tensor::zeros({out}));
    spec_.bias = true;
  }
  float* w = weight_.data<float>();
  float* b = bias_.data<float>();
  const int64_t per_channel = weight_.numel() / out;  // in / groups * k * k
  for (int64_t o = 0; o < out; ++o) {
    // torch/nn/utils/fusion.py fuse_conv_bn_weights: bn_rm, bn_rv, bn_eps, bn_w, bn_b.
    const double scale = static_cast<double>(gamma[o]) /
                         std::sqrt(static_cast<double>(var[o]) + static_cast<double>(bn.eps()));
    for (int64_t i = 0; i < per_channel; ++i) {
      float& wi = w[o * per_channel + i];
      wi = static_cast<float>(static_cast<double>(wi) * scale);
    }
    b[o] = static_cast<float>((static_cast<double>(b[o]) - mean[o]) * scale + beta[o]);
  }
  bn.set_folded();
  bn_folded_ = true;
}

std::string Conv2d::describe() const {
  return str_cat("Conv2d(", spec_.in_channels, " -> ", spec_.out_channels, ", ", spec_.kernel,
                 "x", spec_.kernel, ", stride ", spec_.stride, ", pad ", spec_.padding,
                 ", groups ", spec_.groups, spec_.bias ? ", bias" : ", no bias",
                 bn_folded_ ? ", BN folded)" : ")");
}

}  // namespace qilin
