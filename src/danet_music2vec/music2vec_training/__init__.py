"""Training music2vec, the genre classifier, on clean training music: the data (:mod:`.data`), the
augmentations (:mod:`.augment`), pretrained SoundNet layers (:mod:`.soundnet`) and the loop (:mod:`.loop`)."""

from danet_music2vec.music2vec_training.augment import augment, lowpass
from danet_music2vec.music2vec_training.data import ClipSet, load_clip_set, random_crops
from danet_music2vec.music2vec_training.loop import TrainResult, build_model, train
from danet_music2vec.music2vec_training.soundnet import load_init_weights

__all__ = ["ClipSet", "TrainResult", "augment", "build_model", "load_clip_set", "load_init_weights", "lowpass",
           "random_crops", "train"]
