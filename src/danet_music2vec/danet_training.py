"""DANet training loop: dynamic mixing, objectives, validation, best epoch, resumable checkpoints.

Every step draws a fresh batch from :class:`~danet_music2vec.dynamic_mixing.DynamicMixer`:
any training music excerpt with ``noises`` training noise excerpts at random offsets and
a music-to-noise ratio drawn from ``danet.train_snr_db`` (bounded gain, silence-aware).
A seeded ``danet.val_fraction`` of the training tracks and noise recordings is held out;
after each epoch the model is scored on the same ``danet.val_examples`` held-out
mixtures (loss and the music's SI-SDR), and the epoch with the best validation SI-SDR is
the one exported.

Objectives (``danet.objective``): ``attractor`` is the paper's DANet (epochs
``1 .. epochs - kmeans_epochs`` build attractors from the ideal binary mask, the last
``kmeans_epochs`` with k-means, as at inference, with a permutation-invariant loss);
``chimera`` adds a mask-inference head on the same BLSTM and trains the weighted sum
``(1 - head_weight) * attractor loss + head_weight * head loss`` (Chimera++); ``mask``
is the plain mask-inference network (no embeddings), the baseline DANet must beat.

After every epoch a checkpoint is written atomically: model and optimizer state, the
best epoch's weights, the epoch, the loss and validation history, the mean training
attractors (``(C, K)``, music first; the Separator uses them to tell music from noise)
and the parameters. Rerunning with a checkpoint whose parameters and training data
match resumes at the next epoch. Every example of epoch ``e`` is mixed from its own seed,
derived from ``(seed, e, step, i)``, and dropout is seeded from ``(seed, e, rank)``, so a
resumed run computes the same as an uninterrupted one.

Data-parallel (``torchrun``, ``danet.nproc``; see :mod:`danet_music2vec.distributed`):
``batch_size`` is the global batch; each rank mixes and trains its equal share of every
batch under DistributedDataParallel, losses, attractors and validation scores are summed
over the ranks, and rank 0 alone writes the checkpoint. A checkpoint does not record the
number of processes, so a run killed under N processes resumes under any other number.
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
from typing import Any, NamedTuple

import pandas as pd
import torch
import numpy as np
from tqdm import tqdm

from danet_music2vec.atomic import atomic_path
from danet_music2vec.data.sources import SourceError
from danet_music2vec.devices import PRECISIONS, autocast, resolve_device
from danet_music2vec.distributed import World, check_nproc
from danet_music2vec.dsp import StftConfig, istft
from danet_music2vec.dynamic_mixing import EXTRA_PREFIX, DynamicMixer, MixedBatches, split_groups
from danet_music2vec.errors import CheckpointError
from danet_music2vec.features import FeatureStore
from danet_music2vec.losses import LOSS_KINDS, MASK_KINDS, ideal_binary_assignment, mask_loss, si_sdr
from danet_music2vec.models.danet import DANet
from danet_music2vec.params import ParamError

CHECKPOINT_FORMAT = 2
SOURCES = ("music", "noise")
DEVICES = ("auto", "cpu", "cuda")
# ideal: the 2017 paper (ideal-mask attractors, k-means in the last kmeans_epochs and at
# inference); anchored: the anchored DANet of the 2018 journal version.
TRAIN_ATTRACTORS = ("ideal", "anchored")
# attractor: the paper's DANet; chimera: + a mask-inference head (Chimera++); mask: the plain mask network.
OBJECTIVES = ("attractor", "chimera", "mask")
# constant: Adam at danet.lr throughout; cosine: from danet.lr down to 0 over every step of danet.epochs.
LR_SCHEDULES = ("constant", "cosine")
_TINY = 1e-10
# Keys whose change does not invalidate a checkpoint: `epochs` may grow (resume and
# train further); device and progress bars do not change what is computed,
# and neither do the process count (the batch is global) and the loader workers.
_NOT_MATCHED = ("epochs", "device", "progress", "nproc", "loader_workers")


@dataclass(frozen=True)
class DanetTrainConfig:
    """The ``danet`` group of params.yaml (see the report / params.yaml comments)."""

    hidden: int = 300
    layers: int = 4
    embedding_dim: int = 20
    dropout: float = 0.0
    epochs: int = 20
    kmeans_epochs: int = 0  # the paper recipe: 5 of 20 (objective attractor)
    batch_size: int = 32
    lr: float = 1e-3
    lr_schedule: str = "constant"
    threshold_db: float | None = 40.0  # None: every bin counts (the original work)
    attractor: str = "ideal"
    loss: str = "linear_mse"
    mask: str = "ratio"
    objective: str = "chimera"
    head_weight: float = 0.5
    train_snr_db: tuple[float, float] | None = (-10.0, 15.0)  # None: the recordings' own levels
    max_gain_db: float = 20.0
    train_eq_db: float | None = None  # random equalisation of every training excerpt, +-dB (None: off)
    extra_music_share: float | None = None  # share of examples from data.separation_music_dirs (None: by length)
    steps_per_epoch: int = 180
    val_fraction: float = 0.15
    val_examples: int = 128
    grad_clip: float | None = None
    seed: int = 0
    device: str = "auto"
    precision: str = "fp32"  # fp32 | bf16 (autocast of the network's forward pass)
    nproc: int = 1  # data-parallel training processes (torchrun); the batch is global
    loader_workers: int = 0  # DataLoader worker processes that mix batches ahead of the model
    noises: int = 1  # the top-level `noises`: noise clips in each training mixture
    progress: bool = True

    def __post_init__(self) -> None:
        for key in ("hidden", "layers", "embedding_dim", "epochs", "batch_size", "steps_per_epoch", "val_examples"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ParamError(f"params.yaml: danet.{key}={value!r} must be a positive integer")
        if not isinstance(self.kmeans_epochs, int) or not 0 <= self.kmeans_epochs <= self.epochs:
            raise ParamError(f"params.yaml: danet.kmeans_epochs={self.kmeans_epochs!r} must be between 0 and danet.epochs")
        if not 0.0 <= self.dropout < 1.0:
            raise ParamError(f"params.yaml: danet.dropout={self.dropout!r} must be in [0, 1)")
        if not self.lr > 0:
            raise ParamError(f"params.yaml: danet.lr={self.lr!r} must be a positive number")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ParamError(f"params.yaml: danet.lr_schedule={self.lr_schedule!r} is not allowed; use one of {', '.join(LR_SCHEDULES)}")
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
        if self.objective not in OBJECTIVES:
            raise ParamError(f"params.yaml: danet.objective={self.objective!r} is not allowed; use one of {', '.join(OBJECTIVES)}")
        if self.objective == "mask" and (self.kmeans_epochs or self.attractor != "ideal"):
            raise ParamError("params.yaml: danet.objective=mask has no attractors: set danet.kmeans_epochs: 0")
        if not 0.0 < self.head_weight < 1.0:
            raise ParamError(f"params.yaml: danet.head_weight={self.head_weight!r} must be in (0, 1)")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ParamError(f"params.yaml: danet.val_fraction={self.val_fraction!r} must be in [0, 1)")
        if not self.max_gain_db > 0:
            raise ParamError(f"params.yaml: danet.max_gain_db={self.max_gain_db!r} must be a positive number of dB")
        if self.train_eq_db is not None and not self.train_eq_db > 0:
            raise ParamError(f"params.yaml: danet.train_eq_db={self.train_eq_db!r} must be a positive number of dB or null")
        if self.extra_music_share is not None and not 0.0 < self.extra_music_share < 1.0:
            raise ParamError(f"params.yaml: danet.extra_music_share={self.extra_music_share!r} must be in (0, 1) or null")
        if self.noises not in (1, 2):
            raise ParamError(f"params.yaml: noises={self.noises!r} is not supported; use 1 or 2")
        if self.precision not in PRECISIONS:
            raise ParamError(f"params.yaml: danet.precision={self.precision!r} is not allowed; use one of {', '.join(PRECISIONS)}")
        check_nproc(self.nproc, "danet.nproc")
        if isinstance(self.loader_workers, bool) or not isinstance(self.loader_workers, int) or self.loader_workers < 0:
            raise ParamError(f"params.yaml: danet.loader_workers={self.loader_workers!r} must be 0 (mix in the training process) or more")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ParamError(f"params.yaml: danet.grad_clip={self.grad_clip!r} must be a positive number or null")

    @property
    def heads(self) -> tuple[str, ...]:
        """The model heads the objective trains."""
        return {"attractor": ("embedding",), "chimera": ("embedding", "mask"), "mask": ("mask",)}[self.objective]

    @classmethod
    def from_params(cls, danet: Mapping[str, Any], noises: int = 1) -> "DanetTrainConfig":
        """Build from ``params["danet"]`` and the top-level ``noises``; unknown keys are an error (a typo must not pass)."""
        names = {f.name for f in dataclasses.fields(cls)} - {"noises"}
        unknown = sorted(set(danet) - names)
        if unknown:
            raise ParamError(f"params.yaml: unknown key(s) danet.{', danet.'.join(unknown)}; allowed: {', '.join(sorted(names))}")
        values = dict(danet) | {"noises": noises}
        snr = values.get("train_snr_db", cls.train_snr_db)
        if snr is not None:
            if isinstance(snr, (int, float)) and not isinstance(snr, bool):
                snr = (float(snr), float(snr))
            if not (isinstance(snr, (list, tuple)) and len(snr) == 2 and float(snr[0]) <= float(snr[1])):
                raise ParamError(f"params.yaml: danet.train_snr_db={snr!r} must be [lo, hi] in dB with lo <= hi, a number, or null")
            values["train_snr_db"] = (float(snr[0]), float(snr[1]))
        for key in ("dropout", "lr", "threshold_db", "head_weight", "val_fraction", "max_gain_db", "train_eq_db", "extra_music_share"):
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
    attractors: str  # "ideal", "kmeans", "anchored" or "head" (objective mask)
    val_loss: float = float("nan")
    val_si_sdr: float = float("nan")  # dB, music, on the held-out validation mixtures


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
    best_epoch: int = 0  # the epoch whose weights are exported (best validation SI-SDR)

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
    """Hash of the STFT settings and the clip index (clips, lengths and powers)."""
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
        heads=cfg.heads,
    )


def _match_key(cfg: DanetTrainConfig, model: DANet, fingerprint: str) -> dict[str, Any]:
    params = {k: v for k, v in cfg.as_dict().items() if k not in _NOT_MATCHED}
    return {"params": params, "model": dict(model.config), "data": fingerprint, "format": CHECKPOINT_FORMAT}


def _epoch_seed(seed: int, epoch: int, stream: int | str) -> int:
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
        raise CheckpointError(f"{path}: not a readable DANet checkpoint ({err}); delete it and rerun `dvc repro train_danet`") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT or "model_config" not in state:
        raise CheckpointError(f"{path}: not a DANet checkpoint of format {CHECKPOINT_FORMAT}; rerun `dvc repro train_danet`")
    return state


def export_model(checkpoint_path: str | os.PathLike[str], model_path: str | os.PathLike[str]) -> None:
    """Write the inference part of a finished checkpoint (best epoch's weights, no optimizer or RNG state), atomically."""
    state = load_checkpoint(checkpoint_path)
    if not state.get("complete", False):
        raise CheckpointError(f"{checkpoint_path}: training is not finished (epoch {state['epoch']}); rerun `dvc repro train_danet`")
    best = state["best"]
    model = {k: v for k, v in state.items() if k not in ("optimizer_state", "rng", "best")}
    # The exported weights are those of the best validation epoch, not necessarily the last.
    model |= {"model_state": best["state"], "train_attractors": best["attractors"], "best_epoch": best["epoch"],
              "best_val_si_sdr": best["si_sdr"]}  # fmt: skip
    save_checkpoint(model_path, model)


def model_from_checkpoint(state: Mapping[str, Any]) -> DANet:
    """Rebuild the trained model (eval mode, CPU) from a loaded checkpoint."""
    model = DANet(**state["model_config"])
    model.load_state_dict(state["model_state"])
    return model.eval()


class _StepOutput(NamedTuple):
    loss: torch.Tensor
    attractors: torch.Tensor | None  # (B, C, K) in source order, None for objective mask
    present: torch.Tensor | None  # (B, C): 1 where the source had active bins (its attractor means something)


def _step(model: torch.nn.Module, music: torch.Tensor, noise: torch.Tensor, cfg: DanetTrainConfig, stft_cfg: StftConfig,
          use_kmeans: bool) -> _StepOutput:
    """The training objective on one batch of complex ``(B, T, F)`` sources."""
    mix = music + noise
    sources = torch.stack([music, noise])
    mag = mix.abs()
    # bf16 autocast covers the network only; masks and losses (inverse STFTs, SI-SDR) stay in float32.
    def forward(**kwargs: Any) -> Any:
        with autocast(mix.device, cfg.precision):
            out = model(mag, return_details=True, **kwargs)
        return out._replace(**{k: getattr(out, k).float() for k in ("masks", "head_masks", "attractors")
                               if getattr(out, k) is not None})  # fmt: skip

    def loss_of(masks: torch.Tensor, permutation_invariant: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        return mask_loss(mix, sources, masks, cfg.loss, cfg.mask, stft_cfg, permutation_invariant)

    if cfg.objective == "mask":
        out = forward(attractor_source="head")
        return _StepOutput(loss_of(out.head_masks)[0], None, None)
    assignment = None
    if cfg.attractor == "anchored":
        out = forward(attractor_source="anchored")
    elif use_kmeans:
        out = forward(attractor_source="kmeans")
    else:
        assignment = ideal_binary_assignment(sources)
        out = forward(attractor_source="ideal", ideal_assignment=assignment)
    loss, order = loss_of(out.masks, permutation_invariant=use_kmeans)
    if cfg.objective == "chimera":
        loss = (1.0 - cfg.head_weight) * loss + cfg.head_weight * loss_of(out.head_masks)[0]
    with torch.no_grad():
        a = out.attractors.gather(1, order.unsqueeze(-1).expand(-1, -1, out.attractors.shape[-1]))
        if assignment is None:
            present = torch.ones(a.shape[:2], device=a.device)
        else:
            # A source with no active bin in the chunk has no attractor (it is 0): skip it.
            present = ((assignment.reshape(a.shape[0], -1, a.shape[1]) * out.active.unsqueeze(-1)).sum(1) > 0).to(a.dtype)
    return _StepOutput(loss, a, present)


def inference_attractors(cfg: DanetTrainConfig) -> str:
    """How the model's music mask is formed at inference: the head, the anchors or k-means."""
    if cfg.objective != "attractor":
        return "head"
    return "anchored" if cfg.attractor == "anchored" else "kmeans"


def validate(
    model: DANet, batches: list[tuple[torch.Tensor, torch.Tensor]], cfg: DanetTrainConfig, stft_cfg: StftConfig,
    world: World | None = None,
) -> tuple[float, float]:
    """``(loss, music SI-SDR in dB)`` of the inference path on fixed validation batches.

    The SI-SDR is loss-agnostic, so it also picks the best epoch when ``danet.loss``
    changes. k-means clusters are matched to the sources by the better order, as the
    permutation-invariant loss does. Each rank of ``world`` scores every ``size``-th
    batch; the sums are added up over the ranks.
    """
    world = world or World()
    device = world.device
    source = inference_attractors(cfg)
    model.eval()
    loss_sum = sdr_sum = 0.0
    n = n_sdr = 0
    with torch.no_grad():
        for music, noise in batches[world.rank :: world.size]:
            music, noise = music.to(device), noise.to(device)
            mix = music + noise
            sources = torch.stack([music, noise])
            masks = model(mix.abs(), attractor_source=source)
            loss, order = mask_loss(mix, sources, masks, cfg.loss, cfg.mask, stft_cfg, permutation_invariant=source == "kmeans")
            music_mask = masks.gather(-1, order[:, :1].reshape(-1, 1, 1, 1).expand(*masks.shape[:-1], 1))[..., 0]
            length = (mix.shape[1] - 1) * stft_cfg.hop
            reference = istft(music, stft_cfg, length)
            estimate = istft(music_mask * mix, stft_cfg, length)
            audible = reference.square().mean(-1) > 1e-10
            loss_sum += float(loss) * music.shape[0]
            n += music.shape[0]
            sdr_sum += float(si_sdr(estimate, reference)[audible].sum())
            n_sdr += int(audible.sum())
    model.train()
    loss_sum, n, sdr_sum, n_sdr = world.sum([loss_sum, n, sdr_sum, n_sdr])
    return loss_sum / max(n, 1), sdr_sum / n_sdr if n_sdr else float("nan")


def make_mixers(store: FeatureStore, cfg: DanetTrainConfig) -> tuple[DynamicMixer, DynamicMixer | None]:
    """Training and validation mixers: a seeded ``val_fraction`` of the music tracks and noise recordings held out.

    Validation music comes from the labelled training tracks only; the separator-only pool
    (``data.separation_music_dirs``) always trains. Validation then measures the music the
    separator is for, and its score means the same with or without the pool, so the best
    epoch (and a variant) is chosen on the same mixtures either way.
    No validation mixer when ``val_fraction`` is 0 or too few groups exist to hold any out.
    """
    music = store.clips("music")
    pool = music["clip_id"].str.startswith(EXTRA_PREFIX)
    music_train, music_val = split_groups(music.loc[~pool, "group"], cfg.val_fraction, cfg.seed)
    music_train |= set(music.loc[pool, "group"])
    noise_train, noise_val = split_groups(store.clips("noise")["group"], cfg.val_fraction, cfg.seed)
    train = DynamicMixer(store, music_train, noise_train, cfg.noises, cfg.train_snr_db, cfg.max_gain_db,
                         extra_share=cfg.extra_music_share, eq_db=cfg.train_eq_db)
    n_val_noise = int(store.clips("noise")["group"].isin(noise_val).sum())
    if not music_val or n_val_noise < cfg.noises:
        return train, None
    return train, DynamicMixer(store, music_val, noise_val, cfg.noises, cfg.train_snr_db, cfg.max_gain_db)


@dataclass
class _Progress:
    """What the checkpoint carries from one epoch to the next."""

    losses: list[float] = field(default_factory=list)
    history: list[EpochStats] = field(default_factory=list)
    attractors: torch.Tensor | None = None  # (C, K) mean training attractors of the last epoch
    best: dict[str, Any] = field(default_factory=lambda: {"epoch": 0, "si_sdr": -math.inf, "state": None})
    start_epoch: int = 1


def _resume(checkpoint_path: Path, match: dict[str, Any], model: DANet, optimizer: torch.optim.Optimizer,
            cfg: DanetTrainConfig) -> _Progress:
    """Load a checkpoint of this same run into ``model`` and ``optimizer``; a fresh start otherwise."""
    fresh = _Progress(attractors=torch.zeros(len(SOURCES), cfg.embedding_dim))
    if not checkpoint_path.is_file():
        return fresh
    state = load_checkpoint(checkpoint_path)
    if state.get("match") != match or state["epoch"] > cfg.epochs:
        print(f"{checkpoint_path}: written for other parameters or training data; training from scratch", file=sys.stderr)
        return fresh
    model.load_state_dict(state["model_state"])
    optimizer.load_state_dict(state["optimizer_state"])
    return _Progress(list(state["losses"]), [EpochStats(**h) for h in state.get("history", [])],
                     state["train_attractors"], dict(state["best"]), state["epoch"] + 1)  # fmt: skip


def _optimizer_to(optimizer: torch.optim.Optimizer, device: torch.device) -> None:
    # Adam's state is loaded on the CPU; move it next to the parameters.
    for group in optimizer.state.values():
        for k, v in group.items():
            if isinstance(v, torch.Tensor) and k != "step":
                group[k] = v.to(device)


class _EpochResult(NamedTuple):
    loss: float  # mean training loss per example
    examples: int
    attractors: torch.Tensor | None  # (C, K) mean attractors of the epoch, None for objective mask


def step_seeds(cfg: DanetTrainConfig, epoch: int) -> list[list[int]]:
    """The seeds of every example of every step of ``epoch``: ``steps_per_epoch`` global batches.

    Every example depends on its seed alone, so the epoch's examples are the same
    whatever the number of processes or loader workers that mix them.
    """
    return [[_epoch_seed(cfg.seed, epoch, f"example:{step}:{i}") for i in range(cfg.batch_size)]
            for step in range(cfg.steps_per_epoch)]  # fmt: skip


def learning_rate(cfg: DanetTrainConfig, epoch: int, step: int) -> float:
    """The learning rate of ``step`` (0-based) of ``epoch`` (1-based).

    A function of the step alone, not optimizer state, so a resumed run follows the same
    schedule (with ``cosine``, growing ``danet.epochs`` stretches what is left of it).
    """
    if cfg.lr_schedule == "constant":
        return cfg.lr
    done = ((epoch - 1) * cfg.steps_per_epoch + step) / (cfg.epochs * cfg.steps_per_epoch)
    return cfg.lr * 0.5 * (1.0 + math.cos(math.pi * min(done, 1.0)))


def _train_epoch(model: torch.nn.Module, optimizer: torch.optim.Optimizer, mixer: DynamicMixer, cfg: DanetTrainConfig,
                 stft_cfg: StftConfig, epoch: int, world: World) -> _EpochResult:
    """One epoch of ``steps_per_epoch`` freshly mixed global batches, this rank's share of each."""
    source = epoch_attractors(cfg, epoch)
    torch.manual_seed(_epoch_seed(cfg.seed, epoch, f"torch:{world.rank}"))  # dropout: one stream per rank
    shares = [list(world.share(seeds, "danet.batch_size")) for seeds in step_seeds(cfg, epoch)]
    loader = torch.utils.data.DataLoader(MixedBatches(mixer, shares), batch_size=None, num_workers=cfg.loader_workers,
                                         pin_memory=world.device.type == "cuda")  # fmt: skip
    model.train()
    loss_sum, seen = 0.0, 0
    attractor_sum = torch.zeros(len(SOURCES), cfg.embedding_dim, dtype=torch.float64)
    attractor_count = torch.zeros(len(SOURCES), 1, dtype=torch.float64)
    bar = tqdm(loader, desc=f"danet {epoch}/{cfg.epochs} ({source})", unit="batch",
               disable=not (cfg.progress and world.is_main), leave=False, mininterval=2.0)  # fmt: skip
    for step, (music, noise) in enumerate(bar):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(cfg, epoch, step)
        music, noise = music.to(world.device, non_blocking=True), noise.to(world.device, non_blocking=True)
        out = _step(model, music, noise, cfg, stft_cfg, use_kmeans=source == "kmeans")
        optimizer.zero_grad(set_to_none=True)
        out.loss.backward()  # under DDP: the mean of the ranks' gradients, i.e. the whole batch's
        if cfg.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        if out.attractors is not None:
            attractor_sum += (out.attractors * out.present.unsqueeze(-1)).sum(0).double().cpu()
            attractor_count += out.present.sum(0).double().cpu().unsqueeze(-1)
        loss_sum += float(out.loss.detach()) * music.shape[0]
        seen += music.shape[0]
        bar.set_postfix(loss=f"{loss_sum / seen:.4g}", refresh=False)
    bar.close()
    loss_sum, seen = world.sum([loss_sum, seen])
    attractor_sum, attractor_count = world.sum(attractor_sum), world.sum(attractor_count)
    attractors = None if cfg.objective == "mask" else (attractor_sum / attractor_count.clamp_min(1.0)).float()
    return _EpochResult(loss_sum / seen, int(seen), attractors)


def epoch_attractors(cfg: DanetTrainConfig, epoch: int) -> str:
    """Where epoch ``epoch``'s masks come from: ``head`` (objective mask), ``kmeans`` or ``danet.attractor``."""
    if cfg.objective == "mask":
        return "head"
    return "kmeans" if epoch > cfg.epochs - cfg.kmeans_epochs else cfg.attractor


def _checkpoint_state(model: DANet, optimizer: torch.optim.Optimizer, progress: _Progress, epoch: int,
                      cfg: DanetTrainConfig, stft_cfg: StftConfig, match: dict[str, Any]) -> dict[str, Any]:
    return {
        "format": CHECKPOINT_FORMAT,
        "epoch": epoch,
        "complete": epoch == cfg.epochs,
        "model_config": dict(model.config),
        "model_state": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer_state": _to_cpu(optimizer.state_dict()),
        "losses": progress.losses,
        "history": [dataclasses.asdict(h) for h in progress.history],
        "train_attractors": progress.attractors,
        "best": progress.best,
        "sources": list(SOURCES),
        "stft": dataclasses.asdict(stft_cfg),
        "params": cfg.as_dict(),
        "match": match,
    }


def train_danet(
    store: FeatureStore,
    cfg: DanetTrainConfig,
    checkpoint_path: str | os.PathLike[str],
    on_epoch: Callable[[EpochStats], None] | None = None,
    world: World | None = None,
) -> TrainResult:
    """Train (or resume training of) a DANet on ``store``; checkpoint to ``checkpoint_path`` after every epoch.

    ``world`` is this process's place under ``torchrun`` (:func:`danet_music2vec.distributed.join`);
    every rank trains its share of each batch, and only rank 0 writes the checkpoint.
    """
    checkpoint_path = Path(checkpoint_path)
    world = world or World(device=resolve_device(cfg.device, "danet.device"))
    device = world.device
    if len(store) == 0:
        raise SourceError(f"{store.root}: the feature store has no clips; check data/splits.parquet has training clips")
    train_mixer, val_mixer = make_mixers(store, cfg)
    val_batches = val_mixer.fixed_batches(_epoch_seed(cfg.seed, 0, 2), cfg.val_examples, cfg.batch_size) if val_mixer else []
    torch.manual_seed(cfg.seed)
    model = build_model(cfg, store.config.n_freq)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    match = _match_key(cfg, model, data_fingerprint(store))
    progress = _resume(checkpoint_path, match, model, optimizer, cfg)
    model.to(device)
    _optimizer_to(optimizer, device)
    # The anchors are a parameter of every embedding model but shape the loss only with attractor: anchored.
    trained_model = world.wrap(model, find_unused_parameters=model.has_embedding and cfg.attractor != "anchored")

    total_seconds, total_chunks = 0.0, 0
    for epoch in range(progress.start_epoch, cfg.epochs + 1):
        start = time.perf_counter()
        trained = _train_epoch(trained_model, optimizer, train_mixer, cfg, store.config, epoch, world)
        seconds = time.perf_counter() - start
        if not math.isfinite(trained.loss):
            raise FloatingPointError(
                f"DANet training diverged at epoch {epoch} (loss {trained.loss}); lower danet.lr or set danet.grad_clip"
            )
        progress.losses.append(trained.loss)
        if trained.attractors is not None:
            progress.attractors = trained.attractors
        val_loss, val_sdr = validate(model, val_batches, cfg, store.config, world) if val_batches else (math.nan, math.nan)
        # Without validation data the last epoch is kept; with it, the best one.
        if not val_batches or val_sdr > progress.best["si_sdr"]:
            progress.best = {"epoch": epoch, "si_sdr": val_sdr if val_batches else -math.inf,
                             "state": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
                             "attractors": progress.attractors.clone()}  # fmt: skip
        stats = EpochStats(epoch, trained.loss, seconds, trained.examples, trained.examples / seconds,
                           epoch_attractors(cfg, epoch), val_loss, val_sdr)  # fmt: skip
        progress.history.append(stats)
        if world.is_main:
            save_checkpoint(checkpoint_path, _checkpoint_state(model, optimizer, progress, epoch, cfg, store.config, match))
        total_seconds += seconds
        total_chunks += trained.examples
        if on_epoch is not None:
            on_epoch(stats)

    model.load_state_dict(progress.best["state"])
    return TrainResult(
        model=model.cpu().eval(),
        losses=progress.losses,
        train_attractors=progress.best["attractors"],
        start_epoch=progress.start_epoch,
        epochs=cfg.epochs,
        seconds=total_seconds,
        chunks=total_chunks,
        n_chunks=cfg.steps_per_epoch * cfg.batch_size,
        device=str(device),
        history=progress.history,
        best_epoch=progress.best["epoch"],
    )


def _to_cpu(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_to_cpu(v) for v in obj]
    return obj
