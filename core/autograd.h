// Reverse-mode autograd on a dynamic tape.
//
// Each differentiable op computes its output, then calls record_op() with its inputs and a
// backward lambda written right below the forward (flashlight's gradFunc style). The lambda
// captures only what backward needs; it must capture outputs with .detach() (an output that
// points to its own Node would be a reference cycle).
//
// backward() sorts the graph topologically from the root, runs each Node once with the sum of
// the gradients flowing into it, accumulates into leaves' .grad, and frees each Node's saved
// tensors as it goes (unless retain_graph). Gradients are computed with grad mode off.
#pragma once

#include <functional>
#include <initializer_list>
#include <memory>
#include <vector>

#include "core/tensor.h"

namespace qilin {

// Whether ops record the graph. Thread-local, like PyTorch's grad mode.
class GradMode {
 public:
  static bool enabled();
  static void set_enabled(bool on);
};

// RAII: no graph is recorded while it lives.
class NoGradGuard {
 public:
  NoGradGuard() : prev_(GradMode::enabled()) { GradMode::set_enabled(false); }
  ~NoGradGuard() { GradMode::set_enabled(prev_); }
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool prev_;
};

// The gradient slots of one Node's inputs, handed to its backward lambda.
class GradSlots {
 public:
  explicit GradSlots(std::vector<bool> needed) : needed_(std::move(needed)), grads_(needed_.size()) {}
  // True when input i needs a gradient: skip its computation otherwise.
  bool needs(size_t i) const { return i < needed_.size() && needed_[i]; }
  // Sets (or adds to) the gradient of input i; its shape must equal the input's.
  void add(size_t i, const Tensor& g);
  std::vector<Tensor>& grads() { return grads_; }

 private:
  std::vector<bool> needed_;
  std::vector<Tensor> grads_;
};

using BackwardFn = std::function<void(const Tensor& grad_out, GradSlots& grads)>;
// Backward of an op with several outputs: grad_outs[i] is output i's gradient, undefined
// when no gradient reached that output.
using MultiBackwardFn =
    std::function<void(const std::vector<Tensor>& grad_outs, GradSlots& grads)>;

// Where one input's gradient goes: the Node that produced it, or the leaf itself.
struct Edge {
  std::shared_ptr<Node> node;
  int output_nr = 0;  // which of node's outputs the input is
  std::shared_ptr<TensorImpl> leaf;
  Shape shape;  // the input's shape: a gradient of another shape is a bug in a backward
  bool needed() const { return node != nullptr || leaf != nullptr; }
};

class Node {
 public:
  const char* op;            // op name, for errors and the profiler
  std::vector<Edge> edges;   // one per input, in the order given to record_op
  BackwardFn backward;       // single-output ops
  MultiBackwardFn multi_backward;  // ops recorded with record_multi_op
  size_t num_outputs = 1;
};

// Attaches a Node to `out` when grad mode is on and any input requires grad; returns `out`.
// `op` must be a string literal (it is kept by pointer).
Tensor record_op(Tensor out, const char* op, std::initializer_list<Tensor> inputs,
                 BackwardFn backward);
Tensor record_op(Tensor out, const char* op, const std::vector<Tensor>& inputs,
                 BackwardFn backward);

// The same for an op with several outputs (e.g. unbind); each output gets this Node as
// grad_fn with its own output number. Returns `outs`.
std::vector<Tensor> record_multi_op(std::vector<Tensor> outs, const char* op,
                                    std::initializer_list<Tensor> inputs,
                                    MultiBackwardFn backward);

// Where an elementwise backward writes its input's gradient: into grad_out itself when the
// engine's handle is the only one on it and its storage (nobody else can see the values:
// not the caller, not another pending gradient, not a view) and it has `like`'s shape,
// dtype and device; otherwise into a new tensor. Writing dx over dy saves the allocation
// and the read that a store to fresh memory costs (the cache line is fetched before it is
// written): a quarter of an elementwise backward's memory traffic. The backward's kernel
// must allow dx == dy (each element read before it is written).
Tensor grad_buffer(const Tensor& grad_out, const Tensor& like);

// True when grad mode is on and any of `inputs` requires grad (ops may skip saving state).
bool any_requires_grad(std::initializer_list<Tensor> inputs);

// Runs backward from `root` (see Tensor::backward).
void run_backward(const Tensor& root, const Tensor& grad_output, bool retain_graph);

}  // namespace qilin
