// Feature extraction: an ImageNet network, frozen, with a new head trained on your own images. docs/tutorial.md
// explains each step; without --weights the backbone is random (a smoke test).
//   example_feature_extraction --arch resnet50|vgg16 --data DIR [--weights W.h5] [--size 224] [--epochs 3] ...
//                              [--steps N] [--batch 16] [--lr 0.01]    (DIR: one folder of images per class)
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <map>
#include <stdexcept>
#include <string>

#include "io/dataset.h"
#include "io/loader.h"
#include "io/weights.h"
#include "models/zoo.h"
#include "train/trainer.h"
using namespace graft;

int main(int argc, char** argv) try {
  std::map<std::string, std::string> arg{{"--arch", "resnet50"}, {"--data", ""}, {"--weights", ""}, {"--size", "224"},
                                         {"--epochs", "3"}, {"--steps", "0"}, {"--batch", "16"}, {"--lr", "0.01"}};
  for (int i = 1; i < argc; i += 2) {
    if (!arg.count(argv[i]) || i + 1 == argc) throw std::runtime_error(std::string("bad argument ") + argv[i]);
    arg[argv[i]] = argv[i + 1];
  }
  if (arg["--data"].empty()) throw std::runtime_error("--data DIR is required");
  const std::string arch = arg["--arch"], weights = arg["--weights"];
  const bool resnet = is_resnet_arch(arch);

  // The weights decide the ResNet dialect and the preprocessing: torch for torchvision's, caffe for Keras's.
  const WeightFileInfo info = weights.empty() ? WeightFileInfo{} : inspect_weights(weights);  // {}: torchvision
  ModelOptions model_options{.dialect = dialect_of(arch, info.dialect)};  // the file's, where arch has dialects
  // torch, caffe, or tf (Keras's V2 ResNets); without weights, what the architecture's own weights would use
  const Preprocess preprocess = weights.empty() ? preprocess_for(arch, model_options.dialect) : preprocess_for(info);
  TrainValidation data = split_train_validation(open_dataset(arg["--data"], true), 0.25, 0);  // 25% of each class
  model_options.num_classes = data.train->num_classes();

  // A new head for our classes; everything else comes from ImageNet and stays fixed.
  auto model = make_model(arch, model_options);
  if (!weights.empty())  // its warnings: NaN or Inf values, layers matched by position rather than by name
    for (const std::string& w : load_weights(*model, weights, {.exclude = {head_path(*model)}}).warnings)
      std::fprintf(stderr, "warning: %s\n", w.c_str());
  model->freeze("*");
  model->unfreeze(head_path(*model));
  if (resnet) freeze_batch_norm(*model);  // BN keeps ImageNet statistics under train()
  Device device = cuda_available() ? kCUDA : kCPU;
  model->to(device);

  LoaderOptions loader_options;
  loader_options.batch_size = std::stoi(arg["--batch"]), loader_options.device = device;
  // No random augmentation: fit() can then compute the backbone's features once and train the head on them.
  loader_options.transform = {.size = std::stoi(arg["--size"]), .normalize = preprocess};
  Loader train(data.train, loader_options);
  loader_options.shuffle = false;
  Loader validation(data.validation, loader_options), train_in_order(data.train, loader_options);

  SGD optimizer(model->trainable_parameters(), {.lr = std::stof(arg["--lr"]), .momentum = 0.9f});
  TrainOptions train_options;
  train_options.epochs = std::stoi(arg["--epochs"]), train_options.max_steps = std::stoll(arg["--steps"]);

  const std::uint64_t frozen = state_fingerprint(*model, StateSubset::Frozen);
  const std::uint64_t head = state_fingerprint(*model, StateSubset::Trainable);
  const double loss_before = evaluate(*model, train_in_order).loss;
  TrainResult result = fit(*model, optimizer, train, &validation, train_options);
  const double loss_after = evaluate(*model, train_in_order).loss;
  std::printf("%s: %lld steps, feature cache %s, training loss %.4f -> %.4f, validation top-1 %.3f\n",
              arch.c_str(), static_cast<long long>(result.steps), result.used_feature_cache ? "used" : "not used",
              loss_before, loss_after, evaluate(*model, validation).top1);

  // The recipe's promises, checked: the backbone is untouched, the head learned.
  bool ok = result.steps > 0 && std::isfinite(loss_after) && loss_after < loss_before;
  ok &= state_fingerprint(*model, StateSubset::Frozen) == frozen;
  ok &= state_fingerprint(*model, StateSubset::Trainable) != head;
  std::printf("%s\n", ok ? "ok: frozen parameters unchanged, head trained, training loss lower"
                         : "FAILED: a frozen parameter changed, or training did not lower the training loss");
  return ok ? 0 : 1;
} catch (const std::exception& e) {
  std::fprintf(stderr, "feature_extraction: %s\n", e.what());
  return 1;
}
