"""The separator's training loop: dynamic mixing, validation, best epoch, resumable checkpoints.

Every step draws a fresh batch from :class:`~danet_music2vec.dynamic_mixing.DynamicMixer`:
any training music excerpt with ``noises`` training noise excerpts at random offsets and
a music-to-noise ratio drawn from ``separator.train_snr_db`` (bounded gain, silence-aware).
A seeded ``separator.val_fraction`` of the training tracks and noise recordings is held out;
after each epoch the model is scored on the same ``separator.val_examples`` held-out
mixtures (loss and the music's SI-SDR), and the epoch with the best validation SI-SDR is
the one exported. What each architecture trains on a batch is
:mod:`~danet_music2vec.separator_training.objectives`.

After every epoch a checkpoint is written (:mod:`danet_music2vec.checkpoints`): model and
optimizer state, the best epoch's weights, the loss and validation history, the mean
training attractors (``(C, K)``, music first; DANet's k-means inference uses them to tell
music from noise) and the parameters. Rerunning with a checkpoint whose parameters and
training data match resumes at the next epoch. Every example of epoch ``e`` is mixed from
its own seed, derived from ``(seed, e, step, i)``, and dropout is seeded from
``(seed, e, rank)``, so a resumed run computes the same as an uninterrupted one.

Data-parallel (``torchrun``, ``separator.nproc``; see :mod:`danet_music2vec.distributed`):
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
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd
import torch
from torch import nn
from tqdm import tqdm

from danet_music2vec import checkpoints
from danet_music2vec.data.sources import SourceError
from danet_music2vec.devices import resolve_device
from danet_music2vec.distributed import World
from danet_music2vec.dsp import StftConfig
from danet_music2vec.dynamic_mixing import EXTRA_PREFIX, DynamicMixer, MixedBatches, split_groups
from danet_music2vec.features import FeatureStore
from danet_music2vec.models import DANet, MaskNetwork, TcnMaskNetwork
from danet_music2vec.models.encoder import log1p_magnitude
from danet_music2vec.params import SeparatorParams
from danet_music2vec.separator_training.objectives import epoch_attractors, training_step, validate

SOURCES = ("music", "noise")
# Keys whose change does not invalidate a checkpoint: `epochs` may grow (resume and train
# further); the device does not change what is computed, and neither do the process count
# (the batch is global) and the loader workers.
# The wall-time budget only decides where training stops, like `epochs`.
_NOT_MATCHED = ("epochs", "budget_minutes", "device", "nproc", "loader_workers")
STATS_BATCHES = 64  # training batches the bin_log1p input statistics are measured on


@dataclass(frozen=True)
class EpochStats:
    """What ``on_epoch`` receives after each epoch."""

    epoch: int
    loss: float
    seconds: float
    chunks: int
    chunks_per_s: float
    attractors: str  # "ideal", "kmeans", "anchored" or "head" (the mask head)
    val_loss: float = float("nan")
    val_si_sdr: float = float("nan")  # dB, music, on the held-out validation mixtures


@dataclass
class TrainResult:
    """Outcome of :func:`train_separator` (``losses`` covers every epoch, resumed ones included)."""

    model: nn.Module
    losses: list[float]
    train_attractors: torch.Tensor  # (C, K), music first
    start_epoch: int  # first epoch trained by this call (epochs + 1 if nothing was left to train)
    epochs: int  # epochs trained in all (fewer than separator.epochs when budget_minutes ran out)
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


def build_network(cfg: SeparatorParams, n_freq: int, init: dict[str, Any] | None = None) -> nn.Module:
    """The network of ``cfg.architecture``: the BLSTM or the TCN mask network, or DANet (with a mask head for chimera).

    ``init``: a loaded separator checkpoint to start from (``separator.start: finetune``): its network and weights.
    """
    if init is not None:
        if init["model_config"]["n_freq"] != n_freq:
            raise SourceError(f"the separator to fine-tune works on {init['model_config']['n_freq']} frequency bins, the "
                              f"features on {n_freq}; set the stft params it was trained with: {init['stft']}")  # fmt: skip
        return checkpoints.network(init).train()
    if cfg.architecture == "tcn":
        return TcnMaskNetwork(n_freq, **cfg.tcn.model_dump(), n_sources=len(SOURCES), input_norm=cfg.input_norm)
    if cfg.embedding is None:
        return MaskNetwork(n_freq, hidden=cfg.hidden, layers=cfg.layers, n_sources=len(SOURCES), dropout=cfg.dropout,
                           input_norm=cfg.input_norm)  # fmt: skip
    return DANet(n_freq, hidden=cfg.hidden, layers=cfg.layers, embedding_dim=cfg.embedding.embedding_dim,
                 n_sources=len(SOURCES), dropout=cfg.dropout, threshold_db=cfg.embedding.threshold_db,
                 mask_head=cfg.architecture == "chimera", input_norm=cfg.input_norm)  # fmt: skip


def input_stats(mixer: DynamicMixer, cfg: SeparatorParams, batches: int = STATS_BATCHES) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-bin mean and std of ``log(1 + |X|)`` over ``batches`` training batches (``input_norm: bin_log1p``).

    The batches are mixed from seeds of their own, so the statistics are the same on every rank and
    every rerun.
    """
    total = total_sq = None
    count = 0
    for b in range(batches):
        music, noise = mixer.batch([_epoch_seed(cfg.seed, 0, f"stats:{b}:{i}") for i in range(cfg.batch_size)])
        feature = log1p_magnitude((music + noise).abs()).double().reshape(-1, music.shape[-1])
        total = feature.sum(0) if total is None else total + feature.sum(0)
        total_sq = feature.square().sum(0) if total_sq is None else total_sq + feature.square().sum(0)
        count += feature.shape[0]
    mean = total / count
    return mean.float(), (total_sq / count - mean.square()).clamp_min(0.0).sqrt().float()


