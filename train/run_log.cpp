#include "train/run_log.h"

#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "io/temporary_file.h"

namespace graft {

namespace {
constexpr const char* kHeader = "epoch,step,train_loss,train_top1,val_loss,val_top1,val_top5,lr,images_per_s,seconds";

std::string field(double v, const char* format = "%.6g") {
  if (!std::isfinite(v)) return "";
  char buf[64];
  std::snprintf(buf, sizeof buf, format, v);
  return buf;
}
double parse(const std::string& s) { return s.empty() ? NAN : std::strtod(s.c_str(), nullptr); }
}  // namespace

RunLog::RunLog(std::string out_dir) : dir_(std::move(out_dir)) {}

void RunLog::resume(int epochs_done) {
  rows_.clear(), points_.clear();
  if (dir_.empty()) return;
  std::ifstream in(dir_ + "/log.csv");
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line.rfind("epoch", 0) == 0) continue;
    std::vector<std::string> f;
    std::stringstream ss(line);
    for (std::string cell; std::getline(ss, cell, ',');) f.push_back(cell);
    f.resize(10);
    EpochPoint p{static_cast<int>(parse(f[0])), parse(f[2]), parse(f[3]), parse(f[4]), parse(f[5]), parse(f[6])};
    if (p.epoch < 1 || p.epoch > epochs_done) continue;  // rows after the checkpoint are redone
    rows_.push_back(line), points_.push_back(p);
  }
}

void RunLog::add(const EpochPoint& p, std::int64_t step, double lr, double images_per_s, double seconds) {
  std::string row = std::to_string(p.epoch) + "," + std::to_string(step) + "," + field(p.train_loss) + "," +
                    field(p.train_top1) + "," + field(p.val_loss) + "," + field(p.val_top1) + "," + field(p.val_top5) +
                    "," + field(lr) + "," + field(images_per_s, "%.1f") + "," + field(seconds, "%.2f");
  rows_.push_back(row), points_.push_back(p);
  if (dir_.empty()) return;
  TemporaryFile log(dir_ + "/log.csv", "fit");
  std::FILE* out = log.create();
  std::fprintf(out, "%s\n", kHeader);
  for (const auto& r : rows_) std::fprintf(out, "%s\n", r.c_str());
  log.commit();
  write_curves_png(dir_ + "/curves.png", points_);
}

}  // namespace graft
