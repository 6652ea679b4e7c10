// What the CPU backend runs on this machine, for `qilin info` and run logs: the Highway
// targets compiled in and the one dispatched, the GEMM library, the convolution default.
#pragma once

#include <string>

namespace qilin::kernels::cpu {

// e.g. "AVX3 (dispatched; compiled: AVX3, AVX2)".
std::string simd_targets();
// e.g. "onednn (oneDNN 3.0.0)" or "im2col"; QILIN_CONV_IMPL changes it.
std::string conv_backend();

}  // namespace qilin::kernels::cpu
