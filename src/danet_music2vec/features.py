"""STFTs of the separator's training sources: one array per source kind + a Parquet index.

Every training music clip and every training noise clip is resampled to the STFT rate
and transformed ONCE, whole. Mixtures are formed later, at training time, by
:mod:`danet_music2vec.dynamic_mixing`: any music excerpt with any noise excerpt at any
offset and level (the STFT is linear, so ``STFT(music + g * noise) = M + g * N``). No
mixture is stored, and the features do not depend on ``noises`` or ``mix.*``.

Storage (``data/features/``):

- ``music.npy`` / ``noise.npy``: the frames of all clips of that kind, concatenated,
  shaped ``(frames, 2, freq)`` (real, imaginary) in float16 — STFT values of audio in
  [-1, 1] stay far below float16's range, and half the bytes means half the I/O. Read
  memory-mapped, so a large data set costs page cache, not process memory.
- ``index.parquet``: one row per clip: ``clip_id, kind, group, label, sha256, start, frames, power``
  (``group`` keeps the excerpts of one track or one source recording together when
  training tracks are held out for validation; ``label`` is the genre or noise category,
  "" where unknown; ``sha256`` is the source file's digest, "" where the caller gave none:
  what a trained separator's manifest lists; ``power`` is the clip's mean bin power).
- ``meta.json``: the STFT settings.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from danet_music2vec.atomic import atomic_dir, write_json
from danet_music2vec.audio import load_audio, resample
from danet_music2vec.dsp import StftConfig, stft

KINDS = ("music", "noise")
INDEX_COLUMNS = ["clip_id", "kind", "group", "label", "sha256", "start", "frames", "power"]
CLIP_COLUMNS = ["clip_id", "kind", "group", "path"]
OPTIONAL_COLUMNS = ("label", "sha256")  # carried into the index when given, "" otherwise


def to_pairs(spec: torch.Tensor) -> np.ndarray:
    """Complex ``(frames, freq)`` -> float16 ``(frames, 2, freq)``."""
    return torch.stack([spec.real, spec.imag], dim=1).numpy().astype(np.float16)


def to_complex(pairs: np.ndarray) -> torch.Tensor:
    """float16 ``(..., 2, freq)`` -> complex64 ``(..., freq)``."""
    pairs = torch.from_numpy(np.asarray(pairs, dtype=np.float32))
    return torch.complex(pairs[..., 0, :], pairs[..., 1, :])


def clip_stft(audio: np.ndarray, sample_rate: int, cfg: StftConfig) -> torch.Tensor:
    """Complex STFT ``(frames, freq)`` of one clip at the model's rate."""
    return stft(torch.from_numpy(np.ascontiguousarray(resample(audio, sample_rate, cfg.sample_rate))), cfg)


def write_features(
    clips: pd.DataFrame,
    cfg: StftConfig,
    out_dir: str | os.PathLike[str],
    sample_rate: int,
    load: Callable[[str], np.ndarray] | None = None,
    progress: bool = True,
) -> dict[str, float]:
    """Write the STFT of every clip in ``clips`` (columns :data:`CLIP_COLUMNS`, optionally :data:`OPTIONAL_COLUMNS`) to ``out_dir``, atomically.

    Returns summary numbers for the stage's metrics.
    """
    missing = sorted(set(CLIP_COLUMNS) - set(clips.columns))
    if missing:
        raise ValueError(f"write_features needs columns {', '.join(CLIP_COLUMNS)}; missing {', '.join(missing)}")
    load = load or (lambda path: load_audio(path, sample_rate))
    clips = clips.assign(**{c: clips[c].fillna("").astype(str) if c in clips else "" for c in OPTIONAL_COLUMNS})
    stats: dict[str, float] = {"audio_seconds": 0.0, "bytes": 0}
    index: list[dict[str, object]] = []
    frames: dict[str, list[np.ndarray]] = {kind: [] for kind in KINDS}
    offset = dict.fromkeys(KINDS, 0)
    for row in tqdm(list(clips.itertuples()), desc="features", unit="clip", disable=not progress):
        if row.kind not in KINDS:
            raise ValueError(f"{row.path}: kind {row.kind!r} is neither music nor noise")
        audio = load(row.path)
        spec = clip_stft(audio, sample_rate, cfg)
        frames[row.kind].append(to_pairs(spec))
        power = float(spec.abs().square().mean())
        index.append({"clip_id": row.clip_id, "kind": row.kind, "group": row.group, "label": row.label,
                      "sha256": row.sha256, "start": offset[row.kind], "frames": spec.shape[0], "power": power})  # fmt: skip
        offset[row.kind] += spec.shape[0]
        stats["audio_seconds"] += audio.shape[0] / sample_rate
    table = pd.DataFrame(index, columns=INDEX_COLUMNS)
    with atomic_dir(out_dir) as tmp:
        for kind in KINDS:
            n_freq = cfg.n_freq
            data = np.concatenate(frames[kind]) if frames[kind] else np.zeros((0, 2, n_freq), np.float16)
            np.save(tmp / f"{kind}.npy", data)
            stats["bytes"] += (tmp / f"{kind}.npy").stat().st_size
            stats[f"clips.{kind}"] = int((table["kind"] == kind).sum())
            stats[f"seconds.{kind}"] = float(table.loc[table["kind"] == kind, "frames"].sum() * cfg.hop / cfg.sample_rate)
        table.to_parquet(tmp / "index.parquet", index=False)
        write_json(tmp / "meta.json", {"stft": dataclasses.asdict(cfg)})
    return stats


class FeatureStore:
    """Read access to a features folder written by :func:`write_features`."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        meta_path = self.root / "meta.json"
        if not meta_path.is_file() or not (self.root / "music.npy").is_file():
            raise FileNotFoundError(f"{meta_path}: no features here; run `dvc repro features`")
        self.config = StftConfig(**json.loads(meta_path.read_text())["stft"])
        self.index = pd.read_parquet(self.root / "index.parquet")
        self._arrays = {kind: np.load(self.root / f"{kind}.npy", mmap_mode="r") for kind in KINDS}

    def clips(self, kind: str) -> pd.DataFrame:
        """The index rows of one kind (``music`` or ``noise``)."""
        return self.index[self.index["kind"] == kind]

    def frames(self, kind: str, start: int, n: int) -> torch.Tensor:
        """Complex ``(n, freq)`` frames of the concatenated ``kind`` array from ``start``."""
        return to_complex(self._arrays[kind][start : start + n])

    def only(self, keep: pd.Series) -> "FeatureStore":
        """The same store with the clips where ``keep`` (aligned with :attr:`index`) is true: the frames are not copied."""
        view = copy.copy(self)
        view.index = self.index[keep.to_numpy(dtype=bool)].reset_index(drop=True)
        return view

    def __len__(self) -> int:
        return len(self.index)
