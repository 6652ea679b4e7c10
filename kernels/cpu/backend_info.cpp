// See backend_info.h.
#include "kernels/cpu/backend_info.h"

#include <hwy/targets.h>
#include <oneapi/dnnl/dnnl.hpp>

#include "core/error.h"
#include "kernels/cpu/conv.h"

namespace qilin::kernels::cpu {

std::string simd_targets() {
  // Highway's dynamic dispatch picks the best target both compiled and supported by the CPU;
  // SupportedAndGeneratedTargets() lists them, best first.
  const std::vector<int64_t> targets = hwy::SupportedAndGeneratedTargets();
  if (targets.empty()) return "none";
  std::string compiled;
  for (int64_t t : targets) compiled += std::string(compiled.empty() ? "" : ", ") + hwy::TargetName(t);
  return str_cat(hwy::TargetName(targets.front()), " (dispatched; usable here: ", compiled, ")");
}

std::string conv_backend() {
  if (default_conv_impl() == ConvImpl::kIm2col) return "im2col (QILIN_CONV_IMPL)";
  const dnnl_version_t* v = dnnl_version();
  return str_cat("onednn (oneDNN ", v->major, ".", v->minor, ".", v->patch, ")");
}

}  // namespace qilin::kernels::cpu
