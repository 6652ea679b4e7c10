// Parameter-free shape layers: MaxPool2d, AvgPool2d, AdaptiveAvgPool2d (core/ops/pool.h),
// Flatten and Identity.
#pragma once

#include <cstdint>
#include <string>

#include "core/ops/pool.h"
#include "layers/module.h"

namespace qilin {

// torch.nn.MaxPool2d(kernel, stride, padding) on [N, C, H, W].
class MaxPool2d : public Layer {
 public:
  MaxPool2d(int64_t kernel, int64_t stride, int64_t padding = 0);
  Tensor forward(const Tensor& x) override;
  std::string describe() const override;  // "MaxPool2d(3x3, stride 2, pad 1)"

 private:
  Pool2dParams params_;
};

// torch.nn.AvgPool2d(kernel, stride, padding, count_include_pad=True).
class AvgPool2d : public Layer {
 public:
  AvgPool2d(int64_t kernel, int64_t stride, int64_t padding = 0);
  Tensor forward(const Tensor& x) override;
  std::string describe() const override;

 private:
  Pool2dParams params_;
};

// torch.nn.AdaptiveAvgPool2d((out_h, out_w)).
class AdaptiveAvgPool2d : public Layer {
 public:
  AdaptiveAvgPool2d(int64_t out_h, int64_t out_w);
  Tensor forward(const Tensor& x) override;
  std::string describe() const override;  // "AdaptiveAvgPool2d(1x1)"

 private:
  int64_t out_h_, out_w_;
};

// torch.nn.Flatten(start_dim, end_dim): merges dims [start, end] (a view).
class Flatten : public Layer {
 public:
  explicit Flatten(int64_t start_dim = 1, int64_t end_dim = -1)
      : start_dim_(start_dim), end_dim_(end_dim) {}
  Tensor forward(const Tensor& x) override;
  std::string describe() const override;

 private:
  int64_t start_dim_, end_dim_;
};

class Identity : public Layer {
 public:
  Tensor forward(const Tensor& x) override { return x; }
  std::string describe() const override { return "Identity"; }
};

}  // namespace qilin
