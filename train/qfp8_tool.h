// `qilin qfp8`: the QFP8 code table of a layout and bias, and the per-layer SQNR of every
// 8-bit format on a checkpoint's weights (issue 5; DESIGN.md §4.2), as library functions the
// qilin program calls (train/qilin_main.cpp).
#pragma once

#include <string>

#include "core/qfp8.h"
#include "train/table.h"

namespace qilin {

// All 256 codes of a QFP8 layout with bias beta: code (hex), sign, exponent and mantissa
// fields, and the value with 9 significant digits. A beta outside the layout's valid range
// is a ConfigError naming it.
Table qfp8_code_table(Qfp8Layout layout, int32_t beta);

// For every floating-point tensor of a safetensors file with at least 2 dims (weights:
// Linear [out, in], Conv2d [out, in/g, kh, kw]), the SQNR in dB (10 log10(sum x^2 /
// sum (x - q(x))^2)) of each format: qfp8 e2m5, e3m4, e4m3, e5m2 and auto (each with bias
// mse), int8, fp8_e4m3, fp8_e5m2, at the given granularity (per output channel = axis 0),
// and the best format's name; a last row over all weights together (the summed squares).
Table qfp8_sqnr_table(const std::string& checkpoint, Granularity granularity);

}  // namespace qilin
