"""The convolutional mask network (architecture ``tcn``): Conv-TasNet's temporal convolution network over STFT frames.

The same input as the BLSTM networks (:class:`~danet_music2vec.models.encoder.SpectralInput`: the
magnitude normalised by ``input_norm``) and the same :class:`~danet_music2vec.models.mask_network.MaskHead`,
so ``head_masks(mag) -> (B, T, F, C)`` and everything after it (the training loop, the Separator,
checkpoints) is shared. In between, instead of a BLSTM, the separation module of Conv-TasNet (Luo &
Mesgarani, IEEE/ACM TASLP 2019) in its non-causal form: a 1x1 bottleneck from the F bins to ``channels``,
then ``repeats`` x ``blocks`` residual blocks, block ``b`` of a repeat a depthwise-separable 1-D
convolution of dilation ``2**b`` (torchaudio's :class:`~torchaudio.models.conv_tasnet.ConvBlock`:
1x1 conv to ``hidden``, PReLU, global layer norm, depthwise conv, PReLU, global layer norm, 1x1 convs back
to ``channels`` for the residual and the skip path); the skip outputs are summed, as in Conv-TasNet.

Every frame is computed at once, not one after the other as in a recurrence, so both CPU threads
work on a whole track.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torchaudio.models.conv_tasnet import ConvBlock

from danet_music2vec.models.encoder import InputNorm, SpectralInput
from danet_music2vec.models.mask_network import MaskHead


class TcnEncoder(SpectralInput):
    """``(B, T, F)`` magnitude -> TCN features ``(B, T, channels)`` (the sum of the blocks' skip outputs)."""

    def __init__(self, n_freq: int, channels: int, hidden: int, kernel: int, blocks: int, repeats: int,
                 floor_db: float = 80.0, input_norm: InputNorm = "chunk_db") -> None:  # fmt: skip
        super().__init__(n_freq, floor_db, input_norm)
        if kernel % 2 == 0:
            raise ValueError(f"kernel={kernel}: a non-causal TCN needs an odd kernel (centred on its frame)")
        self.out_features = channels
        # Frames one output frame hears, centred on it.
        self.receptive_field = 1 + repeats * (kernel - 1) * (2**blocks - 1)
        self.bottleneck = nn.Conv1d(n_freq, channels, kernel_size=1)
        self.blocks = nn.ModuleList(
            ConvBlock(channels, hidden, kernel, padding=2**b * (kernel - 1) // 2, dilation=2**b,
                      no_residual=r == repeats - 1 and b == blocks - 1)  # the last block's residual would go nowhere
            for r in range(repeats) for b in range(blocks)
        )  # fmt: skip
        self.output = nn.PReLU()

    def forward(self, mag: torch.Tensor) -> torch.Tensor:
        x = self.bottleneck(self.features(mag).transpose(1, 2))  # (B, channels, T)
        skips = torch.zeros_like(x)
        for block in self.blocks:
            residual, skip = block(x)
            if residual is not None:
                x = x + residual
            skips = skips + skip
        return self.output(skips).transpose(1, 2)


class TcnMaskNetwork(nn.Module):
    """TCN encoder + mask head: ``forward(mag (B, T, F)) -> masks (B, T, F, C)``, music first. Pure ``nn.Module``."""

    architecture = "tcn"
    has_embedding, has_mask_head = False, True

    def __init__(self, n_freq: int, channels: int = 128, hidden: int = 256, kernel: int = 3, blocks: int = 6,
                 repeats: int = 3, n_sources: int = 2, floor_db: float = 80.0,
                 input_norm: InputNorm = "chunk_db") -> None:  # fmt: skip
        super().__init__()
        self.config: dict[str, Any] = {"architecture": self.architecture, "n_freq": n_freq, "channels": channels,
                                       "hidden": hidden, "kernel": kernel, "blocks": blocks, "repeats": repeats,
                                       "n_sources": n_sources, "floor_db": floor_db, "input_norm": input_norm}  # fmt: skip
        self.n_freq, self.n_sources = n_freq, n_sources
        self.encoder = TcnEncoder(n_freq, channels, hidden, kernel, blocks, repeats, floor_db, input_norm)
        self.mask_head = MaskHead(self.encoder.out_features, n_freq, n_sources)

    def head_masks(self, mag: torch.Tensor) -> torch.Tensor:
        """Masks ``(B, T, F, C)`` of the mask head (the separator's common inference call)."""
        return self.mask_head(self.encoder(mag))

    def forward(self, mag: torch.Tensor) -> torch.Tensor:
        return self.head_masks(mag)
