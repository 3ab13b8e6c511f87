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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
import torchaudio.functional as taf
from tqdm.auto import tqdm

from danet_music2vec.atomic import atomic_path
from danet_music2vec.checksums import sha256_file
from danet_music2vec.devices import PRECISIONS, autocast, resolve_device
from danet_music2vec.distributed import World, check_nproc
from danet_music2vec.audio import load_audio
from danet_music2vec.models.music2vec import Music2Vec
from danet_music2vec.params import ParamError

CHECKPOINT_FORMAT = "music2vec-v1"


@dataclass(frozen=True)
class Music2VecConfig:
    """The ``music2vec`` group of params.yaml (see params.yaml for each key's meaning)."""

    sample_rate: int = 22050
    crop_seconds: float = 3.0
    test_hop_seconds: float = 1.5
    channels: tuple[int, ...] = (16, 32, 64, 128, 256)
    lstm_hidden: int = 64
    dropout: float = 0.3
    epochs: int = 30
    batch_size: int = 16
    crops_per_clip: int = 8
    lr: float = 1e-3
    seed: int = 0
    device: str = "auto"
    precision: str = "fp32"  # fp32 | bf16 (autocast of the forward pass)
    nproc: int = 1  # data-parallel training processes (torchrun); the batch is global
    init_weights: str | None = None
    init_sha256: str | None = None
    augment_gain_db: tuple[float, float] | None = (-6.0, 6.0)
    augment_lowpass_hz: tuple[int, ...] = (4000,)
    augment_lowpass_prob: float = 0.5
    augment_noise_prob: float = 0.0
    augment_snr_db: tuple[float, float] = (0.0, 20.0)

    @classmethod
    def from_params(cls, group: dict[str, Any]) -> "Music2VecConfig":
        """Build from ``params["music2vec"]``; missing keys take the defaults, bad ones raise ParamError."""
        known = {f.name for f in cls.__dataclass_fields__.values()}  # type: ignore[attr-defined]
        unknown = sorted(set(group) - known)
        if unknown:
            raise ParamError(f"params.yaml: unknown key(s) music2vec.{', music2vec.'.join(unknown)}; allowed: {sorted(known)}")
        values = {**asdict(cls()), **group}

        def bad(key: str, need: str) -> ParamError:
            return ParamError(f"params.yaml: music2vec.{key}={group.get(key, values[key])!r} must be {need}")

        def number(value: Any) -> bool:
            return isinstance(value, (int, float)) and not isinstance(value, bool)

        for key in ("sample_rate", "lstm_hidden", "epochs", "batch_size", "crops_per_clip"):
            if not (isinstance(values[key], int) and not isinstance(values[key], bool) and values[key] > 0):
                raise bad(key, "a positive integer")
        for key in ("crop_seconds", "test_hop_seconds", "lr"):
            if not (number(values[key]) and values[key] > 0):
                raise bad(key, "a positive number")
        if not isinstance(values["seed"], int) or isinstance(values["seed"], bool):
            raise bad("seed", "an integer")
        channels = values["channels"]
        if (
            not isinstance(channels, (list, tuple))
            or not 1 <= len(channels) <= 7
            or not all(isinstance(c, int) and not isinstance(c, bool) and c > 0 for c in channels)
        ):
            raise bad("channels", "a list of 1 to 7 positive integers (SoundNet layer widths, e.g. [16, 32, 64, 128, 256])")
        if not (number(values["dropout"]) and 0 <= values["dropout"] < 1):
            raise bad("dropout", "a number in [0, 1)")
        if values["device"] not in ("auto", "cpu", "cuda"):
            raise bad("device", "one of 'auto', 'cpu', 'cuda'")
        if values["precision"] not in PRECISIONS:
            raise bad("precision", f"one of {', '.join(map(repr, PRECISIONS))}")
        check_nproc(values["nproc"], "music2vec.nproc")
        if (values["init_weights"] is None) != (values["init_sha256"] is None):
            raise ParamError(
                "params.yaml: music2vec.init_weights and music2vec.init_sha256 go together: "
                "set both (path of pretrained SoundNet weights and its sha256) or leave both null"
            )
        gain = values["augment_gain_db"]
        if gain is not None and not _is_range(gain):
            raise bad("augment_gain_db", "null or a [lo, hi] range in dB with lo <= hi")
        lowpass = values["augment_lowpass_hz"] or ()
        if not isinstance(lowpass, (list, tuple)) or not all(
            isinstance(c, int) and not isinstance(c, bool) and 0 < 2 * c < values["sample_rate"] for c in lowpass
        ):
            raise bad("augment_lowpass_hz", f"a list of integer cut-offs in Hz below {values['sample_rate'] // 2} (e.g. [4000]) or []")
        for key in ("augment_lowpass_prob", "augment_noise_prob"):
            if not (number(values[key]) and 0 <= values[key] <= 1):
                raise bad(key, "a probability in [0, 1]")
        if not _is_range(values["augment_snr_db"]):
            raise bad("augment_snr_db", "a [lo, hi] range in dB with lo <= hi")
        return cls(
            sample_rate=int(values["sample_rate"]),
            crop_seconds=float(values["crop_seconds"]),
            test_hop_seconds=float(values["test_hop_seconds"]),
            channels=tuple(int(c) for c in channels),
            lstm_hidden=int(values["lstm_hidden"]),
            dropout=float(values["dropout"]),
            epochs=int(values["epochs"]),
            batch_size=int(values["batch_size"]),
            crops_per_clip=int(values["crops_per_clip"]),
            lr=float(values["lr"]),
            seed=int(values["seed"]),
            device=str(values["device"]),
            precision=str(values["precision"]),
            nproc=int(values["nproc"]),
            init_weights=None if values["init_weights"] is None else str(values["init_weights"]),
            init_sha256=None if values["init_sha256"] is None else str(values["init_sha256"]).lower(),
            augment_gain_db=None if gain is None else (float(gain[0]), float(gain[1])),
            augment_lowpass_hz=tuple(int(c) for c in lowpass),
            augment_lowpass_prob=float(values["augment_lowpass_prob"]),
            augment_noise_prob=float(values["augment_noise_prob"]),
            augment_snr_db=(float(values["augment_snr_db"][0]), float(values["augment_snr_db"][1])),
        )

    def to_params(self) -> dict[str, Any]:
        """Plain, YAML/JSON-friendly dict (tuples as lists), as stored in checkpoints."""
        out = asdict(self)
        for key, value in out.items():
            if isinstance(value, tuple):
                out[key] = list(value)
        return out

    @property
    def crop_samples(self) -> int:
        return int(round(self.crop_seconds * self.sample_rate))


