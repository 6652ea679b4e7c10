#include "layers/conv.h"

#include "core/ops/conv.h"

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

std::string Conv2d::describe() const {
  return str_cat("Conv2d(", spec_.in_channels, " -> ", spec_.out_channels, ", ", spec_.kernel,
                 "x", spec_.kernel, ", stride ", spec_.stride, ", pad ", spec_.padding,
                 ", groups ", spec_.groups, spec_.bias ? ", bias)" : ", no bias)");
}

}  // namespace qilin
