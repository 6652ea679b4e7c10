// Convolution kernels on oneDNN 2.6 (libdnnl, the library and version PyTorch 1.13's CPU
// convolution runs on), behind conv.h's backend-neutral signatures: conv.cpp's
// conv2d_forward / _backward_input / _backward_weight call these when the geometry (or the
// process default, QILIN_CONV_IMPL) selects ConvImpl::kOneDnn. Nothing of oneDNN leaks out
// of this file.
//
// The caller's tensors are plain NCHW / OIHW ([G, O/G, C/G, KH, KW] = goihw when grouped).
// Every primitive is created with format_tag::any, so oneDNN picks its fastest layout
// (nChw16c / OIhw16i16o on AVX-512, 8c on AVX2) and the arguments are reordered into and
// out of it; a 1-channel input stays plain. The activation reorders take about a third of
// the oneDNN time (DNNL_VERBOSE, ResNet-20 shapes, batch 128, 2 threads), but forcing plain
// NCHW makes oneDNN fall back to its gemm (im2col) implementation, 3x slower overall. dy is
// reordered once for both backward primitives (onednn_conv2d_backward).
//
// Measured (this project's Xeon, AVX-512; all ResNet-20 convs at batch 128, forward +
// backward data + weights weighted by their count in the net, 2 threads, medians of 15
// interleaved runs): im2col 309 ms, oneDNN 158 ms, PyTorch 1.13 (F.conv2d + backward)
// 200 ms. Per shape oneDNN is 0.67-0.92x PyTorch; im2col still wins on the 1-channel stem
// and the 1x1 stride-2 downsamples (~1% of the total, not worth a per-shape policy).
//
// Creating a primitive descriptor and primitive costs 0.1-1 ms (JIT code generation), as
// much as a small conv itself, so each (direction, geometry, bias, thread count) gets one
// Plan (primitive + reorders), built on first use and kept in a process-wide cache. The
// thread count is part of the key because oneDNN sizes its work split (and the weight-
// gradient reduction) to the OpenMP thread count when the primitive is created.
//
// Determinism: oneDNN's weight-gradient primitives reduce per-thread partials in a fixed
// order for a fixed thread count, so dw and dbias repeat bit for bit run to run; across
// thread counts they differ by float rounding (tests/ops/test_conv.cpp checks both).
#include <omp.h>

#include <array>
#include <cstring>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "core/error.h"
#include "kernels/cpu/conv.h"
#include "kernels/cpu/parallel.h"
#include "oneapi/dnnl/dnnl.hpp"

