# Executables: the demo (main job until the transfer-learning workflow lands) and, later, the graft CLI.
add_executable(graft_demo tools/demo_mlp.cpp)
target_link_libraries(graft_demo PRIVATE graft)
target_compile_options(graft_demo PRIVATE ${GRAFT_WARNINGS})
