"""Dynamic mixing for separator training: fresh music + noise chunks every step.

Each training example is a ``chunk_frames`` excerpt of a music clip at a random frame
offset (no fixed grid) plus ``noises`` excerpts of distinct noise clips at random
offsets (looped, as the mix stage loops a 5 s noise over a 30 s song), each noise
brought to unit power, summed, and scaled so that the excerpt's music-to-noise ratio
is drawn uniformly from ``snr_db`` (``None``: the recordings' own levels, as the original
work mixed). The noise gain is bounded to ``+-max_gain_db`` around
the gain that gives the two CLIPS equal mean power, so a quiet stretch of a noise clip (the
silence between two barks) is never blown up by 40 dB, whatever the recordings' levels
(the extra music pool is peak-normalised, the sample's music is not). Silence-aware: an
excerpt more than ``silence_db`` below its clip's mean power (a pause, digital silence) is
redrawn a few times before it is accepted as it is.

Random equalisation (``eq_db``, training only): every music and noise excerpt is filtered by
its own smooth random gain curve over frequency (``_EQ_POINTS`` gains drawn uniformly in
``+-eq_db`` dB, interpolated across the bins), before the SNR is set. A handful of training
tracks and noise recordings then stand for many more timbres (other instruments, mixes and
microphones), which is what the held-out validation tracks ask for.

Clips are drawn with probability proportional to their length, so every second of
training audio is equally likely; with ``extra_share`` the music clips whose ``clip_id``
starts with ``separation/`` (``data.separation_music_dirs``) make up that share of the
examples instead, whatever their length. With ``noise_balance="category"`` every noise
category (the clips' ``label``) is equally likely, and clips within one by length: a pool
heavy on a few classes (ESC-10's) then does not crowd out the rest. Which clips a mixer may draw is given by their
``group`` (track or source recording): :func:`split_groups` holds whole groups out
for validation, and :meth:`DynamicMixer.fixed_batches` draws the same validation
examples every epoch.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd
import torch

from danet_music2vec.data.sources import SourceError
from danet_music2vec.features import FeatureStore

_POWER_FLOOR = 1e-12
EXTRA_PREFIX = "separation/"  # clip ids of the separator-only pools (data.separation_music_dirs, separation_noise_dirs)
# Redraws of a silent excerpt before it is used anyway (a clip that is silent throughout).
_SILENCE_RETRIES = 8
# Control points of a random equalisation curve, spread evenly from 0 Hz to Nyquist.
_EQ_POINTS = 6


def split_groups(groups: Iterable[str], fraction: float, seed: int) -> tuple[set[str], set[str]]:
    """``(train, validation)`` groups: a seeded ``fraction`` of the groups (at least one, if there are two) held out."""
    names = sorted(set(groups))
    n_val = 0 if fraction <= 0 or len(names) < 2 else min(len(names) - 1, max(1, round(fraction * len(names))))
    order = np.random.default_rng(seed).permutation(len(names))
    val = {names[i] for i in order[:n_val]}
    return set(names) - val, val


class DynamicMixer:
    """Draws ``(music, noise)`` complex STFT batches ``(B, T, F)`` from a :class:`FeatureStore`."""

    def __init__(
        self,
        store: FeatureStore,
        music_groups: set[str],
        noise_groups: set[str],
        noises: int,
        snr_db: tuple[float, float] | None,
        max_gain_db: float = 20.0,
        silence_db: float = 30.0,
        extra_share: float | None = None,
        eq_db: float | None = None,
        noise_balance: str = "length",
    ) -> None:
        self.store = store
        self.chunk = store.config.chunk_frames
        self.music = store.clips("music")[lambda d: d["group"].isin(music_groups)].reset_index(drop=True)
        self.noise = store.clips("noise")[lambda d: d["group"].isin(noise_groups)].reset_index(drop=True)
        if self.music.empty:
            raise SourceError(f"{store.root}: no music clips to train the separator on; check data/splits.parquet")
        if len(self.noise) < noises:
            raise SourceError(
                f"{store.root}: {len(self.noise)} training noise clip(s) but noises={noises} needs at least {noises}; "
                "add noise clips or lower `noises`"
            )
        self.noises, self.snr_db, self.max_gain_db, self.silence_db = noises, snr_db, max_gain_db, silence_db
        self.eq_db = eq_db
        self._music_p = self._weights(self.music, extra_share)
        self._noise_p = self._weights(self.noise) if noise_balance == "length" else self._by_category(self.noise)

    @staticmethod
    def _weights(clips: pd.DataFrame, extra_share: float | None = None) -> np.ndarray:
        frames = clips["frames"].to_numpy(dtype=np.float64)
        extra = clips["clip_id"].str.startswith(EXTRA_PREFIX).to_numpy()
        if extra_share is None or extra.all() or not extra.any():
            return frames / frames.sum()
        return np.where(extra, extra_share * frames / frames[extra].sum(), (1 - extra_share) * frames / frames[~extra].sum())

    @staticmethod
    def _by_category(clips: pd.DataFrame) -> np.ndarray:
        frames = clips["frames"].to_numpy(dtype=np.float64)
        per_category = clips.groupby("label")["frames"].transform("sum").to_numpy(dtype=np.float64)
        return frames / per_category / clips["label"].nunique()

    def _crop(self, kind: str, clip: pd.Series, offset: int, wrap: bool) -> torch.Tensor:
        start, frames = int(clip["start"]), int(clip["frames"])
        if offset + self.chunk <= frames:
            return self.store.frames(kind, start + offset, self.chunk)
        whole = self.store.frames(kind, start, frames)
        if wrap:  # loop the clip, as the mix stage loops a short noise over a long song
            return whole[torch.arange(offset, offset + self.chunk) % frames]
        return torch.cat([whole[offset:], whole.new_zeros(self.chunk - (frames - offset), whole.shape[1])])

    def _excerpt(self, kind: str, clip: pd.Series, rng: np.random.Generator) -> torch.Tensor:
        wrap = kind == "noise"
        limit = int(clip["frames"]) if wrap else max(1, int(clip["frames"]) - self.chunk + 1)
        floor = float(clip["power"]) * 10.0 ** (-self.silence_db / 10.0)
        for _ in range(_SILENCE_RETRIES):
            crop = self._crop(kind, clip, int(rng.integers(0, limit)), wrap)
            if float(crop.abs().square().mean()) > floor:
                return crop
        return crop

    def music_clip(self, rng: np.random.Generator) -> pd.Series:
        """The music clip (index row) of the example that :meth:`example` mixes from a generator in ``rng``'s state."""
        return self.music.iloc[int(rng.choice(len(self.music), p=self._music_p))]

    def example(self, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """One ``(music, noise)`` pair of complex ``(T, F)`` chunks."""
        music_clip = self.music_clip(rng)
        music = self._excerpt("music", music_clip, rng)
        picks = rng.choice(len(self.noise), size=self.noises, replace=False, p=self._noise_p)
        noise_clips = [self.noise.iloc[int(i)] for i in picks]
        parts = [self._excerpt("noise", clip, rng) for clip in noise_clips]
        if self.eq_db is not None:
            music, parts = self._equalise(music, rng), [self._equalise(p, rng) for p in parts]
        if self.snr_db is None:  # native levels: the recordings summed as they are (the original work)
            return music, sum(parts[1:], parts[0])
        snr = rng.uniform(*self.snr_db)
        p_music = max(float(music.abs().square().mean()), _POWER_FLOOR)
        noise = torch.zeros_like(music)
        unit = [1.0 / math.sqrt(max(float(p.abs().square().mean()), _POWER_FLOOR)) for p in parts]
        summed = sum(u * p for u, p in zip(unit, parts))
        scale = math.sqrt(p_music / (max(float(summed.abs().square().mean()), _POWER_FLOOR) * 10.0 ** (snr / 10.0)))
        bound = 10.0 ** (self.max_gain_db / 20.0)
        for u, p, clip in zip(unit, parts, noise_clips):
            level = math.sqrt(float(music_clip["power"]) / max(float(clip["power"]), _POWER_FLOOR))  # clips at equal power
            noise = noise + min(max(u * scale, level / bound), level * bound) * p
        return music, noise

    def _equalise(self, chunk: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        """``chunk (T, F)`` times a smooth random gain curve over its F bins (``+-eq_db`` dB)."""
        gains_db = rng.uniform(-self.eq_db, self.eq_db, size=_EQ_POINTS)
        bins = chunk.shape[1]
        curve = np.interp(np.arange(bins), np.linspace(0, bins - 1, _EQ_POINTS), gains_db)
        return chunk * torch.from_numpy(10.0 ** (curve / 20.0)).to(chunk.real.dtype)

    def batch(self, seeds: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """One example per seed, stacked: ``(music, noise)`` complex ``(B, T, F)``.

        Each example depends on its own seed only, so a batch can be split over
        processes (or loader workers) and still hold exactly the same examples.
        """
        pairs = [self.example(np.random.default_rng(seed)) for seed in seeds]
        return torch.stack([m for m, _ in pairs]), torch.stack([n for _, n in pairs])

    def fixed_batches(self, seed: int, n_examples: int, batch_size: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The same ``n_examples`` (in batches) for every call with the same seed: a validation set."""
        seeds = np.random.default_rng(seed).integers(0, 2**63, size=n_examples).tolist()
        return [self.batch(seeds[i : i + batch_size]) for i in range(0, n_examples, batch_size)]


class MixedBatches(torch.utils.data.Dataset):
    """Step ``i`` of an epoch -> the batch mixed from ``seeds[i]``: a DataLoader's workers can mix ahead."""

    def __init__(self, mixer: DynamicMixer, seeds: Sequence[Sequence[int]]) -> None:
        self.mixer, self.seeds = mixer, seeds

    def __len__(self) -> int:
        return len(self.seeds)

    def __getitem__(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.mixer.batch(self.seeds[step])
