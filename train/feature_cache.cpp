#include "train/feature_cache.h"

#include "core/autograd.h"
#include "core/error.h"
#include "layers/basic.h"
#include "layers/batch_norm.h"
#include "models/zoo.h"
#include "train/progress.h"

namespace graft {

std::int64_t FeatureCache::batches(std::int64_t batch_size, bool drop_last) const {
  return drop_last ? size() / batch_size : (size() + batch_size - 1) / batch_size;
}

Tensor FeatureCache::labels_tensor(std::int64_t begin, std::int64_t end) const {
  std::vector<std::int32_t> part(labels.begin() + begin, labels.begin() + end);
  return Tensor::from_vector(part, {end - begin}, features.device());
}

TrainBatch FeatureCache::gather(const std::vector<std::int64_t>& order, std::int64_t begin, std::int64_t end) const {
  const std::int64_t n = end - begin;
  Tensor out = Tensor::empty({n, features.dim(1)}, features.device());
  std::vector<std::int32_t> y(static_cast<std::size_t>(n));
  NoGradGuard no_grad;
  for (std::int64_t i = 0; i < n;) {
    std::int64_t first = order[static_cast<std::size_t>(begin + i)], run = 1;
    while (i + run < n && order[static_cast<std::size_t>(begin + i + run)] == first + run) ++run;
    out.slice(i, i + run).copy_from(features.slice(first, first + run));
    for (std::int64_t k = 0; k < run; ++k) y[static_cast<std::size_t>(i + k)] = labels[static_cast<std::size_t>(first + k)];
    i += run;
  }
  return {out, Tensor::from_vector(y, {n}, features.device()), 0};
}

std::shared_ptr<Module> module_at(Module& root, const std::string& path) {
  Module* parent = &root;
  std::string rest = path;
  for (std::size_t dot; (dot = rest.find('.')) != std::string::npos; rest = rest.substr(dot + 1)) {
    parent = parent->child(rest.substr(0, dot));
    GRAFT_CHECK(parent, "module_at: ", root.type_name(), " has no module '", path, "'");
  }
  for (const auto& [name, child] : parent->children())
    if (name == rest) return child;
  GRAFT_FAIL("module_at: ", root.type_name(), " has no module '", path, "'");
}

std::string feature_cache_head(Module& model, const Loader& train, const TrainOptions& options) {
  if (!options.cache_features || train.options().transform.augments()) return "";
  std::string head = options.head;
  if (head.empty()) {
    if (!model.child("fc") && !model.find_module("classifier.6")) return "";
    head = head_path(model);
  }
  if (!model.find_module(head)) return "";
  auto inside = [&](const std::string& name) { return name == head || name.rfind(head + ".", 0) == 0; };
  bool head_trains = false;
  for (const auto& [name, p] : model.named_parameters()) {
    if (!p.requires_grad()) continue;
    if (!inside(name)) return "";
    head_trains = true;
  }
  if (!head_trains) return "";
  for (const auto& [name, m] : model.named_modules()) {
    auto* bn = dynamic_cast<BatchNorm2d*>(m);
    if (bn && !inside(name) && bn->use_batch_stats()) return "";
  }
  return head;
}

namespace {
// Puts the head back however extract_features leaves.
class HeadSwap {
 public:
  HeadSwap(Module& model, std::string path) : model_(model), path_(std::move(path)), head_(module_at(model, path_)) {
    model_.replace_module(path_, std::make_shared<Identity>());
  }
  ~HeadSwap() { model_.replace_module(path_, head_); }
  HeadSwap(const HeadSwap&) = delete;
  HeadSwap& operator=(const HeadSwap&) = delete;

 private:
  Module& model_;
  std::string path_;
  std::shared_ptr<Module> head_;
};
}  // namespace

FeatureCache extract_features(Module& model, const std::string& head, const Loader& source, bool progress,
                              const std::string& label) {
  LoaderOptions o = source.options();
  o.shuffle = false;
  o.drop_last = false;
  Loader loader(source.dataset(), o);
  bool was_training = model.is_training();
  FeatureCache cache;
  {
    HeadSwap swap(model, head);
    model.eval();
    NoGradGuard no_grad;
    std::vector<Tensor> parts;
    ProgressBar bar(label, loader.batches_per_epoch(), progress);
    loader.start_epoch(0);
    std::int64_t done = 0, images = 0;
    while (auto b = loader.next()) {
      ++done;
      if (b->labels.numel() == 0) continue;
      Tensor f = model(b->images);
      GRAFT_CHECK(f.ndim() == 2, "feature cache: the backbone's output has shape ", shape_str(f.shape()),
                  ", expected (batch, features)");
      parts.push_back(f);
      for (std::int32_t y : b->labels.to_int_vector()) cache.labels.push_back(y);
      images += b->labels.numel();
      bar.update(done, images, NAN);
    }
    bar.finish();
    GRAFT_CHECK(!parts.empty(), "feature cache: ", source.dataset()->describe(), " gave no readable example");
    cache.features = Tensor::empty({cache.size(), parts.front().dim(1)}, parts.front().device());
    std::int64_t row = 0;
    for (const Tensor& p : parts) {
      cache.features.slice(row, row + p.dim(0)).copy_from(p);
      row += p.dim(0);
    }
  }
  model.train(was_training);
  return cache;
}

}  // namespace graft
