// Tensor: a handle (shared pointer) to a TensorImpl. A TensorImpl is a contiguous row-major
// window into a shared Storage (offset + shape + dtype; the device is the storage's) plus
// its autograd state: requires_grad, the accumulated .grad of a leaf, and grad_fn, the
// Node that produced it. Copying a Tensor copies the handle, never the data.
//
// Views: reshape() and slicing the first dim share storage. Everything else that changes
// layout (transpose, permute) makes a contiguous copy: every kernel sees dense data.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/device.h"
#include "core/dtype.h"
#include "core/error.h"
#include "core/shape.h"
#include "core/storage.h"

namespace qilin {

class Node;
class Tensor;

class TensorImpl {
 public:
  TensorImpl(std::shared_ptr<Storage> storage, int64_t offset, Shape shape, DType dtype);

  std::shared_ptr<Storage> storage;
  int64_t offset = 0;  // in elements
  Shape shape;
  DType dtype;
  bool requires_grad = false;
  std::shared_ptr<TensorImpl> grad;  // accumulated gradient of a leaf
  std::shared_ptr<Node> grad_fn;     // producer; null for leaves
  int output_nr = 0;                 // which output of grad_fn this tensor is
};

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // ---- factories (uninitialised, filled, or from host data) ----
  static Tensor empty(const Shape& shape, DType dtype = DType::kFloat32,
                      Device device = Device::cpu());
  static Tensor zeros(const Shape& shape, DType dtype = DType::kFloat32,
                      Device device = Device::cpu());
  static Tensor ones(const Shape& shape, DType dtype = DType::kFloat32,
                     Device device = Device::cpu());
  static Tensor full(const Shape& shape, float value, Device device = Device::cpu());
  static Tensor scalar(float value, Device device = Device::cpu());
  static Tensor from_vector(const std::vector<float>& values, const Shape& shape);
  static Tensor from_vector_i64(const std::vector<int64_t>& values, const Shape& shape);
  static Tensor from_vector_i32(const std::vector<int32_t>& values, const Shape& shape);
  static Tensor arange(int64_t n);  // float32 0..n-1

  // ---- metadata ----
  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const { return impl()->shape; }
  int64_t dim() const { return static_cast<int64_t>(impl()->shape.size()); }
  int64_t size(int64_t d) const;  // negative d counts from the end
  int64_t numel() const { return shape_numel(impl()->shape); }
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype()); }
  DType dtype() const { return impl()->dtype; }
  Device device() const { return impl()->storage->device(); }
  std::string str() const;  // "float32[2, 3] cpu"

  // ---- data access (CPU) ----
  template <typename T> T* data() {
    check_dtype(DTypeOf<T>::value);
    return static_cast<T*>(impl()->storage->data()) + impl()->offset;
  }
  template <typename T> const T* data() const {
    check_dtype(DTypeOf<T>::value);
    return static_cast<const T*>(impl()->storage->data()) + impl()->offset;
  }
  void* raw_data();
  const void* raw_data() const;
  float item() const;                  // the single value of a 1-element float tensor
  std::vector<float> to_vector() const;  // float32 copy (any float32 tensor)

  // ---- copies and views ----
  Tensor clone() const;         // new storage, same values; keeps the graph (differentiable)
  Tensor detach() const;        // same storage, no graph, requires_grad false
  Tensor reshape(const Shape& shape) const;   // view, differentiable; one -1 allowed
  Tensor view_rows(int64_t begin, int64_t end) const;  // rows [begin, end) of dim 0, a view
  void copy_(const Tensor& src);  // elementwise copy into this (same shape/dtype), no graph
  void fill_(float value);        // no graph
  Tensor to(Device device) const;

  // ---- autograd ----
  bool requires_grad() const { return impl()->requires_grad; }
  Tensor& set_requires_grad(bool on = true);
  bool is_leaf() const { return impl()->grad_fn == nullptr; }
  Tensor grad() const;          // undefined when none accumulated
  void set_grad(const Tensor& g);
  void zero_grad();             // drops the accumulated gradient
  const std::shared_ptr<Node>& grad_fn() const { return impl()->grad_fn; }
  // Backward from this scalar (or from `grad_output` of this tensor's shape).
  void backward(const Tensor& grad_output = Tensor(), bool retain_graph = false) const;

  TensorImpl* impl() const {
    QILIN_CHECK(impl_ != nullptr, "use of an undefined tensor");
    return impl_.get();
  }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }
  bool same(const Tensor& other) const { return impl_ == other.impl_; }

 private:
  void check_dtype(DType expected) const;
  std::shared_ptr<TensorImpl> impl_;
};

}  // namespace qilin
