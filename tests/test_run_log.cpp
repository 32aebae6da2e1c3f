// What a training run shows and leaves beside its checkpoints: the progress line (train/progress.h), log.csv and
// curves.png rewritten whole (train/run_log.h), and the PNG canvas they are drawn on (train/plot.h).
#include "tests/trainer_setup.h"

namespace graft {
namespace {

using namespace trainer_test;
using testing::expect_error;

// ---- progress bar and plots ------------------------------------------------------------------------------------

TEST(Trainer, ProgressLineShowsSpeedLossAndEta) {
  std::string line = ProgressBar::render("epoch 1/3", 50, 100, 123.0, 0.5, 75);
  EXPECT_EQ(line, "epoch 1/3 [============>           ] 50/100  123.0 img/s  loss 0.5000  ETA 1:15");
  EXPECT_EQ(ProgressBar::render("x", 0, 4, 0, NAN, NAN), "x [>                       ] 0/4  0.0 img/s  ETA ?");
}

// log.csv and curves.png are rewritten whole at each epoch (io/temporary_file.h): a folder that has gone away is an
// error naming the log, and a resumed log keeps the rows up to the checkpoint's epoch.
TEST(Trainer, RunLogRewritesItsFilesWholeAndSaysWhichFailed) {
  std::string dir = temp_dir("runlog");
  RunLog log(dir);
  log.add({1, 1.5, 0.25, 1.2, 0.5, 0.9}, 10, 0.1, 100.0, 2.0);
  log.add({2, 1.0, 0.5, 0.9, 0.75, 1.0}, 20, 0.1, 100.0, 2.0);
  for (const char* f : {"log.csv", "curves.png"}) {
    EXPECT_TRUE(fs::exists(dir + "/" + f)) << f;
    EXPECT_EQ(testing::temporaries_beside(dir + "/" + f), std::vector<std::string>{}) << f;
  }
  RunLog resumed(dir);
  resumed.resume(1);
  ASSERT_EQ(resumed.points().size(), 1u);
  EXPECT_EQ(resumed.points()[0].epoch, 1);
  fs::remove_all(dir);
  const std::string msg = testing::error_message([&] { log.add({3, 0.8, 0.6, 0.8, 0.8, 1.0}, 30, 0.1, 100.0, 2.0); });
  EXPECT_NE(msg.find("fit: cannot create"), std::string::npos) << msg;
  EXPECT_NE(msg.find("(for '" + dir + "/log.csv')"), std::string::npos) << msg;
}

TEST(Trainer, CanvasDrawsTextLinesAndWritesPng) {
  Canvas c(40, 20);
  c.line(0, 10, 39, 10, 0xFF0000);
  EXPECT_EQ(c.pixel(20, 10), 0xFF0000u);
  EXPECT_EQ(c.pixel(20, 5), 0xFFFFFFu);
  c.text(1, 1, "8", 0x000000);
  int dark = 0;
  for (int y = 0; y < 9; ++y)
    for (int x = 0; x < 8; ++x) dark += c.pixel(x, y) == 0;
  EXPECT_GT(dark, 6);  // the glyph's segments
  std::string dir = temp_dir("png");
  c.write_png(dir + "/c.png");
  Example e = load_image(dir + "/c.png");
  EXPECT_EQ(e.width, 40);
  EXPECT_EQ(e.height, 20);
  EXPECT_EQ(e.pixels[(10 * 40 + 20) * 3], 255);
  EXPECT_EQ(e.pixels[(10 * 40 + 20) * 3 + 1], 0);
  EXPECT_THROW(c.write_png(dir + "/no/such/dir/c.png"), Error);
  // A link planted at the name the plot was once written under is removed, not written through.
  std::ofstream(dir + "/victim") << "keep";
  fs::create_symlink(dir + "/victim", dir + "/d.png.tmp-graft");
  c.write_png(dir + "/d.png");
  EXPECT_EQ(load_image(dir + "/d.png").width, 40);
  EXPECT_EQ(testing::temporaries_beside(dir + "/d.png"), std::vector<std::string>{});
  std::ifstream victim(dir + "/victim");
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(victim), {}), "keep");
  write_confusion_png(dir + "/confusion.png", {{5, 1}, {0, 6}}, {"cat", "dog"});
  EXPECT_TRUE(fs::exists(dir + "/confusion.png"));
}

}  // namespace
}  // namespace graft
