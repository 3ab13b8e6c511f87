"""The classifier's training audio: clips held in memory (or spooled to disk), and random crops of them."""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from danet_music2vec.audio import load_audio
from danet_music2vec.data.sources import SourceError
from danet_music2vec.spool import SpooledWave


@dataclass
class ClipSet:
    """Training audio: one float32 mono array per clip, or a :class:`SpooledWave` read from disk crop by crop."""

    waves: list[np.ndarray | SpooledWave]
    labels: np.ndarray  # int64 class index per clip
    classes: list[str]
    clip_ids: list[str]

    def fingerprint(self) -> str:
        """Identifies the training set, so a checkpoint is resumed only on the same data."""
        h = hashlib.sha256()
        for clip_id, label, wave in zip(self.clip_ids, self.labels, self.waves):
            h.update(f"{clip_id}\t{self.classes[label]}\t{len(wave)}\n".encode())
        return h.hexdigest()


def load_clip_set(
    splits: pd.DataFrame,
    root: str | os.PathLike[str],
    sample_rate: int,
    kind: str = "music",
    split: str = "train",
    classes: Sequence[str] | None = None,
) -> ClipSet:
    """Load the ``kind``/``split`` rows of data/splits.parquet with load_audio.

    Clips are sorted by clip_id so the order (and so training) does not depend on
    the Parquet row order. ``classes`` defaults to the sorted labels present.
    """
    rows = splits[(splits["kind"] == kind) & (splits["split"] == split)].sort_values("clip_id")
    if rows.empty:
        raise SourceError(
            f"data/splits.parquet has no {kind} clips in the {split} split; check data.* and split.* in params.yaml "
            "and rerun `dvc repro split`"
        )
    classes = sorted(rows["label"].unique()) if classes is None else list(classes)
    index = {c: i for i, c in enumerate(classes)}
    waves = [load_audio(Path(root) / p, sample_rate) for p in tqdm(rows["path"], desc=f"load {split} {kind}", leave=False)]
    labels = np.array([index.get(label, -1) for label in rows["label"]], dtype=np.int64)
    return ClipSet(waves=waves, labels=labels, classes=classes, clip_ids=[str(c) for c in rows["clip_id"]])


def random_crops(
    clips: ClipSet, picks: np.ndarray, crop: int, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random crops (batch, crop) of the picked clips; clips shorter than a crop are tiled."""
    out = np.empty((len(picks), crop), dtype=np.float32)
    for row, clip in enumerate(picks):
        wave = clips.waves[clip]
        if len(wave) < crop:
            wave = np.tile(wave, math.ceil(crop / len(wave)) + 1)
        start = int(rng.integers(0, len(wave) - crop + 1))
        out[row] = wave[start : start + crop]
    return torch.from_numpy(out), torch.from_numpy(clips.labels[picks])
