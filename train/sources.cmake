# The training loop library (train/): fit/evaluate, progress, run-directory logs and plots.
set(GRAFT_TRAIN_SOURCES
  train/trainer.cpp
  train/evaluate.cpp
  train/run_settings.cpp
  train/interrupt.cpp
  train/class_weights.cpp
  train/feature_cache.cpp
  train/run_log.cpp
  train/run_lock.cpp
  train/progress.cpp
  train/plot.cpp
)
