// Element types of a Tensor. float32 for all math; int32/int64 for labels and indices;
// uint8 for 8-bit codes (QFP8 packed storage).
#pragma once

#include <cstddef>
#include <cstdint>

namespace qilin {

enum class DType : uint8_t { kFloat32, kInt32, kInt64, kUInt8 };

constexpr size_t dtype_size(DType t) {
  switch (t) {
    case DType::kFloat32: return 4;
    case DType::kInt32: return 4;
    case DType::kInt64: return 8;
    case DType::kUInt8: return 1;
  }
  return 0;
}

// The names safetensors uses ("F32", "I32", "I64", "U8").
constexpr const char* dtype_name(DType t) {
  switch (t) {
    case DType::kFloat32: return "F32";
    case DType::kInt32: return "I32";
    case DType::kInt64: return "I64";
    case DType::kUInt8: return "U8";
  }
  return "?";
}

template <typename T> struct DTypeOf;
template <> struct DTypeOf<float> { static constexpr DType value = DType::kFloat32; };
template <> struct DTypeOf<int32_t> { static constexpr DType value = DType::kInt32; };
template <> struct DTypeOf<int64_t> { static constexpr DType value = DType::kInt64; };
template <> struct DTypeOf<uint8_t> { static constexpr DType value = DType::kUInt8; };

}  // namespace qilin
