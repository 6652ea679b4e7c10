// Module tree: registration, PyTorch-ordered traversal, modes, state dicts.
#include "layers/module.h"

#include <cmath>
#include <limits>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

#include "core/autograd.h"

namespace qilin {
namespace {

std::string join(const std::string& prefix, const std::string& name) {
  return prefix.empty() ? name : prefix + "." + name;
}

// Reads element i of a CPU tensor of any dtype as double (exact for every F32, I32 and
// every I64 of magnitude < 2^53: all a state dict holds).
double read_as_double(const Tensor& t, int64_t i) {
  switch (t.dtype()) {
    case DType::kFloat32: return t.data<float>()[i];
    case DType::kInt32: return t.data<int32_t>()[i];
    case DType::kInt64: return static_cast<double>(t.data<int64_t>()[i]);
    case DType::kUInt8: return t.data<uint8_t>()[i];
  }
  return 0;
}

void write_from_double(Tensor& t, int64_t i, double v) {
  switch (t.dtype()) {
    case DType::kFloat32: t.data<float>()[i] = static_cast<float>(v); break;
    case DType::kInt32: t.data<int32_t>()[i] = static_cast<int32_t>(v); break;
    case DType::kInt64: t.data<int64_t>()[i] = static_cast<int64_t>(v); break;
    case DType::kUInt8: t.data<uint8_t>()[i] = static_cast<uint8_t>(v); break;
  }
}

// Empty when `src` converts to `dst`'s dtype without changing any value, else why not.
std::string conversion_problem(const Tensor& dst, const Tensor& src) {
  if (dst.dtype() == src.dtype()) return "";
  double lo = -std::numeric_limits<double>::infinity(), hi = -lo;
  bool integral = true;
  switch (dst.dtype()) {
    case DType::kFloat32: integral = false; break;
    case DType::kInt32: lo = std::numeric_limits<int32_t>::min(); hi = std::numeric_limits<int32_t>::max(); break;
    case DType::kInt64: lo = -9007199254740992.0; hi = 9007199254740992.0; break;  // +-2^53
    case DType::kUInt8: lo = 0; hi = 255; break;
  }
  for (int64_t i = 0; i < src.numel(); ++i) {
    const double v = read_as_double(src, i);
    const bool fits = integral ? (std::nearbyint(v) == v && v >= lo && v <= hi)
                               : (static_cast<double>(static_cast<float>(v)) == v);
    if (!fits) {
      return str_cat(dtype_name(src.dtype()), " value ", v, " at element ", i,
                     " does not convert exactly to ", dtype_name(dst.dtype()));
    }
  }
  return "";
}

void copy_converted(Tensor& dst, const Tensor& src) {
  if (dst.dtype() == src.dtype()) {
    dst.copy_(src);
    return;
  }
  for (int64_t i = 0; i < src.numel(); ++i) write_from_double(dst, i, read_as_double(src, i));
}

}  // namespace

std::string LoadReport::str() const {
  std::ostringstream os;
  for (const auto& n : missing) os << "missing: " << n << "\n";
  for (const auto& n : unexpected) os << "unexpected: " << n << "\n";
  for (const auto& m : shape_mismatch)
    os << "shape: " << m.name << ": module " << shape_str(m.expected) << ", state dict "
       << shape_str(m.got) << "\n";
  for (const auto& b : bad_value) os << "value: " << b << "\n";
  return os.str();
}

// ---- building the tree ----

void Module::check_new_name(const std::string& name) const {
  QILIN_CHECK(!name.empty() && name.find('.') == std::string::npos,
              "Module: name '", name, "' must be non-empty and contain no '.'");
  for (const auto& e : params_) QILIN_CHECK(e.name != name, "Module: '", name, "' is already a parameter");
  for (const auto& e : buffers_) QILIN_CHECK(e.name != name, "Module: '", name, "' is already a buffer");
  for (const auto& c : children_) QILIN_CHECK(c.first != name, "Module: '", name, "' is already a child module");
}

Tensor Module::register_parameter(const std::string& name, Tensor value) {
  check_new_name(name);
  QILIN_CHECK(value.defined(), "register_parameter('", name, "'): undefined tensor");
  QILIN_CHECK(value.is_leaf(), "register_parameter('", name, "'): not a leaf tensor (detach it)");
  value.set_requires_grad(true);
  params_.push_back({name, value, true});
  return value;
}

Tensor Module::register_buffer(const std::string& name, Tensor value, bool persistent) {
  check_new_name(name);
  QILIN_CHECK(value.defined(), "register_buffer('", name, "'): undefined tensor");
  buffers_.push_back({name, value, persistent});
  return value;
}

void Module::unregister_tensor(const std::string& name) {
  for (auto* entries : {&params_, &buffers_}) {
    for (auto it = entries->begin(); it != entries->end(); ++it) {
      if (it->name == name) {
        entries->erase(it);
        return;
      }
    }
  }
  throw Error(str_cat("unregister_tensor: '", name, "' is neither a parameter nor a buffer of this module"));
}

void Module::add_child(const std::string& name, std::shared_ptr<Module> child) {
  check_new_name(name);
  QILIN_CHECK(child != nullptr, "register_module('", name, "'): null module");
  QILIN_CHECK(child.get() != this, "register_module('", name, "'): a module cannot own itself");
  children_.emplace_back(name, std::move(child));
}

// ---- traversal ----

template <typename Fn>
void Module::visit(const std::string& prefix, Fn&& fn) const {
  fn(prefix, *this);
  for (const auto& [name, child] : children_) child->visit(join(prefix, name), fn);
}

std::vector<std::pair<std::string, Tensor>> Module::named_parameters() const {
  std::vector<std::pair<std::string, Tensor>> out;
  std::unordered_set<const TensorImpl*> seen;
  visit("", [&](const std::string& prefix, const Module& m) {
    for (const auto& e : m.params_)
      if (seen.insert(e.tensor.impl()).second) out.emplace_back(join(prefix, e.name), e.tensor);
  });
  return out;
}

std::vector<std::pair<std::string, Tensor>> Module::named_buffers() const {
  std::vector<std::pair<std::string, Tensor>> out;
  std::unordered_set<const TensorImpl*> seen;
  visit("", [&](const std::string& prefix, const Module& m) {
    for (const auto& e : m.buffers_)
      if (seen.insert(e.tensor.impl()).second) out.emplace_back(join(prefix, e.name), e.tensor);
  });
  return out;
}

std::vector<Tensor> Module::parameters() const {
  std::vector<Tensor> out;
  for (auto& [name, t] : named_parameters()) out.push_back(t);
  return out;
}

std::vector<std::pair<std::string, Module*>> Module::named_modules() {
  std::vector<std::pair<std::string, Module*>> out;
  visit("", [&](const std::string& prefix, const Module& m) {
    out.emplace_back(prefix, const_cast<Module*>(&m));  // visit is const; the tree is ours
  });
  return out;
}

std::vector<std::pair<std::string, const Module*>> Module::named_modules() const {
  std::vector<std::pair<std::string, const Module*>> out;
  visit("", [&](const std::string& prefix, const Module& m) { out.emplace_back(prefix, &m); });
  return out;
}

Module* Module::find_module(const std::string& dotted_name) {
  Module* m = this;
  size_t start = 0;
  while (m != nullptr && start < dotted_name.size()) {
    size_t dot = dotted_name.find('.', start);
    if (dot == std::string::npos) dot = dotted_name.size();
    const std::string part = dotted_name.substr(start, dot - start);
    Module* next = nullptr;
    for (const auto& [name, child] : m->children_)
      if (name == part) next = child.get();
    m = next;
    start = dot + 1;
  }
  return m;
}

Tensor Module::find_tensor(const std::string& dotted_name) const {
  const size_t dot = dotted_name.rfind('.');
  const Module* owner = this;
  if (dot != std::string::npos) {
    owner = const_cast<Module*>(this)->find_module(dotted_name.substr(0, dot));
    if (owner == nullptr) return Tensor();
  }
  const std::string leaf = dot == std::string::npos ? dotted_name : dotted_name.substr(dot + 1);
  for (const auto& e : owner->params_)
    if (e.name == leaf) return e.tensor;
  for (const auto& e : owner->buffers_)
    if (e.name == leaf) return e.tensor;
  return Tensor();
}

int64_t Module::num_parameters() const {
  int64_t n = 0;
  for (const auto& [name, t] : named_parameters()) n += t.numel();
  return n;
}

// ---- modes ----

void Module::train(bool on) {
  for (auto& [name, m] : named_modules()) {
    m->training_ = on;
    m->on_train_mode_changed();
  }
}

void Module::zero_grad() {
  for (auto& [name, t] : named_parameters()) t.zero_grad();
}

// ---- state dicts ----

NamedTensors Module::state_dict() const {
  NamedTensors out;
  visit("", [&](const std::string& prefix, const Module& m) {
    for (const auto& e : m.params_) out.emplace_back(join(prefix, e.name), e.tensor.detach());
    for (const auto& e : m.buffers_)
      if (e.persistent) out.emplace_back(join(prefix, e.name), e.tensor.detach());
  });
  return out;
}

LoadReport Module::load_state_dict(const NamedTensors& state, bool strict) {
  NamedTensors own = state_dict();
  std::unordered_map<std::string, size_t> own_index;
  for (size_t i = 0; i < own.size(); ++i) own_index.emplace(own[i].first, i);

  LoadReport report;
  std::vector<bool> provided(own.size(), false);
  std::vector<std::pair<size_t, const Tensor*>> copies;  // (own index, source)
  for (const auto& [name, src] : state) {
    auto it = own_index.find(name);
    if (it == own_index.end()) {
      report.unexpected.push_back(name);
      continue;
    }
    if (provided[it->second]) {
      report.bad_value.push_back(name + ": given more than once");
      continue;
    }
    provided[it->second] = true;
    const Tensor& dst = own[it->second].second;
    QILIN_CHECK(src.defined(), "load_state_dict: '", name, "' is an undefined tensor");
    if (src.shape() != dst.shape()) {
      report.shape_mismatch.push_back({name, dst.shape(), src.shape()});
      continue;
    }
    std::string problem = conversion_problem(dst, src);
    if (!problem.empty()) {
      report.bad_value.push_back(name + ": " + problem);
      continue;
    }
    copies.emplace_back(it->second, &src);
  }
  for (size_t i = 0; i < own.size(); ++i)
    if (!provided[i]) report.missing.push_back(own[i].first);

  if (strict && !report.ok()) {
    const size_t n = report.missing.size() + report.unexpected.size() +
                     report.shape_mismatch.size() + report.bad_value.size();
    throw Error(str_cat("load_state_dict: ", n, " problem(s), nothing loaded:\n", report.str()));
  }
  NoGradGuard no_grad;
  for (auto& [i, src] : copies) copy_converted(own[i].second, *src);
  return report;
}

}  // namespace qilin
