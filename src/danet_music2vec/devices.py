"""Devices (``auto | cpu | cuda``) for training, separation and classification, and their numeric precision:
bf16 autocast, and int8 dynamic quantization for separation on the CPU."""

from __future__ import annotations

import warnings

import torch
from torch import nn

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
    """The forward pass's autocast for a ``precision``: bf16 autocast, or disabled for fp32 and int8 (the
    quantized layers compute in int8 themselves: :func:`quantize_int8`).

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
    """``auto`` -> ``bf16`` where the device computes it natively (:func:`bf16_is_native`), else ``fp32``.

    ``int8`` (:func:`quantize_int8`) is for the CPU only: on a GPU it is a :class:`DeviceError`.
    """
    if precision == "int8" and device.type != "cpu":
        raise DeviceError("precision int8 (dynamic quantization) runs on the CPU only; on a GPU use auto, bf16 or fp32")
    if precision == "auto":
        return "bf16" if bf16_is_native(device) else "fp32"
    return precision


def quantize_int8(model: nn.Module) -> nn.Module:
    """A copy of ``model`` (in eval mode) with int8 dynamic quantization of its LSTM and Linear layers: weights stored
    in int8, activations quantized per batch as they come. The rest (convolutions, STFT) stays fp32.

    For CPUs without bf16 units, where bf16 autocast is refused. ``torch.ao.quantization`` is deprecated (torchao
    replaces it for Linear layers but has no quantized LSTM); the pinned torch still has it, so its deprecation
    warnings are silenced here rather than shown on every separation.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, message=r"torch\.ao\.quantization is deprecated")
        warnings.filterwarnings("ignore", category=UserWarning, message=r"torch\.quantize_per_tensor")
        return torch.ao.quantization.quantize_dynamic(model.eval(), {nn.LSTM, nn.Linear}, dtype=torch.qint8)
