#include "core/autograd.h"

#include <unordered_map>

#include "core/error.h"
#include "core/ops.h"

namespace graft {

static thread_local bool g_grad_enabled = true;

bool grad_mode_enabled() { return g_grad_enabled; }
NoGradGuard::NoGradGuard() : previous_(g_grad_enabled) { g_grad_enabled = false; }
NoGradGuard::~NoGradGuard() { g_grad_enabled = previous_; }

namespace {
// What the nodes being destroyed on this thread still hold. The outermost ~Node owns it (on its own stack) and drops
// it piece by piece; the ~Node calls this triggers only add to it, so the stack depth stays constant. The
// thread_local is a plain pointer: nothing to destroy at thread or program exit, when a Tensor in a static may
// still release its graph.
struct Teardown {
  std::vector<std::shared_ptr<Node>> nodes;
  std::vector<BackwardFn> closures;
};
thread_local Teardown* active_teardown = nullptr;
}  // namespace

Node::~Node() {
  Teardown own;
  Teardown& into = active_teardown ? *active_teardown : own;
  for (Edge& e : inputs)
    if (e.node) into.nodes.push_back(std::move(e.node));
  if (backward) into.closures.push_back(std::move(backward));
  if (active_teardown) return;
  active_teardown = &own;
  while (!own.nodes.empty() || !own.closures.empty()) {
    if (!own.closures.empty()) {
      BackwardFn last = std::move(own.closures.back());
      own.closures.pop_back();
    } else {
      std::shared_ptr<Node> last = std::move(own.nodes.back());
      own.nodes.pop_back();
    }
  }
  active_teardown = nullptr;
}

namespace autograd {

bool needs_grad(std::initializer_list<const Tensor*> inputs) {
  if (!g_grad_enabled) return false;
  for (const Tensor* t : inputs)
    if (t && t->defined() && t->requires_grad()) return true;
  return false;
}

void record(Tensor& out, const char* name, std::initializer_list<const Tensor*> inputs, BackwardFn backward) {
  auto node = std::make_shared<Node>();
  node->name = name;
  for (const Tensor* t : inputs) {
    Edge edge;
    if (t && t->defined() && t->requires_grad()) {
      if (t->is_leaf())
        edge.leaf = t->impl_ptr();
      else
        edge.node = t->impl()->grad_fn;
    }
    node->inputs.push_back(edge);
    node->input_shapes.push_back(t && t->defined() ? t->shape() : Shape{});
  }
  node->backward = std::move(backward);
  out.impl()->grad_fn = std::move(node);
  out.impl()->requires_grad = true;
}

// True when `t` (held by `holders` references, counting the caller's) is the only view of memory no other tensor
// shares, covering all of it: writing into it, or keeping it, is invisible to everything else.
static bool exclusively_owned(const Tensor& t, long holders) {
  const auto& impl = t.impl_ptr();
  return impl.use_count() == holders && impl->storage.use_count() == 1 && impl->offset == 0 &&
         t.nbytes() == impl->storage->bytes;
}

// `in_place`: the op added g into slot itself (it returned the accumulation_buffer it was offered), so the sum is
// already there. Otherwise the two are added, even when they are the same tensor: add(h, h)'s backward hands the
// same dout down both inputs, and h's gradient is then dout + dout.
static void accumulate(Tensor& slot, const Tensor& g, bool in_place) {
  if (!slot.defined())
    slot = g;
  else if (!in_place)
    slot = add(slot, g);
}

// `g` is held once by the caller (the list the backward returned).
static void accumulate_leaf(TensorImpl& leaf, const Tensor& g) {
  if (!leaf.grad) {
    // A gradient nothing else can see becomes .grad as it is; otherwise a copy, since `g` may alias another
    // tensor (add's backward passes dout through unchanged, to both inputs or from the caller's seed).
    leaf.grad = exclusively_owned(g, 1) ? g.impl_ptr() : g.clone().impl_ptr();
  } else {
    leaf.grad = add(Tensor(leaf.grad), g).impl_ptr();
  }
}

// The accumulation buffers of the node whose backward is running (accumulation_buffer), per input.
static thread_local const std::vector<Tensor>* g_buffers = nullptr;

Tensor accumulation_buffer(std::size_t input) {
  if (g_buffers == nullptr || input >= g_buffers->size()) return Tensor();
  return (*g_buffers)[input];
}

// Frees the closure (and the activations it saved) as soon as a node is done.
static void release(Node& node) {
  node.backward = nullptr;
  node.inputs.clear();
  node.released = true;
}

// Nodes reachable from root, each after every node that feeds its gradient (reverse topological order),
// computed without recursion so deep networks cannot overflow the stack.
static std::vector<std::shared_ptr<Node>> order_nodes(const std::shared_ptr<Node>& root) {
  std::vector<std::shared_ptr<Node>> order;
  std::unordered_map<Node*, bool> done;  // false = on the stack, true = finished
  std::vector<std::pair<std::shared_ptr<Node>, std::size_t>> stack{{root, 0}};
  done[root.get()] = false;
  while (!stack.empty()) {
    auto& [node, next] = stack.back();
    if (node->released)
      GRAFT_FAIL("backward: the graph through '", node->name,
                 "' was already freed by an earlier backward(); run the forward pass again");
    if (next < node->inputs.size()) {
      std::shared_ptr<Node> child = node->inputs[next++].node;
      if (child && !done.count(child.get())) {
        done[child.get()] = false;
        stack.emplace_back(child, 0);
      }
      continue;
    }
    done[node.get()] = true;
    order.push_back(node);
    stack.pop_back();
  }
  return {order.rbegin(), order.rend()};  // root first
}

void run_backward(const Tensor& root, const Tensor& seed) {
  GRAFT_CHECK(root.defined() && seed.defined(), "backward: undefined tensor");
  GRAFT_CHECK(root.requires_grad(), "backward: tensor ", shape_str(root.shape()),
              " does not require grad (no input of its graph requires grad)");
  GRAFT_CHECK(seed.shape() == root.shape() && seed.device() == root.device(), "backward: seed gradient ",
              shape_str(seed.shape()), " on ", seed.device().str(), " does not match tensor ", shape_str(root.shape()),
              " on ", root.device().str());
  GRAFT_CHECK(seed.dtype() == DType::Float32 && root.dtype() == DType::Float32, "backward: seed gradient ",
              dtype_name(seed.dtype()), " for a ", dtype_name(root.dtype()), " tensor ", shape_str(root.shape()),
              ": gradients are float32");
  NoGradGuard no_grad;
  if (root.is_leaf()) {  // the seed is the caller's tensor: .grad gets a copy, never the caller's memory
    TensorImpl& leaf = *root.impl();
    leaf.grad = leaf.grad ? add(Tensor(leaf.grad), seed).impl_ptr() : seed.clone().impl_ptr();
    return;
  }
  // `order` also keeps every node alive until the walk ends (releasing a node drops the edges owning its inputs).
  std::vector<std::shared_ptr<Node>> order = order_nodes(root.impl()->grad_fn);
  std::unordered_map<Node*, Tensor> grads;
  grads[order.front().get()] = seed;
  for (const std::shared_ptr<Node>& node_ptr : order) {
    Node* node = node_ptr.get();
    auto found = grads.find(node);
    if (found == grads.end()) {  // no gradient flows here
      release(*node);
      continue;
    }
    Tensor dout = found->second;
    grads.erase(found);
    std::vector<bool> needs;
    for (const Edge& e : node->inputs) needs.push_back(e.active());
    // Gradients already collected for this node's inputs that its backward may add into (rule 7): held by the
    // grads map alone (one holder), before the copy below makes it two.
    std::vector<Tensor> buffers(node->inputs.size());
    for (std::size_t i = 0; i < node->inputs.size(); ++i) {
      if (!node->inputs[i].node) continue;
      auto slot = grads.find(node->inputs[i].node.get());
      if (slot != grads.end() && exclusively_owned(slot->second, 1)) buffers[i] = slot->second;
    }
    std::vector<Tensor> dinputs;
    {
      // accumulation_buffer's view of `buffers` while the closure runs; the previous view (an enclosing
      // backward's, if a closure runs one) comes back afterwards, also when the closure throws
      struct Expose {
        explicit Expose(const std::vector<Tensor>* b) : previous(g_buffers) { g_buffers = b; }
        ~Expose() { g_buffers = previous; }
        const std::vector<Tensor>* previous;
      } expose(&buffers);
      dinputs = node->backward(dout, needs);
    }
    GRAFT_CHECK(dinputs.size() == node->inputs.size(), "backward: op '", node->name, "' returned ", dinputs.size(),
                " gradients for ", node->inputs.size(), " inputs");
    for (std::size_t i = 0; i < node->inputs.size(); ++i) {
      const Edge& e = node->inputs[i];
      if (!e.active() || !dinputs[i].defined()) continue;
      GRAFT_CHECK(dinputs[i].shape() == node->input_shapes[i], "backward: op '", node->name, "' produced gradient ",
                  shape_str(dinputs[i].shape()), " for input ", i, " of shape ", shape_str(node->input_shapes[i]));
      if (e.node) {
        const bool in_place = buffers[i].defined() && dinputs[i].impl() == buffers[i].impl();
        accumulate(grads[e.node.get()], dinputs[i], in_place);
      } else {
        accumulate_leaf(*e.leaf, dinputs[i]);
      }
    }
    release(*node);
  }
}

}  // namespace autograd
}  // namespace graft
