"""Applying masks found at the model's STFT rate to the input at its own rate (``separate.output_rate: full``).

The mask (time x frequency in seconds and Hz) is interpolated onto a STFT of the input at
its own rate and applied there; above the model's Nyquist frequency the mask of the
highest modelled bin is extended. The full-rate FFT size is rounded up to a 2-3-5-smooth
length (at 22.05 kHz, 706 = 2 x 353 would be 4x slower than 720).

:func:`apply_music_mask` works through the track in blocks of ``BLOCK_SECONDS``, each
transformed with a margin of at least one FFT length on both sides that is dropped after the
inverse STFT: every kept sample sees exactly the frames (and masks) it would see in one
whole-track transform, so the result is the same while memory stays that of one block,
whatever the track's length and channel count (a 10-minute stereo file at 44.1 kHz would
otherwise hold about 2 GB of spectrograms and interpolated masks).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from danet_music2vec.dsp import StftConfig, istft, stft

BLOCK_SECONDS = 30.0


def smooth_fft_size(n: int) -> int:
    """The smallest even length >= ``n`` whose prime factors are 2, 3 and 5 (fast FFT sizes)."""
    m = max(2, n + n % 2)
    while True:
        rest = m
        for p in (2, 3, 5):
            while rest % p == 0:
                rest //= p
        if rest == 1:
            return m
        m += 2


def full_rate_config(cfg: StftConfig, rate: int) -> StftConfig:
    """The STFT at ``rate`` with the same frame duration and hop in seconds as the model's ``cfg``."""
    hop = max(1, int(round(cfg.hop * rate / cfg.sample_rate)))
    n_fft = smooth_fft_size(max(hop, int(round(cfg.n_fft * rate / cfg.sample_rate))))
    return StftConfig(sample_rate=rate, n_fft=n_fft, hop=hop, window=cfg.window, chunk_frames=cfg.chunk_frames)


def resample_masks(
    masks: torch.Tensor, cfg: StftConfig, full_shape: torch.Size, full: StftConfig, first_frame: int = 0
) -> torch.Tensor:
    """Interpolate ``(frames, F, C)`` masks at ``cfg`` onto the full-rate STFT grid -> ``(C, frames_full, F_full)``.

    ``full_shape`` is ``(frames_full, F_full)`` of full-rate frames ``first_frame``, ``first_frame + 1``, ...
    Positions are matched in seconds and Hz (bilinear); frequencies above the model's
    Nyquist take the top modelled bin's value (border padding).
    """
    frames, n_freq = masks.shape[0], masks.shape[1]
    t_full = (first_frame + torch.arange(full_shape[0])) * (full.hop / full.sample_rate)  # seconds of each full-rate frame
    f_full = torch.arange(full_shape[1]) * (full.sample_rate / full.n_fft)  # Hz of each full-rate bin
    t_idx = t_full * cfg.sample_rate / cfg.hop  # fractional low-rate frame index
    f_idx = f_full * cfg.n_fft / cfg.sample_rate  # fractional low-rate bin index
    # grid_sample coordinates in [-1, 1] with align_corners=True: index 0 -> -1, last -> +1.
    gx = 2.0 * f_idx / max(n_freq - 1, 1) - 1.0
    gy = 2.0 * t_idx / max(frames - 1, 1) - 1.0
    grid = torch.stack(torch.meshgrid(gy, gx, indexing="ij")[::-1], dim=-1).unsqueeze(0).float()
    src = masks.movedim(-1, 0).unsqueeze(0).float()  # (1, C, frames, F)
    out = F.grid_sample(src, grid, mode="bilinear", padding_mode="border", align_corners=True)[0]
    return out / out.sum(0, keepdim=True).clamp_min(1e-8)


def apply_music_mask(masks: torch.Tensor, cfg: StftConfig, audio: torch.Tensor, rate: int,
                     block_seconds: float = BLOCK_SECONDS) -> torch.Tensor:  # fmt: skip
    """The music of ``audio`` ``(channels, samples)`` at its own ``rate``: the music mask of ``masks``
    ``(frames, F, C)`` (found at ``cfg``'s rate) applied to every channel, block by block."""
    full = full_rate_config(cfg, rate)
    samples = audio.shape[-1]
    block = max(1, int(block_seconds * rate) // full.hop) * full.hop
    margin = math.ceil(full.n_fft / full.hop) * full.hop  # whole hops, so block frames sit on the track's frame grid
    music = torch.empty_like(audio)
    for start in range(0, samples, block):
        end = min(samples, start + block)
        lo, hi = max(0, start - margin), min(samples, end + margin)
        spec = stft(audio[:, lo:hi], full)
        mask = resample_masks(masks, cfg, spec.shape[-2:], full, first_frame=lo // full.hop)[0]
        music[:, start:end] = istft(mask * spec, full, length=hi - lo)[:, start - lo : end - lo]
    return music
