// Sequential: children named "0", "1", ... (as torch.nn.Sequential), applied in order.
#pragma once
#include <memory>
#include <vector>

#include "layers/module.h"

namespace graft {

class Sequential : public Module {
 public:
  Sequential() = default;
  explicit Sequential(std::vector<std::shared_ptr<Module>> modules);
  void push_back(std::shared_ptr<Module> module);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Sequential"; }
  std::size_t size() const { return children().size(); }
  Module& operator[](std::size_t i) const { return *children()[i].second; }
};

}  // namespace graft
