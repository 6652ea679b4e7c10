// QILIN_HOST_DEVICE: marks header-only functions that CUDA kernels share with the CPU code
// (core/philox.h, core/interp_view.h). Empty outside nvcc.
#pragma once

#ifndef QILIN_HOST_DEVICE
#if defined(__CUDACC__)
#define QILIN_HOST_DEVICE __host__ __device__
#else
#define QILIN_HOST_DEVICE
#endif
#endif
