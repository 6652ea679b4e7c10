// Backend dispatch for op front-ends: QILIN_DISPATCH(device, kernel, args...) calls
// kernels::cpu::kernel(args...) or, in a CUDA build, kernels::cuda::kernel(args...) with
// the same signature. Front-ends never name a backend themselves.
#pragma once

#include "core/device.h"
#include "core/error.h"

namespace qilin::detail {
inline void require_cpu(const Device& device, const char* kernel) {
  QILIN_CHECK(device.is_cpu(), kernel, ": no kernel for device ", device.str(),
              " in this build (CPU only)");
}
}  // namespace qilin::detail

#ifdef QILIN_WITH_CUDA
#define QILIN_DISPATCH(device, kernel, ...)                                        \
  ((device).is_cuda() ? ::qilin::kernels::cuda::kernel(__VA_ARGS__)               \
                      : ::qilin::kernels::cpu::kernel(__VA_ARGS__))
#else
#define QILIN_DISPATCH(device, kernel, ...) \
  (::qilin::detail::require_cpu((device), #kernel), ::qilin::kernels::cpu::kernel(__VA_ARGS__))
#endif
