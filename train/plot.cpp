#include "train/plot.h"

#include <stb/stb_easy_font.h>
#include <stb/stb_image_write.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

#include "core/error.h"
#include "io/temporary_file.h"

namespace graft {

namespace {
constexpr std::uint32_t kBlack = 0x000000, kGrey = 0xD0D0D0, kDark = 0x606060;
constexpr std::uint32_t kBlue = 0x1F77B4, kOrange = 0xFF7F0E, kGreen = 0x2CA02C;

std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, std::fabs(v) >= 100 ? "%.0f" : std::fabs(v) >= 10 ? "%.1f" : "%.3g", v);
  return buf;
}
}  // namespace

Canvas::Canvas(int width, int height, std::uint32_t background) : width_(width), height_(height) {
  GRAFT_CHECK(width > 0 && height > 0 && width <= 16384 && height <= 16384, "plot: canvas ", width, "x", height,
              " out of range");
  pixels_.resize(static_cast<std::size_t>(width) * height * 3);
  fill_rect(0, 0, width, height, background);
}

std::uint32_t Canvas::pixel(int x, int y) const {
  GRAFT_CHECK(x >= 0 && y >= 0 && x < width_ && y < height_, "plot: pixel (", x, ",", y, ") outside the canvas");
  const std::uint8_t* p = &pixels_[(static_cast<std::size_t>(y) * width_ + x) * 3];
  return (std::uint32_t(p[0]) << 16) | (std::uint32_t(p[1]) << 8) | p[2];
}

void Canvas::fill_rect(int x, int y, int w, int h, std::uint32_t color) {
  int x0 = std::max(x, 0), y0 = std::max(y, 0), x1 = std::min(x + w, width_), y1 = std::min(y + h, height_);
  for (int yy = y0; yy < y1; ++yy)
    for (int xx = x0; xx < x1; ++xx) {
      std::uint8_t* p = &pixels_[(static_cast<std::size_t>(yy) * width_ + xx) * 3];
      p[0] = static_cast<std::uint8_t>(color >> 16), p[1] = static_cast<std::uint8_t>(color >> 8),
      p[2] = static_cast<std::uint8_t>(color);
    }
}

void Canvas::line(double x0, double y0, double x1, double y1, std::uint32_t color, int thickness) {
  if (!std::isfinite(x0) || !std::isfinite(y0) || !std::isfinite(x1) || !std::isfinite(y1)) return;
  // Sample the segment densely: at least one sample per pixel along its longer axis.
  int steps = static_cast<int>(std::ceil(std::max(std::fabs(x1 - x0), std::fabs(y1 - y0)))) + 1;
  steps = std::min(steps, 4 * (width_ + height_));
  for (int i = 0; i <= steps; ++i) {
    double t = static_cast<double>(i) / steps;
    int x = static_cast<int>(std::lround(x0 + t * (x1 - x0))), y = static_cast<int>(std::lround(y0 + t * (y1 - y0)));
    fill_rect(x - thickness / 2, y - thickness / 2, thickness, thickness, color);
  }
}

void Canvas::text(int x, int y, const std::string& text, std::uint32_t color, int scale) {
  static thread_local std::vector<char> quads(64 * 1024);
  std::string copy = text;  // stb_easy_font takes a non-const char*
  int n = stb_easy_font_print(0, 0, copy.data(), nullptr, quads.data(), static_cast<int>(quads.size()));
  // Each quad: 4 vertices of (float x, float y, float z, 4 color bytes); the segments are axis-aligned.
  for (int q = 0; q < n; ++q) {
    const float* v0 = reinterpret_cast<const float*>(&quads[static_cast<std::size_t>(q) * 64]);
    const float* v2 = reinterpret_cast<const float*>(&quads[static_cast<std::size_t>(q) * 64 + 32]);
    int qx = static_cast<int>(v0[0]), qy = static_cast<int>(v0[1]);
    int qw = static_cast<int>(v2[0] - v0[0]), qh = static_cast<int>(v2[1] - v0[1]);
    fill_rect(x + qx * scale, y + qy * scale, qw * scale, qh * scale, color);
  }
}

int Canvas::text_width(const std::string& text, int scale) {
  std::string copy = text;
  return stb_easy_font_width(copy.data()) * scale;
}

void Canvas::write_png(const std::string& path) const {
  TemporaryFile png(path, "plot");
  std::FILE* out = png.create();
  const auto put = [](void* file, void* data, int size) {
    std::fwrite(data, 1, static_cast<std::size_t>(size), static_cast<std::FILE*>(file));
  };
  GRAFT_CHECK(stbi_write_png_to_func(put, out, width_, height_, 3, pixels_.data(), width_ * 3) != 0,
              "plot: cannot encode '", path, "' (", width_, "x", height_, ")");
  png.commit();
}