def _is_range(value: Any) -> bool:
    return (
        isinstance(value, (list, tuple))
        and len(value) == 2
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        and value[0] <= value[1]
    )


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
    cfg: Music2VecConfig,
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


def build_model(cfg: Music2VecConfig, n_classes: int) -> Music2Vec:
    return Music2Vec(n_classes, channels=cfg.channels, lstm_hidden=cfg.lstm_hidden, dropout=cfg.dropout)


def save_checkpoint(
    path: str | os.PathLike[str],
    model: Music2Vec,
    classes: Sequence[str],
    cfg: Music2VecConfig,
    epoch: int,
    history: Sequence[dict[str, float]],
    optimizer: torch.optim.Optimizer | None = None,
    data_fingerprint: str | None = None,
) -> None:
    """Write a checkpoint atomically. Without ``optimizer`` it is a final model (smaller, same loader)."""
    state = {
        "format": CHECKPOINT_FORMAT,
        "model_config": model.config(),
        "model_state": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "classes": list(classes),
        "params": cfg.to_params(),
        "epoch": int(epoch),
        "history": [dict(h) for h in history],
        "data_fingerprint": data_fingerprint,
    }
    if optimizer is not None:
        state["optimizer_state"] = optimizer.state_dict()
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`; ValueError names the file when it is not one."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as err:  # noqa: BLE001 - truncated / foreign file
        raise ValueError(f"{path}: not a music2vec checkpoint ({err}); delete it and retrain (`dvc repro train_music2vec`)") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: not a music2vec checkpoint; delete it and retrain (`dvc repro train_music2vec`)")
    return state


def model_from_checkpoint(state: dict[str, Any]) -> Music2Vec:
    """Rebuild the network of a loaded checkpoint (eval mode, CPU)."""
    cfg = state["model_config"]
    model = Music2Vec(cfg["n_classes"], channels=cfg["channels"], lstm_hidden=cfg["lstm_hidden"], dropout=cfg["dropout"])
    model.load_state_dict(state["model_state"])
    return model.eval()


def _resumable(path: Path, cfg: Music2VecConfig, clips: ClipSet) -> dict[str, Any] | None:
    """The checkpoint at ``path`` if it continues this exact run (same params except epochs, same data)."""
    if not path.is_file():
        return None
    try:
        state = load_checkpoint(path)
    except ValueError:
        return None
    # More epochs may be asked of a finished run: everything but `epochs`, the device and the
    # test-time hop (not used in training) must agree.
    # The process count neither: the batch is global.
    ignore = ("epochs", "device", "test_hop_seconds", "nproc")
    same = {k: v for k, v in state["params"].items() if k not in ignore} == {
        k: v for k, v in cfg.to_params().items() if k not in ignore
    }
    if not same or state["classes"] != clips.classes or state.get("data_fingerprint") != clips.fingerprint():
        return None
    if "optimizer_state" not in state or state["epoch"] > cfg.epochs:
        return None
    return state


def _train_epoch(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    clips: ClipSet,
    cfg: Music2VecConfig,
    epoch: int,
    noises: Sequence[np.ndarray],
    world: World,
    progress: bool,
) -> dict[str, float]:
    """Epoch ``epoch`` (0-based): ``crops_per_clip`` augmented random crops of every clip; its loss and accuracy.

    Every rank of ``world`` draws the same order of clips (one permutation, as
    ``DistributedSampler``) and trains on its share of each global batch.
    """
    # Seeding from (seed, epoch) makes a resumed run identical to an uninterrupted one.
    rng = np.random.default_rng([cfg.seed, epoch])
    order = rng.permutation(np.repeat(np.arange(len(clips.waves)), cfg.crops_per_clip))
    # Crops, augmentations and dropout: one stream per rank (rank 0's is the one-process stream).
    crop_rng = rng if world.is_main else np.random.default_rng([cfg.seed, epoch, world.rank])
    torch.manual_seed(cfg.seed * 100_003 + epoch + 1_000_003 * world.rank)
    model.train()
    total_loss, correct, seen = 0.0, 0, 0
    epoch_started = time.perf_counter()
    batches = range(0, len(order), cfg.batch_size)
    bar = tqdm(batches, desc=f"music2vec epoch {epoch + 1}/{cfg.epochs}", disable=not (progress and world.is_main), leave=False)
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
    return {"epoch": epoch + 1, "loss": total_loss / seen, "accuracy": correct / seen,
            "seconds": time.perf_counter() - epoch_started}  # fmt: skip


def train(
    cfg: Music2VecConfig,
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
        raise ParamError("params.yaml: music2vec.augment_noise_prob > 0 needs train-split noise clips, and none were given")
    world = world or World(device=resolve_device(cfg.device, "music2vec.device"))
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
    start_epoch = 0
    if (state := _resumable(checkpoint_path, cfg, clips)) is not None:
        model.load_state_dict(state["model_state"])
        optimizer.load_state_dict(state["optimizer_state"])
        history = list(state["history"])
        start_epoch = int(state["epoch"])
        loaded_layers = []  # already part of the checkpointed weights
    fingerprint = clips.fingerprint()
    crop = cfg.crop_samples
    if model.n_frames(crop) < 1:
        raise ParamError(
            f"params.yaml: music2vec.crop_seconds={cfg.crop_seconds} is too short for {len(cfg.channels)} SoundNet "
            f"layers; use at least {model.min_samples() / cfg.sample_rate:.2f} s"
        )
    n_items = len(clips.waves) * cfg.crops_per_clip
    if n_items < 2:
        raise ParamError("params.yaml: music2vec.crops_per_clip x training clips must be at least 2 (batch norm)")
    trained_model = model
    if world.distributed:
        if device.type == "cuda":
            trained_model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        trained_model = world.wrap(trained_model)
    started = time.perf_counter()
    for epoch in range(start_epoch, cfg.epochs):
        record = _train_epoch(trained_model, optimizer, clips, cfg, epoch, noises, world, progress)
        history.append(record)
        if world.is_main:
            save_checkpoint(checkpoint_path, model, clips.classes, cfg, epoch + 1, history, optimizer, fingerprint)
        if on_epoch is not None:
            on_epoch(epoch + 1, record)
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

