// Fake quantization as an autograd op (DESIGN.md §4.2), and the amax / parameter-choice
// front-ends that observers and quantized layers call every step. The codec and the
// parameter rules are core/qfp8.h's; the kernels kernels/cpu/quant.h's.
#pragma once

#include <optional>
#include <string>

#include "core/qfp8.h"
#include "core/tensor.h"

namespace qilin {

// y = fake_quant(x) with `params` (float32, any shape), channel by channel:
//   params.size() == 1 (or format none): one set for the whole tensor, whatever channel_axis;
//   otherwise channel entry c applies to x's index c along `channel_axis` (0 for weights
//   [out, ...], per output channel), and params.size() must equal x.size(channel_axis).
// channel_axis -1 means per tensor. Format none returns x itself (the identity).
// Backward: the straight-through estimator: dx = dy where |x| <= quant_clip_max(channel)
// (the boundary passes), 0 where clipped or x is NaN (kernels/cpu/quant.h).
// `x_amax`: max |x| when the caller knows it (a dynamic observer's amax of this very x,
// finite). If no channel's clip max is below it, nothing is clipped and the backward passes
// dy on as it is (no pass over memory, x not kept): the same gradient, bit for bit.
Tensor fake_quantize(const Tensor& x, const QuantParams& params, int64_t channel_axis,
                     std::optional<float> x_amax = std::nullopt);

// max |x| over the whole tensor (0 for an empty one); NaN if x holds a NaN, +Inf for an Inf.
// No gradient (an observer's statistic).
float tensor_amax(const Tensor& x);

// max |w[c, ...]| for each c along axis 0: a float32 tensor [w.size(0)], NaN-propagating.
// No gradient.
Tensor channel_amax(const Tensor& w);

// choose_quant_params for x as the spec's granularity lays it out (per_channel: axis 0, rows
// of numel / size(0); per_tensor: one group), equal to it exactly. The common per-step cases
// (bias amax or fixed with a fixed layout, and int8 / fp8 scales) take the amax from the
// vector kernel and derive β / the scale from it; mse and layout auto scan in choose_quant_params.
// A NaN or Inf in x is an error naming `name` (choose_quant_params's message).
QuantParams choose_params(const QuantSpec& spec, const Tensor& x, const std::string& name);

}  // namespace qilin
