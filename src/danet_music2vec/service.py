"""Audio in, clean audio and genre out: what the served model does with one request row.

A row holds either ``audio`` (the bytes of an audio file, base64: wav, flac, ogg, au) or
``samples`` (float samples, interleaved when ``channels`` > 1) with their ``sample_rate``;
optionally ``format`` (``flac``, the default, or ``wav``) for the returned audio. The
answer holds the denoised music (base64, at the input's rate, length and channels: a stereo
file stays stereo, as with ``dm2v denoise``), the genre, the probability of every genre and the
``path`` that gave them (the product's path: :mod:`danet_music2vec.evidence`).

The same functions as ``dm2v denoise`` and ``dm2v classify --denoise`` do the work
(:func:`~danet_music2vec.separation.denoising.denoise`, :func:`~danet_music2vec.separation.denoising.separate_music`),
so the service and the CLI give the same audio and the same label for the same file. Every
problem with a request (not audio, empty, too long, an unsupported rate or channel
count, a malformed row) raises :class:`RequestError` with one line naming it, before
any model runs. This module knows nothing of MLflow: ``tracking.packaging`` wraps it.
"""

from __future__ import annotations

import base64
import binascii
import io
import math
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import soundfile as sf

from danet_music2vec.audio import SUPPORTED
from danet_music2vec.evidence import GenreReader
from danet_music2vec.separation.denoising import denoise

# Rates libsndfile and the resampler handle well; below 8 kHz there is no music band left to separate.
MIN_RATE, MAX_RATE = 8000, 192000
# Mono or stereo: the separator's mask comes from the channels' mean, as in `dm2v`; more channels (surround)
# have no one right mixdown here.
MAX_CHANNELS = 2
FORMATS = {"flac": "FLAC", "wav": "WAV"}
FIELDS = ("audio", "samples", "sample_rate", "channels", "format")


class RequestError(ValueError):
    """A request the service cannot use; the message is one line naming the problem."""


@dataclass(frozen=True)
class Limits:
    """What a request may hold: ``max_seconds`` is ``serve.max_seconds`` of params.yaml."""

    max_seconds: float
    min_rate: int = MIN_RATE
    max_rate: int = MAX_RATE
    max_channels: int = MAX_CHANNELS

    def check(self, frames: int, rate: int, channels: int) -> None:
        """Raise :class:`RequestError` for empty, too long, or an unsupported rate or channel count."""
        if not self.min_rate <= rate <= self.max_rate:
            raise RequestError(f"sample rate {rate} Hz is not supported; send {self.min_rate} to {self.max_rate} Hz")
        if not 1 <= channels <= self.max_channels:
            raise RequestError(f"{channels} channels are not supported; send mono or stereo audio")
        if frames == 0:
            raise RequestError("the audio is empty (0 samples)")
        if frames / rate > self.max_seconds:
            raise RequestError(
                f"the audio is {frames / rate:.1f} s long, over the limit of {self.max_seconds:g} s (serve.max_seconds)"
            )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Request:
    """One decoded, checked request: float32 ``wave`` at ``rate``, ``(samples,)`` for mono or ``(channels, samples)``
    (as ``dm2v denoise`` reads a file), and the output ``format``."""

    wave: np.ndarray
    rate: int
    format: str


@dataclass(frozen=True)
class Answer:
    """The denoised ``music`` (float32 at ``rate``, the input's length and channels), the genre and every genre's probability."""

    music: np.ndarray
    rate: int
    format: str
    genre: str
    probabilities: dict[str, float]
    separator: str  # which separator denoised it (Separator.origin)
    path: str  # which path of the evidence gave the genre (the rule the pipeline chose)

    def row(self) -> dict[str, Any]:
        """The answer as one output row: the music encoded as ``format`` (16-bit) in base64."""
        return {
            "music": base64.b64encode(encode_audio(self.music, self.rate, self.format)).decode("ascii"),
            "format": self.format,
            "sample_rate": self.rate,
            "channels": 1 if self.music.ndim == 1 else int(self.music.shape[0]),
            "seconds": self.music.shape[-1] / self.rate,
            "genre": self.genre,
            "probabilities": self.probabilities,
            "separator": self.separator,
            "path": self.path,
        }


def _missing(value: Any) -> bool:
    """A field the row does not have: absent, None, or the NaN pandas puts in a column other rows filled."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def _channels_first(audio: np.ndarray) -> np.ndarray:
    """``(frames, channels)`` -> float32 ``(samples,)`` for mono, ``(channels, samples)`` otherwise: the shape
    ``dm2v denoise`` separates, so the answer keeps the request's channels."""
    audio = np.asarray(audio, dtype=np.float32)
    if not np.isfinite(audio).all():
        raise RequestError("the audio contains NaN or infinite samples")
    return np.ascontiguousarray(audio[:, 0] if audio.shape[1] == 1 else audio.T)


