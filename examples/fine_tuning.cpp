// Fine-tuning: the last stage of an ImageNet network trains with a 10x smaller learning rate than its new head;
// BatchNorm keeps its ImageNet statistics (small batches). docs/tutorial.md explains each choice.
//   example_fine_tuning --arch resnet50|vgg16 --data DIR [--weights W.h5] [--size 224] [--epochs 3] [--steps N]
//     [--batch 16] [--lr 0.01 (head; backbone lr/10)] [--export OUT.h5 (in the weights' format: PyTorch or Keras)]
//   DIR: one folder of images per class.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/lr_schedule.h"
#include "io/dataset.h"
#include "io/loader.h"
#include "io/weights.h"
#include "models/zoo.h"
#include "train/trainer.h"
using namespace graft;

int main(int argc, char** argv) try {
  std::map<std::string, std::string> arg{{"--arch", "resnet50"}, {"--data", ""}, {"--weights", ""}, {"--size", "224"},
                                         {"--epochs", "3"}, {"--steps", "0"}, {"--batch", "16"}, {"--lr", "0.01"},
                                         {"--export", ""}};
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

  auto model = make_model(arch, model_options);
  const std::string head = head_path(*model);  // "fc" or "classifier.6"
  if (!weights.empty())  // its warnings: NaN or Inf values, layers matched by position rather than by name
    for (const std::string& w : load_weights(*model, weights, {.exclude = {head}}).warnings)
      std::fprintf(stderr, "warning: %s\n", w.c_str());
  model->freeze("*");
  if (resnet) freeze_batch_norm(*model);  // running statistics everywhere, also in the stage we unfreeze
  model->unfreeze(head);
  for (const char* stage : resnet ? std::vector<const char*>{"layer4"}  // the last stage, VGG16's block 5 below
                                  : std::vector<const char*>{"features.24", "features.26", "features.28"})
    model->unfreeze(stage);  // (its BatchNorm gamma/beta learn again; the statistics stay pinned)
  Device device = cuda_available() ? kCUDA : kCPU;
  model->to(device);
  // Two parameter groups: the pretrained stage moves 10x slower than the random head.
  std::vector<Tensor> backbone_params, head_params;
  for (auto& [name, p] : model->named_parameters())
    if (p.requires_grad()) (name.rfind(head + ".", 0) == 0 ? head_params : backbone_params).push_back(p);
  const float lr = std::stof(arg["--lr"]);
  SGD optimizer({{backbone_params, lr / 10, 1e-4f, "backbone"}, {head_params, lr, 1e-4f, "head"}}, {.momentum = 0.9f});

  LoaderOptions loader_options;
  loader_options.batch_size = std::stoi(arg["--batch"]), loader_options.device = device;
  loader_options.transform = {.size = std::stoi(arg["--size"]), .random_flip = true, .normalize = preprocess};
  Loader train(data.train, loader_options);
  loader_options.shuffle = false, loader_options.transform.random_flip = false;
  Loader validation(data.validation, loader_options), train_in_order(data.train, loader_options);

  TrainOptions train_options;
  train_options.epochs = std::stoi(arg["--epochs"]), train_options.max_steps = std::stoll(arg["--steps"]);
  const std::int64_t steps = train.batches_per_epoch() * train_options.epochs, max = train_options.max_steps;
  CosineWithWarmup schedule(optimizer, 0, max > 0 ? std::min(max, steps) : steps);  // both lrs: cosine to 0

  const std::uint64_t frozen = state_fingerprint(*model, StateSubset::Frozen);
  const std::uint64_t trainable = state_fingerprint(*model, StateSubset::Trainable);
  const double loss_before = evaluate(*model, train_in_order).loss;
  TrainResult result = fit(*model, optimizer, train, &validation, train_options, &schedule);
  const double loss_after = evaluate(*model, train_in_order).loss;
  std::printf("%s: %lld steps, training loss %.4f -> %.4f, validation top-1 %.3f\n", arch.c_str(),
              static_cast<long long>(result.steps), loss_before, loss_after, evaluate(*model, validation).top1);

  bool ok = result.steps > 0 && std::isfinite(loss_after) && loss_after < loss_before;
  ok &= state_fingerprint(*model, StateSubset::Frozen) == frozen;
  ok &= state_fingerprint(*model, StateSubset::Trainable) != trainable;
  std::printf("%s\n", ok ? "ok: frozen parameters and BatchNorm statistics unchanged, last stage and head trained"
                         : "FAILED: a frozen parameter changed, or training did not lower the training loss");

  // The way back: the model in the format its weights came in (PyTorch: load_state_dict; Keras: weights=OUT.h5),
  // read back here into a fresh model to show nothing was lost.
  if (const std::string out = arg["--export"]; !out.empty()) {
    info.format == WeightFormat::Torchvision ? export_torchvision(*model, out) : export_keras(*model, out);
    auto again = make_model(arch, model_options);
    load_weights(*again, out);
    const bool same = state_fingerprint(*again) == state_fingerprint(*model);
    std::printf("exported to %s (%s): %s\n", out.c_str(),
                info.format == WeightFormat::Torchvision ? "torchvision state_dict" : "Keras .h5 weights",
                same ? "reads back bit for bit" : "FAILED: it reads back different");
    ok &= same;
  }
  return ok ? 0 : 1;
} catch (const std::exception& e) {
  std::fprintf(stderr, "fine_tuning: %s\n", e.what());
  return 1;
}
