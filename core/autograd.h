// Reverse-mode automatic differentiation, define-by-run.
//
// Rules:
//  1. An op records a Node (name, input edges, backward closure, saved tensors captured by the closure) only when
//     grad mode is on and at least one input requires grad. A frozen prefix of a network therefore records
//     nothing: no backward work and no saved activations.
//  2. The forward of an op and its backward are written next to each other: the closure sits in the op's function
//     in core/ops_*.cpp. The closure is told which inputs need a gradient and computes only those.
//  3. Gradients accumulate into leaves (`grad += g`); zeroing is an explicit step (Tensor::zero_grad, or the
//     optimizer's zero_grad).
//  4. backward() walks the graph once in reverse topological order and then releases every node it visited
//     (closures and saved tensors are freed). A second backward through a released node throws graft::Error.
//  5. Backward closures run with grad mode off: no higher-order gradients.
//  6. A node never holds its own output (that would be a reference cycle): closures capture `out.detach()`.
//  7. A tensor used by several ops gets the sum of their gradients. When one contribution is already collected and
//     nothing else can see it, the next op's backward may add its own into it in place and return that tensor
//     (accumulation_buffer below): a convolution's input gradient then costs no separate add pass. A gradient
//     that nothing else can see also becomes a leaf's .grad as it is, without a copy.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace graft {

// Returns one gradient per input (undefined where needs[i] is false or the input gets no gradient).
using BackwardFn = std::function<std::vector<Tensor>(const Tensor& dout, const std::vector<bool>& needs)>;

// Where an input's gradient goes: into another node, or into a leaf's .grad.
struct Edge {
  std::shared_ptr<Node> node;
  std::shared_ptr<TensorImpl> leaf;
  bool active() const { return node || leaf; }
};

struct Node {
  std::string name;          // op name, for error messages
  std::vector<Edge> inputs;  // one per op input, inactive where the input needs no gradient
  std::vector<Shape> input_shapes;
  BackwardFn backward;
  bool released = false;

  Node() = default;
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;
  // Iterative: a graph is a chain of shared_ptrs (inputs, and tensors the backward closure saved), and destroying
  // a chain of 10^5 nodes member by member would recurse once per node and overflow the stack.
  ~Node();
};

bool grad_mode_enabled();

// Disables recording for its lifetime (inference, optimizer steps, backward itself).
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

namespace autograd {

// True when grad mode is on and any of the tensors requires grad.
bool needs_grad(std::initializer_list<const Tensor*> inputs);
// Makes `out` the output of a new node over `inputs`.
void record(Tensor& out, const char* name, std::initializer_list<const Tensor*> inputs, BackwardFn backward);
// Runs backward from `root` with seed gradient `seed` (same shape as root).
void run_backward(const Tensor& root, const Tensor& seed);
// Inside a backward closure: the gradient already collected for input `input` (same shape and device as that
// input), when it may be added to in place (no other tensor shares its memory), else an undefined tensor. A
// closure that adds its gradient into it returns that same tensor for that same input, and run_backward adds
// nothing. The closure must have added its whole gradient for `input` (never return the buffer untouched), must
// not return the buffer for any other input, and must not keep it. Undefined outside run_backward, for leaf
// inputs, and for an input with no gradient collected yet.
Tensor accumulation_buffer(std::size_t input);

}  // namespace autograd
}  // namespace graft
