// A one-line progress bar on stderr for training and evaluation loops:
//   epoch 2/10 [=========>          ] 120/250  512.3 img/s  loss 0.4321  ETA 0:31
// On a terminal: redrawn in place ('\r') at most ~8 times a second; finish() ends the line. When stderr is a file or
// a pipe (CI logs): one plain line every 15 s and one at the end. Disabled bars print nothing, so
// callers do not need to branch. Speed and ETA come from wall time since the bar was made.
#pragma once
#include <chrono>
#include <cstdint>
#include <string>

namespace graft {

class ProgressBar {
 public:
  ProgressBar(std::string label, std::int64_t total, bool enabled);
  ~ProgressBar();  // finishes the line if needed
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;

  // `done` units of `total` are finished, `images` processed so far, `loss` the running mean (NaN: not shown).
  void update(std::int64_t done, std::int64_t images, double loss);
  void finish();

  // The line as drawn (exposed for tests): width of the bar in characters is fixed.
  static std::string render(const std::string& label, std::int64_t done, std::int64_t total, double images_per_s,
                            double loss, double eta_seconds);

 private:
  std::string label_;
  std::int64_t total_;
  bool enabled_, tty_, open_ = false;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

}  // namespace graft
