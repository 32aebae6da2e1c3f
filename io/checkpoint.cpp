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

CheckpointMeta read_meta(const hdf5::File& file) {
  GRAFT_CHECK(file.has_attribute("/", "format") && attribute(file, "format") == kFormat, "checkpoint: '",
              file.path(), "' is not a graft checkpoint (no format = ", kFormat, " attribute)");
  CheckpointMeta m;
  m.graft_version = attribute(file, "graft_version");
  m.arch = attribute(file, "arch");
  m.dialect = attribute(file, "dialect");
  m.num_classes = static_cast<int>(integer(file, "num_classes"));
  m.epoch = integer(file, "epoch");
  m.step = integer(file, "step");
  m.schedule_step = integer(file, "schedule_step");
  m.rng_seed = static_cast<std::uint64_t>(std::stoull(attribute(file, "rng_seed")));
  m.rng_offset = static_cast<std::uint64_t>(std::stoull(attribute(file, "rng_offset")));
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
  for (const auto& [name, tensor] : model.state()) writer.dataset("/model/" + name, tensor);
  if (optimizer)
    for (const auto& [name, tensor] : optimizer->state()) writer.dataset("/optimizer/" + name, tensor);
  writer.commit();
}

CheckpointMeta read_checkpoint_meta(const std::string& path) { return read_meta(hdf5::File(path)); }

bool is_checkpoint(const std::string& path) {
  try {
    hdf5::File file(path);
    return file.has_attribute("/", "format") && attribute(file, "format") == kFormat;
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