def _match_key(cfg: SeparatorParams, noises: int, model: nn.Module, fingerprint: str) -> dict[str, Any]:
    params = {k: v for k, v in cfg.used().items() if k not in _NOT_MATCHED}
    return {"params": params, "noises": noises, "model": dict(model.config), "data": fingerprint}


def _epoch_seed(seed: int, epoch: int, stream: int | str) -> int:
    # Independent, reproducible streams per (seed, epoch, purpose).
    return int.from_bytes(hashlib.sha256(f"{seed}:{epoch}:{stream}".encode()).digest()[:7], "little")


def make_mixers(store: FeatureStore, cfg: SeparatorParams, noises: int) -> tuple[DynamicMixer, DynamicMixer | None]:
    """Training and validation mixers: a seeded ``val_fraction`` of the music tracks and noise recordings held out
    (drawn with :attr:`~SeparatorParams.validation_seed`, so runs of different ``seed`` can share one validation set).

    The profile's training split and each separator-only pool (``data.separation_music_dirs``,
    ``separation_noise_dirs``) give up the same share of their tracks and recordings, each on its own
    seeded draw: a pool's hundreds of recordings make validation large enough to rank recipes that
    differ by a few tenths of a dB, where the profile's handful of tracks alone cannot. No
    validation mixer when ``val_fraction`` is 0 or too few groups exist to hold any out.
    """
    held = {}
    for kind in SOURCES:
        clips = store.clips(kind)
        pool = clips["clip_id"].str.startswith(EXTRA_PREFIX)
        train, val = split_groups(clips.loc[~pool, "group"], cfg.val_fraction, cfg.validation_seed)
        if pool.any():
            pool_train, pool_val = split_groups(clips.loc[pool, "group"], cfg.val_fraction, cfg.validation_seed)
            train, val = train | pool_train, val | pool_val
        held[kind] = (train, val)
    (music_train, music_val), (noise_train, noise_val) = held["music"], held["noise"]
    train = DynamicMixer(store, music_train, noise_train, noises, cfg.train_snr_db, cfg.max_gain_db,
                         extra_share=cfg.extra_music_share, eq_db=cfg.train_eq_db, noise_balance=cfg.noise_balance)
    n_val_noise = int(store.clips("noise")["group"].isin(noise_val).sum())
    if not music_val or n_val_noise < noises:
        return train, None
    return train, DynamicMixer(store, music_val, noise_val, noises, cfg.train_snr_db, cfg.max_gain_db)


