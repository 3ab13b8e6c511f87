"""Training the separator: the loop (:mod:`.loop`) and what each architecture optimises (:mod:`.objectives`)."""

from danet_music2vec.separator_training.loop import (
    EpochStats, TrainResult, build_network, data_fingerprint, learning_rate, make_mixers, step_seeds, train_separator,
    validation_batches,
)
from danet_music2vec.separator_training.objectives import epoch_attractors, inference_masks, training_step, validate

__all__ = [
    "EpochStats", "TrainResult", "build_network", "data_fingerprint", "epoch_attractors", "inference_masks",
    "learning_rate", "make_mixers", "step_seeds", "train_separator", "training_step", "validate", "validation_batches",
]
