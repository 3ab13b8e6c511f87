"""music2vec: a SoundNet-style raw-waveform CNN, an LSTM over its frames, and a genre head.

The convolutional front end follows SoundNet's 8-layer network (Aytar, Vondrick &
Torralba, "SoundNet", NIPS 2016): 1-D conv -> batch norm -> ReLU blocks with
SoundNet's kernel sizes, strides and paddings, and its max-pools after layers 1, 2
and 5. SoundNet's 8th layer (its object/scene classifier) is replaced by an LSTM
over the conv frames and a linear layer over the genres, so the network takes
crops of any length that yield at least one frame.

``channels`` picks how many SoundNet layers are used (1 to 7) and their widths;
SoundNet's own widths are 16, 32, 64, 128, 256, 512, 1024. The default
(16, 32, 64, 128, 256) keeps SoundNet's first five layers at their original size,
so pretrained SoundNet weights for those layers fit (:meth:`Music2Vec.load_soundnet_state`),
and is small enough to train on CPU.

The module is pure: no file I/O (reading and checking weight files happens in
``danet_music2vec.music2vec_training``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import torch
from torch import nn

# SoundNet was trained on waveforms in [-256, 256]: its Torch7 loader returns
# 32-bit integer samples, which the original code multiplies by 2**-23
# (2**31 * 2**-23 = 256). Our audio is float in [-1, 1], so it is multiplied by 256
# before the first conv; this keeps pretrained SoundNet weights (and their batch-norm
# statistics) valid and is harmless when training from scratch.
SOUNDNET_INPUT_SCALE = 256.0

# (kernel, stride, padding) of SoundNet's conv1..conv7 and the max-pool (kernel = stride)
# that follows the layer, 0 = none. conv8 (the classifier) is not used.
SOUNDNET_LAYERS: tuple[tuple[int, int, int, int], ...] = (
    (64, 2, 32, 8),
    (32, 2, 16, 8),
    (16, 2, 8, 0),
    (8, 2, 4, 0),
    (4, 2, 2, 4),
    (4, 2, 2, 0),
    (4, 2, 2, 0),
)
SOUNDNET_CHANNELS = (16, 32, 64, 128, 256, 512, 1024)


class ConvBlock(nn.Module):
    """One SoundNet layer: conv -> batch norm -> ReLU (-> max-pool)."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int, padding: int, pool: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(in_channels, out_channels, kernel, stride=stride, padding=padding)
        self.bn = nn.BatchNorm1d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.pool = nn.MaxPool1d(pool, stride=pool) if pool else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.relu(self.bn(self.conv(x))))


