"""Plan and render music + environmental-noise mixtures.

The mix stage writes only a description of each mixture (``data/mixtures.parquet``):
which music clip, which noise clip(s), where each noise starts, and its gain. Every
mixture is re-created bit for bit from that row by :func:`render_mixture`, so no
mixture is stored as audio.

Each noise clip (ESC-50: 5 s) is tiled (looped) across the whole music clip from a
seeded random start offset, as in the original work. Gains set the music-to-noise
ratio to ``mix.snr_db`` (a number, a range drawn per mixture, or ``None`` = native
levels). With two noises each is first brought to the same power, so neither hides
the other.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from danet_music2vec.audio import load_audio
from danet_music2vec.data.sources import SourceError
from danet_music2vec.errors import StaleDataError

MIXTURE_COLUMNS = [
    "mixture_id", "split", "music_clip", "label", "music_path", "music_offset", "noise_clips", "noise_paths",
    "noise_offsets", "noise_gains", "snr_db", "num_samples", "sample_rate",
]  # fmt: skip

# Power floor (about -100 dBFS) that keeps SNR arithmetic finite for near-silent clips.
_POWER_FLOOR = 1e-10


@dataclass(frozen=True)
class Rendered:
    """One mixture's sources and their sum, float32 at the manifest's sample rate."""

    music: np.ndarray
    noise: np.ndarray
    mixture: np.ndarray


def tile(noise: np.ndarray, offset: int, length: int) -> np.ndarray:
    """Loop ``noise`` to ``length`` samples, starting ``offset`` samples into it."""
    reps = -(-(offset + length) // noise.shape[0])
    return np.tile(noise, reps)[offset : offset + length]


def looped_mixture(music_path: str | Path, noise_path: str | Path, rate: int, seconds: float,
                   snr_db: float = 0.0) -> np.ndarray:  # fmt: skip
    """``seconds`` of a music file and a noise file, both looped from their start, at ``snr_db``: mono float32 at
    ``rate`` (the benchmarks' test track: real audio of any length, with no manifest)."""
    n = int(seconds * rate)
    music, noise = tile(load_audio(music_path, rate), 0, n), tile(load_audio(noise_path, rate), 0, n)
    return music + np.float32(noise_gains(music, [noise], snr_db)[0]) * noise


def _power(x: np.ndarray) -> float:
    return max(float(np.mean(np.square(x, dtype=np.float64))), _POWER_FLOOR)


def noise_gains(music: np.ndarray, noises: Sequence[np.ndarray], snr_db: float | None) -> list[float]:
    """Gains for the (already tiled) noises so that music / sum(noises) has ``snr_db``."""
    if snr_db is None:
        return [1.0] * len(noises)
    equal = [1.0 / np.sqrt(_power(n)) for n in noises]
    summed = sum(g * n.astype(np.float64) for g, n in zip(equal, noises))
    scale = np.sqrt(_power(music) / (_power(summed) * 10.0 ** (snr_db / 10.0)))
    return [float(g * scale) for g in equal]


def _combine(music: np.ndarray, noises: Sequence[np.ndarray], gains: Sequence[float]) -> Rendered:
    noise = np.zeros_like(music)
    for gain, clip in zip(gains, noises):
        noise += np.float32(gain) * clip
    return Rendered(music=music, noise=noise, mixture=music + noise)


def plan_mixtures(
    splits: pd.DataFrame,
    noises: int,
    snr_db: None | float | tuple[float, float],
    seed: int,
    mixtures_per_clip: dict[str, int],
    sample_rate: int,
    load: Callable[[str], np.ndarray] | None = None,
    segment_seconds: float | None = None,
) -> pd.DataFrame:
    """Describe ``mixtures_per_clip[split]`` mixtures for every music clip of each split named there.

    Noise clips come from the same split as the music (test mixtures only use test
    noise), drawn without replacement within a mixture. With ``segment_seconds`` each
    mixture is a segment of that length of its music clip, from a seeded random offset
    (a clip shorter than that is used whole), so several mixtures of one clip cover
    different music. The segments come from a stream of their own, so every noise count and SNR
    cuts the same music (`dvc exp run -S noises=2` scores the clean music of `noises=1`).
    """
    load = load or _cached_loader(sample_rate)
    music_rng, rng = (np.random.default_rng([seed, stream]) for stream in (0, 1))
    rows: list[dict[str, Any]] = []
    for split in mixtures_per_clip:
        music = splits[(splits["kind"] == "music") & (splits["split"] == split)].sort_values("clip_id")
        pool = splits[(splits["kind"] == "noise") & (splits["split"] == split)].sort_values("clip_id")
        if music.empty:
            continue
        if len(pool) < noises:
            raise SourceError(
                f"the {split} split has {len(pool)} noise clip(s) but noises={noises} needs at least {noises} per mixture; "
                "add noise clips or lower `noises`"
            )
        for clip in music.itertuples():
            whole = load(clip.path)
            length = whole.shape[0] if segment_seconds is None else min(whole.shape[0], int(segment_seconds * sample_rate))
            for k in range(mixtures_per_clip[split]):
                music_offset = int(music_rng.integers(0, whole.shape[0] - length + 1))
                music_audio = whole[music_offset : music_offset + length]
                chosen = pool.iloc[rng.choice(len(pool), size=noises, replace=False)]
                noise_audio = [load(p) for p in chosen["path"]]
                offsets = [int(rng.integers(0, n.shape[0])) for n in noise_audio]
                target = rng.uniform(*snr_db) if isinstance(snr_db, tuple) else snr_db
                tiled = [tile(n, o, music_audio.shape[0]) for n, o in zip(noise_audio, offsets)]
                gains = noise_gains(music_audio, tiled, target)
                rendered = _combine(music_audio, tiled, gains)
                rows.append(
                    {
                        "mixture_id": f"{split}-{len(rows):05d}",
                        "split": split,
                        "music_clip": clip.clip_id,
                        "label": clip.label,
                        "music_path": clip.path,
                        "music_offset": music_offset,
                        "noise_clips": list(chosen["clip_id"]),
                        "noise_paths": list(chosen["path"]),
                        "noise_offsets": offsets,
                        "noise_gains": gains,
                        "snr_db": 10.0 * np.log10(_power(rendered.music) / _power(rendered.noise)),
                        "num_samples": int(music_audio.shape[0]),
                        "sample_rate": sample_rate,
                    }
                )
    return pd.DataFrame(rows, columns=MIXTURE_COLUMNS)


# Noise clips recur across many mixtures: decode each once. Bounded, so a full
# ESC-50 run does not hold every clip in memory.
@lru_cache(maxsize=512)
def _load_cached(path: str, sample_rate: int) -> np.ndarray:
    audio = load_audio(path, sample_rate)
    audio.flags.writeable = False
    return audio


def _cached_loader(sample_rate: int) -> Callable[[str], np.ndarray]:
    return lambda path: _load_cached(str(path), sample_rate)


def render_mixture(row: Any, load: Callable[[str], np.ndarray] | None = None, snr_db: float | None = None) -> Rendered:
    """Re-create one mixture of ``data/mixtures.parquet`` bit for bit (``row``: a Series or namedtuple).

    With ``snr_db`` the same clips and offsets are mixed at that music-to-noise ratio
    instead of the manifest's gains (the SNR curves of the sweep stage).
    """
    load = load or _cached_loader(int(row.sample_rate))
    whole = load(row.music_path)
    offset = int(row.music_offset)
    music = whole[offset : offset + int(row.num_samples)]
    if music.shape[0] != row.num_samples:
        raise StaleDataError(
            f"{row.music_path}: has {whole.shape[0]} samples, the manifest needs {offset + row.num_samples}; "
            "data/raw changed after the mix stage ran: run `dvc repro mix`"
        )
    tiled = [tile(load(p), int(o), music.shape[0]) for p, o in zip(row.noise_paths, row.noise_offsets)]
    gains = list(row.noise_gains) if snr_db is None else noise_gains(music, tiled, float(snr_db))
    return _combine(music, tiled, gains)
