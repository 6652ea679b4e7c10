// Optimizer state handling and the SGD / AdamW front-ends over kernels/cpu/optim.cpp.
#include "train/optim.h"

#include <cmath>
#include <map>
#include <set>

#include "core/autograd.h"
#include "core/dispatch.h"
#include "core/error.h"
#include "kernels/cpu/optim.h"

namespace qilin {
namespace {

constexpr char kStepKey[] = "step";
constexpr char kLrKey[] = "lr";
constexpr char kParamStepSuffix[] = ".step";

Tensor int64_scalar(int64_t v) { return Tensor::from_vector_i64({v}, {}); }

}  // namespace

Optimizer::Optimizer(std::vector<ParamGroup> groups, float lr,
                     std::vector<std::string> buffer_names, const char* kind)
    : groups_(std::move(groups)), buffer_names_(std::move(buffer_names)), kind_(kind), lr_(lr) {
  QILIN_CHECK(std::isfinite(lr) && lr >= 0, kind_, ": learning rate must be finite and >= 0, got ", lr);
  std::set<std::string> names;
  std::set<const TensorImpl*> impls;
  states_.resize(groups_.size());
  for (size_t gi = 0; gi < groups_.size(); ++gi) {
    const ParamGroup& group = groups_[gi];
    QILIN_CHECK(std::isfinite(group.weight_decay) && group.weight_decay >= 0, kind_,
                ": weight_decay must be finite and >= 0, got ", group.weight_decay);
    for (const auto& [name, p] : group.params) {
      QILIN_CHECK(p.defined(), kind_, ": parameter '", name, "' is undefined");
      QILIN_CHECK(p.dtype() == DType::kFloat32, kind_, ": parameter '", name, "' is ", p.str(),
                  ": only float32 parameters can be optimized");
      QILIN_CHECK(p.is_leaf(), kind_, ": parameter '", name, "' is not a leaf tensor");
      QILIN_CHECK(names.insert(name).second, kind_, ": two parameters named '", name, "'");
      QILIN_CHECK(impls.insert(p.impl()).second, kind_, ": parameter '", name,
                  "' is given twice (under another name or in another group)");
      ParamState state;
      for (size_t b = 0; b < buffer_names_.size(); ++b) {
        state.buffers.push_back(Tensor::zeros(p.shape(), DType::kFloat32, p.device()));
      }
      states_[gi].push_back(std::move(state));
    }
  }
}

void Optimizer::step() {
  NoGradGuard no_grad;
  for (size_t gi = 0; gi < groups_.size(); ++gi) {
    ParamGroup& group = groups_[gi];
    for (size_t pi = 0; pi < group.params.size(); ++pi) {
      auto& [name, p] = group.params[pi];
      Tensor grad = p.grad();
      if (!grad.defined()) continue;
      QILIN_CHECK(grad.shape() == p.shape() && grad.dtype() == DType::kFloat32 &&
                      grad.device() == p.device(),
                  kind_, ": gradient of '", name, "' is ", grad.str(), " but the parameter is ",
                  p.str());
      ParamState& state = states_[gi][pi];
      ++state.steps;
      update(p, grad, state, group.weight_decay);
    }
  }
  ++steps_;
}

void Optimizer::zero_grad() {
  for (ParamGroup& group : groups_)
    for (auto& [name, p] : group.params) p.zero_grad();
}

NamedTensors Optimizer::state_dict() const {
  NamedTensors out;
  out.emplace_back(kStepKey, int64_scalar(steps_));
  out.emplace_back(kLrKey, Tensor::scalar(lr_));
  for (size_t gi = 0; gi < groups_.size(); ++gi) {
    for (size_t pi = 0; pi < groups_[gi].params.size(); ++pi) {
      const std::string& name = groups_[gi].params[pi].first;
      const ParamState& state = states_[gi][pi];
      out.emplace_back(name + kParamStepSuffix, int64_scalar(state.steps));
      for (size_t b = 0; b < buffer_names_.size(); ++b) {
        // A copy: the caller may hold it while training goes on.
        out.emplace_back(name + "." + buffer_names_[b], state.buffers[b].detach().clone());
      }
    }
  }
  return out;
}

void Optimizer::load_state_dict(const NamedTensors& state) {
  std::map<std::string, const Tensor*> by_name;
  for (const auto& [name, t] : state) {
    QILIN_CHECK(by_name.emplace(name, &t).second, kind_, " state: entry '", name, "' appears twice");
  }
  std::set<std::string> used;
  // Finds an entry and checks its dtype and shape; nothing is modified until all pass.
  auto lookup = [&](const std::string& key, DType dtype, const Shape& shape,
                    const std::string& what) -> const Tensor& {
    auto it = by_name.find(key);
    if (it == by_name.end()) {
      throw Error(str_cat(kind_, " state: missing entry '", key, "' (", what, ")"));
    }
    const Tensor& t = *it->second;
    if (!t.defined() || t.dtype() != dtype || t.shape() != shape) {
      throw Error(str_cat(kind_, " state: entry '", key, "' is ",
                          t.defined() ? t.str() : std::string("undefined"), ", expected ",
                          dtype_name(dtype), shape_str(shape), " (", what, ")"));
    }
    used.insert(key);
    return t;
  };
  auto int64_value = [](const Tensor& t) { return *t.data<int64_t>(); };

  const Tensor& step_t = lookup(kStepKey, DType::kInt64, {}, "number of steps taken");
  const Tensor& lr_t = lookup(kLrKey, DType::kFloat32, {}, "learning rate");
  QILIN_CHECK(int64_value(step_t) >= 0, kind_, " state: 'step' is negative: ", int64_value(step_t));
  std::vector<std::vector<int64_t>> param_steps(groups_.size());
  std::vector<std::vector<std::vector<const Tensor*>>> buffers(groups_.size());
  for (size_t gi = 0; gi < groups_.size(); ++gi) {
    for (const auto& [name, p] : groups_[gi].params) {
      const Tensor& s = lookup(name + kParamStepSuffix, DType::kInt64, {},
                               "updates applied to parameter '" + name + "'");
      QILIN_CHECK(int64_value(s) >= 0, kind_, " state: '", name, kParamStepSuffix,
                  "' is negative: ", int64_value(s));
      param_steps[gi].push_back(int64_value(s));
      std::vector<const Tensor*> bufs;
      for (const std::string& b : buffer_names_) {
        bufs.push_back(&lookup(name + "." + b, DType::kFloat32, p.shape(),
                               b + " of parameter '" + name + "' " + shape_str(p.shape())));
      }
      buffers[gi].push_back(std::move(bufs));
    }
  }
  for (const auto& [name, t] : state) {
    if (!used.count(name)) {
      throw Error(str_cat(kind_, " state: unexpected entry '", name,
                          "' (no parameter of this optimizer has that state)"));
    }
  }

  steps_ = int64_value(step_t);
  lr_ = *lr_t.data<float>();
  for (size_t gi = 0; gi < groups_.size(); ++gi) {
    for (size_t pi = 0; pi < groups_[gi].params.size(); ++pi) {
      ParamState& ps = states_[gi][pi];
      ps.steps = param_steps[gi][pi];
      for (size_t b = 0; b < buffer_names_.size(); ++b) {
        ps.buffers[b].copy_(buffers[gi][pi][b]->to(ps.buffers[b].device()));
      }
    }
  }
}

// ---- SGD ----

namespace {
std::vector<std::string> sgd_buffers(const SgdOptions& o) {
  if (o.momentum != 0.0f) return {"momentum_buffer"};
  return {};
}
}  // namespace

Sgd::Sgd(std::vector<ParamGroup> groups, SgdOptions options)
    : Optimizer(std::move(groups), options.lr, sgd_buffers(options), "SGD"), options_(options) {
  QILIN_CHECK(std::isfinite(options.momentum) && options.momentum >= 0, "SGD: momentum must be >= 0, got ",
              options.momentum);
  QILIN_CHECK(std::isfinite(options.dampening), "SGD: dampening must be finite, got ", options.dampening);
  // torch.optim.SGD: "Nesterov momentum requires a momentum and zero dampening".
  QILIN_CHECK(!options.nesterov || (options.momentum > 0 && options.dampening == 0),
              "SGD: Nesterov momentum requires a momentum > 0 and zero dampening, got momentum ",
              options.momentum, ", dampening ", options.dampening);
}

void Sgd::update(Tensor& param, const Tensor& grad, ParamState& state, float weight_decay) {
  kernels::cpu::SgdStepArgs args;
  args.lr = lr();
  args.weight_decay = weight_decay;
  args.momentum = options_.momentum;
  args.dampening = options_.dampening;
  args.nesterov = options_.nesterov;
  args.first_step = state.steps == 1;
  float* buf = state.buffers.empty() ? nullptr : state.buffers[0].data<float>();
  QILIN_DISPATCH(param.device(), sgd_step, param.data<float>(), grad.data<float>(), buf,
                 param.numel(), args);
}

// ---- AdamW ----

AdamW::AdamW(std::vector<ParamGroup> groups, AdamWOptions options)
    : Optimizer(std::move(groups), options.lr, {"exp_avg", "exp_avg_sq"}, "AdamW"),
      options_(options) {
  QILIN_CHECK(options.beta1 >= 0 && options.beta1 < 1, "AdamW: beta1 must be in [0, 1), got ", options.beta1);
  QILIN_CHECK(options.beta2 >= 0 && options.beta2 < 1, "AdamW: beta2 must be in [0, 1), got ", options.beta2);
  QILIN_CHECK(std::isfinite(options.eps) && options.eps >= 0, "AdamW: eps must be >= 0, got ", options.eps);
}

void AdamW::update(Tensor& param, const Tensor& grad, ParamState& state, float weight_decay) {
  // Per-step scalars in double, as torch/optim/adamw.py computes them in Python floats.
  const double lr = this->lr();
  const double t = static_cast<double>(state.steps);
  const double bias_correction1 = 1.0 - std::pow(static_cast<double>(options_.beta1), t);
  const double bias_correction2 = 1.0 - std::pow(static_cast<double>(options_.beta2), t);
  kernels::cpu::AdamWStepArgs args;
  args.decay_factor = static_cast<float>(1.0 - lr * weight_decay);
  args.beta1 = options_.beta1;
  args.beta2 = options_.beta2;
  args.one_minus_beta1 = static_cast<float>(1.0 - options_.beta1);
  args.one_minus_beta2 = static_cast<float>(1.0 - options_.beta2);
  args.step_size = static_cast<float>(lr / bias_correction1);
  args.bias_correction2_sqrt = static_cast<float>(std::sqrt(bias_correction2));
  args.eps = options_.eps;
  QILIN_DISPATCH(param.device(), adamw_step, param.data<float>(), grad.data<float>(),
                 state.buffers[0].data<float>(), state.buffers[1].data<float>(), param.numel(),
                 args);
}

}  // namespace qilin
