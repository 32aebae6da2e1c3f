// log.csv and curves.png in a run directory: one row per finished epoch,
//   epoch,step,train_loss,train_top1,val_loss,val_top1,val_top5,lr,images_per_s,seconds
// (empty fields where nothing was measured, e.g. without validation data). Both files are rewritten whole after
// every epoch through a temporary file renamed into place. Internal to train/.
#pragma once
#include <string>
#include <vector>

#include "train/plot.h"

namespace graft {

class RunLog {
 public:
  explicit RunLog(std::string out_dir);  // empty: a log that writes nothing
  // Keeps the rows of an existing log.csv up to epoch `epochs_done` (resume); a missing file is fine.
  void resume(int epochs_done);
  void add(const EpochPoint& point, std::int64_t step, double lr, double images_per_s, double seconds);
  const std::vector<EpochPoint>& points() const { return points_; }

 private:
  std::string dir_;
  std::vector<std::string> rows_;
  std::vector<EpochPoint> points_;
};

}  // namespace graft
