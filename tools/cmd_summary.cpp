// graft summary --arch A [--dialect D] [--num-classes N] [--size S] [--freeze P] [--freeze-bn]
#include <cstdio>

#include "layers/summary.h"
#include "tools/cli_common.h"

namespace graft::cli {

void register_summary(CLI::App& app) {
  auto* cmd = app.add_subcommand("summary", "print a model's layers, output shapes and parameter counts");
  auto args = std::make_shared<ModelArgs>();
  auto size = std::make_shared<int>(224);
  auto freeze = std::make_shared<std::string>();
  auto freeze_bn = std::make_shared<bool>(false);
  add_model_options(*cmd, *args);
  cmd->add_option("--size", *size, "input height and width")->capture_default_str()->check(CLI::Range(32, 4096));
  cmd->add_option("--freeze", *freeze, "freeze parameters matching this pattern (e.g. '*' or 'layer1.*')");
  cmd->add_flag("--freeze-bn", *freeze_bn, "put every BatchNorm into frozen (running statistics) mode");
  cmd->callback([=] {
    auto model = build_model(*args);
    if (!freeze->empty()) model->freeze(*freeze);
    if (*freeze_bn) freeze_batch_norm(*model);
    std::printf("%s (%s)\n%s", model->type_name().c_str(), built_dialect(*args).c_str(),
                summary(*model, {1, *size, *size, 3}).c_str());
  });
}

}  // namespace graft::cli
