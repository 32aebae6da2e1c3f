#include "io/checkpoint.h"

#include <map>
#include <set>

#include "core/autograd.h"
#include "core/error.h"
#include "io/hdf5.h"
#include "io/hdf5_write.h"

namespace graft {
namespace {

constexpr const char* kFormat = "graft-checkpoint";
#ifndef GRAFT_VERSION
#define GRAFT_VERSION "0.1.0"
#endif

std::string attribute(const hdf5::File& file, const std::string& name) {
  GRAFT_CHECK(file.has_attribute("/", name), "checkpoint: '", file.path(), "' has no attribute '", name, "'");
  auto values = file.string_list_attribute("/", name);
  GRAFT_CHECK(values.size() == 1, "checkpoint: attribute '", name, "' of '", file.path(), "' is not one string");
  return values.front();
}

std::int64_t integer(const hdf5::File& file, const std::string& name) {
  std::string text = attribute(file, name);
  try {
    std::size_t used = 0;
    long long value = std::stoll(text, &used);
    if (used == text.size()) return value;
  } catch (const std::exception&) {
  }
  GRAFT_FAIL("checkpoint: attribute '", name, "' of '", file.path(), "' is '", text, "', not an integer");
}

// std::stoull alone would accept "-1" (as 2^64-1) and throw std::invalid_argument, not graft::Error, on "x".
std::uint64_t unsigned_integer(const hdf5::File& file, const std::string& name) {
  std::string text = attribute(file, name);
  if (!text.empty() && text.find_first_not_of("0123456789") == std::string::npos) {
    try {
      return static_cast<std::uint64_t>(std::stoull(text));
    } catch (const std::exception&) {  // out of range
    }
  }
  GRAFT_FAIL("checkpoint: attribute '", name, "' of '", file.path(), "' is '", text, "', not an unsigned 64-bit integer");
}

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  if (text.empty()) return lines;
  std::size_t begin = 0;
  for (;;) {
    std::size_t end = text.find('\n', begin);
    lines.push_back(text.substr(begin, end == std::string::npos ? std::string::npos : end - begin));
    if (end == std::string::npos) return lines;
    begin = end + 1;
  }
}

CheckpointMeta read_meta(const hdf5::File& file) {
  GRAFT_CHECK(file.has_attribute("/", "format") && attribute(file, "format") == kFormat, "checkpoint: '",
              file.path(), "' is not a graft checkpoint (no format = ", kFormat, " attribute)");
  CheckpointMeta m;
  m.graft_version = attribute(file, "graft_version");
  m.arch = attribute(file, "arch");
  m.dialect = attribute(file, "dialect");
  const std::int64_t num_classes = integer(file, "num_classes");
  GRAFT_CHECK(num_classes >= 0 && num_classes <= (std::int64_t{1} << 24), "checkpoint: num_classes = ", num_classes,
              " in '", file.path(), "' is out of range [0, 2^24]");
  m.num_classes = static_cast<int>(num_classes);
  m.epoch = integer(file, "epoch");
  m.step = integer(file, "step");
  m.schedule_step = integer(file, "schedule_step");
  m.rng_seed = unsigned_integer(file, "rng_seed");
  m.rng_offset = unsigned_integer(file, "rng_offset");
  // Optional attributes (added later): absent in older checkpoints.
  if (file.has_string_list_attribute("/", "class_names"))  // one attribute, or chunks class_names0, 1, ...
    for (const std::string& chunk : file.string_list_attribute("/", "class_names"))
      for (std::string& name : split_lines(chunk)) m.class_names.push_back(std::move(name));
  if (file.has_string_list_attribute("/", "train_state")) {  // one attribute, or byte chunks train_state0, 1, ...
    std::string text;
    for (const std::string& chunk : file.string_list_attribute("/", "train_state")) text += chunk;
    for (const std::string& line : split_lines(text)) {
      std::size_t eq = line.find('=');
      GRAFT_CHECK(eq != std::string::npos, "checkpoint: train_state line '", line, "' of '", file.path(),
                  "' has no '='");
      m.train_state[line.substr(0, eq)] = line.substr(eq + 1);
    }
  }
  return m;
}

// Every dataset under `group`, keyed by its name relative to the group.
std::map<std::string, hdf5::DatasetInfo> datasets_of(const hdf5::File& file, const std::string& group) {
  std::map<std::string, hdf5::DatasetInfo> out;
  if (!file.has_group(group)) return out;
  for (const auto& info : file.datasets_below(group)) out[info.path.substr(group.size() + 1)] = info;
  return out;
}

}  // namespace

