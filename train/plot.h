// Small raster plots for the run directory, drawn on an RGB pixel canvas and written as PNG (stb_image_write,
// text with stb_easy_font's segment font): no plotting library, no fonts on disk.
//   curves.png     left: train and validation loss per epoch; right: train top-1 and validation top-1/top-5
//   confusion.png  one cell per (true class, predicted class), shade = share of the true class's images; rows labelled
//                  "index name", columns by index
// Files are written under a temporary name and renamed into place, so a reader never sees half a PNG.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace graft {

// An RGB image, row-major, 3 bytes per pixel. Drawing clips to the canvas.
class Canvas {
 public:
  Canvas(int width, int height, std::uint32_t background = 0xFFFFFF);
  int width() const { return width_; }
  int height() const { return height_; }
  const std::vector<std::uint8_t>& pixels() const { return pixels_; }
  std::uint32_t pixel(int x, int y) const;  // 0xRRGGBB

  void fill_rect(int x, int y, int w, int h, std::uint32_t color);
  void line(double x0, double y0, double x1, double y1, std::uint32_t color, int thickness = 1);
  // Text with its top-left corner at (x, y); scale 1 = stb_easy_font's ~6x7-pixel glyphs.
  void text(int x, int y, const std::string& text, std::uint32_t color, int scale = 1);
  static int text_width(const std::string& text, int scale = 1);
  // PNG through a temporary file renamed into place; throws graft::Error naming the path on failure.
  void write_png(const std::string& path) const;

 private:
  int width_, height_;
  std::vector<std::uint8_t> pixels_;
};

// One row of the training log. NaN marks a value that was not measured (e.g. no validation data).
struct EpochPoint {
  int epoch = 0;  // 1-based
  double train_loss = 0, train_top1 = 0, val_loss = 0, val_top1 = 0, val_top5 = 0;
};
void write_curves_png(const std::string& path, const std::vector<EpochPoint>& points);

// confusion[true][predicted]; names label the rows (and the columns while there are as many outputs).
void write_confusion_png(const std::string& path, const std::vector<std::vector<std::int64_t>>& confusion,
                         const std::vector<std::string>& names);

}  // namespace graft
