// The HDF5 layer (io/hdf5.h, io/hdf5_write.h): the reader's attributes (fixed and variable length, nested, split
// lists) and its errors; the all-or-nothing Writer - what it refuses and leaves behind (nothing, no open object),
// symbolic links, concurrent writers of one file, UTF-8 typing, datasets grown a batch at a time, a full disk.
#include "tests/weights_setup.h"
#include "tests/hdf5_damage.h"

namespace graft {
namespace {

using namespace weights_test;

// ---- HDF5 reader ---------------------------------------------------------------------------------------------
TEST(Hdf5, FixedLengthNestedAndEmptyAttributes) {
  hdf5::File f(fixture("resnet50_keras.h5"));  // fixed-length strings (numpy 'S'), nested weight names
  auto names = f.string_list_attribute("/", "layer_names");
  ASSERT_GE(names.size(), 170u);
  EXPECT_EQ(names[0], "input_1");
  EXPECT_EQ(names[2], "conv1_conv");
  EXPECT_EQ(names.back(), "probs");
  EXPECT_EQ(f.string_list_attribute("/conv1_conv", "weight_names"),
            (std::vector<std::string>{"conv1_conv/kernel:0", "conv1_conv/bias:0"}));
  EXPECT_TRUE(f.string_list_attribute("/input_1", "weight_names").empty());  // float64 (0,)
  EXPECT_EQ(f.string_list_attribute("/", "keras_version"), std::vector<std::string>{"2.2.4"});
  EXPECT_EQ(f.dataset_info("/conv1_conv/conv1_conv/kernel:0").shape, (Shape{7, 7, 3, 64}));
  EXPECT_EQ(f.dataset_info("/conv1_conv/conv1_conv/kernel:0").dtype, "float32");
  EXPECT_TRUE(f.has_group("/conv1_conv/conv1_conv"));
  EXPECT_FALSE(f.has_group("/no/such/group"));
}

TEST(Hdf5, VariableLengthSplitAttributes) {
  hdf5::File f(fixture("resnet50_keras_2016.h5"));  // variable-length strings split into layer_names0/1
  EXPECT_FALSE(f.has_attribute("/", "layer_names"));
  EXPECT_TRUE(f.has_attribute("/", "layer_names1"));
  auto names = f.string_list_attribute("/", "layer_names");
  EXPECT_EQ(names.front(), "input_1");
  EXPECT_EQ(names.back(), "fc1000");
  EXPECT_EQ(f.string_list_attribute("/bn_conv1", "weight_names").back(), "bn_conv1_running_std:0");
}

TEST(Hdf5, ErrorsNameTheFileAndTheObject) {
  hdf5::File f(fixture("not_weights.h5"));
  std::string msg = testing::error_message([&] { f.read_floats("/data/labels"); });
  EXPECT_NE(msg.find("/data/labels"), std::string::npos) << msg;
  EXPECT_NE(msg.find("not_weights.h5"), std::string::npos) << msg;
  EXPECT_NE(msg.find("holds int64 values ("), std::string::npos) << msg;
  EXPECT_NE(msg.find("where floating-point values (float16/32/64) are expected"), std::string::npos) << msg;
  msg = testing::error_message([&] { f.dataset_info("/data/missing"); });
  EXPECT_NE(msg.find("has no dataset '/data/missing'"), std::string::npos) << msg;
  msg = testing::error_message([&] { f.string_list_attribute("/data", "layer_names"); });
  EXPECT_NE(msg.find("no attribute 'layer_names'"), std::string::npos) << msg;
}

// A dataset whose header is damaged is an error naming it wherever it is met - listed, probed or read - never absent.
TEST(Hdf5, ADamagedObjectIsAnErrorNamingItNeverAbsent) {
  const std::string path = temp_path("damaged_object.h5");
  hdf5::write_float_datasets(path, {{"a", Tensor::ones({2})}, {"b", Tensor::ones({3})}});
  testing::damage_object_header(path, "/b");
  hdf5::File f(path);
  EXPECT_EQ(f.children("/"), (std::vector<std::string>{"a", "b"}));  // the link is intact
  for (const auto& use : std::vector<std::function<void()>>{[&] { f.datasets_below("/"); },
                                                           [&] { f.has_dataset("/b"); },
                                                           [&] { f.read_floats("/b"); }}) {
    const std::string msg = testing::error_message(use);
    EXPECT_NE(msg.find("cannot open object '/b' (damaged file?)"), std::string::npos) << msg;
    EXPECT_NE(msg.find("damaged_object.h5"), std::string::npos) << msg;
  }
  EXPECT_TRUE(f.has_dataset("/a"));
  EXPECT_FALSE(f.has_dataset("/c"));  // a missing one is still just missing
}

// The id of a process that has ended (a child that exited and was reaped).
pid_t dead_process_id() {
  const pid_t child = fork();
  if (child == 0) _exit(0);
  waitpid(child, nullptr, 0);
  return child;
}

// How many objects libhdf5 has open in this process, by kind: files, datasets, groups, attributes. (Transient
// identifiers - dataspaces, datatypes, property lists - cannot be counted through the public API.)
std::vector<ssize_t> open_hdf5_objects() {
  hdf5::prepare_library();  // as graft starts the library (exit-time clean-up off), even when this call is the first
  std::vector<ssize_t> counts;
  for (unsigned kind : {H5F_OBJ_FILE, H5F_OBJ_DATASET, H5F_OBJ_GROUP, H5F_OBJ_ATTR})
    counts.push_back(H5Fget_obj_count(H5F_OBJ_ALL, kind));
  return counts;
}

TEST(Hdf5, WriterRefusesWhatItCannotStoreByNameAndLeavesNoFile) {
  const std::string path = temp_path("writer.h5");
  std::filesystem::remove(path);
  const std::vector<ssize_t> objects = open_hdf5_objects();
  auto refused = [&](const std::function<void(hdf5::Writer&)>& write, const std::string& expected) {
    std::string msg = testing::error_message([&] {
      hdf5::Writer writer(path);
      write(writer);
      writer.commit();
    });
    EXPECT_NE(msg.find(expected), std::string::npos) << msg;
    EXPECT_FALSE(std::filesystem::exists(path)) << expected;
    EXPECT_EQ(testing::temporaries_beside(path), std::vector<std::string>{}) << expected;
    // and the writer's file and datasets are closed again, whichever call failed
    EXPECT_EQ(open_hdf5_objects(), objects) << expected;
  };
  refused([](hdf5::Writer& w) { w.string_list_attribute("/", "names", {}); }, "an empty string list");
  refused([](hdf5::Writer& w) { w.string_list_attribute("/", "names", std::vector<std::string>(7000, "n00000001")); },
          "70000 bytes: HDF5 keeps attributes in a 64 KiB object header");
  refused([](hdf5::Writer& w) { w.string_list_attribute("/no_group", "names", {"a"}); },
          "attribute 'names' of '/no_group' (no such object");
  refused(
      [](hdf5::Writer& w) {
        w.dataset("x", Tensor::zeros({2}));
        w.dataset("x", Tensor::zeros({2}));
      },
      "dataset 'x' (a name written twice");
  refused(
      [](hdf5::Writer& w) {
        w.string_dataset("names", {"a", "bb"});
        w.string_dataset("names", {"a"});
      },
      "dataset 'names' (a name written twice");
  refused(
      [](hdf5::Writer& w) {
        w.append_rows("rows", Tensor::zeros({2, 3}));
        w.append_rows("rows", Tensor::zeros({2, 4}));
      },
      "do not continue a dataset of shape (2,3)");
  refused(
      [](hdf5::Writer& w) {
        w.dataset("whole", Tensor::zeros({2, 3}));
        w.append_rows("whole", Tensor::zeros({2, 3}));
      },
      "was written whole, not by append_rows");
  // What does fit: a scalar in a new group, a list read back as written.
  {
    hdf5::Writer writer(path);
    writer.int64_scalar("group/count", 7);
    writer.string_list_attribute("group", "names", {"a", "bb", "ccc"});
    writer.commit();
  }
  hdf5::File file(path);
  EXPECT_EQ(file.dataset_info("/group/count").dtype, "int64");
  EXPECT_EQ(file.dataset_info("/group/count").shape, Shape{});
  EXPECT_EQ(file.string_list_attribute("/group", "names"), (std::vector<std::string>{"a", "bb", "ccc"}));
  std::filesystem::remove(path);
}

// A Writer renames its finished file over the path: a symbolic link there would be replaced by a plain file (its
// target left as it was), so a link is refused before anything is written, and both it and its target stay.
TEST(Hdf5, WriterRefusesASymbolicLink) {
  const std::string target = temp_path("target.h5"), link = temp_path("link.h5");
  std::filesystem::remove(link);
  hdf5::write_float_datasets(target, {{"x", Tensor::ones({2})}});
  std::filesystem::create_symlink(target, link);
  const std::string msg = testing::error_message([&] { hdf5::write_float_datasets(link, {{"y", Tensor::ones({3})}}); });
  EXPECT_NE(msg.find("is a symbolic link"), std::string::npos) << msg;
  EXPECT_TRUE(std::filesystem::is_symlink(link));
  EXPECT_EQ(hdf5::File(target).dataset_info("/x").shape, Shape{2});
  std::filesystem::remove(link);
  // Links left at temporary names (the older fixed name, a dead writer's) are not followed: they are removed, and
  // the file written is a plain one.
  const std::string plain = temp_path("plain.h5");
  std::filesystem::remove(plain);
  std::filesystem::create_symlink(target, plain + ".tmp-graft");
  std::filesystem::create_symlink(target, plain + ".tmp-graft-" + std::to_string(dead_process_id()) + "-0");
  hdf5::write_float_datasets(plain, {{"y", Tensor::ones({3})}});
  EXPECT_FALSE(std::filesystem::is_symlink(plain));
  EXPECT_EQ(hdf5::File(plain).dataset_info("/y").shape, Shape{3});
  EXPECT_EQ(hdf5::File(target).dataset_info("/x").shape, Shape{2});  // the link's target is untouched
  EXPECT_EQ(testing::temporaries_beside(plain), std::vector<std::string>{});
  std::filesystem::remove(plain);
  std::filesystem::remove(target);
}

// Temporary names (io/temporary_file.h): new for every writer, so two writers of one file at once - in one process
// or two - each finish their own and the last commit wins; leftovers nobody writes (the older fixed name, a dead
// process's, a living process's untouched for minutes) are removed by the next writer; a fresh one of a living
// process, one whose writer holds its flock, and names graft does not make are not.
TEST(Hdf5, ConcurrentWritersOfOneFileNeverShareATemporaryAndDeadOnesAreCleanedUp) {
  const std::string path = temp_path("shared.h5");
  std::filesystem::remove(path);
  const std::string a = temporary_path_for(path), b = temporary_path_for(path);
  EXPECT_NE(a, b);
  EXPECT_EQ(a.rfind(path + ".tmp-graft-" + std::to_string(getpid()) + "-", 0), 0u) << a;
  {
    hdf5::Writer first(path), second(path);
    first.dataset("who", Tensor::full({1}, 1.f));
    second.dataset("who", Tensor::full({1}, 2.f));
    EXPECT_EQ(testing::temporaries_beside(path).size(), 2u);
    // held (flocked) while written, however old they look: a third writer clearing abandoned temporaries keeps them
    for (const std::string& name : testing::temporaries_beside(path))
      std::filesystem::last_write_time(name, std::filesystem::file_time_type::clock::now() - std::chrono::minutes(5));
    remove_dead_temporaries(path);
    EXPECT_EQ(testing::temporaries_beside(path).size(), 2u);
    first.commit();
    EXPECT_EQ(hdf5::File(path).read_floats("/who"), std::vector<float>{1.f});
    second.commit();
  }
  EXPECT_EQ(hdf5::File(path).read_floats("/who"), std::vector<float>{2.f});
  EXPECT_EQ(testing::temporaries_beside(path), std::vector<std::string>{});

  int release[2];
  ASSERT_EQ(pipe(release), 0);
  const pid_t alive = fork();
  ASSERT_GE(alive, 0);
  if (alive == 0) {
    close(release[1]);
    char byte;
    while (read(release[0], &byte, 1) > 0) {
    }
    _exit(0);
  }
  close(release[0]);
  const std::string dead = path + ".tmp-graft-" + std::to_string(dead_process_id()) + "-3";
  const std::string living = path + ".tmp-graft-" + std::to_string(alive) + "-0";
  // a living process's temporary last written two minutes ago and held by nobody: abandoned (its writer's pid may
  // belong to another process namespace, where the number means another process)
  const std::string stale = path + ".tmp-graft-" + std::to_string(alive) + "-1";
  // a writer this process cannot see (another pid namespace: its pid looks dead here) that holds its flock: kept
  const std::string held = path + ".tmp-graft-" + std::to_string(dead_process_id()) + "-2";
  const std::string older = path + ".tmp-graft", foreign = path + ".tmp-graft-notes";
  for (const std::string& name : {dead, living, stale, held, older, foreign}) std::ofstream(name) << "x";
  std::filesystem::last_write_time(stale, std::filesystem::file_time_type::clock::now() - std::chrono::minutes(2));
  const int held_fd = ::open(held.c_str(), O_RDONLY);
  ASSERT_GE(held_fd, 0);
  hold_temporary(held_fd);
  remove_dead_temporaries(path);
  EXPECT_FALSE(std::filesystem::exists(dead));
  EXPECT_FALSE(std::filesystem::exists(older));
  EXPECT_FALSE(std::filesystem::exists(stale));
  EXPECT_TRUE(std::filesystem::exists(living));
  EXPECT_TRUE(std::filesystem::exists(held));
  EXPECT_TRUE(std::filesystem::exists(foreign));
  ::close(held_fd);
  kill(alive, SIGKILL);
  waitpid(alive, nullptr, 0);
  close(release[1]);
  remove_dead_temporaries(path);
  EXPECT_FALSE(std::filesystem::exists(living));
  EXPECT_FALSE(std::filesystem::exists(held));
  std::filesystem::remove(foreign);
  std::filesystem::remove(path);
}

// String datasets and attributes say UTF-8 only when they are: graft features' /paths holds file names, which on
// Linux may be Latin-1 bytes; h5py's asstr() fails on a dataset typed UTF-8 whose bytes are not. Those are typed
// ASCII (h5py gives bytes) and read back unchanged by graft.
TEST(Hdf5, StringsAreTypedUtf8OnlyWhenTheyAreUtf8) {
  const std::string path = temp_path("strings.h5");
  const std::vector<std::pair<std::string, bool>> cases = {
      {"plain", true},          {"caf\xc3\xa9", true},        {"\xf0\x9f\x98\x80", true},  // ASCII, e-acute, an emoji
      {"caf\xe9", false},       {"\xc0\xaf", false},          // Latin-1; an overlong '/'
      {"\xed\xa0\x80", false}, {"\xe2\x82", false}};         // a UTF-16 surrogate; a cut sequence
  {
    hdf5::Writer writer(path);
    for (std::size_t i = 0; i < cases.size(); ++i) {
      writer.string_dataset("s" + std::to_string(i), {"first", cases[i].first});
      writer.attribute("a" + std::to_string(i), cases[i].first);
    }
    writer.commit();
  }
  hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  ASSERT_GE(file, 0);
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const H5T_cset_t want = cases[i].second ? H5T_CSET_UTF8 : H5T_CSET_ASCII;
    hid_t set = H5Dopen2(file, ("s" + std::to_string(i)).c_str(), H5P_DEFAULT);
    hid_t type = H5Dget_type(set);
    EXPECT_EQ(H5Tget_cset(type), want) << "dataset " << i;
    H5Tclose(type), H5Dclose(set);
    hid_t attr = H5Aopen(file, ("a" + std::to_string(i)).c_str(), H5P_DEFAULT);
    type = H5Aget_type(attr);
    EXPECT_EQ(H5Tget_cset(type), want) << "attribute " << i;
    H5Tclose(type), H5Aclose(attr);
  }
  H5Fclose(file);
  hdf5::File back(path);
  for (std::size_t i = 0; i < cases.size(); ++i)
    EXPECT_EQ(back.string_list_attribute("/", "a" + std::to_string(i)), std::vector<std::string>{cases[i].first}) << i;
  std::filesystem::remove(path);
}

// graft features writes its rows a batch at a time, so a million images need no 8 GB buffer.
TEST(Hdf5, AppendRowsGrowsADatasetBatchByBatchAndRefusesAnotherRowShape) {
  const std::string path = temp_path("append.h5");
  std::filesystem::remove(path);
  const Tensor a = Tensor::arange(24).reshape({3, 2, 4}), b = Tensor::arange(40).reshape({5, 2, 4});
  {
    hdf5::Writer writer(path);
    writer.append_rows("group/rows", a);
    writer.append_rows("group/rows", Tensor::zeros({0, 2, 4}));
    writer.append_rows("group/rows", b);
    writer.dataset("whole", Tensor::zeros({2, 4}));
    EXPECT_NE(testing::error_message([&] { writer.append_rows("group/rows", Tensor::zeros({1, 4, 2})); })
                  .find("rows of shape (1,4,2) do not continue a dataset of shape (8,2,4)"),
              std::string::npos);
    EXPECT_NE(testing::error_message([&] { writer.append_rows("group/rows", Tensor::zeros({2, 2})); })
                  .find("do not continue a dataset of shape (8,2,4)"),
              std::string::npos);
    EXPECT_NE(testing::error_message([&] { writer.append_rows("whole", Tensor::zeros({1, 4})); })
                  .find("was written whole, not by append_rows, and cannot grow"),
              std::string::npos);
    EXPECT_NE(testing::error_message([&] { writer.append_rows("scalar", Tensor::zeros({})); })
                  .find("have no first axis to grow"),
              std::string::npos);
    writer.commit();
  }
  hdf5::File file(path);
  EXPECT_EQ(file.dataset_info("/group/rows").shape, (Shape{8, 2, 4}));
  std::vector<float> expected = a.to_vector(), tail = b.to_vector();
  expected.insert(expected.end(), tail.begin(), tail.end());
  EXPECT_EQ(file.read_floats("/group/rows"), expected);
  std::filesystem::remove(path);
}

// A full disk, stood in for by a file-size limit (RLIMIT_FSIZE, with SIGXFSZ ignored so writes fail with EFBIG):
// every write path reports it as a graft::Error at the call that failed and leaves no file. Before, append_rows
// missed a failure that showed only when the dataset was closed (the chunk cache is written then), so a committed
// file could hold rows of zeros. It runs in a child process (testing::exit_status_under_file_size_limit), so that
// the limit reaches no other test; the child ends with _exit: libhdf5 keeps the failed file's chunk cache, which
// LeakSanitizer would report at a normal exit. That
// the process then exits normally (libhdf5's exit-time cleanup used to segfault after a failed write) is
// tests/cli_features.sh's part, through the CLI.
TEST(Hdf5, AFullDiskIsAnErrorOnEveryWritePathAndLeavesNoFile) {
  const std::string path = temp_path("full.h5"), report = temp_path("full.txt");
  std::filesystem::remove(path);
  const int status = testing::exit_status_under_file_size_limit(300000, [&] {
    std::FILE* out = std::fopen(report.c_str(), "w");
    auto attempt = [&](const std::function<void(hdf5::Writer&)>& write) {
      try {
        hdf5::Writer writer(path);
        write(writer);
        writer.commit();
        std::fprintf(out, "no error\n");
      } catch (const Error& e) {
        std::fprintf(out, "%s\n", e.what());
      }
      std::fprintf(out, "left: %d %d\n", int(std::filesystem::exists(path)),
                   int(testing::temporaries_beside(path).size()));
    };
    attempt([](hdf5::Writer& w) {
      for (int i = 0; i < 8; ++i) w.append_rows("features", Tensor::ones({32, 2048}));
    });
    attempt([](hdf5::Writer& w) { w.dataset("x", Tensor::ones({200000})); });
    attempt([](hdf5::Writer& w) { w.append_rows("features", Tensor::ones({2, 2048})); });  // fits
    std::fclose(out);
    return 0;
  });
  EXPECT_EQ(status, 0) << "the child exited with that status (< 0: died of that signal)";
  std::vector<std::string> lines;
  {
    std::ifstream in(report);
    for (std::string line; std::getline(in, line);) lines.push_back(line);
  }
  ASSERT_EQ(lines.size(), 6u);
  // At the call that failed (the append, the dataset), not later at commit(); nothing left behind.
  EXPECT_NE(lines[0].find("appending to dataset 'features' (disk full"), std::string::npos) << lines[0];
  EXPECT_EQ(lines[1], "left: 0 0");
  EXPECT_NE(lines[2].find("dataset 'x' (disk full"), std::string::npos) << lines[2];
  EXPECT_EQ(lines[3], "left: 0 0");
  EXPECT_EQ(lines[4], "no error");
  EXPECT_EQ(lines[5], "left: 1 0");
  EXPECT_EQ(hdf5::File(path).dataset_info("/features").shape, (Shape{2, 2048}));
  std::filesystem::remove(path);
  std::filesystem::remove(report);
}

}  // namespace
}  // namespace graft
