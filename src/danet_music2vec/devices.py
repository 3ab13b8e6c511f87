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
    """The forward pass's autocast for a ``precision``: bf16 autocast, or disabled for fp32.

    bf16 on a CPU without bf16 units is a :class:`DeviceError`: oneDNN cannot build its bf16 LSTM
    there ("could not create a primitive descriptor"), and emulated bf16 would be slower than fp32.
    """
    if precision == "bf16" and device.type == "cpu" and not bf16_is_native(device):
        raise DeviceError("precision bf16 needs a CPU with bf16 units (AVX512-BF16 or AMX) or a GPU, and this CPU has "
                          "none; set precision to auto (bf16 only where it is native) or fp32")  # fmt: skip
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def bf16_is_native(device: torch.device) -> bool:
    """Whether ``device`` computes bf16 in hardware (a CPU with AVX512-BF16 or AMX, a GPU with bf16 units).

    Elsewhere bf16 autocast is emulated and slower than fp32, so ``precision: auto`` keeps fp32 there.
    """
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    # oneDNN's own check (a private op, but the one autocast's CPU kernels rely on).
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def resolve_precision(device: torch.device, precision: str) -> str:
    """``auto`` -> ``bf16`` where the device computes it natively (:func:`bf16_is_native`), else ``fp32``."""
    if precision == "auto":
        return "bf16" if bf16_is_native(device) else "fp32"
    return precision
