// Reads golden fixtures written by tests/golden_io.py (reference values from PyTorch / Keras themselves).
// The fixture directory is GRAFT_GOLDEN_DIR (set by CMake); the ctest fixture `golden_fixtures` generates it.
#pragma once
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include "core/tensor.h"

namespace graft::testing {

class GoldenFile {
 public:
  explicit GoldenFile(const std::string& name) {
    std::string path = std::string(GRAFT_GOLDEN_DIR) + "/" + name;
    std::ifstream in(path);
    if (!in) throw std::runtime_error("golden fixture missing: " + path + " (run the golden_fixtures ctest)");
    std::string line, key;
    Shape shape;
    while (std::getline(in, line)) {
      std::istringstream words(line);
      std::string tag;
      words >> tag;
      if (tag == "name") {
        words >> key;
      } else if (tag == "shape") {
        shape.clear();
        for (std::int64_t d; words >> d;) shape.push_back(d);
      } else if (tag == "data") {
        std::vector<float> values;
        values.reserve(static_cast<std::size_t>(shape_numel(shape)));
        for (std::string v; words >> v;) values.push_back(std::stof(v));
        arrays_[key] = Tensor::from_vector(values, shape);
      }
    }
  }
  Tensor get(const std::string& key) const {
    auto it = arrays_.find(key);
    if (it == arrays_.end()) throw std::runtime_error("golden fixture has no array " + key);
    return it->second;
  }
  bool has(const std::string& key) const { return arrays_.count(key) > 0; }

 private:
  std::map<std::string, Tensor> arrays_;
};

}  // namespace graft::testing
