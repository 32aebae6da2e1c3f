// graft eval: top-1, top-5, per-class accuracy and the confusion matrix of a model on a dataset's test split
// (confusion.png with --out). Also the model loading shared with `graft predict`: a graft checkpoint (the model is
// built from its metadata; its preprocessing, image size and class names come with it) or a weight file with --arch.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <sstream>

#include "core/error.h"
#include "io/checkpoint.h"
#include "io/dataset.h"
#include "io/weights.h"
#include "tools/cli_common.h"
#include "train/plot.h"
#include "train/trainer.h"

namespace graft::cli {

namespace {

// `text` left-aligned in `columns` characters: UTF-8 characters are counted, not bytes, so class folders named
// "café" and "cafe" line up (East Asian wide characters still take two columns each).
std::string padded_to(const std::string& text, std::size_t columns) {
  std::size_t characters = 0;
  for (unsigned char byte : text) characters += (byte & 0xC0) != 0x80;  // continuation bytes are 10xxxxxx
  return characters >= columns ? text : text + std::string(columns - characters, ' ');
}
int classes_in_weights(const WeightFileInfo& info) {
  for (const auto& t : info.tensors) {
    if (t.graft_name != "fc.weight" && t.graft_name != "classifier.6.weight") continue;
    GRAFT_CHECK(t.shape.size() == 2, "weights: classifier weight '", t.name, "' has shape ", shape_str(t.shape));
    return static_cast<int>(info.format == WeightFormat::Torchvision ? t.shape[0] : t.shape[1]);
  }
  GRAFT_FAIL("weights: the file has no classifier layer (fc / predictions): eval and predict need one");
}
}  // namespace

InferenceModel load_inference_model(const std::string& checkpoint, const std::string& weights,
                                    const std::string& arch) {
  GRAFT_CHECK(checkpoint.empty() != weights.empty(),
              "give either --checkpoint FILE or --weights FILE (and --arch when the file does not tell it)");
  InferenceModel out;
  const std::string& path = checkpoint.empty() ? weights : checkpoint;
  GRAFT_CHECK(std::filesystem::is_regular_file(path), "cannot open '", path, "': no such file");
  if (is_checkpoint(path)) {
    out.meta = read_checkpoint_meta(path);
    GRAFT_CHECK(arch.empty() || arch == out.meta.arch, "'", path, "' holds a ", out.meta.arch, ", not a ", arch);
    ModelOptions o;
    o.num_classes = out.meta.num_classes;
    o.dialect = parse_dialect(out.meta.dialect);
    out.model = make_model(out.meta.arch, o);
    load_checkpoint_reporting(path, *out.model, nullptr);
    const auto& s = out.meta.train_state;
    out.preprocess =
        s.count("preprocess") ? parse_preprocess(s.at("preprocess")) : preprocess_for(out.meta.arch, o.dialect);
    if (s.count("image_size")) out.image_size = std::stoi(s.at("image_size"));
    out.exact_resize = s.count("resize") && s.at("resize") == "exact";
    out.antialias = trained_with_antialias(out.meta);
    return out;
  }
  if (!checkpoint.empty()) {
    // Why not: a damaged or truncated file (HDF5's own reason), or a file without graft's format attribute.
    std::string reason = "no graft checkpoint metadata";
    try {
      read_checkpoint_meta(path);
    } catch (const Error& e) {
      reason = e.message();
    }
    GRAFT_FAIL("--checkpoint '", checkpoint, "' is not a readable graft checkpoint (", reason,
               "); weight files go with --weights");
  }
  WeightFileInfo info = inspect_weights(path);
  std::string a = arch.empty() ? info.arch_guess : arch;
  GRAFT_CHECK(!a.empty(), "cannot tell the architecture of '", path, "': pass --arch");
  ModelOptions o;
  o.num_classes = classes_in_weights(info);
  o.dialect = dialect_of(a, info.dialect);
  out.model = make_model(a, o);
  load_weights_reporting(*out.model, path);
  out.meta.arch = a;
  out.meta.dialect = dialect_name(o.dialect);
  out.meta.num_classes = o.num_classes;
  out.preprocess = preprocess_for(info);
  return out;
}

std::vector<std::string> output_class_names(const InferenceModel& m) {
  if (!m.meta.class_names.empty()) {
    std::vector<std::string> names = m.meta.class_names;
    for (int i = static_cast<int>(names.size()); i < m.meta.num_classes; ++i) names.push_back(std::to_string(i));
    return names;
  }
  if (m.meta.num_classes == 1000) return imagenet_class_names();
  std::vector<std::string> names;
  for (int i = 0; i < m.meta.num_classes; ++i) names.push_back(std::to_string(i));
  return names;
}

namespace {

struct EvalArgs {
  std::string checkpoint, weights, arch, data, device = "auto", out, classes;
  int batch = 64, size = 0, workers = -1;
  bool strict = false;
};

void eval(const EvalArgs& a) {
  std::error_code ec;  // --out is a folder for confusion.png: made before the evaluation, not after it
  GRAFT_CHECK(a.out.empty() || !std::filesystem::exists(a.out, ec) || std::filesystem::is_directory(a.out, ec),
              "eval: --out '", a.out, "' exists and is not a folder (confusion.png is written into --out)");
  if (!a.out.empty()) {
    std::filesystem::create_directories(a.out, ec);
    GRAFT_CHECK(!ec, "eval: cannot create the folder --out '", a.out, "': ", ec.message());
  }
  InferenceModel m = load_inference_model(a.checkpoint, a.weights, a.arch);
  Device device = resolve_device(a.device);
  m.model->to(device);
  DatasetPtr data = open_dataset(a.data, /*train=*/false, ImageFolderOptions{a.strict});
  // --classes picks classes of the data by index, as given to graft finetune.
  auto select = [&](const std::string& subset) {
    std::vector<int> classes;
    std::stringstream ss(subset);
    for (std::string item; std::getline(ss, item, ',');) {
      try {
        classes.push_back(std::stoi(item));
      } catch (const std::exception&) {
        GRAFT_FAIL("--classes '", subset, "': '", item, "' is not a class index");
      }
    }
    data = select_classes(data, classes);
  };
  if (!m.meta.class_names.empty()) {
    // A checkpoint knows its classes by name: the data's classes are matched to them by name, whatever folders the
    // data has and in whatever order. Without --classes, data classes the model never learnt are left out (as a
    // model trained on a class subset is evaluated on that subset); with --classes, each chosen one must be known.
    if (!a.classes.empty()) select(a.classes);
    std::vector<std::string> dropped;
    data = match_classes(data, m.meta.class_names, a.classes.empty(), &dropped);
    if (!dropped.empty())
      std::printf("eval: %zu class(es) of the data are not the checkpoint's and are left out (the first: '%s')\n",
                  dropped.size(), dropped.front().c_str());
    GRAFT_CHECK(data->size() > 0, "eval: no image of ", a.data, " belongs to a class of the checkpoint");
  } else {
    std::printf("eval: the model file names no classes: the data's classes are its outputs 0, 1, ... in the data's "
                "order\n");
    // Without class names, classes are positions: a checkpoint trained on a class subset (graft finetune --classes)
    // brings its subset along unless --classes is given.
    std::string subset = a.classes;
    const auto recorded = m.meta.train_state.find(std::string(kSettingPrefix) + "classes");
    if (subset.empty() && recorded != m.meta.train_state.end() && !recorded->second.empty()) {
      subset = recorded->second;
      std::printf("eval: the checkpoint was trained on classes %s of its data: evaluating on those\n", subset.c_str());
    }
    if (!subset.empty()) select(subset);
  }
  GRAFT_CHECK(m.meta.num_classes <= 0 || data->num_classes() <= m.meta.num_classes, "eval: ", data->describe(),
              " has ", data->num_classes(), " classes but the model has ", m.meta.num_classes,
              " outputs: evaluate it on the classes it was trained on (--classes, as given to graft finetune)");
  LoaderOptions lo;
  lo.batch_size = a.batch;
  lo.shuffle = false;
  lo.workers = default_workers(a.workers, device);
  lo.strict = a.strict;
  lo.device = device;
  lo.transform.size = a.size > 0 ? a.size : m.image_size;
  lo.transform.exact_resize = m.exact_resize || a.data.rfind("fashion-mnist", 0) == 0 || a.data.rfind("cifar", 0) == 0;
  lo.transform.normalize = m.preprocess;
  lo.transform.antialias = m.antialias;
  Loader loader(data, lo);
  EvalResult r = evaluate(*m.model, loader);
  std::printf("eval: %s on %s: %lld images\ntop-1 %.2f%%  top-5 %.2f%%  loss %.4f\n", m.meta.arch.c_str(),
              data->describe().c_str(), static_cast<long long>(r.images), 100 * r.top1, 100 * r.top5, r.loss);
  const auto& names = data->class_names();
  std::vector<double> acc = r.per_class_accuracy();
  std::printf("per-class accuracy:\n");
  for (std::size_t c = 0; c < acc.size(); ++c) {
    std::int64_t n = 0;
    for (auto v : r.confusion[c]) n += v;
    const std::string name = padded_to(names[c], 24);
    if (std::isnan(acc[c])) std::printf("  %s      -  (0 images)\n", name.c_str());
    else std::printf("  %s %6.2f%%  (%lld images)\n", name.c_str(), 100 * acc[c], static_cast<long long>(n));
  }
  const std::size_t cols = r.confusion.empty() ? 0 : r.confusion.front().size();
  if (cols <= 30) {
    std::printf("confusion matrix (rows: true class, columns: predicted):\n%6s", "");
    for (std::size_t k = 0; k < cols; ++k) std::printf(" %6zu", k);
    std::printf("\n");
    for (std::size_t c = 0; c < r.confusion.size(); ++c) {
      std::printf("%6zu", c);
      for (auto v : r.confusion[c]) std::printf(" %6lld", static_cast<long long>(v));
      std::printf("\n");
    }
  } else {
    std::printf("confusion matrix: %zu x %zu, not printed (see --out)\n", r.confusion.size(), cols);
  }
  if (!a.out.empty()) {
    std::filesystem::create_directories(a.out);
    write_confusion_png(a.out + "/confusion.png", r.confusion, names);
    std::printf("wrote %s/confusion.png\n", a.out.c_str());
  }
}

}  // namespace

void add_inference_model_options(CLI::App& cmd, std::string& checkpoint, std::string& weights, std::string& arch) {
  cmd.add_option("--checkpoint", checkpoint, "graft checkpoint (e.g. RUN/best.h5 from graft finetune)");
  cmd.add_option("--weights", weights, "weight file (torchvision export, Keras .h5) with its classifier");
  cmd.add_option("--arch", arch, "architecture (default: the file's)");
}

void register_eval(CLI::App& app) {
  auto* cmd = app.add_subcommand("eval", "top-1/top-5, per-class accuracy and confusion matrix on a test set");
  auto a = std::make_shared<EvalArgs>();
  add_inference_model_options(*cmd, a->checkpoint, a->weights, a->arch);
  cmd->add_option("--data", a->data, "fashion-mnist[:DIR] | cifar10:DIR | cifar100:DIR | image folder DIR (its test split)")->required();
  cmd->add_option("--classes", a->classes, "class subset, e.g. 5,6,7 (as given to finetune)");
  cmd->add_option("--device", a->device, "auto | cpu | cuda")->capture_default_str()->check(CLI::IsMember({"auto", "cpu", "cuda"}));
  cmd->add_option("--batch", a->batch, "batch size")->capture_default_str()->check(CLI::Range(1, 65536));
  cmd->add_option("--size", a->size, "input size (default: the checkpoint's, else 224)")->check(CLI::Range(8, 4096));
  cmd->add_option("--workers", a->workers, "decoding threads (default: all cores but one, at most 16, on the GPU; 2 on the CPU)")
      ->check(CLI::Range(0, 256));
  cmd->add_option("--out", a->out, "directory for confusion.png");
  cmd->add_flag("--strict", a->strict, "an unreadable image is an error");
  cmd->callback([a] { eval(*a); });
}

}  // namespace graft::cli
