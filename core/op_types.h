// Small enums that op front-ends pass to kernels of every backend.
#pragma once

#include <cstdint>

namespace qilin {

enum class BinaryOp : uint8_t { kAdd, kSub, kMul, kDiv };

}  // namespace qilin
