#include "layers/summary.h"

#include <cstdio>
#include <sstream>

#include "core/autograd.h"
#include "layers/batch_norm.h"

namespace graft {

static std::string with_commas(std::int64_t n) {
  std::string digits = std::to_string(n), out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

std::string summary(Module& model, const Shape& input_shape) {
  bool was_training = model.is_training();
  {
    NoGradGuard no_grad;
    model.eval();
    model(Tensor::zeros(input_shape, model.device()));
    model.train(was_training);
  }
  std::ostringstream out;
  char line[512];
  std::snprintf(line, sizeof line, "%-28s %-18s %-50s %-18s %12s  %s\n", "name", "type", "config", "output", "params",
                "state");
  out << line;
  for (auto& [name, m] : model.named_modules()) {
    if (name.empty()) continue;
    std::int64_t own = 0;
    bool any_trainable = false, any = false;
    for (auto& [pname, t] : m->named_parameters()) {
      if (pname.find('.') != std::string::npos) continue;  // a child's parameter: counted on its own row
      own += t.numel();
      any = true;
      any_trainable |= t.requires_grad();
    }
    std::string state = any ? (any_trainable ? "trainable" : "frozen") : "";
    if (auto* bn = dynamic_cast<BatchNorm2d*>(m)) state = bn->mode();
    std::snprintf(line, sizeof line, "%-28s %-18s %-50s %-18s %12s  %s\n", name.c_str(), m->type_name().c_str(),
                  m->describe().c_str(), shape_str(m->last_output_shape()).c_str(), any ? with_commas(own).c_str() : "",
                  state.c_str());
    out << line;
  }
  out << "input " << shape_str(input_shape) << " -> output " << shape_str(model.last_output_shape()) << "\n";
  out << "parameters: " << with_commas(model.parameter_count()) << " total, "
      << with_commas(model.trainable_parameter_count()) << " trainable, "
      << with_commas(model.parameter_count() - model.trainable_parameter_count()) << " frozen\n";
  return out.str();
}

}  // namespace graft