def decode_file(data: bytes, limits: Limits) -> tuple[np.ndarray, int]:
    """The samples (channels first) and rate of an audio file's bytes; the header is checked before the samples are decoded."""
    try:
        info = sf.info(io.BytesIO(data))
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError):
        if not data:
            raise RequestError("the audio file is empty (0 bytes)") from None
        raise RequestError(f"'audio' is not an audio file libsndfile can read; send {SUPPORTED}") from None
    limits.check(int(info.frames), int(info.samplerate), int(info.channels))
    audio, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    limits.check(audio.shape[0], int(rate), audio.shape[1])  # a header can lie about the frames
    return _channels_first(audio), int(rate)


def _integer(row: Mapping[str, Any], key: str, default: int | None = None) -> int:
    value = row.get(key)
    if _missing(value):
        if default is None:
            raise RequestError(f"'{key}' is missing: send it with 'samples'")
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or float(value) != int(value):
        raise RequestError(f"'{key}'={value!r} must be a whole number")
    return int(value)


def decode_samples(row: Mapping[str, Any], limits: Limits) -> tuple[np.ndarray, int]:
    """The samples (channels first) and rate of a row's ``samples`` (interleaved ``channels``) and ``sample_rate``."""
    rate, channels = _integer(row, "sample_rate"), _integer(row, "channels", 1)
    try:
        samples = np.asarray(row["samples"], dtype=np.float32)
    except (TypeError, ValueError):
        raise RequestError("'samples' must be a flat list of numbers") from None
    if samples.ndim != 1:
        raise RequestError(f"'samples' must be a flat list of numbers (interleaved channels), got shape {samples.shape}")
    limits.check(samples.size // max(channels, 1), rate, channels)
    if samples.size % channels:
        raise RequestError(f"{samples.size} samples do not split into {channels} channels")
    return _channels_first(samples.reshape(-1, channels)), rate


def decode_request(row: Mapping[str, Any], limits: Limits) -> Request:
    """Check and decode one request row (see the module docstring); :class:`RequestError` names what is wrong."""
    unknown = sorted(k for k, v in row.items() if k not in FIELDS and not _missing(v))
    if unknown:
        raise RequestError(f"unknown field(s) {', '.join(map(repr, unknown))}; send {', '.join(FIELDS)}")
    fmt = row.get("format")
    fmt = "flac" if _missing(fmt) else fmt
    if fmt not in FORMATS:
        raise RequestError(f"'format'={fmt!r} is not supported; send flac or wav")
    has_audio, has_samples = not _missing(row.get("audio")), not _missing(row.get("samples"))
    if has_audio == has_samples:
        raise RequestError("send exactly one of 'audio' (base64 file bytes) or 'samples' with 'sample_rate'")
    if has_samples:
        wave, rate = decode_samples(row, limits)
        return Request(wave, rate, fmt)
    if not isinstance(row["audio"], str):
        raise RequestError("'audio' must be a base64 string of the file's bytes")
    try:
        data = base64.b64decode(row["audio"], validate=True)
    except (binascii.Error, ValueError):
        raise RequestError("'audio' is not valid base64") from None
    wave, rate = decode_file(data, limits)
    return Request(wave, rate, fmt)


def encode_audio(music: np.ndarray, rate: int, fmt: str) -> bytes:
    """16-bit ``fmt`` (flac or wav) bytes of ``(samples,)`` or ``(channels, samples)`` audio, clipped at full scale as
    ``save_audio`` writes files."""
    out = io.BytesIO()
    frames_first = np.clip(np.asarray(music, dtype=np.float32), -1.0, 1.0).T
    sf.write(out, frames_first, rate, format=FORMATS[fmt], subtype="PCM_16")
    return out.getvalue()


class Service:
    """The separator, the two classifiers and the rule of one pipeline run, with the request limits: ``answer(row)``."""

    def __init__(self, separator, reader: GenreReader, limits: Limits) -> None:  # type: ignore[no-untyped-def]
        self.separator, self.reader, self.limits = separator, reader, limits

    @classmethod
    def load(
        cls,
        separator_path: str | os.PathLike[str],
        classifier_path: str | os.PathLike[str],
        adapted_path: str | os.PathLike[str],
        limits: Limits,
    ) -> "Service":
        """Load models/separator.pt (with the inference settings it was scored with), models/music2vec.pt and
        models/music2vec_adapted.pt (with the product's rule) as the CLI does."""
        from danet_music2vec.separation import Separator

        return cls(Separator.load(separator_path), GenreReader.load(classifier_path, adapted_path), limits)

    def process(self, request: Request) -> Answer:
        """Denoise as ``dm2v denoise`` (every channel kept), then read the genre of the mono mixdowns of the request
        and of its denoised music along the product's path (``dm2v classify --denoise``)."""
        music = denoise(self.separator, request.wave, request.rate)
        mono = [x if x.ndim == 1 else x.mean(0) for x in (request.wave, music)]
        proba = self.reader.read(*mono, request.rate)
        probabilities = {c: float(p) for c, p in zip(self.reader.classes, proba)}
        return Answer(music, request.rate, request.format, self.reader.classes[int(np.argmax(proba))], probabilities,
                      self.separator.origin, self.reader.rule.path)  # fmt: skip

    def answer(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """One request row -> one answer row; :class:`RequestError` for a bad request."""
        return self.process(decode_request(row, self.limits)).row()
