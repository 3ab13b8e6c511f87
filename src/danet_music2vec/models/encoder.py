"""The separators' input feature (:class:`SpectralInput`) and the BLSTM encoder of ``mask``, ``chimera`` and ``danet``.

Input: the LINEAR magnitude ``|X|`` shaped ``(B, T, F)``. The network's input feature is
derived from it inside the model so that training and inference cannot disagree
(``input_norm``):

- ``chunk_db``: ``20*log10|X|`` relative to the chunk's loudest bin, floored at ``-floor_db``
  and scaled to [-1, 1]: a per-chunk gain normalisation that needs no data set statistics;
- ``bin_log1p`` (as open-unmix): ``log(1 + |X|)`` standardised per frequency bin with a mean
  and standard deviation measured on training mixtures (:meth:`SpectralInput.set_input_stats`)
  and stored in the model as buffers, so they travel with its weights. It keeps the absolute
  level and each bin's place in the spectrum, which the chunk normalisation throws away.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

_TINY = 1e-8
InputNorm = Literal["chunk_db", "bin_log1p"]
INPUT_NORMS: tuple[str, ...] = ("chunk_db", "bin_log1p")


def log1p_magnitude(mag: torch.Tensor) -> torch.Tensor:
    """``log(1 + |X|)``: the ``bin_log1p`` feature before standardisation."""
    return torch.log1p(mag)


class SpectralInput(nn.Module):
    """The separators' input feature: ``(B, T, F)`` linear magnitude -> normalised ``(B, T, F)`` (``input_norm``).

    Every encoder derives from it (the BLSTM here, the TCN in :mod:`~danet_music2vec.models.tcn`), so the
    ``bin_log1p`` statistics are buffers of the encoder itself (``encoder.input_mean``) and the training loop
    sets them alike for any architecture.
    """

    def __init__(self, n_freq: int, floor_db: float = 80.0, input_norm: InputNorm = "chunk_db") -> None:
        super().__init__()
        if input_norm not in INPUT_NORMS:
            raise ValueError(f"input_norm={input_norm!r}; use one of {', '.join(INPUT_NORMS)}")
        self.n_freq, self.floor_db, self.input_norm = n_freq, floor_db, input_norm
        if input_norm == "bin_log1p":
            # Identity until set_input_stats(); part of the state dict, so checkpoints carry them.
            self.register_buffer("input_mean", torch.zeros(n_freq))
            self.register_buffer("input_std", torch.ones(n_freq))

    def set_input_stats(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Store the per-bin mean and std of ``log(1 + |X|)`` (``bin_log1p``), each ``(F,)``."""
        if self.input_norm != "bin_log1p":
            raise ValueError(f"input statistics are for input_norm bin_log1p, this encoder uses {self.input_norm}")
        self.input_mean.copy_(mean)
        self.input_std.copy_(std.clamp_min(1e-5))

    def features(self, mag: torch.Tensor) -> torch.Tensor:
        """The network's input for magnitudes ``mag`` (``input_norm``), after checking their shape."""
        if mag.dim() != 3 or mag.shape[-1] != self.n_freq:
            raise ValueError(f"the separator expects magnitudes shaped (batch, frames, {self.n_freq}), got {tuple(mag.shape)}")
        if self.input_norm == "bin_log1p":
            return (log1p_magnitude(mag) - self.input_mean) / self.input_std
        db = 20.0 * torch.log10(mag.clamp_min(_TINY))
        peak = db.amax(dim=(1, 2), keepdim=True)
        rel = (db - peak).clamp_min(-self.floor_db)
        return rel / (self.floor_db / 2.0) + 1.0


class BlstmEncoder(SpectralInput):
    """``(B, T, F)`` magnitude -> BLSTM features ``(B, T, 2 * hidden)``. Pure ``nn.Module``: no file I/O."""

    def __init__(self, n_freq: int, hidden: int, layers: int, dropout: float = 0.0, floor_db: float = 80.0,
                 input_norm: InputNorm = "chunk_db") -> None:  # fmt: skip
        super().__init__(n_freq, floor_db, input_norm)
        self.out_features = 2 * hidden
        self.blstm = nn.LSTM(
            n_freq, hidden, num_layers=layers, batch_first=True, bidirectional=True, dropout=dropout if layers > 1 else 0.0
        )

    def forward(self, mag: torch.Tensor) -> torch.Tensor:
        out, _ = self.blstm(self.features(mag))
        return out
