#include "train/progress.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include <unistd.h>

namespace graft {

namespace {
constexpr int kWidth = 24;

std::string clock_text(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  long s = std::lround(seconds);
  char buf[32];
  if (s >= 3600) std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
  else std::snprintf(buf, sizeof buf, "%ld:%02ld", s / 60, s % 60);
  return buf;
}
}  // namespace

ProgressBar::ProgressBar(std::string label, std::int64_t total, bool enabled)
    : label_(std::move(label)), total_(total), enabled_(enabled), tty_(isatty(fileno(stderr)) == 1),
      start_(std::chrono::steady_clock::now()), last_draw_(start_) {}

ProgressBar::~ProgressBar() { finish(); }

std::string ProgressBar::render(const std::string& label, std::int64_t done, std::int64_t total,
                                double images_per_s, double loss, double eta_seconds) {
  int filled = total > 0 ? static_cast<int>(kWidth * std::min<std::int64_t>(done, total) / total) : 0;
  std::string bar(static_cast<std::size_t>(filled), '=');
  if (filled < kWidth) bar += '>';
  bar.resize(kWidth, ' ');
  char buf[256];
  int n = std::snprintf(buf, sizeof buf, "%s [%s] %lld/%lld  %.1f img/s", label.c_str(), bar.c_str(),
                        static_cast<long long>(done), static_cast<long long>(total), images_per_s);
  std::string line(buf, static_cast<std::size_t>(std::max(n, 0)));
  if (!std::isnan(loss)) {
    std::snprintf(buf, sizeof buf, "  loss %.4f", loss);
    line += buf;
  }
  line += "  ETA " + clock_text(eta_seconds);
  return line;
}

void ProgressBar::update(std::int64_t done, std::int64_t images, double loss) {
  if (!enabled_) return;
  auto now = std::chrono::steady_clock::now();
  bool last = done >= total_;
  // A terminal gets the bar redrawn in place; a log file or pipe one full line every 15 s and at the end.
  const auto interval = tty_ ? std::chrono::milliseconds(125) : std::chrono::milliseconds(15000);
  if ((open_ || !tty_) && !last && now - last_draw_ < interval) return;
  last_draw_ = now;
  double elapsed = std::chrono::duration<double>(now - start_).count();
  double speed = elapsed > 0 ? images / elapsed : 0;
  double eta = done > 0 ? elapsed * static_cast<double>(total_ - done) / static_cast<double>(done) : NAN;
  // Pad with spaces so a shorter line fully overwrites the previous one.
  if (tty_) {
    std::fprintf(stderr, "\r%-100s", render(label_, done, total_, speed, loss, eta).c_str());
    open_ = true;
  } else {
    std::fprintf(stderr, "%s\n", render(label_, done, total_, speed, loss, eta).c_str());
  }
  std::fflush(stderr);
}

void ProgressBar::finish() {
  if (!open_) return;
  std::fprintf(stderr, "\n");
  open_ = false;
}

}  // namespace graft
