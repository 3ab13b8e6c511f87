"""DANet training loop: dynamic mixing, ideal/k-means attractors, resumable checkpoints.

One epoch visits the chunks of a :class:`~danet_music2vec.features.FeatureStore` (or a
random ``chunks_per_epoch`` of them) in a seeded order. Each chunk's mixture is formed
here as ``music + g * noise`` (the STFT is linear), with ``g`` drawn so that the chunk's
music-to-noise ratio is uniform in ``danet.train_snr_db`` (dynamic mixing; ``null``
keeps the levels of the mix stage). Epochs ``1 .. epochs - kmeans_epochs`` build the
attractors from the ideal binary mask, the last ``kmeans_epochs`` with k-means (as at
inference), where the loss is permutation invariant because cluster order is arbitrary.

After every epoch a checkpoint is written atomically: model and optimizer state, the
epoch, the loss history, the global RNG state, the mean training attractors of the
epoch (``(C, K)``, music first; the Separator uses them to tell music from noise) and
the parameters. Rerunning with a checkpoint whose parameters and training data match
resumes at the next epoch, so a killed run loses at most one epoch; the shuffling
order and the mixing gains of epoch ``e`` are drawn from generators seeded with
``(seed, e)``, so a resumed run computes the same as an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import pickle
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from danet_music2vec.atomic import atomic_path
from danet_music2vec.devices import resolve_device
from danet_music2vec.features import ChunkDataset, FeatureStore
from danet_music2vec.losses import LOSS_KINDS, MASK_KINDS, danet_loss, ideal_binary_assignment, ideal_masks
from danet_music2vec.models.danet import DANet
from danet_music2vec.params import ParamError

CHECKPOINT_FORMAT = 1
SOURCES = ("music", "noise")
DEVICES = ("auto", "cpu", "cuda")
# ideal: the 2017 paper (ideal-mask attractors, k-means in the last kmeans_epochs and at
# inference); anchored: the anchored DANet of the 2018 journal version.
TRAIN_ATTRACTORS = ("ideal", "anchored")
_TINY = 1e-10
# Keys whose change does not invalidate a checkpoint: `epochs` may grow (resume and
# train further); device and progress bars do not change what is computed.
_NOT_MATCHED = ("epochs", "device", "progress")


@dataclass(frozen=True)
class DanetTrainConfig:
    """The ``danet`` group of params.yaml (see the report / params.yaml comments)."""

    hidden: int = 300
    layers: int = 4
    embedding_dim: int = 20
    dropout: float = 0.0
    epochs: int = 20
    kmeans_epochs: int = 5
    batch_size: int = 32
    lr: float = 1e-3
    threshold_db: float | None = 40.0  # None: every bin counts (the original work)
    attractor: str = "ideal"
    loss: str = "linear_mse"
    mask: str = "ratio"
    train_snr_db: tuple[float, float] | None = (-5.0, 5.0)
    chunks_per_epoch: int | None = None
    grad_clip: float | None = None
    seed: int = 0
    device: str = "auto"
    progress: bool = True

    def __post_init__(self) -> None:
        for key in ("hidden", "layers", "embedding_dim", "epochs", "batch_size"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ParamError(f"params.yaml: danet.{key}={value!r} must be a positive integer")
        if not isinstance(self.kmeans_epochs, int) or not 0 <= self.kmeans_epochs <= self.epochs:
            raise ParamError(f"params.yaml: danet.kmeans_epochs={self.kmeans_epochs!r} must be between 0 and danet.epochs")
        if not 0.0 <= self.dropout < 1.0:
            raise ParamError(f"params.yaml: danet.dropout={self.dropout!r} must be in [0, 1)")
        if not self.lr > 0:
            raise ParamError(f"params.yaml: danet.lr={self.lr!r} must be a positive number")
        if self.threshold_db is not None and not self.threshold_db > 0:
            raise ParamError(f"params.yaml: danet.threshold_db={self.threshold_db!r} must be a positive number of dB or null")
        if self.attractor not in TRAIN_ATTRACTORS:
            raise ParamError(
                f"params.yaml: danet.attractor={self.attractor!r} is not allowed; use one of {', '.join(TRAIN_ATTRACTORS)}"
            )
        if self.attractor == "anchored" and self.kmeans_epochs:
            raise ParamError("params.yaml: danet.kmeans_epochs must be 0 with danet.attractor=anchored (anchors replace k-means)")
        if self.loss not in LOSS_KINDS:
            raise ParamError(f"params.yaml: danet.loss={self.loss!r} is not allowed; use one of {', '.join(LOSS_KINDS)}")
        if self.mask not in MASK_KINDS:
            raise ParamError(f"params.yaml: danet.mask={self.mask!r} is not allowed; use one of {', '.join(MASK_KINDS)}")
        if self.device not in DEVICES:
            raise ParamError(f"params.yaml: danet.device={self.device!r} is not allowed; use one of {', '.join(DEVICES)}")
        if self.chunks_per_epoch is not None and (not isinstance(self.chunks_per_epoch, int) or self.chunks_per_epoch <= 0):
            raise ParamError(f"params.yaml: danet.chunks_per_epoch={self.chunks_per_epoch!r} must be a positive integer or null")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ParamError(f"params.yaml: danet.grad_clip={self.grad_clip!r} must be a positive number or null")

    @classmethod
    def from_params(cls, danet: Mapping[str, Any]) -> "DanetTrainConfig":
        """Build from ``params["danet"]``; unknown keys are an error (a typo must not be silently ignored)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(danet) - names)
        if unknown:
            raise ParamError(f"params.yaml: unknown key(s) danet.{', danet.'.join(unknown)}; allowed: {', '.join(sorted(names))}")
        values = dict(danet)
        snr = values.get("train_snr_db", cls.train_snr_db)
        if snr is not None:
            if isinstance(snr, (int, float)) and not isinstance(snr, bool):
                snr = (float(snr), float(snr))
            if not (isinstance(snr, (list, tuple)) and len(snr) == 2 and float(snr[0]) <= float(snr[1])):
                raise ParamError(f"params.yaml: danet.train_snr_db={snr!r} must be [lo, hi] in dB with lo <= hi, a number, or null")
            values["train_snr_db"] = (float(snr[0]), float(snr[1]))
        for key in ("dropout", "lr", "threshold_db"):
            if values.get(key) is not None:
                try:
                    values[key] = float(values[key])
                except (TypeError, ValueError):
                    raise ParamError(f"params.yaml: danet.{key}={values[key]!r} must be a number") from None
        return cls(**values)

    def as_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["train_snr_db"] = list(self.train_snr_db) if self.train_snr_db is not None else None
        return out


