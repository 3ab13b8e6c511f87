"""The ``device`` params (``auto | cpu | cuda``) shared by training, separation and classification, and the trainers' ``precision``."""

from __future__ import annotations

import torch

from danet_music2vec.params import ParamError


def resolve_device(device: str, key: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a GPU is a param error naming ``key``."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ParamError(f"params.yaml: {key}=cuda but no CUDA device is available; use auto or cpu")
    if device not in ("cpu", "cuda"):
        raise ParamError(f"params.yaml: {key}={device!r} is not allowed; use one of auto, cpu, cuda")
    return torch.device(device)


PRECISIONS = ("fp32", "bf16")


def autocast(device: torch.device, precision: str) -> torch.autocast:
    """The forward pass's autocast for a ``precision`` param: bf16 autocast, or disabled for fp32."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
