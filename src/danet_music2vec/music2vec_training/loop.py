"""The classifier's training loop, with resumable checkpoints.

Each epoch draws ``crops_per_clip`` random crops of ``crop_seconds`` from every
training clip, so an epoch's size does not depend on clip length (GTZAN's 30 s and
the sample's 12 s clips train alike). The random stream of epoch ``e`` is seeded
from ``(seed, e)`` alone, so a run resumed from a checkpoint continues exactly as an
uninterrupted run would have (bit for bit on CPU).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from danet_music2vec import checkpoints
from danet_music2vec.devices import autocast, resolve_device
from danet_music2vec.distributed import World
from danet_music2vec.models.music2vec import Music2Vec
from danet_music2vec.music2vec_training.augment import augment
from danet_music2vec.music2vec_training.data import ClipSet, random_crops
from danet_music2vec.music2vec_training.soundnet import load_init_weights
from danet_music2vec.params import Music2VecParams, ParamError


@dataclass
class TrainResult:
    """What :func:`train` returns."""

    model: Music2Vec
    classes: list[str]
    history: list[dict[str, float]]
    seconds: float
    resumed_from_epoch: int
    device: str
    loaded_soundnet_layers: list[int] = field(default_factory=list)


def build_model(cfg: Music2VecParams, n_classes: int) -> Music2Vec:
    return Music2Vec(n_classes, channels=cfg.channels, lstm_hidden=cfg.lstm_hidden, dropout=cfg.dropout)


def _checkpoint_state(model: Music2Vec, classes: Sequence[str], cfg: Music2VecParams, epoch: int,
                      history: Sequence[dict[str, float]], optimizer: torch.optim.Optimizer,
                      match: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    return {
        "epoch": int(epoch),
        "complete": epoch == cfg.epochs,
        "model_config": model.config(),
        "model_state": model.state_dict(),
        "classes": list(classes),
        "params": cfg.model_dump(mode="json"),
        "history": [dict(h) for h in history],
        "optimizer_state": optimizer.state_dict(),
        "match": match,
    }


def _match_key(cfg: Music2VecParams, clips: ClipSet, extra: Mapping[str, Any]) -> dict[str, Any]:
    """What a resumed run must agree on: the params (more epochs may be asked of a finished run; the device,
    the process count (the batch is global) and the test-time hop do not change training), the data and
    ``extra`` (what else the data came from, e.g. the separator that separated it)."""
    ignore = {"epochs", "device", "test_hop_seconds", "nproc"}
    return {"params": cfg.model_dump(mode="json", exclude=ignore), "classes": list(clips.classes),
            "data": clips.fingerprint()} | dict(extra)  # fmt: skip


def _train_epoch(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    clips: ClipSet,
    cfg: Music2VecParams,
    epoch: int,
    noises: Sequence[np.ndarray],
    world: World,
    progress: bool,
) -> dict[str, float]:
    """Epoch ``epoch`` (1-based): ``crops_per_clip`` augmented random crops of every clip; its loss and accuracy.

    Every rank of ``world`` draws the same order of clips (one permutation, as
    ``DistributedSampler``) and trains on its share of each global batch.
    """
    # Seeding from (seed, epoch) makes a resumed run identical to an uninterrupted one. The streams
    # take the 0-based index the first version used, so a given seed trains the same model as before.
    index = epoch - 1
    rng = np.random.default_rng([cfg.seed, index])
    order = rng.permutation(np.repeat(np.arange(len(clips.waves)), cfg.crops_per_clip))
    # Crops, augmentations and dropout: one stream per rank (rank 0's is the one-process stream).
    crop_rng = rng if world.is_main else np.random.default_rng([cfg.seed, index, world.rank])
    torch.manual_seed(cfg.seed * 100_003 + index + 1_000_003 * world.rank)
    model.train()
    total_loss, correct, seen = 0.0, 0, 0
    epoch_started = time.perf_counter()
    batches = range(0, len(order), cfg.batch_size)
    bar = tqdm(batches, desc=f"music2vec epoch {epoch}/{cfg.epochs}", disable=not (progress and world.is_main), leave=False)
    for first in bar:
        picks = order[first : first + cfg.batch_size]
        if len(picks) < 2 * world.size:  # batch norm cannot train on one crop: drop a remainder that leaves a rank one
            continue
        picks = np.array_split(picks, world.size)[world.rank]
        wave, label = random_crops(clips, picks, cfg.crop_samples, crop_rng)
        wave = augment(wave, cfg, crop_rng, noises)
        wave, label = wave.to(world.device), label.to(world.device)
        with autocast(world.device, cfg.precision):
            logits = model(wave).float()
        loss = F.cross_entropy(logits, label)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total_loss += float(loss.detach()) * len(picks)
        correct += int((logits.argmax(1) == label).sum())
        seen += len(picks)
        bar.set_postfix(loss=f"{total_loss / seen:.3f}", acc=f"{correct / seen:.2f}")
    total_loss, correct, seen = world.sum([total_loss, correct, seen])
    return {"epoch": epoch, "loss": total_loss / seen, "accuracy": correct / seen,
            "seconds": time.perf_counter() - epoch_started}  # fmt: skip


def train(
    cfg: Music2VecParams,
    clips: ClipSet,
    checkpoint_path: str | os.PathLike[str],
    noises: Sequence[np.ndarray] = (),
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
    progress: bool = True,
    world: World | None = None,
    init_state: Mapping[str, torch.Tensor] | None = None,
    match_extra: Mapping[str, Any] | None = None,
) -> TrainResult:
    """Train (or resume) music2vec on ``clips``; checkpoint after every epoch.

    ``checkpoint_path`` is resumed when it holds a run with the same params (``epochs``,
    ``device`` and ``test_hop_seconds`` may differ) and the same training data; otherwise training starts
    fresh and overwrites it. ``noises`` are train-split noise clips for
    ``augment_noise_prob``. ``on_epoch(epoch, {"loss", "accuracy", "seconds"})`` is
    called after each epoch (the stage logs it to MLflow).

    ``world`` is this process's place under ``torchrun``: every rank trains its share of
    each batch under DistributedDataParallel and only rank 0 writes the checkpoint. Batch
    norm statistics are synchronised over the ranks on GPUs (SyncBatchNorm); gloo cannot
    do that on CPUs, where each rank normalises its own share.

    ``init_state``: the weights to start from (fine-tuning: the ``adapt_music2vec`` stage starts from the clean
    classifier's); ``match_extra`` joins what a resumed checkpoint must agree on.
    """
    if len(clips.waves) == 0:
        raise ValueError("no training clips")
    if (clips.labels < 0).any():
        raise ValueError("every training clip needs a label in classes")
    if cfg.augment_noise_prob > 0 and not noises:
        raise ValueError("augment_noise_prob > 0 needs train-split noise clips, and none were given")
    world = world or World(device=resolve_device(cfg.device))
    device = world.device
    checkpoint_path = Path(checkpoint_path)
    torch.manual_seed(cfg.seed)  # weight initialisation
    model = build_model(cfg, len(clips.classes))
    loaded_layers: list[int] = []
    if cfg.init_weights is not None:
        loaded_layers = load_init_weights(model, cfg.init_weights, cfg.init_sha256 or "")
    if init_state is not None:
        model.load_state_dict(init_state)
    model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    history: list[dict[str, float]] = []
    start_epoch = 0  # epochs already completed
    match = _match_key(cfg, clips, match_extra or {})
    if (state := checkpoints.resumable(checkpoint_path, "music2vec", match, cfg.epochs)) is not None:
        model.load_state_dict(state["model_state"])
        optimizer.load_state_dict(state["optimizer_state"])
        history = list(state["history"])
        start_epoch = int(state["epoch"])
        loaded_layers = []  # already part of the checkpointed weights
    crop = cfg.crop_samples
    if model.n_frames(crop) < 1:
        raise ParamError(
            f"music2vec.crop_seconds={cfg.crop_seconds} is too short for {len(cfg.channels)} SoundNet "
            f"layers; use at least {model.min_samples() / cfg.sample_rate:.2f} s"
        )
    n_items = len(clips.waves) * cfg.crops_per_clip
    if n_items < 2:
        raise ParamError("music2vec.crops_per_clip x training clips must be at least 2 (batch norm)")
    trained_model = model
    if world.distributed:
        if device.type == "cuda":
            trained_model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        trained_model = world.wrap(trained_model)
    started = time.perf_counter()
    for epoch in range(start_epoch + 1, cfg.epochs + 1):
        record = _train_epoch(trained_model, optimizer, clips, cfg, epoch, noises, world, progress)
        history.append(record)
        if world.is_main:
            state = _checkpoint_state(model, clips.classes, cfg, epoch, history, optimizer, match)
            checkpoints.save(checkpoint_path, "music2vec", state)
        if on_epoch is not None:
            on_epoch(epoch, record)
    # A plain Music2Vec (SyncBatchNorm, if any, replaced) with the trained weights.
    final = build_model(cfg, len(clips.classes))
    final.load_state_dict(model.state_dict())
    return TrainResult(
        model=final.eval(),
        classes=list(clips.classes),
        history=history,
        seconds=time.perf_counter() - started,
        resumed_from_epoch=start_epoch,
        device=str(device),
        loaded_soundnet_layers=loaded_layers,
    )

