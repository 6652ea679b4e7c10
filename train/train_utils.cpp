#include "train/train_utils.h"

#include <cmath>
#include <map>
#include <utility>

#include "core/autograd.h"
#include "core/error.h"

namespace qilin {

double clip_grad_norm(const std::vector<Tensor>& params, double max_norm) {
  QILIN_CHECK(max_norm > 0, "clip_grad_norm: max_norm = ", max_norm, ": must be > 0");
  double total_sq = 0;
  for (const Tensor& p : params) {
    Tensor g = p.grad();
    if (!g.defined()) continue;
    const float* d = g.data<float>();
    const int64_t n = g.numel();
    double s = 0;
#pragma omp parallel for reduction(+ : s) if (n > (1 << 16))
    for (int64_t i = 0; i < n; ++i) s += static_cast<double>(d[i]) * d[i];
    total_sq += s;
  }
  const double total = std::sqrt(total_sq);
  if (!std::isfinite(total)) return total;
  const double coef = max_norm / (total + 1e-6);
  if (coef < 1.0) {
    const float c = static_cast<float>(coef);
    for (const Tensor& p : params) {
      Tensor g = p.grad();
      if (!g.defined()) continue;
      float* d = g.data<float>();
      const int64_t n = g.numel();
#pragma omp parallel for if (n > (1 << 16))
      for (int64_t i = 0; i < n; ++i) d[i] *= c;
    }
  }
  return total;
}

namespace {

NamedTensors copies(const std::vector<std::pair<std::string, Tensor>>& named) {
  NamedTensors out;
  for (const auto& [name, t] : named) out.emplace_back(name, t.detach().clone());
  return out;
}

}  // namespace

ModelEma::ModelEma(const Module& model, double decay) : decay_(decay) {
  QILIN_CHECK(decay > 0 && decay < 1, "ModelEma: decay = ", decay, ": must be in (0, 1)");
  NoGradGuard no_grad;
  params_ = copies(model.named_parameters());
  buffers_ = copies(model.named_buffers());
}

void ModelEma::update(const Module& model) {
  NoGradGuard no_grad;
  auto params = model.named_parameters();
  QILIN_CHECK(params.size() == params_.size(), "ModelEma: the model's parameters changed");
  const float keep = static_cast<float>(decay_), take = static_cast<float>(1.0 - decay_);
  for (size_t k = 0; k < params.size(); ++k) {
    float* e = params_[k].second.data<float>();
    const float* m = params[k].second.data<float>();
    const int64_t n = params_[k].second.numel();
#pragma omp parallel for if (n > (1 << 16))
    for (int64_t i = 0; i < n; ++i) e[i] = keep * e[i] + take * m[i];
  }
  auto buffers = model.named_buffers();
  for (size_t k = 0; k < buffers.size() && k < buffers_.size(); ++k)
    buffers_[k].second.copy_(buffers[k].second);
}

void ModelEma::swap_into(Module& model) {
  NoGradGuard no_grad;
  auto swap_values = [](NamedTensors& mine, const std::vector<std::pair<std::string, Tensor>>& theirs) {
    QILIN_CHECK(mine.size() == theirs.size(), "ModelEma: the model's tensors changed");
    for (size_t k = 0; k < mine.size(); ++k) {
      Tensor tmp = theirs[k].second.detach().clone();
      Tensor target = theirs[k].second.detach();
      target.copy_(mine[k].second);
      mine[k].second.copy_(tmp);
    }
  };
  swap_values(params_, model.named_parameters());
  swap_values(buffers_, model.named_buffers());
}

NamedTensors ModelEma::state_dict() const {
  NamedTensors out;
  for (const auto& [name, t] : params_) out.emplace_back("ema." + name, t);
  for (const auto& [name, t] : buffers_) out.emplace_back("ema." + name, t);
  return out;
}

void ModelEma::load_state_dict(const NamedTensors& state) {
  std::map<std::string, Tensor> by_name(state.begin(), state.end());
  for (NamedTensors* set : {&params_, &buffers_}) {
    for (auto& [name, t] : *set) {
      auto it = by_name.find("ema." + name);
      if (it == by_name.end()) throw Error(str_cat("EMA state: missing ema.", name));
      if (it->second.shape() != t.shape() || it->second.dtype() != t.dtype())
        throw Error(str_cat("EMA state: ema.", name, " is ", it->second.str(), ", expected ",
                            t.str()));
      t.copy_(it->second);
    }
  }
}

}  // namespace qilin