void save_checkpoint(const std::string& path, const Module& model, const Optimizer* optimizer,
                     const CheckpointMeta& meta) {
  hdf5::Writer writer(path);
  writer.attribute("format", kFormat);
  writer.attribute("graft_version", GRAFT_VERSION);
  writer.attribute("arch", meta.arch);
  writer.attribute("dialect", meta.dialect);
  writer.attribute("num_classes", std::to_string(meta.num_classes));
  writer.attribute("epoch", std::to_string(meta.epoch));
  writer.attribute("step", std::to_string(meta.step));
  writer.attribute("schedule_step", std::to_string(meta.schedule_step));
  writer.attribute("rng_seed", std::to_string(meta.rng_seed));
  writer.attribute("rng_offset", std::to_string(meta.rng_offset));
  // Class names, one per line, in as many attributes as HDF5's 64 KiB limit per attribute needs (class_names, or
  // class_names0, class_names1, ... past ~60 KB: thousands of classes; hdf5::File reads both as one list).
  constexpr std::size_t kChunkBytes = 60000;
  std::vector<std::string> name_chunks;
  std::string state;
  for (const std::string& name : meta.class_names) {
    GRAFT_CHECK(name.find('\n') == std::string::npos, "checkpoint: class name '", name, "' contains a newline");
    GRAFT_CHECK(name.size() < kChunkBytes, "checkpoint: a class name of ", name.size(), " bytes is too long to store");
    if (name_chunks.empty() || name_chunks.back().size() + 1 + name.size() > kChunkBytes)
      name_chunks.push_back(name);
    else
      name_chunks.back() += '\n' + name;
  }
  for (const auto& [key, value] : meta.train_state) {
    GRAFT_CHECK(key.find_first_of("=\n") == std::string::npos && value.find('\n') == std::string::npos,
                "checkpoint: train_state entry '", key, "' cannot be stored (no '=' or newline in keys)");
    if (!state.empty()) state += '\n';
    state += key + "=" + value;
  }
  if (name_chunks.size() == 1) writer.attribute("class_names", name_chunks.front());
  for (std::size_t i = 0; name_chunks.size() > 1 && i < name_chunks.size(); ++i)
    writer.attribute("class_names" + std::to_string(i), name_chunks[i]);
  // train_state likewise, cut into byte chunks (one value may be long: a class weight per class).
  if (!meta.train_state.empty() && state.size() <= kChunkBytes) writer.attribute("train_state", state);
  for (std::size_t i = 0; state.size() > kChunkBytes && i * kChunkBytes < state.size(); ++i)
    writer.attribute("train_state" + std::to_string(i), state.substr(i * kChunkBytes, kChunkBytes));
  for (const auto& [name, tensor] : model.state()) writer.dataset("/model/" + name, tensor);
  if (optimizer)
    for (const auto& [name, tensor] : optimizer->state()) writer.dataset("/optimizer/" + name, tensor);
  writer.commit();
}

CheckpointMeta read_checkpoint_meta(const std::string& path) { return read_meta(hdf5::File(path)); }

bool is_checkpoint(const hdf5::File& file) {
  try {
    return file.has_attribute("/", "format") && attribute(file, "format") == kFormat;
  } catch (const Error&) {
    return false;
  }
}

bool is_checkpoint(const std::string& path) {
  try {
    return is_checkpoint(hdf5::File(path));
  } catch (const Error&) {
    return false;
  }
}

CheckpointMeta load_checkpoint(const std::string& path, Module& model, Optimizer* optimizer) {
  hdf5::File file(path);
  CheckpointMeta meta = read_meta(file);
  // Check everything before touching the model: all-or-nothing.
  std::map<std::string, Tensor> state = model.state();
  std::map<std::string, hdf5::DatasetInfo> stored = datasets_of(file, "/model");
  std::string problems;
  for (const auto& [name, tensor] : state) {
    auto it = stored.find(name);
    if (it == stored.end()) problems += "\n  missing: " + name + " " + shape_str(tensor.shape());
    else if (it->second.shape != tensor.shape())
      problems += "\n  wrong shape: " + name + " is " + shape_str(it->second.shape) + " in the file, " +
                  shape_str(tensor.shape()) + " in the model";
  }
  for (const auto& [name, info] : stored)
    if (!state.count(name)) problems += "\n  unexpected: " + name + " " + shape_str(info.shape);
  GRAFT_CHECK(problems.empty(), "checkpoint: '", path, "' (", meta.arch, ") does not fit this ", model.type_name(),
              ":", problems);
  std::map<std::string, Tensor> values;
  for (const auto& [name, tensor] : state)
    values[name] = Tensor::from_vector(file.read_floats("/model/" + name), tensor.shape());
  std::map<std::string, Tensor> optimizer_state;
  if (optimizer)
    for (const auto& [name, info] : datasets_of(file, "/optimizer"))
      optimizer_state[name] = Tensor::from_vector(file.read_floats(info.path), info.shape);
  if (optimizer) optimizer->load_state(optimizer_state);  // validates before changing anything
  NoGradGuard no_grad;
  for (auto& [name, tensor] : state) tensor.copy_from(values[name]);
  return meta;
}

}  // namespace graft
