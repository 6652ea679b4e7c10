#include "core/autograd.h"

#include <unordered_map>
#include <unordered_set>

#include "core/dispatch.h"
#include "core/ops/elementwise.h"
#include "kernels/cpu/elementwise.h"
#include "core/profiler.h"

namespace qilin {
namespace {

thread_local bool t_grad_enabled = true;

// dst += src without recording a graph. In place when dst is the only handle on storage
// of its own (no allocation: a tensor used by k ops receives k gradients); otherwise out of
// place, because gradients may alias each other (add's backward hands the same tensor to
// both inputs) or be held by the caller.
void accumulate(Tensor& dst, Tensor src) {
  if (!dst.defined()) {
    dst = std::move(src);
    return;
  }
  const bool exclusive = dst.impl_ptr().use_count() == 1 && dst.impl()->storage.use_count() == 1 &&
                         dst.impl()->offset == 0 && dst.shape() == src.shape();
  if (exclusive) {
    QILIN_DISPATCH(dst.device(), axpby, dst.data<float>(), src.data<float>(), 1.0f, 1.0f,
                   dst.numel());
  } else {
    dst = add(dst, src);
  }
}

Tensor make_leaf_grad(Tensor g) {
  // A leaf's .grad may later be changed in place (clipping, optimizers): never let it share
  // storage with another gradient.
  if (g.impl_ptr().use_count() > 1 || g.impl()->storage.use_count() > 1 || g.impl()->offset != 0)
    return g.detach().clone();
  return g.detach();
}

}  // namespace

bool GradMode::enabled() { return t_grad_enabled; }
void GradMode::set_enabled(bool on) { t_grad_enabled = on; }

void GradSlots::add(size_t i, const Tensor& g) {
  QILIN_CHECK(i < grads_.size(), "backward wrote gradient slot ", i, " of ", grads_.size());
  if (!needed_[i]) return;
  accumulate(grads_[i], g);
}

Tensor grad_buffer(const Tensor& grad_out, const Tensor& like) {
  // use_count 1: the engine's slot (run_backward hands grad_out to a single backward and
  // drops its handle afterwards; a seed passed by the caller stays shared).
  const bool exclusive = grad_out.defined() && grad_out.impl_ptr().use_count() == 1 &&
                         grad_out.impl()->storage.use_count() == 1 && grad_out.impl()->offset == 0 &&
                         grad_out.shape() == like.shape() && grad_out.dtype() == like.dtype() &&
                         grad_out.device() == like.device();
  if (exclusive) return grad_out;
  return Tensor::empty(like.shape(), like.dtype(), like.device());
}

bool any_requires_grad(std::initializer_list<Tensor> inputs) {
  if (!GradMode::enabled()) return false;
  for (const Tensor& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

// A Node for `inputs`, or null when no graph is to be recorded.
template <typename Container>
static std::shared_ptr<Node> make_node(const char* op, const Container& inputs) {
  if (!GradMode::enabled()) return nullptr;
  bool any = false;
  for (const Tensor& t : inputs) any = any || (t.defined() && t.requires_grad());
  if (!any) return nullptr;
  auto node = std::make_shared<Node>();
  node->op = op;
  node->edges.reserve(inputs.size());
  for (const Tensor& t : inputs) {
    Edge e;
    if (t.defined() && t.requires_grad()) {
      if (t.grad_fn()) {
        e.node = t.grad_fn();
        e.output_nr = t.impl()->output_nr;
      } else {
        e.leaf = t.impl_ptr();
      }
      e.shape = t.shape();
    }
    node->edges.push_back(std::move(e));
  }
  return node;
}

template <typename Container>
static Tensor record_impl(Tensor out, const char* op, const Container& inputs, BackwardFn fn) {
  std::shared_ptr<Node> node = make_node(op, inputs);
  if (!node) return out;
  node->backward = std::move(fn);
  out.impl()->grad_fn = std::move(node);
  out.impl()->output_nr = 0;
  out.impl()->requires_grad = true;
  return out;
}

std::vector<Tensor> record_multi_op(std::vector<Tensor> outs, const char* op,
                                    std::initializer_list<Tensor> inputs,
                                    MultiBackwardFn backward) {
  std::shared_ptr<Node> node = make_node(op, inputs);
  if (!node) return outs;
  node->multi_backward = std::move(backward);
  node->num_outputs = outs.size();
  for (size_t i = 0; i < outs.size(); ++i) {
    outs[i].impl()->grad_fn = node;
    outs[i].impl()->output_nr = static_cast<int>(i);
    outs[i].impl()->requires_grad = true;
  }
  return outs;
}

Tensor record_op(Tensor out, const char* op, std::initializer_list<Tensor> inputs,
                 BackwardFn backward) {
  return record_impl(std::move(out), op, inputs, std::move(backward));
}

Tensor record_op(Tensor out, const char* op, const std::vector<Tensor>& inputs,
                 BackwardFn backward) {
  return record_impl(std::move(out), op, inputs, std::move(backward));
}

void run_backward(const Tensor& root, const Tensor& grad_output, bool retain_graph) {
  QILIN_CHECK(root.requires_grad(),
              "backward: the tensor does not require grad (no input of its graph has "
              "requires_grad set, or it was computed under NoGradGuard)");
  Tensor seed = grad_output;
  if (!seed.defined()) {
    QILIN_CHECK(root.numel() == 1, "backward: implicit gradient only for a scalar, got ",
                shape_str(root.shape()), "; pass grad_output");
    seed = Tensor::ones(root.shape(), DType::kFloat32, root.device());
  }
  QILIN_CHECK(seed.shape() == root.shape(), "backward: grad_output ", shape_str(seed.shape()),
              " for tensor ", shape_str(root.shape()));
  NoGradGuard no_grad;

  if (!root.grad_fn()) {  // backward on a leaf: its gradient is the seed
    Tensor g(std::move(root.impl()->grad));
    accumulate(g, make_leaf_grad(seed));
    root.impl()->grad = g.impl_ptr();
    return;
  }

  // Topological order by iterative DFS (post-order), then reversed.
  std::vector<Node*> order;
  std::unordered_set<Node*> visited;
  std::vector<std::pair<Node*, size_t>> stack{{root.grad_fn().get(), 0}};
  visited.insert(root.grad_fn().get());
  while (!stack.empty()) {
    auto& [node, next] = stack.back();
    if (next < node->edges.size()) {
      Node* child = node->edges[next++].node.get();
      if (child && visited.insert(child).second) stack.push_back({child, 0});
    } else {
      order.push_back(node);
      stack.pop_back();
    }
  }

  // Gradients flowing into each Node, one slot per output.
  std::unordered_map<Node*, std::vector<Tensor>> pending;
  auto pending_slot = [&](Node* node, int output_nr) -> Tensor& {
    std::vector<Tensor>& slots = pending[node];
    if (slots.empty()) slots.resize(node->num_outputs);
    return slots[output_nr];
  };
  pending_slot(root.grad_fn().get(), root.impl()->output_nr) = seed;
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    Node* node = *it;
    auto found = pending.find(node);
    if (found == pending.end()) continue;  // no gradient reached it
    std::vector<Tensor> gys = std::move(found->second);
    pending.erase(found);
    QILIN_CHECK(node->backward != nullptr || node->multi_backward != nullptr, "backward through ",
                node->op, " a second time: its saved tensors were freed (use retain_graph)");
    std::vector<bool> needed(node->edges.size());
    for (size_t i = 0; i < needed.size(); ++i) needed[i] = node->edges[i].needed();
    GradSlots slots(std::move(needed));
    {
      ProfileScope scope(node->op, /*backward=*/true);
      if (node->multi_backward) {
        node->multi_backward(gys, slots);
      } else {
        node->backward(gys[0], slots);
      }
    }
    gys.clear();
    for (size_t i = 0; i < node->edges.size(); ++i) {
      Edge& e = node->edges[i];
      Tensor& g = slots.grads()[i];
      if (!e.needed() || !g.defined()) continue;
      QILIN_CHECK(g.shape() == e.shape, node->op, " backward: gradient ", shape_str(g.shape()),
                  " for input ", i, " of shape ", shape_str(e.shape));
      if (e.node) {
        accumulate(pending_slot(e.node.get(), e.output_nr), std::move(g));
      } else {
        Tensor leaf_grad(std::move(e.leaf->grad));  // sole handle: accumulates in place
        accumulate(leaf_grad, make_leaf_grad(std::move(g)));
        e.leaf->grad = leaf_grad.impl_ptr();
      }
    }
    if (!retain_graph) {
      node->backward = nullptr;
      node->multi_backward = nullptr;
    }
  }
}

}  // namespace qilin
