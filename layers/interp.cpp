// Interpolated layers and their factory (see interp.h).
#include "layers/interp.h"

#include "core/ops/interp.h"

namespace qilin {

InterpActivation::InterpActivation(std::shared_ptr<const InterpTable> table) : table_(std::move(table)) {
  QILIN_CHECK(table_ != nullptr, "InterpActivation: no table");
  QILIN_CHECK(table_->spec().fn != InterpFn::kExp, "InterpActivation: exp is the softmax's (InterpSoftmax)");
}

Tensor InterpActivation::forward(const Tensor& x) { return interp_activation(x, table_); }

InterpSoftmax::InterpSoftmax(std::shared_ptr<const InterpTable> exp_table) : table_(std::move(exp_table)) {
  QILIN_CHECK(table_ != nullptr && table_->spec().fn == InterpFn::kExp, "InterpSoftmax: needs an exp table");
}

Tensor InterpSoftmax::forward(const Tensor& x) { return interp_softmax(x, table_); }

bool interp_fn_of(ActivationKind kind, InterpFn* fn) {
  switch (kind) {
    case ActivationKind::kGELU: *fn = InterpFn::kGelu; return true;
    case ActivationKind::kSigmoid: *fn = InterpFn::kSigmoid; return true;
    case ActivationKind::kTanh: *fn = InterpFn::kTanh; return true;
    case ActivationKind::kSiLU: *fn = InterpFn::kSilu; return true;
    case ActivationKind::kReLU:
    case ActivationKind::kGELUTanh: return false;
  }
  return false;
}

InterpLayerFactory::InterpLayerFactory(InterpLayerOptions options) : options_(std::move(options)) {
  for (const auto& [fn, spec] : options_.functions)
    QILIN_CHECK(spec.fn == fn, "InterpLayerFactory: the spec for ", to_string(fn), " is for ", to_string(spec.fn));
}

std::shared_ptr<Layer> InterpLayerFactory::make(InterpFn fn) {
  auto it = options_.functions.find(fn);
  if (it == options_.functions.end()) return nullptr;
  used_.insert(fn);
  std::shared_ptr<const InterpTable> table = InterpTable::get(it->second);
  if (fn == InterpFn::kExp) return std::make_shared<InterpSoftmax>(table);
  return std::make_shared<InterpActivation>(table);
}

std::shared_ptr<Layer> InterpLayerFactory::activation(ActivationKind kind, const std::string& path) {
  InterpFn fn;
  if (interp_fn_of(kind, &fn))
    if (std::shared_ptr<Layer> layer = make(fn)) return layer;
  return LayerFactory::activation(kind, path);
}

std::shared_ptr<Layer> InterpLayerFactory::softmax(const std::string& path) {
  if (std::shared_ptr<Layer> layer = make(InterpFn::kExp)) return layer;
  return LayerFactory::softmax(path);
}

std::vector<InterpFn> InterpLayerFactory::unused() const {
  std::vector<InterpFn> out;
  for (const auto& [fn, spec] : options_.functions)
    if (!used_.count(fn)) out.push_back(fn);
  return out;
}

}  // namespace qilin