@dataclass(frozen=True)
class EpochStats:
    """What ``on_epoch`` receives after each epoch."""

    epoch: int
    loss: float
    seconds: float
    chunks: int
    chunks_per_s: float
    attractors: str  # "ideal", "kmeans" or "anchored"


@dataclass
class TrainResult:
    """Outcome of :func:`train_danet` (``losses`` covers every epoch, resumed ones included)."""

    model: DANet
    losses: list[float]
    train_attractors: torch.Tensor  # (C, K), music first
    start_epoch: int  # first epoch trained by this call (epochs + 1 if nothing was left to train)
    epochs: int
    seconds: float  # wall time of this call's epochs
    chunks: int  # chunks trained by this call
    n_chunks: int  # chunks per epoch
    device: str
    history: list[EpochStats] = field(default_factory=list)  # every epoch, resumed ones included

    @property
    def chunks_per_s(self) -> float:
        """Training throughput over every epoch in the history (this call's and resumed ones)."""
        seconds = sum(h.seconds for h in self.history)
        return sum(h.chunks for h in self.history) / seconds if seconds > 0 else float("nan")

    @property
    def new_epochs(self) -> list[EpochStats]:
        """The epochs trained by this call."""
        return [h for h in self.history if h.epoch >= self.start_epoch]

    @property
    def resumed(self) -> bool:
        return self.start_epoch > 1