namespace {

// One panel: axes, min/max labels, and a polyline per series (NaN points are skipped).
struct Series {
  std::vector<double> y;
  std::uint32_t color;
  std::string name;
};

void panel(Canvas& c, int left, int top, int w, int h, const std::string& title, const std::vector<int>& xs,
           const std::vector<Series>& series, bool unit_range) {
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  for (const auto& s : series)
    for (double v : s.y)
      if (std::isfinite(v)) lo = std::min(lo, v), hi = std::max(hi, v);
  if (unit_range) lo = 0, hi = 1;
  if (!std::isfinite(lo)) lo = 0, hi = 1;
  if (hi - lo < 1e-9) hi = lo + 1;
  int x_first = xs.empty() ? 0 : xs.front(), x_last = xs.empty() ? 1 : std::max(xs.back(), x_first + 1);
  int pl = left + 50, pt = top + 30, pw = w - 70, ph = h - 70;  // plot area inside the panel
  c.text(left + 50, top + 8, title, kBlack, 2);
  for (int i = 0; i <= 4; ++i) {  // horizontal grid with values
    int y = pt + ph - ph * i / 4;
    c.line(pl, y, pl + pw, y, kGrey);
    c.text(left + 4, y - 3, number(lo + (hi - lo) * i / 4), kDark);
  }
  c.line(pl, pt, pl, pt + ph, kBlack);
  c.line(pl, pt + ph, pl + pw, pt + ph, kBlack);
  c.text(pl, pt + ph + 6, std::to_string(x_first), kDark);
  std::string last = std::to_string(x_last);
  c.text(pl + pw - Canvas::text_width(last), pt + ph + 6, last, kDark);
  c.text(pl + pw / 2 - 15, pt + ph + 18, "epoch", kDark);
  auto px = [&](int x) { return pl + pw * double(x - x_first) / (x_last - x_first); };
  auto py = [&](double v) { return pt + ph - ph * (v - lo) / (hi - lo); };
  int legend_y = pt + 4;
  for (const auto& s : series) {
    bool any = false;
    for (std::size_t i = 0; i < s.y.size() && i < xs.size(); ++i) {
      if (!std::isfinite(s.y[i])) continue;
      any = true;
      c.fill_rect(static_cast<int>(px(xs[i])) - 2, static_cast<int>(py(s.y[i])) - 2, 5, 5, s.color);
      if (i > 0 && std::isfinite(s.y[i - 1])) c.line(px(xs[i - 1]), py(s.y[i - 1]), px(xs[i]), py(s.y[i]), s.color, 2);
    }
    if (!any) continue;
    c.fill_rect(pl + pw - 110, legend_y + 2, 12, 4, s.color);
    c.text(pl + pw - 94, legend_y, s.name, kBlack);
    legend_y += 12;
  }
}

}  // namespace

void write_curves_png(const std::string& path, const std::vector<EpochPoint>& points) {
  Canvas c(960, 400);
  std::vector<int> xs;
  Series train_loss{{}, kBlue, "train loss"}, val_loss{{}, kOrange, "val loss"};
  Series train_top1{{}, kBlue, "train top-1"}, val_top1{{}, kOrange, "val top-1"}, val_top5{{}, kGreen, "val top-5"};
  for (const auto& p : points) {
    xs.push_back(p.epoch);
    train_loss.y.push_back(p.train_loss), val_loss.y.push_back(p.val_loss);
    train_top1.y.push_back(p.train_top1), val_top1.y.push_back(p.val_top1), val_top5.y.push_back(p.val_top5);
  }
  panel(c, 0, 0, 480, 400, "loss", xs, {train_loss, val_loss}, false);
  panel(c, 480, 0, 480, 400, "accuracy", xs, {train_top1, val_top1, val_top5}, true);
  c.write_png(path);
}

void write_confusion_png(const std::string& path, const std::vector<std::vector<std::int64_t>>& confusion,
                         const std::vector<std::string>& names) {
  GRAFT_CHECK(!confusion.empty() && !confusion.front().empty(), "confusion.png: empty confusion matrix");
  int rows = static_cast<int>(confusion.size()), cols = static_cast<int>(confusion.front().size());
  GRAFT_CHECK(rows <= 1000 && cols <= 1000, "confusion.png: ", rows, "x", cols, " is too large to draw");
  int cell = std::clamp(640 / std::max(rows, cols), 2, 48);
  // Rows are labelled "index name", columns by index (above the cells, when they are wide enough).
  auto row_label = [&](int r) {
    return std::to_string(r) + (r < int(names.size()) ? " " + names[r].substr(0, 20) : std::string());
  };
  int label_w = 0;
  for (int r = 0; r < rows; ++r) label_w = std::max(label_w, Canvas::text_width(row_label(r)));
  label_w = cell >= 10 ? label_w + 10 : 10;
  const int left = label_w, top = 40;
  const std::string title = "confusion: rows = true class, columns = predicted";
  Canvas c(std::max(left + cols * cell + 20, left + Canvas::text_width(title) + 20), top + rows * cell + 40);
  c.text(left, 8, title, kBlack, 1);
  if (cell >= 16)
    for (int k = 0; k < cols; ++k) c.text(left + k * cell + 2, top - 12, std::to_string(k), kBlack);
  for (int r = 0; r < rows; ++r) {
    std::int64_t total = 0;
    for (std::int64_t v : confusion[r]) total += v;
    if (cell >= 10) c.text(4, top + r * cell + cell / 2 - 3, row_label(r), kBlack);
    for (int k = 0; k < cols; ++k) {
      double share = total ? double(confusion[r][k]) / total : 0;
      auto shade = static_cast<std::uint32_t>(std::lround(255 * (1 - share)));
      std::uint32_t color =
          share > 0 ? (shade << 16) | (shade << 8) | 0xFF : 0xEEEEF4;  // light grey, then white -> blue
      c.fill_rect(left + k * cell, top + r * cell, cell - (cell > 4), cell - (cell > 4), color);
      if (cell >= 24 && confusion[r][k]) {
        std::string t = std::to_string(confusion[r][k]);
        c.text(left + k * cell + 2, top + r * cell + cell / 2 - 3, t, share > 0.5 ? 0xFFFFFF : kBlack);
      }
    }
  }
  c.write_png(path);
}

}  // namespace graft
