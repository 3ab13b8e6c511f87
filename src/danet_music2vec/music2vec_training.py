"""Train the music2vec genre classifier on clean training music, with resumable checkpoints.

Each epoch draws ``crops_per_clip`` random crops of ``crop_seconds`` from every
training clip, so an epoch's size does not depend on clip length (GTZAN's 30 s and
the sample's 12 s clips train alike). The random stream of epoch ``e`` is seeded
from ``(seed, e)`` alone, so a run resumed from a checkpoint continues exactly as an
uninterrupted run would have (bit for bit on CPU).

Augmentations (all drawn per crop, train crops only):

* ``augment_gain_db: [lo, hi]`` random gain; the classifier then does not key on
  level, which DANet's output does not preserve exactly. ``null`` = off.
* ``augment_lowpass_hz: [4000, ...]`` with ``augment_lowpass_prob``: band-limit a crop to
  one of these cut-offs by resampling it down to twice the cut-off and back up
  (torchaudio). DANet separates at ``stft.sample_rate`` (8 kHz by default), so its
  output has nothing above 4 kHz; this teaches the classifier to expect that.
* ``augment_noise_prob`` with ``augment_snr_db: [lo, hi]``: add a TRAIN-split noise clip
  (tiled to the crop, random offset) at a random SNR. Off by default: the point of the
  project is to remove noise before classifying, not to learn it away.
"""

from __future__ import annotations

import hashlib
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
import torchaudio.functional as taf
from tqdm.auto import tqdm

from danet_music2vec import checkpoints
from danet_music2vec.checksums import sha256_file
from danet_music2vec.devices import autocast, resolve_device
from danet_music2vec.distributed import World
from danet_music2vec.audio import load_audio
from danet_music2vec.models.music2vec import Music2Vec
from danet_music2vec.params import Music2VecParams, ParamError

@dataclass
class ClipSet:
    """Training audio held in memory: one float32 mono array per clip."""

    waves: list[np.ndarray]
    labels: np.ndarray  # int64 class index per clip
    classes: list[str]
    clip_ids: list[str]

    def fingerprint(self) -> str:
        """Identifies the training set, so a checkpoint is resumed only on the same data."""
        h = hashlib.sha256()
        for clip_id, label, wave in zip(self.clip_ids, self.labels, self.waves):
            h.update(f"{clip_id}\t{self.classes[label]}\t{len(wave)}\n".encode())
        return h.hexdigest()


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


def load_clip_set(
    splits: pd.DataFrame,
    root: str | os.PathLike[str],
    sample_rate: int,
    kind: str = "music",
    split: str = "train",
    classes: Sequence[str] | None = None,
) -> ClipSet:
    """Load the ``kind``/``split`` rows of data/splits.parquet with load_audio.

    Clips are sorted by clip_id so the order (and so training) does not depend on
    the Parquet row order. ``classes`` defaults to the sorted labels present.
    """
    rows = splits[(splits["kind"] == kind) & (splits["split"] == split)].sort_values("clip_id")
    if rows.empty:
        raise ValueError(
            f"data/splits.parquet has no {kind} clips in the {split} split; check data.* and split.* in params.yaml "
            "and rerun `dvc repro split`"
        )
    classes = sorted(rows["label"].unique()) if classes is None else list(classes)
    index = {c: i for i, c in enumerate(classes)}
    waves = [load_audio(Path(root) / p, sample_rate) for p in tqdm(rows["path"], desc=f"load {split} {kind}", leave=False)]
    labels = np.array([index.get(label, -1) for label in rows["label"]], dtype=np.int64)
    return ClipSet(waves=waves, labels=labels, classes=classes, clip_ids=[str(c) for c in rows["clip_id"]])


