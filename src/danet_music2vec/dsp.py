"""STFT settings and transforms shared by the features stage, separator training and the Separator.

One definition keeps the precomputed training features and whole-track inference
bit-compatible. Spectrograms are complex tensors shaped ``(..., frames, freq)``
(time first, as the BLSTM reads them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from danet_music2vec.params import StftParams


@dataclass(frozen=True)
class StftConfig:
    """STFT parameters (``stft`` group of params.yaml)."""

    sample_rate: int = 8000
    n_fft: int = 256
    hop: int = 64
    window: str = "sqrt_hann"
    chunk_frames: int = 100

    @classmethod
    def from_params(cls, stft: StftParams) -> "StftConfig":
        return cls(sample_rate=stft.sample_rate, n_fft=stft.n_fft, hop=stft.hop, window=stft.window,
                   chunk_frames=stft.chunk_frames)  # fmt: skip

    @property
    def n_freq(self) -> int:
        return self.n_fft // 2 + 1

    def window_tensor(self, device: torch.device | str | None = None) -> torch.Tensor:
        hann = torch.hann_window(self.n_fft, periodic=True, device=device)
        # sqrt-Hann analysis and synthesis windows multiply to Hann, which overlap-adds
        # to a constant at hop n_fft/4: perfect reconstruction (the DANet paper's choice).
        return hann.sqrt() if self.window == "sqrt_hann" else hann


def stft(wave: torch.Tensor, cfg: StftConfig) -> torch.Tensor:
    """``(..., samples)`` real -> ``(..., frames, freq)`` complex."""
    shape = wave.shape[:-1]
    spec = torch.stft(
        wave.reshape(-1, wave.shape[-1]),
        n_fft=cfg.n_fft,
        hop_length=cfg.hop,
        window=cfg.window_tensor(wave.device),
        center=True,
        return_complex=True,
    )
    return spec.transpose(-1, -2).reshape(*shape, spec.shape[-1], spec.shape[-2])


def istft(spec: torch.Tensor, cfg: StftConfig, length: int) -> torch.Tensor:
    """``(..., frames, freq)`` complex -> ``(..., length)`` real; inverse of :func:`stft`."""
    shape = spec.shape[:-2]
    flat = spec.reshape(-1, spec.shape[-2], spec.shape[-1]).transpose(-1, -2)
    wave = torch.istft(
        flat,
        n_fft=cfg.n_fft,
        hop_length=cfg.hop,
        window=cfg.window_tensor(spec.device),
        center=True,
        length=length,
    )
    return wave.reshape(*shape, length)