def validation_batches(val_mixer: DynamicMixer, cfg: SeparatorParams) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The ``val_examples`` held-out mixtures every epoch is scored on, in batches: the same for every network that
    shares the data, :attr:`~SeparatorParams.validation_seed`, ``val_fraction`` and ``val_examples``."""
    return val_mixer.fixed_batches(_epoch_seed(cfg.validation_seed, 0, 2), cfg.val_examples, cfg.batch_size)


@dataclass
class _Progress:
    """What the checkpoint carries from one epoch to the next."""

    losses: list[float] = field(default_factory=list)
    history: list[EpochStats] = field(default_factory=list)
    attractors: torch.Tensor | None = None  # (C, K) mean training attractors of the last epoch
    best: dict[str, Any] = field(default_factory=lambda: {"epoch": 0, "si_sdr": -math.inf, "state": None})
    start_epoch: int = 1
    clips: list[dict[str, str]] = field(default_factory=list)  # clip_manifest() of the training data


def _attractor_shape(cfg: SeparatorParams) -> tuple[int, int]:
    """``(C, K)`` of the mean training attractors; K is 0 for the mask network, which has none."""
    return len(SOURCES), cfg.embedding.embedding_dim if cfg.embedding else 0


def _resume(checkpoint_path: Path, match: dict[str, Any], model: nn.Module, optimizer: torch.optim.Optimizer,
            cfg: SeparatorParams) -> _Progress:  # fmt: skip
    """Load a checkpoint of this same run into ``model`` and ``optimizer``; a fresh start otherwise."""
    state = checkpoints.resumable(checkpoint_path, "separator", match, cfg.epochs)
    if state is None:
        return _Progress(attractors=torch.zeros(_attractor_shape(cfg)))
    model.load_state_dict(state["model_state"])
    optimizer.load_state_dict(state["optimizer_state"])
    best = {k: v for k, v in state["best"].items() if k != "extra"}
    return _Progress(list(state["losses"]), [EpochStats(**h) for h in state["history"]],
                     state["train_attractors"], best, state["epoch"] + 1)  # fmt: skip


def _optimizer_to(optimizer: torch.optim.Optimizer, device: torch.device) -> None:
    # Adam's state is loaded on the CPU; move it next to the parameters.
    for group in optimizer.state.values():
        for k, v in group.items():
            if isinstance(v, torch.Tensor) and k != "step":
                group[k] = v.to(device)


class _EpochResult(NamedTuple):
    loss: float  # mean training loss per example
    examples: int
    attractors: torch.Tensor | None  # (C, K) mean attractors of the epoch, None for the mask network


def step_seeds(cfg: SeparatorParams, epoch: int) -> list[list[int]]:
    """The seeds of every example of every step of ``epoch``: ``steps_per_epoch`` global batches.

    Every example depends on its seed alone, so the epoch's examples are the same
    whatever the number of processes or loader workers that mix them.
    """
    return [[_epoch_seed(cfg.seed, epoch, f"example:{step}:{i}") for i in range(cfg.batch_size)]
            for step in range(cfg.steps_per_epoch)]  # fmt: skip


def learning_rate(cfg: SeparatorParams, epoch: int, step: int) -> float:
    """The learning rate of ``step`` (0-based) of ``epoch`` (1-based).

    A function of the step alone, not optimizer state, so a resumed run follows the same
    schedule (with ``cosine``, growing ``separator.epochs`` stretches what is left of it).
    """
    if cfg.lr_schedule == "constant":
        return cfg.lr
    done = ((epoch - 1) * cfg.steps_per_epoch + step) / (cfg.epochs * cfg.steps_per_epoch)
    return cfg.lr * 0.5 * (1.0 + math.cos(math.pi * min(done, 1.0)))


def _train_epoch(model: torch.nn.Module, optimizer: torch.optim.Optimizer, mixer: DynamicMixer, cfg: SeparatorParams,
                 stft_cfg: StftConfig, epoch: int, world: World, progress: bool) -> _EpochResult:
    """One epoch of ``steps_per_epoch`` freshly mixed global batches, this rank's share of each."""
    source = epoch_attractors(cfg, epoch)
    torch.manual_seed(_epoch_seed(cfg.seed, epoch, f"torch:{world.rank}"))  # dropout: one stream per rank
    shares = [list(world.share(seeds, "separator.batch_size")) for seeds in step_seeds(cfg, epoch)]
    loader = torch.utils.data.DataLoader(MixedBatches(mixer, shares), batch_size=None, num_workers=cfg.loader_workers,
                                         pin_memory=world.device.type == "cuda")  # fmt: skip
    model.train()
    loss_sum, seen = 0.0, 0
    attractor_sum = torch.zeros(_attractor_shape(cfg), dtype=torch.float64)
    attractor_count = torch.zeros(len(SOURCES), 1, dtype=torch.float64)
    bar = tqdm(loader, desc=f"separator {epoch}/{cfg.epochs} ({source})", unit="batch",
               disable=not (progress and world.is_main), leave=False, mininterval=2.0)  # fmt: skip
    for step, (music, noise) in enumerate(bar):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(cfg, epoch, step)
        music, noise = music.to(world.device, non_blocking=True), noise.to(world.device, non_blocking=True)
        out = training_step(model, music, noise, cfg, stft_cfg, use_kmeans=source == "kmeans")
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
    attractors = None if cfg.embedding is None else (attractor_sum / attractor_count.clamp_min(1.0)).float()
    return _EpochResult(loss_sum / seen, int(seen), attractors)


