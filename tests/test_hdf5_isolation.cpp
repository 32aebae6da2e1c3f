// Crash isolation for HDF5 reads (io/hdf5_isolation.h). The two damaged files in tests/fuzz/hdf5_regressions/ were
// found by the CI fuzzers: one crashes Debian 12's libhdf5 1.10.8 (a wild memcpy in H5HG_read), the other sends it
// into an endless loop. Each test first shows, in a child process of its own, that the file still does that to the
// real reader (inspect_weights) without isolation - so the test cannot pass because libhdf5 changed - and then that
// with isolation the same call throws a graft::Error and this process goes on.
#include <gtest/gtest.h>
#include <hdf5.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <string>
#include <thread>

#include "core/error.h"
#include "io/hdf5.h"
#include "io/hdf5_isolation.h"
#include "io/hdf5_write.h"
#include "io/weights.h"
#include "tests/check.h"
#include "tests/hdf5_damage.h"

using namespace graft;

namespace {

using graft::testing::error_message;

std::string regression_file(const std::string& name) {
  return std::string(GRAFT_FUZZ_CORPORA) + "/hdf5_regressions/" + name;
}

// Isolation on for one test, and back to what it was afterwards.
class IsolationOn {
 public:
  explicit IsolationOn(double seconds) : saved_(hdf5::isolation()) {
    hdf5::set_isolation({.enabled = true, .timeout_seconds = seconds});
  }
  ~IsolationOn() { hdf5::set_isolation(saved_); }
  IsolationOn(const IsolationOn&) = delete;
  IsolationOn& operator=(const IsolationOn&) = delete;

