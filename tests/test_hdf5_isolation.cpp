// Crash isolation for HDF5 reads (io/hdf5_isolation.h). The two damaged files in tests/fuzz/hdf5_regressions/ were
// found by the CI fuzzers: one crashes Debian 12's libhdf5 1.10.8 (a wild memcpy in H5HG_read), the other sends it
// into an endless loop. Each test first shows, in a child process of its own, that the file still does that to the
// real reader (inspect_weights) without isolation - so the test cannot pass because libhdf5 changed - and then that
// with isolation the same call throws a graft::Error and this process goes on.
#include <gtest/gtest.h>
#include <signal.h>
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

using namespace graft;

namespace {

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

std::string error_of(const std::function<void()>& call) {
  try {
    call();
  } catch (const Error& e) {
    return e.message();
  }
  return "(no error)";
}

enum class Outcome { Returned, Crashed, StillRunning };

// Runs `call` in a child process without isolation; kills it after `seconds`.
Outcome outcome_without_isolation(const std::function<void()>& call, double seconds) {
  std::fflush(nullptr);
  pid_t child = fork();
  if (child == 0) {
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
  const std::string message = error_of([&] { inspect_weights(path); });
  EXPECT_NE(message.find("is damaged: libhdf5 crashed reading it in a check process"), std::string::npos) << message;
  EXPECT_NE(message.find(path), std::string::npos) << message;
}

TEST(Hdf5Isolation, AFileThatSendsLibhdf5IntoAnEndlessLoopIsRefusedAfterTheTimeLimit) {
  const std::string path = regression_file("loops_in_libhdf5.h5");
  ASSERT_EQ(outcome_without_isolation([&] { inspect_weights(path); }, 3), Outcome::StillRunning)
      << path << " no longer sends libhdf5 into a loop when read without isolation";
  IsolationOn on(1);
  const auto start = std::chrono::steady_clock::now();
  const std::string message = error_of([&] { inspect_weights(path); });
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_NE(message.find("did not finish within 1 s in a check process"), std::string::npos) << message;
  EXPECT_LT(seconds, 30) << "the check process was not stopped at its time limit";
  // The verdict is kept: opening the unchanged file again (is_checkpoint, then inspect_weights) fails at once.
  const auto again = std::chrono::steady_clock::now();
  EXPECT_EQ(error_of([&] { hdf5::File file(path); }), message);
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
  const std::string plain_error = error_of([&] { read_all(cut); });
  ASSERT_NE(plain_error, "(no error)");
  {
    IsolationOn on(60);
    EXPECT_EQ(read_all(good), plain);
    EXPECT_EQ(read_all(good), plain);  // the second open finds the file checked already
    EXPECT_EQ(error_of([&] { read_all(cut); }), plain_error);
    EXPECT_EQ(hdf5::File(good).attribute_names("/"), std::vector<std::string>{"note"});
  }
  std::filesystem::remove_all(dir);
}

TEST(Hdf5Isolation, TheTimeLimitMustBePositive) {
  const std::string message = error_of([] { hdf5::set_isolation({.enabled = true, .timeout_seconds = 0}); });
  EXPECT_NE(message.find("time limit must be positive"), std::string::npos) << message;
}
