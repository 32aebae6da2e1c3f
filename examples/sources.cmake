# The example programs (examples/*.cpp): the two transfer-learning recipes, each a complete program on the public
# API. tests/CMakeLists.txt runs them on a tiny image folder.
foreach(example feature_extraction fine_tuning)
  add_executable(example_${example} examples/${example}.cpp)
  target_link_libraries(example_${example} PRIVATE graft)
  target_compile_options(example_${example} PRIVATE ${GRAFT_WARNINGS})
endforeach()
