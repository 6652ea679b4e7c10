#include "core/tensor.h"

#include <cstring>
#include <sstream>

#include "core/autograd.h"

namespace qilin {

TensorImpl::TensorImpl(std::shared_ptr<Storage> storage_, int64_t offset_, Shape shape_,
                       DType dtype_)
    : storage(std::move(storage_)), offset(offset_), shape(std::move(shape_)), dtype(dtype_) {}

namespace {

void check_shape(const Shape& shape) {
  for (int64_t s : shape) QILIN_CHECK(s >= 0, "negative size in shape ", shape_str(shape));
}

}  // namespace

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  check_shape(shape);
  size_t nbytes = static_cast<size_t>(shape_numel(shape)) * dtype_size(dtype);
  auto storage = std::make_shared<Storage>(nbytes, device);
  return Tensor(std::make_shared<TensorImpl>(std::move(storage), 0, shape, dtype));
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  std::memset(t.raw_data(), 0, t.nbytes());
  return t;
}

Tensor Tensor::ones(const Shape& shape, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  t.fill_(1.0f);
  return t;
}

Tensor Tensor::full(const Shape& shape, float value, Device device) {
  Tensor t = empty(shape, DType::kFloat32, device);
  t.fill_(value);
  return t;
}

Tensor Tensor::scalar(float value, Device device) { return full({}, value, device); }

Tensor Tensor::from_vector(const std::vector<float>& values, const Shape& shape) {
  QILIN_CHECK(static_cast<int64_t>(values.size()) == shape_numel(shape), "from_vector: ",
              values.size(), " values for shape ", shape_str(shape));
  Tensor t = empty(shape);
  std::memcpy(t.raw_data(), values.data(), t.nbytes());
  return t;
}

Tensor Tensor::from_vector_i64(const std::vector<int64_t>& values, const Shape& shape) {
  QILIN_CHECK(static_cast<int64_t>(values.size()) == shape_numel(shape), "from_vector_i64: ",
              values.size(), " values for shape ", shape_str(shape));
  Tensor t = empty(shape, DType::kInt64);
  std::memcpy(t.raw_data(), values.data(), t.nbytes());
  return t;
}

Tensor Tensor::from_vector_i32(const std::vector<int32_t>& values, const Shape& shape) {
  QILIN_CHECK(static_cast<int64_t>(values.size()) == shape_numel(shape), "from_vector_i32: ",
              values.size(), " values for shape ", shape_str(shape));
  Tensor t = empty(shape, DType::kInt32);
  std::memcpy(t.raw_data(), values.data(), t.nbytes());
  return t;
}

Tensor Tensor::arange(int64_t n) {
  Tensor t = empty({n});
  float* p = t.data<float>();
  for (int64_t i = 0; i < n; ++i) p[i] = static_cast<float>(i);
  return t;
}

int64_t Tensor::size(int64_t d) const { return shape()[wrap_dim(d, dim(), "size")]; }

std::string Tensor::str() const {
  static const char* names[] = {"float32", "int32", "int64", "uint8"};
  std::ostringstream os;
  os << names[static_cast<int>(dtype())] << shape_str(shape()) << " " << device().str();
  return os.str();
}

void Tensor::check_dtype(DType expected) const {
  QILIN_CHECK(dtype() == expected, "tensor ", str(), " accessed as ", dtype_name(expected));
}

void* Tensor::raw_data() {
  return static_cast<char*>(impl()->storage->data()) + impl()->offset * dtype_size(dtype());
}

const void* Tensor::raw_data() const {
  return static_cast<const char*>(impl()->storage->data()) +
         impl()->offset * dtype_size(dtype());
}

float Tensor::item() const {
  QILIN_CHECK(numel() == 1, "item() of a tensor with ", numel(), " elements ", shape_str(shape()));
  switch (dtype()) {
    case DType::kFloat32: return *data<float>();
    case DType::kInt32: return static_cast<float>(*data<int32_t>());
    case DType::kInt64: return static_cast<float>(*data<int64_t>());
    case DType::kUInt8: return static_cast<float>(*data<uint8_t>());
  }
  return 0;
}

std::vector<float> Tensor::to_vector() const {
  const float* p = data<float>();
  return std::vector<float>(p, p + numel());
}

Tensor Tensor::clone() const {
  Tensor out = empty(shape(), dtype(), device());
  out.copy_(*this);
  return record_op(out, "clone", {*this},
                   [](const Tensor& gy, GradSlots& g) { g.add(0, gy); });
}

Tensor Tensor::detach() const {
  return Tensor(std::make_shared<TensorImpl>(impl()->storage, impl()->offset, shape(), dtype()));
}

