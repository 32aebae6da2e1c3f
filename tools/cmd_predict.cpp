// graft predict: the top classes and probabilities for image files, or every image in folders. Class names: the
// checkpoint's (its training data's), ImageNet's for a 1000-output model without names, else the output index.
//   --batch N    images per forward pass (decoded in parallel on the CPU threads)
//   --csv FILE   also one CSV row per image: path, then class and probability (%.9g) for each of the --top classes;
//                written under a temporary name and renamed into place once every image is done
//   --strict     an unreadable image is an error; by default it is skipped with a warning (a missing path is always
//                an error)
#include <algorithm>
#include <cctype>
#include <cstdio>
#include <memory>

#include "core/autograd.h"
#include "core/error.h"
#include "core/ops.h"
#include "io/dataset.h"
#include "io/temporary_file.h"
#include "io/transforms.h"
#include "tools/cli_common.h"
#include "tools/image_batches.h"

namespace graft::cli {
namespace {

struct PredictArgs {
  std::string checkpoint, weights, arch, device = "auto", csv;
  std::vector<std::string> images;
  int size = 0, top = 5, batch = 32;
  bool strict = false;
};

void put(std::FILE* file, const std::string& text) { std::fwrite(text.data(), 1, text.size(), file); }

// A CSV field: quoted when it holds a comma, a quote or a line break (RFC 4180).
std::string csv_field(const std::string& text) {
  if (text.find_first_of(",\"\r\n") == std::string::npos) return text;
  std::string out = "\"";
  for (char ch : text) out += ch == '"' ? std::string("\"\"") : std::string(1, ch);
  return out + "\"";
}

// %.9g: a float's shortest exact-enough text (it reads back as the same float).
std::string probability_text(float p) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", static_cast<double>(p));
  return buf;
}

void predict(const PredictArgs& a) {
  if (!a.csv.empty()) check_output_file(a.csv, a.images, {a.checkpoint, a.weights}, "predict", "--csv");
  const std::vector<std::string> paths = image_paths(a.images, a.strict, "predict");
  InferenceModel m = load_inference_model(a.checkpoint, a.weights, a.arch);
  Device device = resolve_device(a.device);
  m.model->to(device);
  m.model->eval();
  const std::vector<std::string> names = output_class_names(m);
  TransformOptions t;
  t.size = a.size > 0 ? a.size : m.image_size;
  t.exact_resize = m.exact_resize;
  t.normalize = m.preprocess;
  t.antialias = m.antialias;

  std::unique_ptr<TemporaryFile> csv_file;  // renamed over --csv only once every image is done
  std::FILE* csv = nullptr;
  if (!a.csv.empty()) {
    csv_file = std::make_unique<TemporaryFile>(a.csv, "predict --csv");
    csv = csv_file->create();
  }
  bool csv_header = false;
  NoGradGuard no_grad;
  std::int64_t predicted = 0;
  const std::int64_t skipped = for_each_image_batch(
      paths, t, a.batch, a.strict, device, "predict", [&](const std::vector<std::size_t>& rows, const Tensor& x) {
        const std::vector<float> p = softmax((*m.model)(x)).to_vector();
        const std::size_t classes = p.size() / rows.size();
        const std::size_t k = std::min<std::size_t>(static_cast<std::size_t>(a.top), classes);
        if (csv && !csv_header) {
          std::string header = "path";
          for (std::size_t i = 1; i <= k; ++i)
            header += ",class" + std::to_string(i) + ",probability" + std::to_string(i);
          put(csv, header + "\n");
          csv_header = true;
        }
        for (std::size_t row = 0; row < rows.size(); ++row) {
          const float* prob = p.data() + row * classes;
          std::vector<std::size_t> idx(classes);
          for (std::size_t i = 0; i < classes; ++i) idx[i] = i;
          std::partial_sort(
              idx.begin(), idx.begin() + static_cast<std::ptrdiff_t>(k), idx.end(),
              [&](std::size_t i, std::size_t j) { return prob[i] > prob[j] || (prob[i] == prob[j] && i < j); });
          const std::string& path = paths[rows[row]];
          std::printf("%s\n", path.c_str());
          if (csv) put(csv, csv_field(path));
          for (std::size_t i = 0; i < k; ++i) {
            const std::string name = idx[i] < names.size() ? names[idx[i]] : "?";
            std::printf("  %.4f  %s\n", prob[idx[i]], name.c_str());
            if (csv) put(csv, "," + csv_field(name) + "," + probability_text(prob[idx[i]]));
          }
          if (csv) put(csv, "\n");
          ++predicted;
        }
        // a full disk stops the run here, not after the last image (the temporary is removed, --csv is as it was)
        GRAFT_CHECK(csv == nullptr || std::ferror(csv) == 0, "predict --csv: writing '", csv_file->name(),
                    "' failed (disk full?); '", a.csv, "' is as it was");
      });
  if (skipped > 0)
    std::fprintf(stderr, "graft: predict: %lld image(s), %lld unreadable skipped\n", static_cast<long long>(predicted),
                 static_cast<long long>(skipped));
  GRAFT_CHECK(predicted > 0, "predict: none of the ", paths.size(), " image(s) could be read");
  if (csv_file) csv_file->commit();
}

}  // namespace

void register_predict(CLI::App& app) {
  auto* cmd = app.add_subcommand("predict", "top-5 class names and probabilities for image files or folders");
  auto a = std::make_shared<PredictArgs>();
  add_inference_model_options(*cmd, a->checkpoint, a->weights, a->arch);
  cmd->add_option("images", a->images, "JPEG or PNG files, or folders (every .jpg/.jpeg/.png below them)")->required();
  cmd->add_option("--device", a->device, "auto | cpu | cuda")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "cpu", "cuda"}));
  cmd->add_option("--size", a->size, "input size (default: the checkpoint's, else 224)")->check(CLI::Range(8, 4096));
  cmd->add_option("--top", a->top, "classes shown per image")->capture_default_str()->check(CLI::Range(1, 1000));
  cmd->add_option("--batch", a->batch, "images per forward pass")->capture_default_str()->check(CLI::Range(1, 4096));
  cmd->add_option("--csv", a->csv, "also write one row per image: path, class1, probability1, ... (CSV)");
  cmd->add_flag("--strict", a->strict, "an unreadable image is an error (default: skipped with a warning)");
  cmd->callback([a] { predict(*a); });
}

}  // namespace graft::cli