namespace qilin::kernels::cpu {
namespace {

using dnnl::memory;
using Tag = memory::format_tag;

dnnl::engine& cpu_engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

// One in-order CPU stream per calling thread (a stream is not meant to be shared).
dnnl::stream& thread_stream() {
  thread_local dnnl::stream stream(cpu_engine());
  return stream;
}

// Per-thread buffers kept between calls, 64-byte aligned (a cache line, oneDNN's preferred
// alignment): reordered activations and the primitive's scratchpad. Fresh buffers per call
// would page-fault megabytes per conv.
enum BufferSlot { kSrcSlot, kWeightsSlot, kDstSlot, kScratchpadSlot, kSlotCount };
void* buffer(BufferSlot slot, size_t bytes) {
  constexpr size_t kAlign = 64;
  struct Aligned {
    std::unique_ptr<uint8_t[]> raw;
    size_t capacity = 0;
  };
  thread_local Aligned buffers[kSlotCount];
  Aligned& b = buffers[slot];
  if (b.capacity < bytes) {
    b.raw.reset(new uint8_t[bytes + kAlign]);
    b.capacity = bytes;
  }
  const auto address = reinterpret_cast<uintptr_t>(b.raw.get());
  return reinterpret_cast<void*>((address + kAlign - 1) / kAlign * kAlign);
}

// One argument of a primitive: the caller's plain layout and the layout the primitive chose;
// when they differ, the reorder between them (user -> inner for inputs, inner -> user for
// outputs) into a per-thread buffer.
struct Operand {
  memory::desc user, inner;
  BufferSlot slot = kSrcSlot;
  bool reordered = false;
  dnnl::reorder reorder;
};

Operand make_operand(const memory::desc& user, const memory::desc& inner, BufferSlot slot,
                     bool is_output) {
  Operand op;
  op.user = user;
  op.inner = inner;
  op.slot = slot;
  op.reordered = user != inner;
  if (op.reordered) {
    const dnnl::engine& e = cpu_engine();
    op.reorder = is_output ? dnnl::reorder(dnnl::reorder::primitive_desc(e, inner, e, user))
                           : dnnl::reorder(dnnl::reorder::primitive_desc(e, user, e, inner));
  }
  return op;
}

// The memory a primitive reads for input `op` at `data` (reordered first if needed).
memory bind_input(const Operand& op, const float* data) {
  memory user(op.user, cpu_engine(), const_cast<float*>(data));
  if (!op.reordered) return user;
  memory inner(op.inner, cpu_engine(), buffer(op.slot, op.inner.get_size()));
  op.reorder.execute(thread_stream(), {{DNNL_ARG_FROM, user}, {DNNL_ARG_TO, inner}});
  return inner;
}

// The memory a primitive writes for output `op`; finish_output() then moves it to `data`.
memory bind_output(const Operand& op, float* data) {
  if (!op.reordered) return memory(op.user, cpu_engine(), data);
  return memory(op.inner, cpu_engine(), buffer(op.slot, op.inner.get_size()));
}
void finish_output(const Operand& op, const memory& inner, float* data) {
  if (!op.reordered) return;
  memory user(op.user, cpu_engine(), data);
  op.reorder.execute(thread_stream(), {{DNNL_ARG_FROM, inner}, {DNNL_ARG_TO, user}});
}

// ---- shapes ----

struct Descs {
  memory::desc src_plain, dst_plain, weights_plain, bias_plain;
  memory::desc src_any, dst_any, weights_any;
  memory::dims strides, padding;
};

Descs descs_of(const Conv2dGeometry& g) {
  const auto f32 = memory::data_type::f32;
  Descs d;
  const memory::dims src{g.batch, g.in_c, g.in_h, g.in_w};
  const memory::dims dst{g.batch, g.out_c, g.out_h, g.out_w};
  const memory::dims weights =
      g.groups == 1 ? memory::dims{g.out_c, g.in_c, g.kernel_h, g.kernel_w}
                    : memory::dims{g.groups, g.out_c / g.groups, g.in_c / g.groups, g.kernel_h,
                                   g.kernel_w};
  d.src_plain = memory::desc(src, f32, Tag::nchw);
  d.dst_plain = memory::desc(dst, f32, Tag::nchw);
  d.weights_plain = memory::desc(weights, f32, g.groups == 1 ? Tag::oihw : Tag::goihw);
  d.bias_plain = memory::desc({g.out_c}, f32, Tag::x);
  d.src_any = memory::desc(src, f32, Tag::any);
  d.dst_any = memory::desc(dst, f32, Tag::any);
  d.weights_any = memory::desc(weights, f32, Tag::any);
  d.strides = {g.stride_h, g.stride_w};
  // Symmetric padding; when (in + 2 pad - k) is not a multiple of the stride, the last
  // rows/columns of padding are simply never read (oneDNN's output size rounds down too).
  d.padding = {g.pad_h, g.pad_w};
  return d;
}

dnnl::primitive_attr user_scratchpad() {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return attr;
}

dnnl::convolution_forward::primitive_desc forward_pd(const Conv2dGeometry& g, const Descs& d,
                                                     bool bias) {
  const auto desc = bias ? dnnl::convolution_forward::desc(
                               dnnl::prop_kind::forward_training,
                               dnnl::algorithm::convolution_direct, d.src_any, d.weights_any,
                               d.bias_plain, d.dst_any, d.strides, d.padding, d.padding)
                         : dnnl::convolution_forward::desc(
                               dnnl::prop_kind::forward_training,
                               dnnl::algorithm::convolution_direct, d.src_any, d.weights_any,
                               d.dst_any, d.strides, d.padding, d.padding);
  return dnnl::convolution_forward::primitive_desc(desc, user_scratchpad(), cpu_engine());
}

struct ForwardPlan {
  dnnl::convolution_forward conv;
  Operand src, weights, dst;
  memory::desc bias;
  memory::desc scratchpad;
};

ForwardPlan make_forward_plan(const Conv2dGeometry& g, bool bias) {
  const Descs d = descs_of(g);
  const auto pd = forward_pd(g, d, bias);
  ForwardPlan plan;
  plan.conv = dnnl::convolution_forward(pd);
  plan.src = make_operand(d.src_plain, pd.src_desc(), kSrcSlot, false);
  plan.weights = make_operand(d.weights_plain, pd.weights_desc(), kWeightsSlot, false);
  plan.dst = make_operand(d.dst_plain, pd.dst_desc(), kDstSlot, true);
  plan.bias = d.bias_plain;
  plan.scratchpad = pd.scratchpad_desc();
  return plan;
}

struct BackwardDataPlan {
  dnnl::convolution_backward_data conv;
  Operand diff_dst, weights, diff_src;
  memory::desc scratchpad;
};

BackwardDataPlan make_backward_data_plan(const Conv2dGeometry& g) {
  const Descs d = descs_of(g);
  const auto hint = forward_pd(g, d, false);
  const dnnl::convolution_backward_data::desc desc(dnnl::algorithm::convolution_direct,
                                                   d.src_any, d.weights_any, d.dst_any,
                                                   d.strides, d.padding, d.padding);
  const dnnl::convolution_backward_data::primitive_desc pd(desc, user_scratchpad(),
                                                           cpu_engine(), hint);
  BackwardDataPlan plan;
  plan.conv = dnnl::convolution_backward_data(pd);
  plan.diff_dst = make_operand(d.dst_plain, pd.diff_dst_desc(), kDstSlot, false);
  plan.weights = make_operand(d.weights_plain, pd.weights_desc(), kWeightsSlot, false);
  plan.diff_src = make_operand(d.src_plain, pd.diff_src_desc(), kSrcSlot, true);
  plan.scratchpad = pd.scratchpad_desc();
  return plan;
}

struct BackwardWeightsPlan {
  dnnl::convolution_backward_weights conv;
  Operand src, diff_dst, diff_weights;
  memory::desc diff_bias;
  memory::desc scratchpad;
};

BackwardWeightsPlan make_backward_weights_plan(const Conv2dGeometry& g, bool bias) {
  const Descs d = descs_of(g);
  const auto hint = forward_pd(g, d, bias);
  const auto desc =
      bias ? dnnl::convolution_backward_weights::desc(
                 dnnl::algorithm::convolution_direct, d.src_any, d.weights_any, d.bias_plain,
                 d.dst_any, d.strides, d.padding, d.padding)
           : dnnl::convolution_backward_weights::desc(dnnl::algorithm::convolution_direct,
                                                      d.src_any, d.weights_any, d.dst_any,
                                                      d.strides, d.padding, d.padding);
  const dnnl::convolution_backward_weights::primitive_desc pd(desc, user_scratchpad(),
                                                              cpu_engine(), hint);
  BackwardWeightsPlan plan;
  plan.conv = dnnl::convolution_backward_weights(pd);
  plan.src = make_operand(d.src_plain, pd.src_desc(), kSrcSlot, false);
  plan.diff_dst = make_operand(d.dst_plain, pd.diff_dst_desc(), kDstSlot, false);
  plan.diff_weights = make_operand(d.weights_plain, pd.diff_weights_desc(), kWeightsSlot, true);
  plan.diff_bias = d.bias_plain;
  plan.scratchpad = pd.scratchpad_desc();
  return plan;
}

// ---- the plan cache ----

enum class Direction : int64_t { kForward, kBackwardData, kBackwardWeights };
using PlanKey = std::array<int64_t, 17>;

struct PlanKeyHash {
  size_t operator()(const PlanKey& key) const {
    uint64_t h = 1469598103934665603ull;  // FNV-1a over the fields
    for (int64_t v : key) h = (h ^ static_cast<uint64_t>(v)) * 1099511628211ull;
    return static_cast<size_t>(h);
  }
};

PlanKey plan_key(Direction direction, const Conv2dGeometry& g, bool bias) {
  // The team oneDNN will run on: omp_get_max_threads(), or 1 inside a parallel region.
  const int64_t threads = omp_in_parallel() ? 1 : omp_get_max_threads();
  return {static_cast<int64_t>(direction), bias ? 1 : 0, threads, g.batch, g.in_c, g.in_h,
          g.in_w, g.out_c, g.out_h, g.out_w, g.kernel_h, g.kernel_w, g.stride_h, g.stride_w,
          g.pad_h, g.pad_w, g.groups};
}

// Plans by key, shared by all threads. A training run sees a few dozen geometries; the
// bound only guards a program that streams ever-new shapes (plans in use stay alive
// through their shared_ptr when the map is cleared).
template <typename Plan>
class PlanCache {
 public:
  template <typename Make>
  std::shared_ptr<const Plan> get(const PlanKey& key, Make&& make) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = plans_.find(key);
    if (it != plans_.end()) return it->second;
    if (plans_.size() >= kMaxPlans) plans_.clear();
    auto plan = std::make_shared<const Plan>(make());
    plans_.emplace(key, plan);
    return plan;
  }

