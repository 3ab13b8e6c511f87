"""Genre classification of a whole track: crops + test-time averaging over a trained music2vec.

The network was trained on random crops of ``crop_seconds``; a track is cut into
crops every ``hop_seconds`` (plus one crop flush with the end, so the tail counts),
the crops are classified in batches, and their softmax probabilities are averaged.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import numpy as np
import torch

from danet_music2vec.audio import resample
from danet_music2vec.models.music2vec import Music2Vec
from danet_music2vec import checkpoints


def crop_starts(n_samples: int, crop: int, hop: int) -> list[int]:
    """Start of every crop: 0, hop, 2 hop, ... and one more flush with the end if the hops miss the tail."""
    if n_samples <= crop:
        return [0]
    starts = list(range(0, n_samples - crop + 1, hop))
    if starts[-1] + crop < n_samples:
        starts.append(n_samples - crop)
    return starts


class Classifier:
    """A trained music2vec with its class names and the crop geometry used at test time."""

    def __init__(
        self,
        model: Music2Vec,
        classes: Sequence[str],
        sample_rate: int = 22050,
        crop_seconds: float = 3.0,
        hop_seconds: float | None = None,
        batch_size: int = 32,
        device: str | torch.device = "cpu",
    ) -> None:
        if len(classes) != model.n_classes:
            raise ValueError(f"{len(classes)} class names for a model with {model.n_classes} outputs")
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.classes = list(classes)
        self.sample_rate = int(sample_rate)
        self.crop = int(round(crop_seconds * sample_rate))
        self.hop = int(round((hop_seconds if hop_seconds is not None else crop_seconds / 2) * sample_rate))
        if self.crop < model.min_samples() or self.hop < 1:
            raise ValueError(f"crop of {self.crop} samples (hop {self.hop}) is too short for this model")
        self.batch_size = int(batch_size)

    @classmethod
    def from_checkpoint(
        cls,
        path: str | os.PathLike[str],
        hop_seconds: float | None = None,
        batch_size: int = 32,
        device: str | torch.device = "cpu",
        kind: str = "music2vec",
    ) -> "Classifier":
        """Load models/music2vec.pt (or, with ``kind="music2vec_adapted"``, models/music2vec_adapted.pt); sample rate
        and crop length come from its params, hop from its ``test_hop_seconds`` unless given."""
        state = checkpoints.load(path, kind)
        params = state["params"]
        return cls(
            checkpoints.network(state),
            state["classes"],
            sample_rate=int(params["sample_rate"]),
            crop_seconds=float(params["crop_seconds"]),
            hop_seconds=float(params["test_hop_seconds"]) if hop_seconds is None else hop_seconds,
            batch_size=batch_size,
            device=device,
        )

    def crops(self, wave: np.ndarray, sample_rate: int) -> np.ndarray:
        """(n_crops, crop) float32 array of a mono track, resampled to the model's rate.

        A track shorter than one crop is tiled (looped) to a full crop rather than
        zero-padded: the network never saw silence-padded crops in training.
        """
        wave = np.asarray(wave, dtype=np.float32)
        if wave.ndim != 1 or wave.size == 0:
            raise ValueError(f"expected a non-empty mono waveform, got shape {wave.shape}")
        wave = resample(wave, int(sample_rate), self.sample_rate)
        if len(wave) < self.crop:
            wave = np.tile(wave, math.ceil(self.crop / len(wave)))[: self.crop]
        return np.stack([wave[s : s + self.crop] for s in crop_starts(len(wave), self.crop, self.hop)])

    @torch.inference_mode()
    def crop_proba(self, crops: np.ndarray) -> np.ndarray:
        """Softmax probabilities (n_crops, n_classes) of crops at the model's rate."""
        out = []
        for first in range(0, len(crops), self.batch_size):
            batch = torch.from_numpy(np.ascontiguousarray(crops[first : first + self.batch_size])).to(self.device)
            out.append(torch.softmax(self.model(batch).float(), dim=-1).cpu().numpy())
        return np.concatenate(out).astype(np.float64)

    def predict_proba(self, wave: np.ndarray, sample_rate: int) -> np.ndarray:
        """Class probabilities (n_classes,) of a mono track: the mean over its crops (sums to one)."""
        proba = self.crop_proba(self.crops(wave, sample_rate)).mean(axis=0)
        return proba / proba.sum()

    def predict_top(self, wave: np.ndarray, sample_rate: int, k: int = 3) -> list[tuple[str, float]]:
        """The ``k`` most probable genres with their probabilities, most probable first."""
        proba = self.predict_proba(wave, sample_rate)
        order = np.argsort(-proba, kind="stable")[: max(1, int(k))]
        return [(self.classes[i], float(proba[i])) for i in order]
