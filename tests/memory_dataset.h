// An in-memory Dataset for loader tests: example i is a (height, width, channels) image whose bytes are a fixed
// function of i, with label i % num_classes (num_classes = size: the label names the example). Chosen indices
// throw graft::Error like an unreadable file; a hook sees every get() (counting, slowing down, checking).
#pragma once
#include <cstdint>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "core/error.h"
#include "io/dataset.h"

namespace graft::testing {

class MemoryDataset : public Dataset {
 public:
  MemoryDataset(std::int64_t size, int height, int width, int channels, int num_classes = 0,
                std::set<std::int64_t> unreadable = {})
      : size_(size), height_(height), width_(width), channels_(channels), unreadable_(std::move(unreadable)) {
    for (int c = 0; c < (num_classes > 0 ? num_classes : static_cast<int>(size)); ++c)
      names_.push_back("class" + std::to_string(c));
  }
  std::function<void(std::int64_t)> hook;  // called at the start of every get(), from the calling thread

  std::int64_t size() const override { return size_; }
  Example get(std::int64_t index) const override {
    if (hook) hook(index);
    GRAFT_CHECK(index >= 0 && index < size_, "memory dataset: index ", index, " out of range");
    if (unreadable_.count(index)) GRAFT_FAIL("memory dataset: record ", index, " is corrupt");
    Example ex;
    ex.height = height_, ex.width = width_, ex.channels = channels_;
    ex.pixels.resize(static_cast<std::size_t>(height_) * width_ * channels_);
    for (std::size_t p = 0; p < ex.pixels.size(); ++p)
      ex.pixels[p] = static_cast<std::uint8_t>((static_cast<std::uint64_t>(index) * 131 + p * 17 + (p * p) % 7) % 256);
    ex.label = label(index);
    return ex;
  }
  int label(std::int64_t index) const override { return static_cast<int>(index % num_classes()); }
  const std::vector<std::string>& class_names() const override { return names_; }
  std::string describe() const override { return "memory (" + std::to_string(size_) + " images)"; }

 private:
  std::int64_t size_;
  int height_, width_, channels_;
  std::set<std::int64_t> unreadable_;
  std::vector<std::string> names_;
};

}  // namespace graft::testing