def budget_spent(cfg: SeparatorParams, history: list[EpochStats]) -> bool:
    """Whether the epochs of ``history`` used up ``separator.budget_minutes`` of training time (never without one)."""
    return cfg.budget_minutes is not None and sum(h.seconds for h in history) >= 60.0 * cfg.budget_minutes


def _checkpoint_state(model: nn.Module, optimizer: torch.optim.Optimizer, progress: _Progress, epoch: int,
                      cfg: SeparatorParams, stft_cfg: StftConfig, match: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    # `extra`: what export() puts beside the best epoch's weights.
    best = progress.best | {"extra": {"train_attractors": progress.best["attractors"],
                                      "best_val_si_sdr": progress.best["si_sdr"]}}  # fmt: skip
    return {
        "epoch": epoch,
        "complete": epoch == cfg.epochs or budget_spent(cfg, progress.history),
        "model_config": dict(model.config),
        "model_state": model.state_dict(),
        "optimizer_state": optimizer.state_dict(),
        "losses": progress.losses,
        "history": [dataclasses.asdict(h) for h in progress.history],
        "train_attractors": progress.attractors,
        "best": best,
        "sources": list(SOURCES),
        "stft": dataclasses.asdict(stft_cfg),
        "params": cfg.used(),
        "training_clips": progress.clips,
        "match": match,
    }


def clip_manifest(train: DynamicMixer, val: DynamicMixer | None) -> list[dict[str, str]]:
    """Every clip the separator learns from or is chosen on: ``clip_id, kind, label, sha256, role`` (train | validation;
    a fine-tuned network adds its starting point's clips as init:train | init:validation).

    Kept in the checkpoint and the exported model, so a model's training data can be checked
    against any test set (:mod:`danet_music2vec.data.manifest`).
    """
    mixers = [("train", train)] + ([("validation", val)] if val is not None else [])
    return [{"clip_id": str(c.clip_id), "kind": kind, "label": str(c.label), "sha256": str(c.sha256), "role": role}
            for role, mixer in mixers for kind in SOURCES
            for c in getattr(mixer, kind).itertuples()]  # fmt: skip


def train_separator(
    store: FeatureStore,
    cfg: SeparatorParams,
    checkpoint_path: str | os.PathLike[str],
    noises: int = 1,
    on_epoch: Callable[[EpochStats], None] | None = None,
    world: World | None = None,
    progress: bool = True,
    init: dict[str, Any] | None = None,
) -> TrainResult:
    """Train (or resume training of) the separator ``cfg`` describes on ``store``, with ``noises`` noise clips per
    training mixture; checkpoint to ``checkpoint_path`` after every epoch.

    ``world`` is this process's place under ``torchrun`` (:func:`danet_music2vec.distributed.join`);
    every rank trains its share of each batch, and only rank 0 writes the checkpoint. ``init``: a loaded
    separator checkpoint whose network and weights training starts from (fine-tuning) instead of a fresh network.
    """
    checkpoint_path = Path(checkpoint_path)
    world = world or World(device=resolve_device(cfg.device))
    device = world.device
    if len(store) == 0:
        raise SourceError(f"{store.root}: the feature store has no clips; check data/splits.parquet has training clips")
    train_mixer, val_mixer = make_mixers(store, cfg, noises)
    val_batches = validation_batches(val_mixer, cfg) if val_mixer else []
    torch.manual_seed(cfg.seed)
    model = build_network(cfg, store.config.n_freq, init)
    if init is None and cfg.input_norm == "bin_log1p":
        model.encoder.set_input_stats(*input_stats(train_mixer, cfg))
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    match = _match_key(cfg, noises, model, data_fingerprint(store))
    state = _resume(checkpoint_path, match, model, optimizer, cfg)
    # A fine-tuned network also carries what its starting point learned from.
    inherited = [clip | {"role": f"init:{clip['role']}"} for clip in init["training_clips"]] if init else []
    state.clips = clip_manifest(train_mixer, val_mixer) + inherited
    model.to(device)
    _optimizer_to(optimizer, device)
    # The anchors are a parameter of every embedding model but shape the loss only with attractor: anchored.
    trained_model = world.wrap(model, find_unused_parameters=cfg.embedding is not None and cfg.embedding.attractor != "anchored")

    total_seconds, total_chunks = 0.0, 0
    for epoch in range(state.start_epoch, cfg.epochs + 1):
        if budget_spent(cfg, state.history):
            # The budget is spent (a resumed run too; the budget may have been lowered since): the best epoch so far is
            # the model, and the checkpoint says training is finished.
            if world.is_main and epoch == state.start_epoch:
                checkpoints.save(checkpoint_path, "separator",
                                 _checkpoint_state(model, optimizer, state, epoch - 1, cfg, store.config, match))  # fmt: skip
            break
        start = time.perf_counter()
        trained = _train_epoch(trained_model, optimizer, train_mixer, cfg, store.config, epoch, world, progress)
        seconds = time.perf_counter() - start
        if not math.isfinite(trained.loss):
            raise FloatingPointError(
                f"separator training diverged at epoch {epoch} (loss {trained.loss}); lower separator.lr or set separator.grad_clip"
            )
        state.losses.append(trained.loss)
        if trained.attractors is not None:
            state.attractors = trained.attractors
        val_loss, val_sdr = validate(model, val_batches, cfg, store.config, world) if val_batches else (math.nan, math.nan)
        # Without validation data the last epoch is kept; with it, the best one.
        if not val_batches or val_sdr > state.best["si_sdr"]:
            state.best = {"epoch": epoch, "si_sdr": val_sdr if val_batches else -math.inf,
                          "state": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
                          "attractors": state.attractors.clone()}  # fmt: skip
        stats = EpochStats(epoch, trained.loss, seconds, trained.examples, trained.examples / seconds,
                           epoch_attractors(cfg, epoch), val_loss, val_sdr)  # fmt: skip
        state.history.append(stats)
        if world.is_main:
            checkpoints.save(checkpoint_path, "separator", _checkpoint_state(model, optimizer, state, epoch, cfg, store.config, match))
        total_seconds += seconds
        total_chunks += trained.examples
        if on_epoch is not None:
            on_epoch(stats)

    model.load_state_dict(state.best["state"])
    return TrainResult(
        model=model.cpu().eval(),
        losses=state.losses,
        train_attractors=state.best["attractors"],
        start_epoch=state.start_epoch,
        epochs=state.history[-1].epoch if state.history else cfg.epochs,
        seconds=total_seconds,
        chunks=total_chunks,
        n_chunks=cfg.steps_per_epoch * cfg.batch_size,
        device=str(device),
        history=state.history,
        best_epoch=state.best["epoch"],
    )
