// The setup the weight tests share (tests/test_weights.cpp, test_weights_export.cpp, test_hdf5.cpp): fixture paths
// (written by tests/make_weight_fixtures.py at ctest set-up), zoo models with fixed seeds, state comparisons, and a
// per-process temporary folder.
#pragma once
#include <gtest/gtest.h>
#include <hdf5.h>

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>

#include "core/autograd.h"
#include "core/error.h"
#include "io/hdf5.h"
#include "io/hdf5_write.h"
#include "io/temporary_file.h"
#include "io/weights.h"
#include "layers/batch_norm.h"
#include "layers/conv2d.h"
#include "layers/linear.h"
#include "layers/sequential.h"
#include "models/zoo.h"
#include "tests/check.h"

namespace graft::weights_test {

inline std::string fixture(const std::string& name) { return std::string(GRAFT_WEIGHTS_DIR) + "/" + name; }

inline std::shared_ptr<Module> build(const std::string& arch, Dialect dialect = Dialect::Torchvision, int classes = 1000,
                              bool top = true) {
  ModelOptions o;
  o.dialect = dialect, o.num_classes = classes, o.include_top = top, o.seed = 99;
  auto m = make_model(arch, o);
  m->eval();
  return m;
}

// Every tensor of `a` bitwise equal to `b`'s.
inline void expect_same_state(Module& a, Module& b) {
  auto sa = a.state(), sb = b.state();
  ASSERT_EQ(sa.size(), sb.size());
  for (auto& [name, t] : sa) {
    ASSERT_TRUE(sb.count(name)) << name;
    ASSERT_EQ(t.shape(), sb[name].shape()) << name;
    EXPECT_EQ(t.to_vector(), sb[name].to_vector()) << name;
  }
}

// NaN everywhere, so a tensor a load forgets cannot pass for a loaded one.
inline void poison(Module& m) {
  for (auto& [name, t] : m.state()) std::fill_n(t.data<float>(), t.numel(), NAN);
}

inline bool contains(const std::vector<std::string>& items, const std::string& text) {
  for (const auto& s : items)
    if (s.find(text) != std::string::npos) return true;
  return false;
}

inline std::string temp_path(const std::string& name) {
  std::filesystem::path dir = std::filesystem::temp_directory_path() / ("graft_export_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  return (dir / name).string();
}

}  // namespace graft::weights_test
