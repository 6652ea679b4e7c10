#include "layers/pooling.h"

#include "core/ops/shape.h"

namespace qilin {
namespace {

Pool2dParams square_pool(const char* layer, int64_t kernel, int64_t stride, int64_t padding) {
  QILIN_CHECK(kernel > 0 && stride > 0 && padding >= 0 && 2 * padding <= kernel, layer,
              ": kernel ", kernel, ", stride ", stride, ", padding ", padding,
              " (need positive kernel and stride, padding at most half the kernel)");
  Pool2dParams p;
  p.kernel_h = p.kernel_w = kernel;
  p.stride_h = p.stride_w = stride;
  p.pad_h = p.pad_w = padding;
  p.count_include_pad = true;
  return p;
}

std::string pool_str(const char* name, const Pool2dParams& p) {
  return str_cat(name, "(", p.kernel_h, "x", p.kernel_w, ", stride ", p.stride_h, ", pad ",
                 p.pad_h, ")");
}

}  // namespace

MaxPool2d::MaxPool2d(int64_t kernel, int64_t stride, int64_t padding)
    : params_(square_pool("MaxPool2d", kernel, stride, padding)) {}
Tensor MaxPool2d::forward(const Tensor& x) { return max_pool2d(x, params_); }
std::string MaxPool2d::describe() const { return pool_str("MaxPool2d", params_); }

AvgPool2d::AvgPool2d(int64_t kernel, int64_t stride, int64_t padding)
    : params_(square_pool("AvgPool2d", kernel, stride, padding)) {}
Tensor AvgPool2d::forward(const Tensor& x) { return avg_pool2d(x, params_); }
std::string AvgPool2d::describe() const { return pool_str("AvgPool2d", params_); }

AdaptiveAvgPool2d::AdaptiveAvgPool2d(int64_t out_h, int64_t out_w) : out_h_(out_h), out_w_(out_w) {
  QILIN_CHECK(out_h > 0 && out_w > 0, "AdaptiveAvgPool2d: output ", out_h, "x", out_w,
              " must be positive");
}
Tensor AdaptiveAvgPool2d::forward(const Tensor& x) { return adaptive_avg_pool2d(x, out_h_, out_w_); }
std::string AdaptiveAvgPool2d::describe() const {
  return str_cat("AdaptiveAvgPool2d(", out_h_, "x", out_w_, ")");
}

Tensor Flatten::forward(const Tensor& x) { return flatten(x, start_dim_, end_dim_); }
std::string Flatten::describe() const {
  return str_cat("Flatten(", start_dim_, ", ", end_dim_, ")");
}

}  // namespace qilin
