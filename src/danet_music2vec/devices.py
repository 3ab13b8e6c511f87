"""Devices (``auto | cpu | cuda``) for training, separation and classification, and the trainers' autocast."""

from __future__ import annotations

import torch

from danet_music2vec.errors import DeviceError


def resolve_device(device: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a GPU is a :class:`DeviceError`."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device={device!r}; use one of auto, cpu, cuda")
    if device == "cuda" and not torch.cuda.is_available():
        raise DeviceError("device cuda was asked for but no CUDA device is available; use auto or cpu")
    return torch.device(device)


def autocast(device: torch.device, precision: str) -> torch.autocast:
    """The forward pass's autocast for a ``precision``: bf16 autocast, or disabled for fp32."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