 private:
  static constexpr size_t kMaxPlans = 512;
  std::mutex mutex_;
  std::unordered_map<PlanKey, std::shared_ptr<const Plan>, PlanKeyHash> plans_;
};

// Turns a oneDNN failure into a qilin::Error naming the call and its geometry.
template <typename Fn>
auto checked(const char* what, const Conv2dGeometry& g, Fn&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const dnnl::error& e) {
    QILIN_FAIL(what, " (oneDNN): ", e.what(), " for x [", g.batch, ", ", g.in_c, ", ", g.in_h,
               ", ", g.in_w, "], weight [", g.out_c, ", ", g.in_c / g.groups, ", ", g.kernel_h,
               ", ", g.kernel_w, "], stride ", g.stride_h, "x", g.stride_w, ", padding ",
               g.pad_h, "x", g.pad_w, ", groups ", g.groups);
  }
}

// dbias[o] = sum over n and the plane of dy[n, o, :], one channel per item in batch order
// (for the rare call that wants dbias without dw). (writes)
void bias_gradient(float* dbias, const float* dy, const Conv2dGeometry& g) {
  const int64_t plane = g.out_h * g.out_w;
  parallel_for(g.out_c, g.batch * plane, [&](int64_t o0, int64_t o1) {
    for (int64_t o = o0; o < o1; ++o) {
      double sum = 0;
      for (int64_t n = 0; n < g.batch; ++n) {
        const float* row = dy + (n * g.out_c + o) * plane;
        float s = 0.0f;
#pragma omp simd reduction(+ : s)
        for (int64_t i = 0; i < plane; ++i) s += row[i];
        sum += s;
      }
      dbias[o] = static_cast<float>(sum);
    }
  });
}

}  // namespace

