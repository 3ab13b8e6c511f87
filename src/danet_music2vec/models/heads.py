"""Mask-inference head: per-bin source masks straight from the recurrent features.

The Chimera++ recipe (Wang, Le Roux & Hershey, ICASSP 2018) puts this head next to the
embedding head on one BLSTM and trains both; at inference the head's masks are used
directly, so nothing has to be clustered and the sources keep their identities
(music is channel 0, noise channel 1). Alone, it is the plain mask-inference network
that DANet is measured against.
"""

from __future__ import annotations

import torch
from torch import nn


class MaskHead(nn.Module):
    """``(B, T, H)`` features -> masks ``(B, T, F, C)`` that sum to one over the C sources (softmax)."""

    def __init__(self, in_features: int, n_freq: int, n_sources: int) -> None:
        super().__init__()
        self.n_freq, self.n_sources = n_freq, n_sources
        self.linear = nn.Linear(in_features, n_freq * n_sources)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        logits = self.linear(features).reshape(features.shape[0], features.shape[1], self.n_freq, self.n_sources)
        return logits.softmax(-1)
