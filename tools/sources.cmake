# Executables: graft (the CLI) and graft_demo (a 2-layer MLP trained end to end).
add_executable(graft_cli tools/graft.cpp tools/cli_app.cpp tools/cli_common.cpp tools/cmd_summary.cpp tools/cmd_bench.cpp tools/cmd_weights.cpp
                         tools/cmd_finetune.cpp tools/cmd_eval.cpp tools/cmd_predict.cpp tools/cmd_features.cpp
                         tools/finetune_setup.cpp tools/image_batches.cpp
                         tools/kernel_profile.cpp)
set_target_properties(graft_cli PROPERTIES OUTPUT_NAME graft)
target_link_libraries(graft_cli PRIVATE graft)
target_compile_options(graft_cli PRIVATE ${GRAFT_WARNINGS})

add_executable(graft_demo tools/demo_mlp.cpp)
target_link_libraries(graft_demo PRIVATE graft)
target_compile_options(graft_demo PRIVATE ${GRAFT_WARNINGS})

# graft_study: the main job (README command (a)): Fashion-MNIST transfer-learning study, three ways.
add_executable(graft_study tools/study_fashion.cpp tools/cli_common.cpp)
target_link_libraries(graft_study PRIVATE graft)
target_compile_options(graft_study PRIVATE ${GRAFT_WARNINGS})

# graft_graph_memcheck_probe: CUDA graphs under compute-sanitizer memcheck without graft (tools/graph_memcheck_probe.cu;
# tools/device_check.sh runs it with GRAFT_MEMCHECK=1).
if(GRAFT_CUDA)
  add_executable(graft_graph_memcheck_probe tools/graph_memcheck_probe.cu)
  target_link_libraries(graft_graph_memcheck_probe PRIVATE CUDA::cudart_static)
endif()