class Music2Vec(nn.Module):
    """Raw waveform (batch, samples) in [-1, 1] -> genre logits (batch, n_classes).

    Args:
        n_classes: number of genres.
        channels: output channels of SoundNet layers 1..len(channels) (1 to 7 layers).
        lstm_hidden: hidden size of the (unidirectional, one-layer) LSTM over conv frames.
        dropout: dropout before the linear head.
    """

    def __init__(
        self,
        n_classes: int,
        channels: Sequence[int] = (16, 32, 64, 128, 256),
        lstm_hidden: int = 64,
        dropout: float = 0.3,
    ) -> None:
        super().__init__()
        channels = tuple(int(c) for c in channels)
        if not 1 <= len(channels) <= len(SOUNDNET_LAYERS):
            raise ValueError(f"channels must list 1 to {len(SOUNDNET_LAYERS)} layer widths, got {channels}")
        if n_classes < 1 or lstm_hidden < 1 or min(channels) < 1:
            raise ValueError("n_classes, lstm_hidden and every channel count must be positive")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.n_classes = int(n_classes)
        self.channels = channels
        self.lstm_hidden = int(lstm_hidden)
        self.dropout_p = float(dropout)
        blocks = []
        in_channels = 1
        for out_channels, (kernel, stride, padding, pool) in zip(channels, SOUNDNET_LAYERS):
            blocks.append(ConvBlock(in_channels, out_channels, kernel, stride, padding, pool))
            in_channels = out_channels
        self.convs = nn.ModuleList(blocks)
        self.lstm = nn.LSTM(in_channels, self.lstm_hidden, batch_first=True)
        self.dropout = nn.Dropout(self.dropout_p)
        self.head = nn.Linear(self.lstm_hidden, self.n_classes)

    def config(self) -> dict[str, object]:
        """Constructor arguments, so a checkpoint can rebuild the same network."""
        return {
            "n_classes": self.n_classes,
            "channels": list(self.channels),
            "lstm_hidden": self.lstm_hidden,
            "dropout": self.dropout_p,
        }

    def n_frames(self, n_samples: int) -> int:
        """How many conv frames (LSTM steps) an input of ``n_samples`` gives (<= 0: too short)."""
        length = int(n_samples)
        for kernel, stride, padding, pool in SOUNDNET_LAYERS[: len(self.channels)]:
            length = (length + 2 * padding - kernel) // stride + 1
            if pool:
                length //= pool
            if length < 1:  # an empty intermediate map: padding later on cannot rescue it
                return 0
        return length

    def min_samples(self) -> int:
        """The shortest input that yields one frame."""
        n = 1
        while self.n_frames(n) < 1:
            n *= 2
        lo, hi = n // 2, n
        while lo + 1 < hi:
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if self.n_frames(mid) >= 1 else (mid, hi)
        return hi

    def frames(self, wave: torch.Tensor) -> torch.Tensor:
        """Conv features (batch, frames, channels[-1]) of a waveform batch in [-1, 1]."""
        if wave.dim() == 3:
            if wave.shape[1] != 1:
                raise ValueError(f"expected mono input (batch, 1, samples), got shape {tuple(wave.shape)}")
            wave = wave[:, 0]
        if wave.dim() != 2:
            raise ValueError(f"expected input (batch, samples), got shape {tuple(wave.shape)}")
        if self.n_frames(wave.shape[-1]) < 1:
            raise ValueError(
                f"input of {wave.shape[-1]} samples is too short for {len(self.channels)} SoundNet layers; "
                f"need at least {self.min_samples()} samples"
            )
        x = (wave * SOUNDNET_INPUT_SCALE).unsqueeze(1)
        for block in self.convs:
            x = block(x)
        return x.transpose(1, 2)

    def embed(self, wave: torch.Tensor) -> torch.Tensor:
        """The music2vec vector (batch, lstm_hidden): LSTM outputs averaged over time.

        Averaging every step (rather than keeping only the last) lets each part of the
        crop contribute equally, whatever the crop length.
        """
        out, _ = self.lstm(self.frames(wave))
        return out.mean(dim=1)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """Genre logits (batch, n_classes) of a waveform batch (batch, samples) in [-1, 1]."""
        return self.head(self.dropout(self.embed(wave)))

    def load_soundnet_state(self, state: Mapping[str, torch.Tensor]) -> list[int]:
        """Copy matching pretrained SoundNet conv layers (conv + batch norm) into this network.

        Accepts two key layouts: the common PyTorch port of SoundNet8
        (``conv{i}.0.weight`` for the conv with 2-D kernels shaped (out, in, k, 1),
        ``conv{i}.1.*`` for its batch norm) and this module's own
        (``convs.{i-1}.conv.*`` / ``convs.{i-1}.bn.*``). A layer is copied only when
        every tensor of it has the right shape; the LSTM and head are never touched.
        Returns the 1-based SoundNet layer numbers that were loaded.
        """
        # Group the incoming tensors per layer as {"conv.weight": t, "bn.running_mean": t, ...}.
        per_layer: dict[int, dict[str, torch.Tensor]] = {}
        port = re.compile(r"^(?:module\.)?conv(\d+)\.([01])\.(weight|bias|running_mean|running_var)$")
        ours = re.compile(r"^(?:module\.)?convs\.(\d+)\.(conv|bn)\.(weight|bias|running_mean|running_var)$")
        for key, tensor in state.items():
            if m := port.match(key):
                layer, part = int(m.group(1)), "conv" if m.group(2) == "0" else "bn"
            elif m := ours.match(key):
                layer, part = int(m.group(1)) + 1, m.group(2)
            else:
                continue
            tensor = torch.as_tensor(tensor)
            if part == "conv" and m.group(3) == "weight" and tensor.dim() == 4 and tensor.shape[-1] == 1:
                tensor = tensor[..., 0]  # (out, in, k, 1) 2-D port kernel -> (out, in, k)
            per_layer.setdefault(layer, {})[f"{part}.{m.group(3)}"] = tensor
        loaded = []
        for index, block in enumerate(self.convs, start=1):
            incoming = per_layer.get(index)
            if not incoming:
                continue
            target = {k: v for k, v in block.state_dict().items() if k != "bn.num_batches_tracked"}
            if set(incoming) != set(target) or any(incoming[k].shape != target[k].shape for k in target):
                continue
            block.load_state_dict({k: incoming[k].to(target[k].dtype) for k in target}, strict=False)
            loaded.append(index)
        return loaded
