// CPU kernels of QFP8 and the 8-bit comparison formats (DESIGN.md §4.2): amax, fake-quant
// forward, the straight-through-estimator backward, and the packed 8-bit encode / decode.
//
// Contract: every output equals the scalar codec of core/qfp8.h bit for bit (quant_fake,
// quant_encode, quant_decode, quant_clip_max; NaN compared as "is NaN"), whatever the SIMD
// target or thread count. The signatures are backend-neutral (pointers, sizes, and a plain
// array of QuantChannel); a CUDA backend provides the same.
//
// Layout: data is [channels, inner], contiguous (per tensor: channels = 1, or any channels
// with one parameter entry). `params` holds n_params entries: 1 (the same for every channel)
// or `channels` (entry c for row c). Every entry has the same format; QFP8 entries may differ
// in layout and β (`layout: auto` per channel).
#pragma once

#include <cstdint>

#include "core/qfp8.h"

namespace qilin::kernels::cpu {

// max |x| over n values; NaN anywhere gives NaN (so the caller can report it), an Inf gives
// +Inf; n == 0 gives 0. (returns)
float amax_forward(const float* x, int64_t n);

// out[c] = max |x[c, :]| over rows of `inner` values, NaN-propagating as amax_forward.
// (writes `channels` values)
void amax_per_channel(const float* x, int64_t channels, int64_t inner, float* out);

// y[c, i] = quant_fake(params[c or 0], x[c, i]). (writes; y may alias x)
void fake_quant_forward(const QuantChannel* params, int64_t n_params, const float* x, float* y,
                        int64_t channels, int64_t inner);

// The straight-through estimator (DESIGN.md §4.2): the gradient passes where
// |x| <= quant_clip_max(channel) (the boundary passes) and is zero where clipped, ±Inf
// included. A NaN x passes no gradient (its forward output is already NaN, which makes the
// loss NaN; PyTorch's fake-quant masks compare the same way). Format none passes dy
// everywhere (the identity), NaN x included.
//   !accumulate: dx = pass ? dy : 0          (writes; dx may alias dy)
//    accumulate: dx = pass ? dx + dy : dx    (+=, clipped elements left untouched)
void fake_quant_backward(const QuantChannel* params, int64_t n_params, const float* x,
                         const float* dy, float* dx, int64_t channels, int64_t inner,
                         bool accumulate);

// codes[c, i] = quant_encode(params[c or 0], x[c, i]) (int8 as two's complement; NaN gives
// the scalar codec's code: (sign) | 0x7F for QFP8 / FP8, 0 for int8 — rejecting NaN is the
// caller's job). Format none is an error. (writes)
void quant_encode_packed(const QuantChannel* params, int64_t n_params, const float* x,
                         uint8_t* codes, int64_t channels, int64_t inner);

// y[c, i] = quant_decode(params[c or 0], codes[c, i]). Format none is an error. (writes)
void quant_decode_packed(const QuantChannel* params, int64_t n_params, const uint8_t* codes,
                         float* y, int64_t channels, int64_t inner);

}  // namespace qilin::kernels::cpu