 private:
  hdf5::Isolation saved_;
};

enum class Outcome { Returned, Crashed, StillRunning };

// Runs `call` in a child process without isolation; kills it after `seconds`.
Outcome outcome_without_isolation(const std::function<void()>& call, double seconds) {
  std::fflush(nullptr);
  pid_t child = fork();
  if (child == 0) {
    rlimit no_core{0, 0};
    setrlimit(RLIMIT_CORE, &no_core);  // the crash is expected: no core file
    try {
      call();
    } catch (...) {
    }
    _exit(0);
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  int status = 0;
  while (waitpid(child, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      kill(child, SIGKILL);
      waitpid(child, &status, 0);
      return Outcome::StillRunning;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  // A sanitizer's report ends the child with its exit code (1) instead of a signal.
  return WIFSIGNALED(status) || WEXITSTATUS(status) != 0 ? Outcome::Crashed : Outcome::Returned;
}

}  // namespace

TEST(Hdf5Isolation, AFileThatCrashesLibhdf5IsRefusedWithAnError) {
  const std::string path = regression_file("crashes_libhdf5.h5");
  ASSERT_EQ(outcome_without_isolation([&] { inspect_weights(path); }, 60), Outcome::Crashed)
      << path << " no longer crashes libhdf5 when read without isolation";
  IsolationOn on(60);
  const std::string message = error_message([&] { inspect_weights(path); });
  EXPECT_NE(message.find("is damaged: libhdf5 crashed reading it in a check process"), std::string::npos) << message;
  EXPECT_NE(message.find(path), std::string::npos) << message;
}

TEST(Hdf5Isolation, AFileThatSendsLibhdf5IntoAnEndlessLoopIsRefusedAfterTheTimeLimit) {
  const std::string path = regression_file("loops_in_libhdf5.h5");
  ASSERT_EQ(outcome_without_isolation([&] { inspect_weights(path); }, 3), Outcome::StillRunning)
      << path << " no longer sends libhdf5 into a loop when read without isolation";
  IsolationOn on(1);
  const auto start = std::chrono::steady_clock::now();
  const std::string message = error_message([&] { inspect_weights(path); });
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_NE(message.find("did not finish within 1 s in a check process"), std::string::npos) << message;
  EXPECT_LT(seconds, 30) << "the check process was not stopped at its time limit";
  // The verdict is kept: opening the unchanged file again (is_checkpoint, then inspect_weights) fails at once.
  const auto again = std::chrono::steady_clock::now();
  EXPECT_EQ(error_message([&] { hdf5::File file(path); }), message);
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - again).count(), 0.5);
}

TEST(Hdf5Isolation, GoodFilesReadTheSameAndOrdinaryErrorsStayTheSame) {
  const std::string dir = ::testing::TempDir() + "/graft_isolation_" + std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  const std::string good = dir + "/good.h5", cut = dir + "/cut.h5";
  {
    hdf5::Writer writer(good);
    writer.dataset("block/weight", Tensor::arange(24).reshape({2, 3, 4}));
    writer.dataset("bias", Tensor::full({5}, 0.25f));
    writer.attribute("note", "written by the isolation test");
    writer.commit();
  }
  // The same file cut in half: libhdf5 reports it (no crash), and graft's error must not change with isolation.
  std::filesystem::copy_file(good, cut);
  std::filesystem::resize_file(cut, std::filesystem::file_size(good) / 2);

  auto read_all = [](const std::string& path) {
    hdf5::File file(path);
    std::vector<float> values = file.read_floats("/block/weight");
    for (float v : file.read_floats("/bias")) values.push_back(v);
    for (const auto& s : file.string_list_attribute("/", "note")) values.push_back(static_cast<float>(s.size()));
    return values;
  };
  const std::vector<float> plain = read_all(good);
  const std::string plain_error = error_message([&] { read_all(cut); });
  ASSERT_NE(plain_error, "(no graft::Error)");
  {
    IsolationOn on(60);
    EXPECT_EQ(read_all(good), plain);
    EXPECT_EQ(read_all(good), plain);  // the second open finds the file checked already
    EXPECT_EQ(error_message([&] { read_all(cut); }), plain_error);
    EXPECT_EQ(hdf5::File(good).attribute_names("/"), std::vector<std::string>{"note"});
  }
  std::filesystem::remove_all(dir);
}

TEST(Hdf5Isolation, TheTimeLimitMustBePositive) {
  const std::string message = error_message([] { hdf5::set_isolation({.enabled = true, .timeout_seconds = 0}); });
  EXPECT_NE(message.find("time limit must be positive"), std::string::npos) << message;
}

// The check's walk reaches every object once: below 64 levels (the readers follow paths of any depth), through a
// hard link that closes a cycle back to the root, and through a second link to a shared group.
TEST(Hdf5Isolation, TheCheckReadsEveryObjectOnceAtAnyDepthAndThroughCycles) {
  const std::string path = ::testing::TempDir() + "/graft_isolation_deep_" + std::to_string(::getpid()) + ".h5";
  constexpr int kDepth = 70;
  {
    hid_t file = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    ASSERT_GE(file, 0);
    std::vector<hid_t> groups{file};
    for (int level = 0; level < kDepth; ++level)
      groups.push_back(H5Gcreate2(groups.back(), "g", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    hsize_t dims[1] = {3};
    hid_t space = H5Screate_simple(1, dims, nullptr);
    hid_t ds = H5Dcreate2(groups.back(), "deep", H5T_IEEE_F32LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    const float values[3] = {1, 2, 3};
    H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, values);
    H5Dclose(ds);
    H5Sclose(space);
    ASSERT_GE(H5Lcreate_hard(groups.back(), "/", groups.back(), "back_to_root", H5P_DEFAULT, H5P_DEFAULT), 0);
    ASSERT_GE(H5Lcreate_hard(file, "/g/g", file, "shared", H5P_DEFAULT, H5P_DEFAULT), 0);
    for (std::size_t i = groups.size() - 1; i > 0; --i) H5Gclose(groups[i]);
    H5Fclose(file);
  }
  std::string deep = "";
  for (int level = 0; level < kDepth; ++level) deep += "/g";
  hdf5::File file(path);
  ASSERT_TRUE(file.has_dataset(deep + "/deep"));
  EXPECT_EQ(file.object_identity("/shared"), file.object_identity("/g/g"));
  EXPECT_EQ(file.object_identity(deep + "/back_to_root"), file.object_identity("/"));
  EXPECT_EQ(hdf5::read_everything(file), static_cast<std::size_t>(1 + kDepth + 1)) << "root, the groups, the dataset";
  std::filesystem::remove(path);
}

// A damaged object header on the way does not end the check's walk: the objects after it are read too (it used to
// stop there, once a link whose object cannot be opened became an error, leaving the rest of the file unchecked).
TEST(Hdf5Isolation, TheCheckWalksPastADamagedObject) {
  const std::string path = ::testing::TempDir() + "/graft_isolation_damaged_" + std::to_string(::getpid()) + ".h5";
  hdf5::write_float_datasets(path, {{"a", Tensor::ones({2})}, {"b", Tensor::ones({3})}, {"c", Tensor::ones({4})}});
  {
    hdf5::File intact(path);
    EXPECT_EQ(hdf5::read_everything(intact), 4u) << "root, a, b, c";
  }
  graft::testing::damage_object_header(path, "/a");
  hdf5::File file(path);
  EXPECT_EQ(hdf5::read_everything(file), 3u) << "root, b, c: a is passed over, the walk goes on";
  std::filesystem::remove(path);
}

// A program that ignores SIGCHLD (or was started with it ignored) would let the kernel reap the check process before
// graft could see how it ended: the check sets the default for its duration and restores the program's choice.
TEST(Hdf5Isolation, AnIgnoredSigchldDoesNotLetACrashThrough) {
  // A copy: a verdict kept for the fixture's own path from another test would answer without a check.
  const std::string path = ::testing::TempDir() + "/graft_isolation_sigchld_" + std::to_string(::getpid()) + ".h5";
  std::filesystem::copy_file(regression_file("crashes_libhdf5.h5"), path,
                             std::filesystem::copy_options::overwrite_existing);
  struct sigaction ignore {
  }, saved{}, after{};
  ignore.sa_handler = SIG_IGN;
  sigemptyset(&ignore.sa_mask);
  ASSERT_EQ(sigaction(SIGCHLD, &ignore, &saved), 0);
  std::string message;
  {
    IsolationOn on(60);
    message = error_message([&] { inspect_weights(path); });
  }
  sigaction(SIGCHLD, nullptr, &after);
  sigaction(SIGCHLD, &saved, nullptr);
  EXPECT_NE(message.find("libhdf5 crashed reading it in a check process"), std::string::npos) << message;
  EXPECT_EQ(after.sa_handler, SIG_IGN) << "the program's SIGCHLD disposition was not restored";
  std::filesystem::remove(path);
}
