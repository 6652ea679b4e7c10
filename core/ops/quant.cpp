// Front-ends of fake quantization (see quant.h): checks, dispatch to kernels/cpu/quant.h,
// and the straight-through backward right under the forward; the amax front-ends; and
// choose_params, the per-step parameter choice with its vector fast path.
#include "core/ops/quant.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/autograd.h"
#include "core/dispatch.h"
#include "core/error.h"
#include "core/profiler.h"
#include "kernels/cpu/quant.h"

namespace qilin {
namespace {

void check_float(const Tensor& x, const char* op) {
  QILIN_CHECK(x.dtype() == DType::kFloat32, op, ": expected float32, got ", x.str());
}

// The scalar codec's view of each entry, for the kernels.
std::vector<QuantChannel> channel_entries(const QuantParams& params) {
  const int64_t n = params.size();
  std::vector<QuantChannel> out(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) out[i] = params.channel(i);
  return out;
}

// x as [outer, channels, inner] around `axis` (channels = 1, inner = numel when per tensor).
struct Geometry {
  int64_t outer = 1, channels = 1, inner = 0;
};

bool finite(float v) { return v <= std::numeric_limits<float>::max(); }  // false for NaN, Inf

}  // namespace

Tensor fake_quantize(const Tensor& x, const QuantParams& params, int64_t channel_axis,
                     std::optional<float> x_amax) {
  ProfileScope scope("fake_quantize");
  check_float(x, "fake_quantize");
  QILIN_CHECK(channel_axis == -1 || (channel_axis >= 0 && channel_axis < x.dim()),
              "fake_quantize: channel axis ", channel_axis, " of ", x.str(),
              " (expected -1 for per tensor, or 0 .. ", x.dim() - 1, ")");
  if (params.format == QuantFormat::kNone) return x;
  const int64_t entries = params.size();
  Geometry geom;
  geom.inner = x.numel();
  if (entries != 1) {
    QILIN_CHECK(channel_axis >= 0 && entries == x.size(channel_axis), "fake_quantize: ",
                quant_format_name(params.format), " has ", entries,
                " parameter entries, but x ", x.str(), " has ",
                channel_axis >= 0 ? str_cat(x.size(channel_axis), " channels along axis ", channel_axis)
                                  : std::string("no channel axis (-1: per tensor, 1 entry)"));
    geom.channels = entries;
    for (int64_t d = 0; d < channel_axis; ++d) geom.outer *= x.size(d);
    geom.inner = geom.channels == 0 || geom.outer == 0 ? 0 : x.numel() / (geom.outer * geom.channels);
  }
  std::vector<QuantChannel> channels = channel_entries(params);
  Tensor y = Tensor::empty(x.shape(), DType::kFloat32, x.device());
  const int64_t slice = geom.channels * geom.inner;
  for (int64_t o = 0; o < geom.outer; ++o) {
    QILIN_DISPATCH(x.device(), fake_quant_forward, channels.data(), entries,
                   x.data<float>() + o * slice, y.data<float>() + o * slice, geom.channels, geom.inner);
  }
  if (!any_requires_grad({x})) return y;
  const bool none_clipped =
      x_amax.has_value() && finite(*x_amax) &&
      std::all_of(channels.begin(), channels.end(),
                  [&](const QuantChannel& c) { return quant_clip_max(c) >= *x_amax; });
  if (none_clipped) {
    return record_op(y, "fake_quantize", {x}, [](const Tensor& gy, GradSlots& g) { g.add(0, gy); });
  }
  return record_op(y, "fake_quantize", {x},
                   [x_saved = x.detach(), channels = std::move(channels), geom](const Tensor& gy,
                                                                                 GradSlots& g) {
    Tensor dx = Tensor::empty(x_saved.shape(), DType::kFloat32, x_saved.device());
    const int64_t slice = geom.channels * geom.inner;
    for (int64_t o = 0; o < geom.outer; ++o) {
      QILIN_DISPATCH(gy.device(), fake_quant_backward, channels.data(),
                     static_cast<int64_t>(channels.size()), x_saved.data<float>() + o * slice,
                     gy.data<float>() + o * slice, dx.data<float>() + o * slice, geom.channels,
                     geom.inner, false);
    }
    g.add(0, dx);
  });
}

float tensor_amax(const Tensor& x) {
  ProfileScope scope("tensor_amax");
  check_float(x, "tensor_amax");
  return QILIN_DISPATCH(x.device(), amax_forward, x.data<float>(), x.numel());
}

Tensor channel_amax(const Tensor& w) {
  ProfileScope scope("channel_amax");
  check_float(w, "channel_amax");
  QILIN_CHECK(w.dim() >= 1, "channel_amax: needs a channel axis (dim 0), got ", w.str());
  const int64_t channels = w.size(0);
  const int64_t inner = channels == 0 ? 0 : w.numel() / channels;
  Tensor out = Tensor::empty({channels}, DType::kFloat32, w.device());
  QILIN_DISPATCH(w.device(), amax_per_channel, w.data<float>(), channels, inner, out.data<float>());
  return out;
}

QuantParams choose_params(const QuantSpec& spec, const Tensor& x, const std::string& name) {
  ProfileScope scope("choose_quant_params");
  check_float(x, "choose_params");
  const bool per_channel = spec.granularity == Granularity::kPerChannel;
  const int64_t channels = per_channel && x.dim() >= 1 ? x.size(0) : 1;
  const int64_t inner = channels == 0 ? 0 : x.numel() / channels;
  const bool from_amax = spec.format == QuantFormat::kInt8 || spec.format == QuantFormat::kFp8E4M3 ||
                         spec.format == QuantFormat::kFp8E5M2 ||
                         (spec.format == QuantFormat::kQfp8 && spec.layout.has_value() &&
                          spec.bias != BiasMode::kMse);
  // mse and layout auto compare squared errors over the data: choose_quant_params's scan, its
  // candidate rows fake-quantized by the vector kernel (the CPU's: choose_quant_params reads
  // the data on the host).
  if (!from_amax) {
    detail::require_cpu(x.device(), "choose_params (bias mse / layout auto)");
    const QuantFakeRowFn fake_row = [](const QuantChannel& c, const float* in, float* out, int64_t n) {
      kernels::cpu::fake_quant_forward(&c, 1, in, out, 1, n);
    };
    return choose_quant_params(spec, x.data<float>(), channels, inner, name, fake_row);
  }

  // The amax of each group (choose_quant_params's groups), from the vector kernel.
  std::vector<float> amax(static_cast<size_t>(per_channel ? channels : 1));
  if (per_channel) {
    QILIN_DISPATCH(x.device(), amax_per_channel, x.data<float>(), channels, inner, amax.data());
  } else {
    amax[0] = QILIN_DISPATCH(x.device(), amax_forward, x.data<float>(), x.numel());
  }
  for (float a : amax) {
    // A NaN or Inf: choose_quant_params's scan names the first bad element.
    if (!finite(a)) return choose_quant_params(spec, x.data<float>(), channels, inner, name);
  }
  QuantParams params;
  params.format = spec.format;
  for (size_t g = 0; g < amax.size(); ++g) {
    switch (spec.format) {
      case QuantFormat::kNone: break;
      case QuantFormat::kQfp8: {
        // Runs every step for dynamic activation biases: the group's name (for the error) is
        // only built when the bias is out of range.
        const int32_t beta = spec.bias == BiasMode::kFixed
                                 ? spec.fixed_bias
                                 : qfp8_bias_for_amax_unchecked(amax[g], *spec.layout);
        if (!qfp8_bias_in_range(*spec.layout, beta)) {
          const std::string group_name = per_channel ? str_cat(name, " (channel ", g, ")") : name;
          if (spec.bias == BiasMode::kFixed) check_qfp8_bias(*spec.layout, beta, group_name);
          bias_for_amax(amax[g], *spec.layout, group_name);  // throws, naming the group
        }
        params.layouts.push_back(*spec.layout);
        params.betas.push_back(beta);
        break;
      }
      case QuantFormat::kInt8: params.scales.push_back(int8_scale_for_amax(amax[g])); break;
      case QuantFormat::kFp8E4M3: params.scales.push_back(fp8_scale_for_amax(kFp8E4M3Max, amax[g])); break;
      case QuantFormat::kFp8E5M2: params.scales.push_back(fp8_scale_for_amax(kFp8E5M2Max, amax[g])); break;
    }
  }
  return params;
}

}  // namespace qilin
