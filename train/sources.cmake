# The training loop library (train/): fit/evaluate, progress, run-directory logs and plots.
set(GRAFT_TRAIN_SOURCES
)
