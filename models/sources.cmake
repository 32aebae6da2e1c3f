# Explicit source list of models/ (ResNet and VGG families, the zoo, surgery).
set(GRAFT_MODEL_SOURCES
  models/resnet.cpp
  models/resnet_v2.cpp
  models/vgg.cpp
  models/zoo.cpp
)