Tensor Tensor::reshape(const Shape& new_shape) const {
  Shape resolved = new_shape;
  int64_t known = 1, infer = -1;
  for (size_t i = 0; i < resolved.size(); ++i) {
    if (resolved[i] == -1) {
      QILIN_CHECK(infer < 0, "reshape: more than one -1 in ", shape_str(new_shape));
      infer = static_cast<int64_t>(i);
    } else {
      QILIN_CHECK(resolved[i] >= 0, "reshape: negative size in ", shape_str(new_shape));
      known *= resolved[i];
    }
  }
  if (infer >= 0) {
    QILIN_CHECK(known > 0 && numel() % known == 0, "reshape: cannot view ", shape_str(shape()),
                " as ", shape_str(new_shape));
    resolved[infer] = numel() / known;
  }
  QILIN_CHECK(shape_numel(resolved) == numel(), "reshape: cannot view ", shape_str(shape()),
              " (", numel(), " elements) as ", shape_str(new_shape));
  Tensor out(std::make_shared<TensorImpl>(impl()->storage, impl()->offset, resolved, dtype()));
  Shape in_shape = shape();
  return record_op(out, "reshape", {*this}, [in_shape](const Tensor& gy, GradSlots& g) {
    g.add(0, gy.reshape(in_shape));
  });
}

Tensor Tensor::view_rows(int64_t begin, int64_t end) const {
  QILIN_CHECK(dim() >= 1 && begin >= 0 && begin <= end && end <= size(0), "view_rows: [", begin,
              ", ", end, ") of ", shape_str(shape()));
  int64_t row = dim() == 0 ? 1 : numel() / std::max<int64_t>(size(0), 1);
  Shape s = shape();
  s[0] = end - begin;
  Tensor out(std::make_shared<TensorImpl>(impl()->storage, impl()->offset + begin * row, s,
                                          dtype()));
  Shape in_shape = shape();
  return record_op(out, "view_rows", {*this},
                   [in_shape, begin, end](const Tensor& gy, GradSlots& g) {
                     Tensor gx = Tensor::zeros(in_shape, DType::kFloat32, gy.device());
                     gx.view_rows(begin, end).copy_(gy);
                     g.add(0, gx);
                   });
}

void Tensor::copy_(const Tensor& src) {
  QILIN_CHECK(shape() == src.shape() && dtype() == src.dtype(), "copy_: destination ", str(),
              " and source ", src.str(), " differ");
  QILIN_CHECK(device().is_cpu() && src.device().is_cpu(), "copy_: only CPU tensors in this build");
  if (raw_data() != src.raw_data()) std::memcpy(raw_data(), src.raw_data(), nbytes());
}

void Tensor::fill_(float value) {
  int64_t n = numel();
  switch (dtype()) {
    case DType::kFloat32: {
      float* p = data<float>();
      for (int64_t i = 0; i < n; ++i) p[i] = value;
      break;
    }
    case DType::kInt32: {
      int32_t* p = data<int32_t>();
      for (int64_t i = 0; i < n; ++i) p[i] = static_cast<int32_t>(value);
      break;
    }
    case DType::kInt64: {
      int64_t* p = data<int64_t>();
      for (int64_t i = 0; i < n; ++i) p[i] = static_cast<int64_t>(value);
      break;
    }
    case DType::kUInt8: std::memset(raw_data(), static_cast<uint8_t>(value), nbytes()); break;
  }
}

Tensor Tensor::to(Device target) const {
  if (target == device()) return *this;
  QILIN_FAIL("to(", target.str(), "): no backend for that device in this build (CPU only)");
}

Tensor& Tensor::set_requires_grad(bool on) {
  QILIN_CHECK(!on || dtype() == DType::kFloat32, "requires_grad on a non-float tensor ", str());
  QILIN_CHECK(is_leaf() || on, "set_requires_grad(false) on a non-leaf tensor: use detach()");
  impl()->requires_grad = on;
  return *this;
}

Tensor Tensor::grad() const { return Tensor(impl()->grad); }

void Tensor::set_grad(const Tensor& g) {
  if (!g.defined()) {
    impl()->grad.reset();
    return;
  }
  QILIN_CHECK(g.shape() == shape(), "set_grad: gradient ", shape_str(g.shape()),
              " for tensor ", shape_str(shape()));
  impl()->grad = g.impl_ptr();
}

void Tensor::zero_grad() { impl()->grad.reset(); }

void Tensor::backward(const Tensor& grad_output, bool retain_graph) const {
  run_backward(*this, grad_output, retain_graph);
}

}  // namespace qilin
