"""Augmentations of training crops (all drawn per crop, training crops only).

* ``augment_gain_db: [lo, hi]`` random gain; the classifier then does not key on
  level, which the separator's output does not preserve exactly. ``null`` = off.
* ``augment_lowpass_hz: [4000, ...]`` with ``augment_lowpass_prob``: band-limit a crop to
  one of these cut-offs by resampling it down to twice the cut-off and back up
  (torchaudio). The separator works at ``stft.sample_rate`` (8 kHz by default), so its
  band-limited output has nothing above 4 kHz; this teaches the classifier to expect that.
* ``augment_noise_prob`` with ``augment_snr_db: [lo, hi]``: add a TRAIN-split noise clip
  (tiled to the crop, random offset) at a random SNR. Off by default: the point of the
  project is to remove noise before classifying, not to learn it away.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
import torchaudio.functional as taf

from danet_music2vec.params import Music2VecParams


def lowpass(batch: torch.Tensor, sample_rate: int, cutoff_hz: int) -> torch.Tensor:
    """Band-limit to ``cutoff_hz`` by resampling down to 2 x cutoff and back (as a separator at that rate does)."""
    low = taf.resample(batch, sample_rate, 2 * cutoff_hz)
    back = taf.resample(low, 2 * cutoff_hz, sample_rate)
    n = batch.shape[-1]
    return back[..., :n] if back.shape[-1] >= n else F.pad(back, (0, n - back.shape[-1]))


def augment(
    batch: torch.Tensor,
    cfg: Music2VecParams,
    rng: np.random.Generator,
    noises: Sequence[np.ndarray] = (),
) -> torch.Tensor:
    """Apply the configured augmentations to a CPU batch (batch, samples) of crops."""
    batch = batch.clone()
    n, crop = batch.shape
    if cfg.augment_noise_prob > 0 and noises:
        for row in np.flatnonzero(rng.random(n) < cfg.augment_noise_prob):
            noise = noises[int(rng.integers(len(noises)))]
            tiled = np.tile(noise, math.ceil(crop / len(noise)) + 1)
            start = int(rng.integers(0, len(noise)))
            piece = torch.from_numpy(tiled[start : start + crop].astype(np.float32, copy=False))
            snr = rng.uniform(*cfg.augment_snr_db)
            p_music = batch[row].pow(2).mean()
            p_noise = piece.pow(2).mean()
            if p_music > 0 and p_noise > 0:
                batch[row] += piece * torch.sqrt(p_music / (p_noise * 10 ** (snr / 10)))
    if cfg.augment_lowpass_hz and cfg.augment_lowpass_prob > 0:
        chosen = np.flatnonzero(rng.random(n) < cfg.augment_lowpass_prob)
        cutoffs = rng.integers(len(cfg.augment_lowpass_hz), size=len(chosen))
        for which, cutoff in enumerate(cfg.augment_lowpass_hz):
            rows = torch.from_numpy(chosen[cutoffs == which])
            if len(rows):  # one resample call per cut-off: batched is much cheaper
                batch[rows] = lowpass(batch[rows], cfg.sample_rate, cutoff)
    if cfg.augment_gain_db is not None:
        gains_db = rng.uniform(*cfg.augment_gain_db, size=n)
        batch *= torch.from_numpy((10 ** (gains_db / 20)).astype(np.float32))[:, None]
    return batch
