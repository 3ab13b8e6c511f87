"""The Separator: a trained separator network, its STFT and its inference settings, on whole tracks.

A track is resampled to the STFT rate and transformed; its spectrogram is cut into
chunks of ``chunk_frames`` frames (what the network was trained on) that overlap by
``overlap``. The network runs on batches of chunks; the chunks' MASKS (from the
architecture's :mod:`~danet_music2vec.separation.policies`) are overlap-added with a Hann
weight per frame (normalised by the summed weights), so neighbouring chunks cross-fade and
there is no seam at chunk borders. The music mask is applied to the mixture STFT and
inverted.

``mask_floor`` keeps at least that share of the mixture in the music estimate (the noise
gets the rest), trading residual noise for fewer artifacts.

``output_rate``: ``"stft"`` returns audio at the STFT rate (e.g. 8 kHz); ``"full"`` keeps
the input's rate and band (:mod:`~danet_music2vec.separation.full_rate`). Only the music is
inverse-transformed: the noise is the mixture minus the music, exactly, since the two
masks sum to one.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import ValidationError
from torch import nn

from danet_music2vec import checkpoints
from danet_music2vec.audio import resample
from danet_music2vec.devices import autocast, quantize_int8, resolve_device, resolve_precision
from danet_music2vec.dsp import StftConfig, istft, stft
from danet_music2vec.errors import CheckpointError
from danet_music2vec.params import SeparateParams, SeparatorInference
from danet_music2vec.separation.full_rate import apply_music_mask
from danet_music2vec.separation.policies import AttractorMasks, HeadMasks, OrderCount


class Separation(NamedTuple):
    """What :meth:`Separator.separate` returns for one track."""

    music: np.ndarray  # float32 at Separator.output_sample_rate(input rate), shaped as the input
    noise: np.ndarray  # the mixture minus the music
    order: OrderCount  # DANet's k-means order decisions and swaps in this track (none for the mask head)


# The network runs on at most this many frames at once (separate.batch_size chunks, fewer where they are long), so
# that a long file's memory stays bounded: 4 whole-track chunks of 2600 frames. A 10-minute stereo 44.1 kHz file
# peaked at 2.1 GB with 16 of them in a batch, which separated no faster on the CPU (docs/MODEL_CARD.md, memory).
BATCH_FRAMES = 10_400


def chunk_starts(frames: int, chunk: int, overlap: float) -> tuple[list[int], int]:
    """Start frames of overlapping chunks covering ``frames``, and the padded length."""
    hop = max(1, int(round(chunk * (1.0 - overlap))))
    n = 1 if frames <= chunk else 1 + math.ceil((frames - chunk) / hop)
    return [i * hop for i in range(n)], (n - 1) * hop + chunk


def cut_chunks(mag: torch.Tensor, chunk: int, overlap: float) -> tuple[torch.Tensor, list[int]]:
    """``(frames, F)`` magnitudes -> overlapping chunks ``(n, chunk, F)`` (the last one zero-padded) and their start frames."""
    frames = mag.shape[0]
    starts, padded = chunk_starts(frames, chunk, overlap)
    mag = F.pad(mag, (0, 0, 0, padded - frames))
    return torch.stack([mag[s : s + chunk] for s in starts]), starts


def chunk_weight(chunk: int, overlap: float) -> torch.Tensor:
    """Per-frame overlap-add weight: Hann (strictly positive at the ends) or flat without overlap."""
    if overlap <= 0:
        return torch.ones(chunk)
    return torch.sin(math.pi * (torch.arange(chunk) + 0.5) / chunk).square()


class Separator:
    """A trained separator network plus the STFT and the inference settings; ``separate(wave, rate)``.

    The constructor takes typed, already-validated settings (:class:`~danet_music2vec.params.SeparateParams`).
    :meth:`load` reads a separator file (``models/separator.pt``), which carries the
    settings the pipeline scored it with, so every user of that file separates alike.
    """

    def __init__(
        self,
        model: nn.Module,
        cfg: StftConfig,
        train_attractors: torch.Tensor | np.ndarray | Sequence[Sequence[float]],
        settings: SeparateParams,
    ) -> None:
        self.settings = settings
        self.device = resolve_device(settings.device)
        self.precision = resolve_precision(self.device, settings.precision)
        # int8 quantizes a copy: the caller's network stays as it was (a trainer may still hold it).
        self.model = (quantize_int8(model) if self.precision == "int8" else model).to(self.device).eval()
        self.cfg = cfg
        self.overlap, self.batch_size = settings.overlap, settings.batch_size
        # Inference may read longer chunks than training did (a BLSTM hears more context): null = the training length.
        self.chunk_frames = settings.chunk_frames or cfg.chunk_frames
        self.output_rate, self.mask_floor = settings.output_rate, settings.mask_floor
        # The architecture decides the masks: DANet's attractors, or the mask head of the others.
        if model.architecture != "danet":
            self.policy: HeadMasks | AttractorMasks = HeadMasks()
            return
        attractors = torch.as_tensor(np.asarray(train_attractors, dtype=np.float32)).to(self.device)
        if attractors.dim() != 2 or attractors.shape[0] != model.n_sources:
            raise ValueError(f"train_attractors must be shaped ({model.n_sources}, embedding_dim), got {tuple(attractors.shape)}")
        if settings.danet is None:
            raise ValueError("a danet separator needs the separate.danet settings, and these have none")
        self.policy = AttractorMasks(settings.danet, attractors)

    origin = "a separator network given in code"  # what the network is: set from a file's card or params

    @classmethod
    def from_network(cls, state: dict[str, Any], settings: SeparateParams) -> "Separator":
        """A separator of a loaded separator checkpoint with ``settings``."""
        separator = cls(checkpoints.network(state), StftConfig(**state["stft"]), state["train_attractors"], settings)
        separator.origin = describe_origin(state)
        return separator

    @classmethod
    def load(cls, path: str | os.PathLike[str], **overrides: Any) -> "Separator":
        """Load a separator file: its weights and the inference settings it was scored with.

        ``overrides`` replace some of those settings (e.g. ``device="cpu"``, ``output_rate="stft"``).
        """
        state = checkpoints.load(path, "separator")
        if "inference" not in state:
            raise CheckpointError(
                f"{path}: a trained network without inference settings; use the separator that "
                "`dvc repro separate` writes (models/separator.pt)"
            )
        # Only the file's own architecture's group is stored (SeparateParams.used).
        try:
            settings = SeparatorInference.model_validate(state["inference"] | overrides)
        except ValidationError as err:
            raise CheckpointError(f"{path}: its inference settings are not valid separate params ({err.errors()[0]['msg']}); "
                                  "rerun `dvc repro separate`") from None  # fmt: skip
        return cls.from_network(state, settings)

    @classmethod
    def pretrained(cls, **overrides: Any) -> "Separator":
        """The separator shipped inside the package (docs/MODEL_CARD.md), with the settings it was scored with.

        ``overrides`` as in :meth:`load`. Needs no training: ``Separator.pretrained().separate(wave, rate)``.
        """
        from danet_music2vec.pretrained import SHIPPED

        if not SHIPPED.is_file():
            raise CheckpointError(f"{SHIPPED}: the shipped separator is missing from this installation; reinstall the "
                                  "package (pip install .) or pass the path of a separator file")  # fmt: skip
        return cls.load(SHIPPED, **overrides)

    def output_sample_rate(self, input_rate: int) -> int:
        """The rate of :meth:`separate`'s output for an input at ``input_rate``."""
        return input_rate if self.output_rate == "full" else self.cfg.sample_rate

    def masks(self, spec: torch.Tensor) -> tuple[torch.Tensor, OrderCount]:
        """Overlap-added masks ``(frames, F, C)`` (music first) for a complex spectrogram ``(frames, F)``,
        and the k-means order decisions taken on the way."""
        # A chunk never outgrows the track: a short track is one chunk of its own length, not padded.
        frames = spec.shape[0]
        chunk = min(self.chunk_frames, frames)
        chunks, starts = cut_chunks(spec.abs().to(self.device), chunk, self.overlap)
        padded = starts[-1] + chunk
        per_batch = max(1, min(self.batch_size, BATCH_FRAMES // chunk))
        batches = [slice(i, min(i + per_batch, len(starts))) for i in range(0, len(starts), per_batch)]
        count = OrderCount()
        with torch.inference_mode(), autocast(self.device, self.precision):
            weight = chunk_weight(chunk, self.overlap).to(self.device)[:, None, None]
            acc = torch.zeros(padded, spec.shape[1], self.model.n_sources, device=self.device)
            norm = torch.zeros(padded, 1, 1, device=self.device)
            for sl, m in zip(batches, self.policy.batch_masks(self.model, chunks, batches, count)):
                m = m.float()  # bf16 autocast (separate.precision) covers the network, not the overlap-add
                for j, s in enumerate(starts[sl]):
                    acc[s : s + chunk] += m[j] * weight
                    norm[s : s + chunk] += weight
            masks = acc.div_(norm)[:frames]  # in place: on a long file acc is hundreds of MB
        if self.mask_floor > 0:
            # Keep at least mask_floor of the mixture in the music: fewer artifacts, some noise left.
            music = self.mask_floor + (1.0 - self.mask_floor) * masks[..., 0]
            masks = torch.stack([music, 1.0 - music], dim=-1)
        return masks.cpu(), count

    def separate(self, wave: np.ndarray, sample_rate: int) -> Separation:
        """Music and noise of a track at :meth:`output_sample_rate`: ``wave`` is mono ``(samples,)`` or
        ``(channels, samples)``, and so is the output.

        The masks come from the channels' mean (the network hears mono) and are applied to every
        channel, so a stereo file keeps its stereo image.
        """
        wave = np.asarray(wave, dtype=np.float32)
        if wave.ndim not in (1, 2) or wave.size == 0:
            raise ValueError(f"separate() needs a non-empty (samples,) or (channels, samples) waveform, got shape {wave.shape}")
        channels = torch.from_numpy(np.ascontiguousarray(np.atleast_2d(wave)))
        low = torch.from_numpy(np.ascontiguousarray(resample(channels.mean(0).numpy(), sample_rate, self.cfg.sample_rate)))
        spec = stft(low, self.cfg)
        masks, count = self.masks(spec)  # (frames, F, C)
        if channels.shape[0] == 1 and sample_rate == self.cfg.sample_rate:
            # Mono at the model's rate (both output rates are the input's): the network's STFT is the input's, so the
            # mask applies to it as it is, with no second transform and no interpolation (about 20 ms of a 30 s call).
            music = istft(masks[..., 0] * spec, self.cfg, length=channels.shape[-1])[None]
        else:
            del spec  # not needed from here: for a 10-minute file it is 200 MB
            if self.output_rate == "stft":
                channels = torch.from_numpy(np.ascontiguousarray(resample(channels.numpy(), sample_rate, self.cfg.sample_rate)))
                music = istft(masks[..., 0] * stft(channels, self.cfg), self.cfg, length=channels.shape[-1])
            else:
                music = apply_music_mask(masks, self.cfg, channels, sample_rate)
        mixture, music = channels.numpy(), music.numpy().astype(np.float32, copy=False)
        if wave.ndim == 1:
            mixture, music = mixture[0], music[0]
        # The masks sum to one and the STFT is linear: noise = mixture - music, without a second inverse STFT.
        return Separation(music, (mixture - music).astype(np.float32, copy=False), count)


def describe_origin(state: dict[str, Any]) -> str:
    """One line saying which separator a loaded checkpoint holds: the shipped one (its card), or one a pipeline trained."""
    rate = f"{state['stft']['sample_rate'] / 1000:g} kHz"
    card = state.get("card")
    if card:
        return f"the shipped separator ({card['architecture']}, {rate}, trained at commit {card['commit'][:7]})"
    start = state.get("params", {}).get("start", "scratch")
    return f"a separator trained by the pipeline ({state['model_config']['architecture']}, {rate}, separator.start: {start})"


def timed_separate(separator: Separator, wave: np.ndarray, sample_rate: int) -> tuple[Separation, float]:
    """:meth:`Separator.separate` plus its wall time in seconds (for real-time factors)."""
    start = time.perf_counter()
    result = separator.separate(wave, sample_rate)
    return result, time.perf_counter() - start
