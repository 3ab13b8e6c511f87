"""STFT chunks of the training mixtures' sources: NPZ shards + a Parquet index.

For every training mixture the music and the (summed) noise are resampled to the
STFT rate, transformed, and cut into non-overlapping chunks of ``chunk_frames``
frames (a trailing partial chunk is dropped). Sources are stored separately because
the STFT is linear: the training loop forms the mixture as ``music + gain * noise``,
so one set of features serves dynamic mixing at any SNR.

Storage: each shard ``shard-NNNNN.npz`` holds arrays ``music`` and ``noise`` shaped
``(N, 2, frames, freq)`` (real, imaginary) in float16 — STFT magnitudes of audio in
[-1, 1] stay far below float16's range, and half the bytes means half the I/O.
``index.parquet`` has one row per chunk; ``meta.json`` the STFT settings. Chunks are
written streaming, one shard in memory at a time, so memory does not grow with the
data set.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from danet_music2vec.atomic import atomic_dir, write_json
from danet_music2vec.audio import resample
from danet_music2vec.data.mixing import render_mixture
from danet_music2vec.dsp import StftConfig, stft

INDEX_COLUMNS = ["chunk_id", "shard", "row", "mixture_id", "start_frame", "music_rms", "noise_rms"]


def _to_pairs(spec: torch.Tensor) -> np.ndarray:
    return torch.stack([spec.real, spec.imag], dim=1).numpy().astype(np.float16)


def _to_complex(pairs: np.ndarray) -> np.ndarray:
    pairs = pairs.astype(np.float32)
    return (pairs[:, 0] + 1j * pairs[:, 1]).astype(np.complex64)


def source_chunks(music: np.ndarray, noise: np.ndarray, sample_rate: int, cfg: StftConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Complex STFT chunks ``(n_chunks, chunk_frames, n_freq)`` of music and noise."""
    waves = torch.from_numpy(np.stack([resample(music, sample_rate, cfg.sample_rate), resample(noise, sample_rate, cfg.sample_rate)]))
    spec = stft(waves, cfg)  # (2, frames, freq)
    n_chunks = spec.shape[1] // cfg.chunk_frames
    chunks = spec[:, : n_chunks * cfg.chunk_frames].reshape(2, n_chunks, cfg.chunk_frames, cfg.n_freq)
    return chunks[0], chunks[1]


def write_features(
    mixtures: pd.DataFrame,
    cfg: StftConfig,
    out_dir: str | os.PathLike[str],
    shard_chunks: int,
    render: Callable[[Any], Any] = render_mixture,
    progress: bool = True,
) -> dict[str, float]:
    """Write the chunks of every mixture in ``mixtures`` to ``out_dir`` (replaced atomically).

    Returns summary numbers for the stage's metrics.
    """
    stats = {"mixtures": 0, "chunks": 0, "shards": 0, "audio_seconds": 0.0, "bytes": 0}
    index: list[dict[str, Any]] = []
    with atomic_dir(out_dir) as tmp:
        buffer: list[tuple[np.ndarray, np.ndarray]] = []

        def flush() -> None:
            if not buffer:
                return
            name = f"shard-{stats['shards']:05d}.npz"
            np.savez(tmp / name, music=np.concatenate([b[0] for b in buffer]), noise=np.concatenate([b[1] for b in buffer]))
            stats["bytes"] += (tmp / name).stat().st_size
            stats["shards"] += 1
            buffer.clear()

        rows_in_shard = 0
        for row in tqdm(list(mixtures.itertuples()), desc="features", unit="mix", disable=not progress):
            rendered = render(row)
            music, noise = source_chunks(rendered.music, rendered.noise, int(row.sample_rate), cfg)
            stats["mixtures"] += 1
            stats["audio_seconds"] += row.num_samples / row.sample_rate
            start = 0
            while start < music.shape[0]:
                take = min(shard_chunks - rows_in_shard, music.shape[0] - start)
                part_m, part_n = music[start : start + take], noise[start : start + take]
                music_rms = part_m.abs().square().mean(dim=(1, 2)).sqrt().tolist()
                noise_rms = part_n.abs().square().mean(dim=(1, 2)).sqrt().tolist()
                for i in range(take):
                    index.append(
                        {
                            "chunk_id": stats["chunks"],
                            "shard": f"shard-{stats['shards']:05d}.npz",
                            "row": rows_in_shard + i,
                            "mixture_id": row.mixture_id,
                            "start_frame": (start + i) * cfg.chunk_frames,
                            "music_rms": music_rms[i],
                            "noise_rms": noise_rms[i],
                        }
                    )
                    stats["chunks"] += 1
                buffer.append((_to_pairs(part_m), _to_pairs(part_n)))
                rows_in_shard += take
                start += take
                if rows_in_shard == shard_chunks:
                    flush()
                    rows_in_shard = 0
        flush()
        pd.DataFrame(index, columns=INDEX_COLUMNS).to_parquet(tmp / "index.parquet", index=False)
        write_json(tmp / "meta.json", {"stft": dataclasses.asdict(cfg), "shard_chunks": shard_chunks})
    return stats


class FeatureStore:
    """Read access to a features folder written by :func:`write_features`."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        meta_path = self.root / "meta.json"
        if not meta_path.is_file():
            raise FileNotFoundError(f"{meta_path}: no features here; run `dvc repro features`")
        meta = json.loads(meta_path.read_text())
        self.config = StftConfig(**meta["stft"])
        self.index = pd.read_parquet(self.root / "index.parquet")

    def load_shard(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """``(music, noise)`` complex64 arrays shaped ``(N, chunk_frames, n_freq)``."""
        with np.load(self.root / name) as shard:
            return _to_complex(shard["music"]), _to_complex(shard["noise"])

    def __len__(self) -> int:
        return len(self.index)


class ChunkDataset(Dataset):
    """``(music, noise)`` complex64 tensors ``(frames, freq)`` per chunk, with a bounded shard cache.

    Use :meth:`shard_grouped_order` as the sampling order for large stores: it visits
    shards in random order and chunks within a shard in random order, so each shard
    is decoded about once per epoch.
    """

    def __init__(self, store: FeatureStore, max_cached_shards: int = 16) -> None:
        self.store = store
        self.shards = store.index["shard"].to_numpy()
        self.rows = store.index["row"].to_numpy()
        self.max_cached_shards = max_cached_shards
        self._cache: OrderedDict[str, tuple[np.ndarray, np.ndarray]] = OrderedDict()

    def __len__(self) -> int:
        return len(self.store)

    def _shard(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        if name in self._cache:
            self._cache.move_to_end(name)
        else:
            self._cache[name] = self.store.load_shard(name)
            if len(self._cache) > self.max_cached_shards:
                self._cache.popitem(last=False)
        return self._cache[name]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        music, noise = self._shard(self.shards[i])
        return torch.from_numpy(music[self.rows[i]]), torch.from_numpy(noise[self.rows[i]])

    def shard_grouped_order(self, generator: torch.Generator) -> list[int]:
        """A random permutation of chunk indices that keeps each shard's chunks together."""
        groups = pd.Series(np.arange(len(self))).groupby(self.shards).indices
        names = sorted(groups)
        order: list[int] = []
        for s in torch.randperm(len(names), generator=generator).tolist():
            members = groups[names[s]]
            order.extend(members[torch.randperm(len(members), generator=generator).numpy()].tolist())
        return order
