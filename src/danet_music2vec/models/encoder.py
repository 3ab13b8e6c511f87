"""The BLSTM encoder every separator shares: chunk-normalised log magnitude in, recurrent features out.

Input: the LINEAR magnitude ``|X|`` shaped ``(B, T, F)``. The network's input feature is
derived from it inside the model so that training and inference cannot disagree:
``20*log10|X|`` relative to the chunk's loudest bin, floored at ``-floor_db`` and scaled to
[-1, 1]. This is a per-chunk gain normalisation (a louder or quieter recording gives
the same features) that needs no data set statistics stored next to the model.
"""

from __future__ import annotations

import torch
from torch import nn

_TINY = 1e-8


class BlstmEncoder(nn.Module):
    """``(B, T, F)`` magnitude -> BLSTM features ``(B, T, 2 * hidden)``. Pure ``nn.Module``: no file I/O."""

    def __init__(self, n_freq: int, hidden: int, layers: int, dropout: float = 0.0, floor_db: float = 80.0) -> None:
        super().__init__()
        self.n_freq, self.floor_db, self.out_features = n_freq, floor_db, 2 * hidden
        self.blstm = nn.LSTM(
            n_freq, hidden, num_layers=layers, batch_first=True, bidirectional=True, dropout=dropout if layers > 1 else 0.0
        )

    def features(self, mag: torch.Tensor) -> torch.Tensor:
        """Network input: chunk-max-relative dB, floored at ``-floor_db``, scaled to [-1, 1]."""
        db = 20.0 * torch.log10(mag.clamp_min(_TINY))
        peak = db.amax(dim=(1, 2), keepdim=True)
        rel = (db - peak).clamp_min(-self.floor_db)
        return rel / (self.floor_db / 2.0) + 1.0

    def forward(self, mag: torch.Tensor) -> torch.Tensor:
        if mag.dim() != 3 or mag.shape[-1] != self.n_freq:
            raise ValueError(f"the separator expects magnitudes shaped (batch, frames, {self.n_freq}), got {tuple(mag.shape)}")
        out, _ = self.blstm(self.features(mag))
        return out
