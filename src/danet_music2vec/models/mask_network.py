"""The mask network: a BLSTM encoder and a mask-inference head (architecture ``mask``, the default separator).

The head gives per-bin source masks straight from the recurrent features: nothing is
clustered and the sources keep their identities (music is channel 0, noise channel 1).
The Chimera++ recipe (Wang, Le Roux & Hershey, ICASSP 2018) puts the same head next to
DANet's embedding head on one BLSTM (:class:`~danet_music2vec.models.danet.DANet` with
``mask_head=True``).
"""

from __future__ import annotations

import torch
from typing import Any

from torch import nn

from danet_music2vec.models.encoder import BlstmEncoder, InputNorm


class MaskHead(nn.Module):
    """``(B, T, H)`` features -> masks ``(B, T, F, C)`` that sum to one over the C sources (softmax)."""

    def __init__(self, in_features: int, n_freq: int, n_sources: int) -> None:
        super().__init__()
        self.n_freq, self.n_sources = n_freq, n_sources
        self.linear = nn.Linear(in_features, n_freq * n_sources)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        logits = self.linear(features).reshape(features.shape[0], features.shape[1], self.n_freq, self.n_sources)
        if self.n_sources == 2:
            # The same softmax, as the sigmoid of the two logits' difference: PyTorch's softmax over a last axis of
            # two is slow on the CPU (25-64 ms of a 230 ms call on a 30 s track on one thread; this takes about 5).
            difference = logits[..., 0] - logits[..., 1]
            return torch.stack([torch.sigmoid(difference), torch.sigmoid(-difference)], dim=-1)
        return logits.softmax(-1)


class MaskNetwork(nn.Module):
    """BLSTM encoder + mask head: ``forward(mag (B, T, F)) -> masks (B, T, F, C)``, music first. Pure ``nn.Module``."""

    architecture = "mask"
    has_embedding, has_mask_head = False, True

    def __init__(self, n_freq: int, hidden: int = 300, layers: int = 4, n_sources: int = 2, dropout: float = 0.0,
                 floor_db: float = 80.0, input_norm: InputNorm = "chunk_db") -> None:  # fmt: skip
        super().__init__()
        self.config: dict[str, Any] = {"architecture": self.architecture, "n_freq": n_freq, "hidden": hidden,
                                       "layers": layers, "n_sources": n_sources, "dropout": dropout, "floor_db": floor_db,
                                       "input_norm": input_norm}  # fmt: skip
        self.n_freq, self.n_sources = n_freq, n_sources
        self.encoder = BlstmEncoder(n_freq, hidden, layers, dropout, floor_db, input_norm)
        self.mask_head = MaskHead(self.encoder.out_features, n_freq, n_sources)

    def head_masks(self, mag: torch.Tensor) -> torch.Tensor:
        """Masks ``(B, T, F, C)`` of the mask head (the separator's common inference call)."""
        return self.mask_head(self.encoder(mag))

    def forward(self, mag: torch.Tensor) -> torch.Tensor:
        return self.head_masks(mag)
