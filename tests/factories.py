"""Real model files for tests, written the way the pipeline writes them, with untrained tiny networks.

``separator_file`` writes what the ``separate`` stage writes (models/separator.pt): the
network file of ``train_separator`` (what :func:`danet_music2vec.checkpoints.export` keeps of
a finished training checkpoint) plus ``inference``, the ``separate`` params it was scored
with. ``music2vec_file`` writes what ``train_music2vec`` exports (models/music2vec.pt).
Nothing is trained: the tests that use them check loading and plumbing, not quality.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from danet_music2vec import checkpoints
from danet_music2vec.dsp import StftConfig
from danet_music2vec.models.music2vec import Music2Vec
from danet_music2vec.params import Music2VecParams, SeparateParams, SeparatorParams
from tests.conftest import music2vec_params, separate_params, separator_params

# A small STFT at the repository's 8 kHz rate: tiny networks, quick tests.
TINY_STFT = StftConfig(sample_rate=8000, n_fft=64, hop=16, window="sqrt_hann", chunk_frames=20)


def magnitudes(batch: int = 3, frames: int = 10, freq: int = 17) -> torch.Tensor:
    """A seeded batch of positive STFT magnitudes ``(batch, frames, freq)``: what the separator networks take in."""
    return torch.rand(batch, frames, freq, generator=torch.Generator().manual_seed(1)) + 0.01


def tiny_separator_params(architecture: str = "mask") -> SeparatorParams:
    """params.yaml's ``separator`` group with a one-layer, four-unit network of ``architecture``."""
    small = {"embedding_dim": 3}
    return separator_params(architecture=architecture, hidden=4, layers=1, epochs=1, chimera=small, danet=small)


def tiny_separator_network(cfg: SeparatorParams, stft_cfg: StftConfig = TINY_STFT, seed: int = 0) -> nn.Module:
    """An untrained network of ``cfg.architecture``, built as training builds it."""
    from danet_music2vec.separator_training import build_network

    torch.manual_seed(seed)
    return build_network(cfg, stft_cfg.n_freq).eval()


def separator_network_state(model: nn.Module, cfg: SeparatorParams, stft_cfg: StftConfig = TINY_STFT,
                            train_attractors: torch.Tensor | None = None) -> dict[str, Any]:  # fmt: skip
    """What ``train_separator`` exports to models/separator_network.pt (one finished epoch, no optimizer)."""
    embedding_dim = cfg.embedding.embedding_dim if cfg.embedding is not None else 0
    if train_attractors is None:  # music at +e0, noise at -e0 (zeros (2, 0) for the mask network)
        train_attractors = torch.zeros(2, embedding_dim)
        if embedding_dim:
            train_attractors[:, 0] = torch.tensor([1.0, -1.0])
    history = [{"epoch": 1, "loss": 1.0, "seconds": 1.0, "examples": 8, "chunks_per_s": 8.0,
                "attractors": "head", "val_loss": 1.0, "val_si_sdr": 0.0}]  # fmt: skip
    return {
        "epoch": 1,
        "complete": True,
        "model_config": dict(model.config),
        "model_state": model.state_dict(),
        "losses": [1.0],
        "history": history,
        "train_attractors": train_attractors,
        "sources": ["music", "noise"],
        "stft": dataclasses.asdict(stft_cfg),
        "params": cfg.used(),
        "best_epoch": 1,
        "best_val_si_sdr": 0.0,
        "training_clips": [],
    }


def separator_file(path: Path, model: nn.Module | None = None, cfg: SeparatorParams | None = None,
                   settings: SeparateParams | None = None, stft_cfg: StftConfig = TINY_STFT,
                   train_attractors: torch.Tensor | None = None) -> Path:  # fmt: skip
    """Write models/separator.pt as the ``separate`` stage does: the network plus its inference settings.

    Defaults: a tiny untrained mask network and params.yaml's ``separate`` group.
    """
    cfg = cfg or tiny_separator_params()
    model = model if model is not None else tiny_separator_network(cfg, stft_cfg)
    settings = settings or separate_params()
    state = separator_network_state(model, cfg, stft_cfg, train_attractors)
    path.parent.mkdir(parents=True, exist_ok=True)
    checkpoints.save(path, "separator", state | {"inference": settings.used(cfg.architecture)})
    return path


def tiny_music2vec_params(**overrides: Any) -> Music2VecParams:
    """params.yaml's ``music2vec`` group with a small network (three 8-channel layers, 8 LSTM units)."""
    small = {"channels": (8, 8, 8), "lstm_hidden": 8, "epochs": 1, "device": "cpu"}
    return music2vec_params(**(small | overrides))


def music2vec_file(path: Path, classes: Sequence[str], cfg: Music2VecParams | None = None,
                   model: Music2Vec | None = None, seed: int = 0, rule: dict[str, Any] | None = None) -> Path:  # fmt: skip
    """Write models/music2vec.pt as ``train_music2vec`` exports it (default: an untrained tiny network); with
    ``rule`` (a ProductRule's dict), models/music2vec_adapted.pt as ``adapt_music2vec`` writes it."""
    cfg = cfg or tiny_music2vec_params()
    if model is None:
        torch.manual_seed(seed)
        model = Music2Vec(len(classes), channels=cfg.channels, lstm_hidden=cfg.lstm_hidden, dropout=cfg.dropout)
    state = {
        "epoch": 1,
        "complete": True,
        "model_config": model.config(),
        "model_state": model.state_dict(),
        "classes": list(classes),
        "params": cfg.model_dump(mode="json"),
        "history": [{"loss": 1.0, "accuracy": 0.5, "seconds": 1.0}],
    }
    if rule is not None:
        state |= {"product_rule": rule, "validation": {}, "adapted_from": {}}
    path.parent.mkdir(parents=True, exist_ok=True)
    checkpoints.save(path, "music2vec" if rule is None else "music2vec_adapted", state)
    return path


def banded_separator_file(path: Path, split_hz: float, settings: SeparateParams | None = None,
                          stft_cfg: StftConfig = TINY_STFT) -> Path:  # fmt: skip
    """models/separator.pt of a tiny mask network whose head says "music" below ``split_hz`` and "noise" above,
    whatever it hears: the oracle separator of a low tone in high-band noise (a real network file, weights set)."""
    cfg = tiny_separator_params()
    model = tiny_separator_network(cfg, stft_cfg)
    freqs = torch.arange(stft_cfg.n_freq) * stft_cfg.sample_rate / stft_cfg.n_fft
    music = torch.where(freqs < split_hz, 10.0, -10.0)
    with torch.no_grad():
        model.mask_head.linear.weight.zero_()
        model.mask_head.linear.bias.copy_(torch.stack([music, -music], dim=-1).reshape(-1))  # (F, C) flattened, music first
    return separator_file(path, model, cfg, settings, stft_cfg)