void onednn_conv2d_forward(float* y, const float* x, const float* w, const float* bias,
                           const Conv2dGeometry& g) {
  static PlanCache<ForwardPlan> cache;
  const bool has_bias = bias != nullptr;
  checked("conv2d_forward", g, [&] {
    const auto plan = cache.get(plan_key(Direction::kForward, g, has_bias),
                                [&] { return make_forward_plan(g, has_bias); });
    dnnl::stream& s = thread_stream();
    const memory src = bind_input(plan->src, x);
    const memory weights = bind_input(plan->weights, w);
    const memory dst = bind_output(plan->dst, y);
    const memory scratchpad(plan->scratchpad, cpu_engine(),
                            buffer(kScratchpadSlot, plan->scratchpad.get_size()));
    std::unordered_map<int, memory> args{{DNNL_ARG_SRC, src},
                                         {DNNL_ARG_WEIGHTS, weights},
                                         {DNNL_ARG_DST, dst},
                                         {DNNL_ARG_SCRATCHPAD, scratchpad}};
    if (has_bias)
      args.emplace(DNNL_ARG_BIAS, memory(plan->bias, cpu_engine(), const_cast<float*>(bias)));
    plan->conv.execute(s, args);
    finish_output(plan->dst, dst, y);
    s.wait();
  });
}