def data_fingerprint(store: FeatureStore) -> str:
    """Hash of the STFT settings and the chunk index (its per-chunk RMS columns change with the mix)."""
    digest = hashlib.sha256(repr(dataclasses.asdict(store.config)).encode())
    digest.update(pd.util.hash_pandas_object(store.index, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def build_model(cfg: DanetTrainConfig, n_freq: int) -> DANet:
    """The DANet that ``cfg`` describes."""
    return DANet(
        n_freq,
        hidden=cfg.hidden,
        layers=cfg.layers,
        embedding_dim=cfg.embedding_dim,
        n_sources=len(SOURCES),
        dropout=cfg.dropout,
        threshold_db=cfg.threshold_db,
    )


def noise_gains(
    music: torch.Tensor, noise: torch.Tensor, snr_db: tuple[float, float], generator: torch.Generator
) -> torch.Tensor:
    """Per-chunk gains ``(B, 1, 1)`` for ``noise`` so that music/noise energy is uniform in ``snr_db``.

    A chunk with (near) silent music or noise keeps gain 1: no SNR can be set there.
    Gains are limited to +-40 dB so one near-silent chunk cannot blow up the batch.
    """
    lo, hi = snr_db
    snr = lo + (hi - lo) * torch.rand(music.shape[0], generator=generator)
    e_music = music.abs().square().sum(dim=(1, 2)).double().cpu()
    e_noise = noise.abs().square().sum(dim=(1, 2)).double().cpu()
    gain = torch.sqrt(e_music / (e_noise.clamp_min(_TINY) * 10.0 ** (snr.double() / 10.0)))
    gain = torch.where((e_music > _TINY) & (e_noise > _TINY), gain, torch.ones_like(gain)).clamp(0.01, 100.0)
    return gain.to(device=noise.device, dtype=noise.real.dtype).reshape(-1, 1, 1)


def _match_key(cfg: DanetTrainConfig, model: DANet, fingerprint: str) -> dict[str, Any]:
    params = {k: v for k, v in cfg.as_dict().items() if k not in _NOT_MATCHED}
    return {"params": params, "model": dict(model.config), "data": fingerprint, "format": CHECKPOINT_FORMAT}


def _epoch_seed(seed: int, epoch: int, stream: int) -> int:
    # Independent, reproducible streams per (seed, epoch, purpose).
    return int.from_bytes(hashlib.sha256(f"{seed}:{epoch}:{stream}".encode()).digest()[:7], "little")


def save_checkpoint(path: str | os.PathLike[str], state: dict[str, Any]) -> None:
    """``torch.save`` to a temp file, then rename: a killed run never leaves half a checkpoint."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load a checkpoint written by :func:`train_danet` onto the CPU."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as err:
        raise ValueError(f"{path}: not a readable DANet checkpoint ({err}); delete it and rerun `dvc repro train_danet`") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT or "model_config" not in state:
        raise ValueError(f"{path}: not a DANet checkpoint of format {CHECKPOINT_FORMAT}; rerun `dvc repro train_danet`")
    return state


def export_model(checkpoint_path: str | os.PathLike[str], model_path: str | os.PathLike[str]) -> None:
    """Write the inference part of a finished checkpoint (no optimizer or RNG state) to ``model_path``, atomically."""
    state = load_checkpoint(checkpoint_path)
    if not state.get("complete", False):
        raise ValueError(f"{checkpoint_path}: training is not finished (epoch {state['epoch']}); rerun `dvc repro train_danet`")
    save_checkpoint(model_path, {k: v for k, v in state.items() if k not in ("optimizer_state", "rng")})


def model_from_checkpoint(state: Mapping[str, Any]) -> DANet:
    """Rebuild the trained model (eval mode, CPU) from a loaded checkpoint."""
    model = DANet(**state["model_config"])
    model.load_state_dict(state["model_state"])
    return model.eval()


def train_danet(
    store: FeatureStore,
    cfg: DanetTrainConfig,
    checkpoint_path: str | os.PathLike[str],
    on_epoch: Callable[[EpochStats], None] | None = None,
) -> TrainResult:
    """Train (or resume training of) a DANet on ``store``; checkpoint to ``checkpoint_path`` after every epoch."""
    checkpoint_path = Path(checkpoint_path)
    device = resolve_device(cfg.device, "danet.device")
    if len(store) == 0:
        raise ValueError(f"{store.root}: the feature store has no chunks; check data/mixtures.parquet has train mixtures")
    torch.manual_seed(cfg.seed)
    model = build_model(cfg, store.config.n_freq)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    match = _match_key(cfg, model, data_fingerprint(store))
    losses: list[float] = []
    history: list[EpochStats] = []
    attractors = torch.zeros(len(SOURCES), cfg.embedding_dim)
    start_epoch = 1

    if checkpoint_path.is_file():
        state = load_checkpoint(checkpoint_path)
        if state.get("match") == match and state["epoch"] <= cfg.epochs:
            model.load_state_dict(state["model_state"])
            optimizer.load_state_dict(state["optimizer_state"])
            losses = list(state["losses"])
            history = [EpochStats(**h) for h in state.get("history", [])]
            attractors = state["train_attractors"]
            torch.set_rng_state(state["rng"]["torch"])
            if device.type == "cuda" and state["rng"].get("cuda") is not None:
                torch.cuda.set_rng_state_all(state["rng"]["cuda"])
            start_epoch = state["epoch"] + 1
        else:
            print(
                f"{checkpoint_path}: written for other parameters or training data; training from scratch",
                file=sys.stderr,
            )

    model.to(device)
    # Adam's state was loaded on the CPU; move it next to the parameters.
    for group in optimizer.state.values():
        for k, v in group.items():
            if isinstance(v, torch.Tensor) and k != "step":
                group[k] = v.to(device)

    dataset = ChunkDataset(store)
    n_chunks = min(cfg.chunks_per_epoch or len(dataset), len(dataset))
    total_seconds, total_chunks = 0.0, 0
    for epoch in range(start_epoch, cfg.epochs + 1):
        use_kmeans = epoch > cfg.epochs - cfg.kmeans_epochs
        source = "kmeans" if use_kmeans else cfg.attractor
        order_gen = torch.Generator().manual_seed(_epoch_seed(cfg.seed, epoch, 0))
        mix_gen = torch.Generator().manual_seed(_epoch_seed(cfg.seed, epoch, 1))
        if n_chunks < len(dataset):
            order = torch.randperm(len(dataset), generator=order_gen)[:n_chunks].tolist()
        else:
            order = dataset.shard_grouped_order(order_gen)
        loader = DataLoader(dataset, batch_size=cfg.batch_size, sampler=order, num_workers=0)
        model.train()
        start = time.perf_counter()
        loss_sum, seen = 0.0, 0
        attractor_sum = torch.zeros(len(SOURCES), cfg.embedding_dim, dtype=torch.float64)
        attractor_count = torch.zeros(len(SOURCES), 1, dtype=torch.float64)
        bar = tqdm(
            loader,
            desc=f"danet {epoch}/{cfg.epochs} ({source})",
            unit="batch",
            disable=not cfg.progress,
            leave=False,
            mininterval=2.0,
        )
        for music, noise in bar:
            music, noise = music.to(device), noise.to(device)
            if cfg.train_snr_db is not None:
                noise = noise * noise_gains(music, noise, cfg.train_snr_db, mix_gen)
            sources = torch.stack([music, noise])
            mag = (music + noise).abs()
            target = ideal_masks(sources, cfg.mask)
            if cfg.attractor == "anchored":
                out = model(mag, attractor_source="anchored", return_details=True)
            elif use_kmeans:
                out = model(mag, attractor_source="kmeans", return_details=True)
            else:
                assignment = ideal_binary_assignment(sources)
                out = model(mag, attractor_source="ideal", ideal_assignment=assignment, return_details=True)
            loss, order_used = danet_loss(mag, target, out.masks, cfg.loss, permutation_invariant=use_kmeans)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()

            with torch.no_grad():
                a = out.attractors.gather(1, order_used.unsqueeze(-1).expand(-1, -1, out.attractors.shape[-1]))
                if use_kmeans or cfg.attractor == "anchored":
                    present = torch.ones(a.shape[:2], device=a.device)
                else:
                    # A source with no active bin in the chunk has no attractor (it is 0): skip it.
                    present = ((assignment.reshape(a.shape[0], -1, a.shape[1]) * out.active.unsqueeze(-1)).sum(1) > 0).to(a.dtype)
                attractor_sum += (a * present.unsqueeze(-1)).sum(0).double().cpu()
                attractor_count += present.sum(0).double().cpu().unsqueeze(-1)
            loss_sum += float(loss.detach()) * music.shape[0]
            seen += music.shape[0]
            bar.set_postfix(loss=f"{loss_sum / seen:.4g}", refresh=False)
        bar.close()
        seconds = time.perf_counter() - start
        epoch_loss = loss_sum / seen
        if not math.isfinite(epoch_loss):
            raise FloatingPointError(
                f"DANet training diverged at epoch {epoch} (loss {epoch_loss}); lower danet.lr or set danet.grad_clip"
            )
        losses.append(epoch_loss)
        attractors = (attractor_sum / attractor_count.clamp_min(1.0)).float()
        stats = EpochStats(epoch, epoch_loss, seconds, seen, seen / seconds, source)
        history.append(stats)
        save_checkpoint(
            checkpoint_path,
            {
                "format": CHECKPOINT_FORMAT,
                "epoch": epoch,
                "complete": epoch == cfg.epochs,
                "model_config": dict(model.config),
                "model_state": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                "optimizer_state": _to_cpu(optimizer.state_dict()),
                "losses": losses,
                "history": [dataclasses.asdict(h) for h in history],
                "train_attractors": attractors,
                "sources": list(SOURCES),
                "stft": dataclasses.asdict(store.config),
                "params": cfg.as_dict(),
                "match": match,
                "rng": {
                    "torch": torch.get_rng_state(),
                    "cuda": torch.cuda.get_rng_state_all() if device.type == "cuda" else None,
                },
            },
        )
        total_seconds += seconds
        total_chunks += seen
        if on_epoch is not None:
            on_epoch(stats)

    return TrainResult(
        model=model.cpu().eval(),
        losses=losses,
        train_attractors=attractors,
        start_epoch=start_epoch,
        epochs=cfg.epochs,
        seconds=total_seconds,
        chunks=total_chunks,
        n_chunks=n_chunks,
        device=str(device),
        history=history,
    )


def _to_cpu(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_to_cpu(v) for v in obj]
    return obj
