// Weight export, the way back (io/weights.h export_torchvision / export_keras): torchvision's file written back bit
// for bit, any module in torch layouts, Keras layouts a Keras application loads, and what each export refuses
// without writing a file; weights loaded into and exported from a model on the GPU.
#include "tests/weights_setup.h"

namespace graft {
namespace {

using namespace weights_test;

TEST(WeightsExport, WritesBackTheTorchvisionFileItLoaded) {
  // The fixture is torch's own state_dict (320 tensors and 53 int64 num_batches_tracked): load + export gives it
  // back dataset for dataset, bit for bit, so torch's load_state_dict(strict=True) takes the export.
  auto model = build("resnet50");
  load_weights(*model, fixture("resnet50_torchvision.h5"));
  const std::string path = temp_path("resnet50.h5");
  export_torchvision(*model, path);
  testing::expect_same_datasets(fixture("resnet50_torchvision.h5"), path);
  hdf5::File file(path);
  EXPECT_EQ(file.string_list_attribute("/", "arch"), std::vector<std::string>{"resnet50"});
  EXPECT_EQ(file.dataset_info("/layer4.2.bn3.num_batches_tracked").dtype, "int64");
  EXPECT_EQ(file.dataset_info("/layer4.2.bn3.num_batches_tracked").shape, Shape{});
  // And graft reads its own export as the torchvision file it is.
  auto again = build("resnet50");
  poison(*again);
  load_weights(*again, path);
  expect_same_state(*model, *again);
  std::filesystem::remove(path);  // 100 MB
}

TEST(WeightsExport, AnyModuleRoundTripsWithTorchLayouts) {
  // Not a zoo model: a conv (OIHW in the file), a batch norm and a linear layer, trained state in the buffers.
  auto make = [] {
    Generator gen(3);
    Conv2dConfig c;
    c.in_channels = 3, c.out_channels = 5, c.kernel_h = 3, c.kernel_w = 2;
    auto bn = std::make_shared<BatchNorm2d>(5);
    auto seq = std::make_shared<Sequential>(std::vector<std::shared_ptr<Module>>{
        std::make_shared<Conv2d>(c, gen), bn, std::make_shared<Linear>(5, 4, true, gen)});
    return seq;
  };
  auto model = make();
  Generator gen(11);
  for (auto& [name, t] : model->state()) t.copy_from(Tensor::uniform(t.shape(), gen, 0.5f, 2.f));
  const std::string path = temp_path("sequential.h5");
  export_torchvision(*model, path);
  hdf5::File file(path);
  EXPECT_FALSE(file.has_attribute("/", "arch"));
  ASSERT_EQ(file.dataset_info("/0.weight").shape, (Shape{5, 3, 3, 2}));  // (out,in,kh,kw)
  const std::vector<float> w = model->state()["0.weight"].to_vector(), oihw = file.read_floats("/0.weight");
  for (int o = 0; o < 5; ++o)
    for (int i = 0; i < 3; ++i)
      for (int h = 0; h < 3; ++h)
        for (int x = 0; x < 2; ++x) ASSERT_EQ(oihw[((o * 3 + i) * 3 + h) * 2 + x], w[((o * 3 + h) * 2 + x) * 3 + i]);
  EXPECT_EQ(file.read_floats("/2.weight"), model->state()["2.weight"].to_vector());  // linear (out,in) as is
  EXPECT_EQ(file.dataset_info("/1.num_batches_tracked").dtype, "int64");
  auto again = make();
  poison(*again);
  load_weights(*again, path);
  expect_same_state(*model, *again);
  std::filesystem::remove(path);
}

// A module with an integer buffer: weight files hold float32 only, so the export names the tensor and writes nothing.
struct Counter : Module {
  Counter() { register_buffer("count", Tensor::from_vector(std::vector<std::int32_t>{3}, {1})); }
  Tensor forward(const Tensor& x) override { return x; }
  std::string type_name() const override { return "Counter"; }
};

TEST(WeightsExport, RefusesIntegerTensors) {
  const std::string path = temp_path("int.h5");
  std::filesystem::remove(path);
  Counter counter;
  std::string msg = testing::error_message([&] { export_torchvision(counter, path); });
  EXPECT_NE(msg.find("count holds int32 values; weight files hold float32 tensors"), std::string::npos) << msg;
  EXPECT_FALSE(std::filesystem::exists(path));
}

TEST(WeightsExport, RefusesAKerasDialectResNetAndLeavesNoFile) {
  const std::string path = temp_path("keras.h5");
  std::filesystem::remove(path);
  auto keras = build("resnet50", Dialect::Keras);
  std::string msg = testing::error_message([&] { export_torchvision(*keras, path); });
  EXPECT_NE(msg.find("resnet50 in the keras dialect, which torchvision's ResNet cannot hold"), std::string::npos)
      << msg;
  EXPECT_FALSE(std::filesystem::exists(path));
  msg = testing::error_message([&] { export_torchvision(*build("resnet50v2", Dialect::Keras), path); });
  EXPECT_NE(msg.find("resnet50v2, Keras's pre-activation ResNet, which torchvision does not have"), std::string::npos)
      << msg;
  EXPECT_FALSE(std::filesystem::exists(path));
  const std::string bad_dir = temp_path("no-such-dir") + "/x.h5";
  msg = testing::error_message([&] { export_torchvision(*build("resnet18"), bad_dir); });
  EXPECT_NE(msg.find("cannot create"), std::string::npos) << msg;
}

TEST(WeightsExport, KerasRoundTripsAndWritesKerasLayouts) {
  // Keras's own layouts in, Keras's layouts out: load the fixture, export, load the export into a fresh model.
  auto model = build("resnet50", Dialect::Keras);
  load_weights(*model, fixture("resnet50_keras.h5"));
  const std::string path = temp_path("resnet50_keras.h5");
  export_keras(*model, path);
  hdf5::File file(path);
  const std::vector<std::string> layers = file.string_list_attribute("/", "layer_names");
  ASSERT_EQ(layers.size(), 107u);  // 53 convs, 53 batch norms, predictions
  EXPECT_EQ(layers[0], "conv1_conv");
  EXPECT_EQ(layers.back(), "predictions");
  EXPECT_EQ(file.string_list_attribute("/conv2_block1_0_bn", "weight_names"),
            (std::vector<std::string>{"conv2_block1_0_bn/gamma:0", "conv2_block1_0_bn/beta:0",
                                      "conv2_block1_0_bn/moving_mean:0", "conv2_block1_0_bn/moving_variance:0"}));
  // conv HWIO and dense (in,out), element by element against graft's (out,kh,kw,in) and (out,in)
  const std::vector<float> w = model->state()["layer1.0.conv2.weight"].to_vector();
  const std::vector<float> hwio = file.read_floats("/conv2_block1_2_conv/conv2_block1_2_conv/kernel:0");
  ASSERT_EQ(file.dataset_info("/conv2_block1_2_conv/conv2_block1_2_conv/kernel:0").shape, (Shape{3, 3, 64, 64}));
  for (int o = 0; o < 64; o += 7)
    for (int h = 0; h < 3; ++h)
      for (int x = 0; x < 3; ++x)
        for (int i = 0; i < 64; i += 5)
          ASSERT_EQ(hwio[((h * 3 + x) * 64 + i) * 64 + o], w[((o * 3 + h) * 3 + x) * 64 + i]);
  const std::vector<float> fc = model->state()["fc.weight"].to_vector();
  const std::vector<float> kernel = file.read_floats("/predictions/predictions/kernel:0");
  for (int o = 0; o < 1000; o += 37)
    for (int i = 0; i < 2048; i += 101) ASSERT_EQ(kernel[i * 1000 + o], fc[o * 2048 + i]);
  auto again = build("resnet50", Dialect::Keras);
  poison(*again);
  LoadReport report = load_weights(*again, path);
  EXPECT_FALSE(report.warnings.size() > 0 && contains(report.warnings, "by their position")) << report.str();
  expect_same_state(*model, *again);
  std::filesystem::remove(path);

  // Without its top: no predictions layer (Keras's include_top=False model has none either).
  auto notop = build("resnet50", Dialect::Keras, 1000, false);
  export_keras(*notop, path);
  EXPECT_EQ(hdf5::File(path).string_list_attribute("/", "layer_names").size(), 106u);
  std::filesystem::remove(path);
}

TEST(WeightsExport, KerasRefusesWhatNoKerasApplicationHoldsAndWritesNothing) {
  const std::string path = temp_path("refused.h5");
  std::filesystem::remove(path);
  auto refused = [&](Module& model, const std::string& p, const std::string& expected) {
    std::string msg = testing::error_message([&] { export_keras(model, p); });
    EXPECT_NE(msg.find(expected), std::string::npos) << msg;
    EXPECT_FALSE(std::filesystem::exists(p)) << p;
  };
  refused(*build("resnet50"), path, "resnet50 in the torchvision dialect; Keras's ResNet is the keras dialect");
  refused(*build("resnet50", Dialect::KerasLegacy), path, "BatchNorm eps 1e-3");
  refused(*build("resnet18", Dialect::Keras), path, "Keras has no application model for resnet18");
  refused(*build("vgg11"), path, "Keras has no application model for vgg11");
  refused(*build("resnext50_32x4d"), path, "Keras has no application model for resnext50_32x4d");
  refused(*build("resnet50", Dialect::Keras), temp_path("x.weights.h5"), "name it <something>.h5");
  refused(*build("vgg16"), temp_path("x.keras"), "only from a name ending in .h5 or .hdf5");
  auto custom = build("resnet50", Dialect::Keras);
  Generator gen(1);
  replace_head(*custom, std::make_shared<Sequential>(std::vector<std::shared_ptr<Module>>{
                            std::make_shared<Linear>(2048, 16, true, gen),
                            std::make_shared<Linear>(16, 3, true, gen)}));
  refused(*custom, path,
          "Keras's resnet50 has no place for the model's fc.0.bias (16), fc.0.weight (16,2048), fc.1.bias (3), "
          "fc.1.weight (3,16) (a custom head?");
  Sequential plain;
  refused(plain, path, "not a zoo ResNet or VGG");
}

TEST(Weights, LoadsIntoACudaModelAndExportsFromIt) {
  GRAFT_REQUIRE_CUDA();
  auto cpu = build("resnet50"), gpu = build("resnet50");
  gpu->to(kCUDA);
  Tensor conv1 = gpu->state()["conv1.weight"];
  load_weights(*cpu, fixture("resnet50_torchvision.h5"));
  load_weights(*gpu, fixture("resnet50_torchvision.h5"));
  EXPECT_EQ(conv1.impl(), gpu->state()["conv1.weight"].impl());
  EXPECT_TRUE(gpu->state()["conv1.weight"].is_cuda());
  for (auto& [name, t] : cpu->state()) EXPECT_EQ(t.to_vector(), gpu->state()[name].to(kCPU).to_vector()) << name;
  // and exports from the GPU: the file it came from, dataset for dataset
  const std::string path = temp_path("resnet50_from_gpu.h5");
  export_torchvision(*gpu, path);
  testing::expect_same_datasets(fixture("resnet50_torchvision.h5"), path);
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace graft