def load_init_weights(model: Music2Vec, path: str | os.PathLike[str], sha256: str) -> list[int]:
    """Load pretrained SoundNet conv layers from ``path`` after checking its sha256.

    Returns the SoundNet layers loaded. Raises ParamError when the file is missing,
    its hash differs, it is not a PyTorch state dict, or no layer matches.
    """
    path = Path(path)
    if not path.is_file():
        raise ParamError(
            f"music2vec.init_weights: {path} not found; put the pretrained SoundNet weights (.pth) there "
            "or set music2vec.init_weights and music2vec.init_sha256 to null to train from scratch"
        )
    actual = sha256_file(path)
    if actual != sha256.lower():
        raise ParamError(
            f"music2vec.init_weights: {path} has sha256 {actual}, but music2vec.init_sha256 is {sha256}; "
            "the file is corrupt or a different one: replace it, or set init_sha256 to the hash of the file you trust"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unpickling failure means the same thing to the user
        raise ParamError(f"music2vec.init_weights: {path} is not a PyTorch state dict ({err}); use SoundNet8 .pth weights") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ParamError(f"music2vec.init_weights: {path} does not hold a state dict; use SoundNet8 .pth weights")
    loaded = model.load_soundnet_state(state)
    if not loaded:
        raise ParamError(
            f"music2vec.init_weights: no conv layer of {path} matches music2vec.channels={list(model.channels)}; "
            "use SoundNet's widths (16, 32, 64, 128, 256, ...) to load pretrained layers"
        )
    return loaded


def _crop_batch(
    clips: ClipSet, picks: np.ndarray, crop: int, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random crops (batch, crop) of the picked clips; clips shorter than a crop are tiled."""
    out = np.empty((len(picks), crop), dtype=np.float32)
    for row, clip in enumerate(picks):
        wave = clips.waves[clip]
        if len(wave) < crop:
            wave = np.tile(wave, math.ceil(crop / len(wave)) + 1)
        start = int(rng.integers(0, len(wave) - crop + 1))
        out[row] = wave[start : start + crop]
    return torch.from_numpy(out), torch.from_numpy(clips.labels[picks])


def lowpass(batch: torch.Tensor, sample_rate: int, cutoff_hz: int) -> torch.Tensor:
    """Band-limit to ``cutoff_hz`` by resampling down to 2 x cutoff and back (as a separator at that rate does)."""
    low = taf.resample(batch, sample_rate, 2 * cutoff_hz)
    back = taf.resample(low, 2 * cutoff_hz, sample_rate)
    n = batch.shape[-1]
    return back[..., :n] if back.shape[-1] >= n else F.pad(back, (0, n - back.shape[-1]))


def augment(
    batch: torch.Tensor,
    cfg: Music2VecParams,
    rng: np.random.Generator,
    noises: Sequence[np.ndarray] = (),
) -> torch.Tensor:
    """Apply the configured augmentations to a CPU batch (batch, samples) of crops."""
    batch = batch.clone()
    n, crop = batch.shape
    if cfg.augment_noise_prob > 0 and noises:
        for row in np.flatnonzero(rng.random(n) < cfg.augment_noise_prob):
            noise = noises[int(rng.integers(len(noises)))]
            tiled = np.tile(noise, math.ceil(crop / len(noise)) + 1)
            start = int(rng.integers(0, len(noise)))
            piece = torch.from_numpy(tiled[start : start + crop].astype(np.float32, copy=False))
            snr = rng.uniform(*cfg.augment_snr_db)
            p_music = batch[row].pow(2).mean()
            p_noise = piece.pow(2).mean()
            if p_music > 0 and p_noise > 0:
                batch[row] += piece * torch.sqrt(p_music / (p_noise * 10 ** (snr / 10)))
    if cfg.augment_lowpass_hz and cfg.augment_lowpass_prob > 0:
        chosen = np.flatnonzero(rng.random(n) < cfg.augment_lowpass_prob)
        cutoffs = rng.integers(len(cfg.augment_lowpass_hz), size=len(chosen))
        for which, cutoff in enumerate(cfg.augment_lowpass_hz):
            rows = torch.from_numpy(chosen[cutoffs == which])
            if len(rows):  # one resample call per cut-off: batched is much cheaper
                batch[rows] = lowpass(batch[rows], cfg.sample_rate, cutoff)
    if cfg.augment_gain_db is not None:
        gains_db = rng.uniform(*cfg.augment_gain_db, size=n)
        batch *= torch.from_numpy((10 ** (gains_db / 20)).astype(np.float32))[:, None]
    return batch


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


def _match_key(cfg: Music2VecParams, clips: ClipSet) -> dict[str, Any]:
    """What a resumed run must agree on: the params (more epochs may be asked of a finished run; the device,
    the process count (the batch is global) and the test-time hop do not change training) and the data."""
    ignore = {"epochs", "device", "test_hop_seconds", "nproc"}
    return {"params": cfg.model_dump(mode="json", exclude=ignore), "classes": list(clips.classes),
            "data": clips.fingerprint()}  # fmt: skip


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
        wave, label = _crop_batch(clips, picks, cfg.crop_samples, crop_rng)
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
    """
    if len(clips.waves) == 0:
        raise ValueError("no training clips")
    if (clips.labels < 0).any():
        raise ValueError("every training clip needs a label in classes")
    if cfg.augment_noise_prob > 0 and not noises:
        raise ParamError(f"params.yaml: music2vec.augment_noise_prob={cfg.augment_noise_prob} needs train-split noise "
                         "clips, and none were given; set it to 0.0 or add noise clips to the training split")
    world = world or World(device=resolve_device(cfg.device))
    device = world.device
    checkpoint_path = Path(checkpoint_path)
    torch.manual_seed(cfg.seed)  # weight initialisation
    model = build_model(cfg, len(clips.classes))
    loaded_layers: list[int] = []
    if cfg.init_weights is not None:
        loaded_layers = load_init_weights(model, cfg.init_weights, cfg.init_sha256 or "")
    model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    history: list[dict[str, float]] = []
    start_epoch = 0  # epochs already completed
    match = _match_key(cfg, clips)
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

