// TemporaryFile (io/temporary_file.h): an output is written under a temporary name beside it and renamed over it by
// commit(); anything short of a commit - a destructor, discard(), a failed write, a failed rename - leaves the
// output as it was and no temporary behind. (The temporary names themselves, and the clean-up of dead writers'
// temporaries, are tested with hdf5::Writer in test_hdf5.cpp.)
#include <gtest/gtest.h>
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "core/error.h"
#include "io/temporary_file.h"
#include "tests/check.h"
#include "tests/dataset_files.h"

namespace graft {
namespace {

namespace fs = std::filesystem;

std::string contents(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void write_text(const std::string& path, const std::string& text) { std::ofstream(path, std::ios::binary) << text; }

TEST(TemporaryFile, CommitReplacesTheOutputOnlyAtTheEnd) {
  testing::ScratchDir dir;
  const std::string path = dir / "out.csv";
  write_text(path, "old\n");
  TemporaryFile file(path, "test");
  EXPECT_EQ(file.path(), path);
  EXPECT_EQ(file.name().rfind(path + ".tmp-graft-" + std::to_string(::getpid()) + "-", 0), 0u) << file.name();
  std::FILE* out = file.create();
  std::fputs("new\n", out);
  std::fflush(out);
  EXPECT_EQ(contents(path), "old\n");  // until commit() the output is the old one
  EXPECT_EQ(testing::temporaries_beside(path), std::vector<std::string>{file.name()});
  file.commit();
  EXPECT_EQ(contents(path), "new\n");
  EXPECT_EQ(testing::temporaries_beside(path), std::vector<std::string>{});
  const std::string msg = testing::error_message([&] { file.commit(); });
  EXPECT_NE(msg.find("test: '" + path + "' was already committed"), std::string::npos) << msg;
}

TEST(TemporaryFile, WithoutACommitTheOutputIsAsItWasAndNoTemporaryStays) {
  testing::ScratchDir dir;
  const std::string path = dir / "out.csv", fresh = dir / "fresh.csv";
  write_text(path, "old\n");
  {
    TemporaryFile file(path, "test");
    std::fputs("half", file.create());
  }  // destroyed uncommitted, as when the writer throws
  EXPECT_EQ(contents(path), "old\n");
  {
    TemporaryFile file(fresh, "test");
    std::fputs("half", file.create());
    file.discard();
    EXPECT_EQ(testing::temporaries_beside(fresh), std::vector<std::string>{});
  }
  EXPECT_FALSE(fs::exists(fresh));
  EXPECT_EQ(testing::temporaries_beside(path), std::vector<std::string>{});
}

// A link planted at a temporary name (the older fixed name, or the very name this writer drew) is never written
// through: its target is untouched.
TEST(TemporaryFile, LinksAtTemporaryNamesAreRemovedNotFollowed) {
  testing::ScratchDir dir;
  const std::string path = dir / "out.png", victim = dir / "victim";
  write_text(victim, "keep");
  fs::create_symlink(victim, path + ".tmp-graft");
  std::string planted;
  {
    TemporaryFile file(path, "test");
    EXPECT_FALSE(fs::is_symlink(path + ".tmp-graft"));
    planted = file.name();
    fs::create_symlink(victim, planted);  // planted after the writer drew its name: O_EXCL refuses it, and it draws
    std::fputs("png", file.create());     // another
    EXPECT_NE(file.name(), planted);
    file.commit();
  }
  EXPECT_EQ(contents(path), "png");
  EXPECT_EQ(contents(victim), "keep");
  EXPECT_TRUE(fs::is_symlink(planted));  // not ours: left to the next writer, which removes links at such names
  TemporaryFile next(path, "test");
  EXPECT_FALSE(fs::is_symlink(planted));
  EXPECT_EQ(testing::temporaries_beside(path), std::vector<std::string>{});
  EXPECT_EQ(contents(victim), "keep");
}

// Two names drawn for one output differ, also across processes that share a process id (pid namespaces: graft as
// pid 1 in two containers writing one shared folder): the number after the pid is random.
TEST(TemporaryFile, NamesAreDrawnAtRandom) {
  const std::string a = temporary_path_for("/x/out.h5"), b = temporary_path_for("/x/out.h5");
  EXPECT_NE(a, b);
  const std::string prefix = "/x/out.h5.tmp-graft-" + std::to_string(::getpid()) + "-";
  ASSERT_EQ(a.rfind(prefix, 0), 0u) << a;
  ASSERT_EQ(b.rfind(prefix, 0), 0u) << b;
  // not a count from 0: two of 64 random bits are below 1000 with probability ~1e-16
  EXPECT_FALSE(std::stoull(a.substr(prefix.size())) < 1000 && std::stoull(b.substr(prefix.size())) < 1000) << a;
}

// The temporary stays locked from its creation until its rename, also once its stream (or, for a file another library
// writes, that library's descriptor) is closed: another writer of the output, clearing abandoned temporaries, leaves
// it alone however old it looks. And a file at the drawn name that this object did not create is never removed.
TEST(TemporaryFile, IsHeldUntilRenamedAndRemovesOnlyWhatItCreated) {
  testing::ScratchDir dir;
  const std::string path = dir / "out.h5";
  auto age = [](const std::string& name) {
    fs::last_write_time(name, fs::file_time_type::clock::now() - std::chrono::minutes(5));
  };
  {
    TemporaryFile ours(path, "test");
    std::fputs("data", ours.create());
    age(ours.name());
    remove_dead_temporaries(path);
    EXPECT_TRUE(fs::exists(ours.name()));
    ours.commit();
    EXPECT_EQ(contents(path), "data");
  }
  {
    TemporaryFile library(path, "test");  // as hdf5::Writer: the file made and closed by someone else
    const int fd = ::open(library.name().c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::write(fd, "h5", 2), 2);
    library.mark_created();
    ::close(fd);  // the library's descriptor goes; ours keeps the lock
    age(library.name());
    remove_dead_temporaries(path);
    EXPECT_TRUE(fs::exists(library.name()));
    library.commit();
    EXPECT_EQ(contents(path), "h5");
  }
  std::string foreign;
  {
    TemporaryFile unused(path, "test");
    foreign = unused.name();
    write_text(foreign, "someone else's");  // never created by `unused`
  }
  EXPECT_EQ(contents(foreign), "someone else's");
  EXPECT_EQ(contents(path), "h5");
}

// Every path closes what it opened: no descriptor is left behind by a commit, a discard, or a destruction.
TEST(TemporaryFile, LeavesNoDescriptorOpen) {
  testing::ScratchDir dir;
  auto open_descriptors = [] {
    std::size_t n = 0;
    for ([[maybe_unused]] const auto& entry : fs::directory_iterator("/proc/self/fd")) ++n;
    return n;
  };
  const std::size_t before = open_descriptors();
  {
    TemporaryFile kept(dir / "a", "test"), dropped(dir / "b", "test"), discarded(dir / "c", "test");
    std::fputs("a", kept.create());
    std::fputs("b", dropped.create());
    std::fputs("c", discarded.create());
    const std::size_t three_open = open_descriptors();
    EXPECT_GT(three_open, before);
    EXPECT_EQ((three_open - before) % 3, 0u);  // the same number each
    kept.commit();
    discarded.discard();
    EXPECT_EQ(open_descriptors(), before + (three_open - before) / 3);  // the dropped one's still open
  }
  EXPECT_EQ(open_descriptors(), before);
  EXPECT_TRUE(fs::exists(dir / "a"));
  EXPECT_FALSE(fs::exists(dir / "b"));
  EXPECT_FALSE(fs::exists(dir / "c"));
}

TEST(TemporaryFile, AFailedCreateOrRenameNamesTheFilesAndLeavesNothing) {
  testing::ScratchDir dir;
  std::string msg = testing::error_message([&] { TemporaryFile(dir / "no/such/dir/out.csv", "predict").create(); });
  EXPECT_NE(msg.find("predict: cannot create"), std::string::npos) << msg;
  EXPECT_NE(msg.find("directory missing or not writable?"), std::string::npos) << msg;
  const std::string busy = dir / "busy";  // a directory: a file cannot be renamed over it
  fs::create_directories(busy + "/inside");
  TemporaryFile file(busy, "fit");
  std::fputs("text", file.create());
  msg = testing::error_message([&] { file.commit(); });
  EXPECT_NE(msg.find("fit: cannot rename '" + file.name() + "' to '" + busy + "'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("is as it was"), std::string::npos) << msg;
  EXPECT_TRUE(fs::is_directory(busy + "/inside"));
  EXPECT_EQ(testing::temporaries_beside(busy), std::vector<std::string>{});
}

// Under a 64 KiB file size limit (a full disk, tests/check.h): the stream's buffered writes fail late, and commit()
// must see it, not rename a truncated file into place.
TEST(TemporaryFile, AFullDiskFailsTheCommitAndLeavesTheOutputAsItWas) {
  testing::ScratchDir dir;
  const std::string path = dir / "big.csv";
  write_text(path, "old\n");
  const int status = testing::exit_status_under_file_size_limit(64 * 1024, [&] {
    try {
      TemporaryFile file(path, "predict");
      std::FILE* out = file.create();
      const std::string row(1000, 'x');
      for (int i = 0; i < 1000; ++i) std::fputs((row + "\n").c_str(), out);
      file.commit();
      return 3;  // it should not have fitted
    } catch (const Error& e) {
      const std::string m = e.message();
      return m.find("predict: writing") != std::string::npos && m.find("disk full?") != std::string::npos &&
                     m.find("'" + path + "' is as it was") != std::string::npos
                 ? 0
                 : 4;
    }
  });
  EXPECT_EQ(status, 0) << "3: the write succeeded, 4: the message was not the expected one, < 0: a signal";
  EXPECT_TRUE(contents(path) == "old\n") << "the output now holds " << contents(path).size() << " bytes";
  EXPECT_EQ(testing::temporaries_beside(path), std::vector<std::string>{});
}

}  // namespace
}  // namespace graft