void onednn_conv2d_backward(float* dx, float* dw, float* dbias, const float* dy,
                            const float* x, const float* w, const Conv2dGeometry& g) {
  static PlanCache<BackwardDataPlan> data_plans;
  static PlanCache<BackwardWeightsPlan> weights_plans;
  if (dw == nullptr && dbias != nullptr) bias_gradient(dbias, dy, g);  // oneDNN: only with dw
  const bool has_bias = dw != nullptr && dbias != nullptr;
  checked("conv2d_backward", g, [&] {
    std::shared_ptr<const BackwardDataPlan> data;
    std::shared_ptr<const BackwardWeightsPlan> weights;
    if (dx != nullptr)
      data = data_plans.get(plan_key(Direction::kBackwardData, g, false),
                            [&] { return make_backward_data_plan(g); });
    if (dw != nullptr)
      weights = weights_plans.get(plan_key(Direction::kBackwardWeights, g, has_bias),
                                  [&] { return make_backward_weights_plan(g, has_bias); });
    dnnl::stream& s = thread_stream();
    memory diff_dst;  // dy in the data plan's layout, reused by the weights plan if it matches
    if (data) {
      diff_dst = bind_input(data->diff_dst, dy);
      const memory weights_mem = bind_input(data->weights, w);
      const memory diff_src = bind_output(data->diff_src, dx);
      const memory scratchpad(data->scratchpad, cpu_engine(),
                              buffer(kScratchpadSlot, data->scratchpad.get_size()));
      data->conv.execute(s, {{DNNL_ARG_DIFF_DST, diff_dst},
                             {DNNL_ARG_WEIGHTS, weights_mem},
                             {DNNL_ARG_DIFF_SRC, diff_src},
                             {DNNL_ARG_SCRATCHPAD, scratchpad}});
      finish_output(data->diff_src, diff_src, dx);
    }
    if (weights) {
      // Both primitives want dy blocked the same way (nChw16c) on every shape seen: one
      // reorder of dy instead of two, ~5% of a ResNet-20 conv's forward + backward.
      if (!data || data->diff_dst.inner != weights->diff_dst.inner)
        diff_dst = bind_input(weights->diff_dst, dy);
      const memory src = bind_input(weights->src, x);
      const memory diff_weights = bind_output(weights->diff_weights, dw);
      const memory scratchpad(weights->scratchpad, cpu_engine(),
                              buffer(kScratchpadSlot, weights->scratchpad.get_size()));
      std::unordered_map<int, memory> args{{DNNL_ARG_SRC, src},
                                           {DNNL_ARG_DIFF_DST, diff_dst},
                                           {DNNL_ARG_DIFF_WEIGHTS, diff_weights},
                                           {DNNL_ARG_SCRATCHPAD, scratchpad}};
      if (has_bias)
        args.emplace(DNNL_ARG_DIFF_BIAS, memory(weights->diff_bias, cpu_engine(), dbias));
      weights->conv.execute(s, args);
      finish_output(weights->diff_weights, diff_weights, dw);
    }
    s.wait();
  });
}

}  // namespace qilin::kernels::cpu
