"""The one audio loader every stage uses: read, mix down to mono, resample, validate.

Reading goes through soundfile (libsndfile: wav, flac, ogg, au, ...); resampling
through ``torchaudio.functional.resample``. Every problem becomes an
:class:`AudioError` that names the file and what to do about it, never a bare
traceback from inside libsndfile.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio

from danet_music2vec.atomic import atomic_path

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".au")
SUPPORTED = ", ".join(ext.lstrip(".") for ext in AUDIO_EXTENSIONS)
# Peak below this (about -80 dBFS) counts as silence: no music or noise to learn from.
SILENCE_PEAK = 1e-4


class AudioError(ValueError):
    """An audio file cannot be used; the message names the file and the fix."""

    def __init__(self, path: str | os.PathLike[str], problem: str, fix: str) -> None:
        self.path = Path(path)
        self.problem = problem
        self.fix = fix
        super().__init__(f"{path}: {problem}; {fix}")


@lru_cache(maxsize=8)
def _resampler(orig_rate: int, new_rate: int) -> torchaudio.transforms.Resample:
    # The windowed-sinc kernel depends only on the two rates: build it once per pair.
    return torchaudio.transforms.Resample(orig_rate, new_rate)


# Long signals are resampled in blocks of about this many input samples, each with the margin the filter reaches into
# (dropped afterwards), so the result is the whole-signal one: the CPU convolution may unfold its whole input at once
# (28 values a sample from 44.1 to 22.05 kHz), which made resampling a 10-minute file the peak of `dm2v denoise`.
RESAMPLE_BLOCK = 2**20


def resample(audio: np.ndarray, orig_rate: int, new_rate: int) -> np.ndarray:
    """Band-limited resampling of a float32 signal ``(..., samples)`` (identity when the rates match)."""
    if orig_rate == new_rate:
        return audio
    resampler = _resampler(orig_rate, new_rate)
    # The filter is polyphase: every `orig` input samples give `new` output samples.
    orig, new = orig_rate // resampler.gcd, new_rate // resampler.gcd
    block = max(1, RESAMPLE_BLOCK // orig) * orig
    margin = -(-(resampler.width + orig) // orig) * orig  # whole periods covering the filter's reach
    signal = torch.tensor(audio, dtype=torch.float32)
    samples = signal.shape[-1]
    with torch.inference_mode():
        if samples <= block:
            return resampler(signal).numpy()
        parts = []
        for start in range(0, samples, block):
            end = min(samples, start + block)
            lo, hi = max(0, start - margin), min(samples, end + margin)
            out = resampler(signal[..., lo:hi])
            first = (start - lo) // orig * new
            parts.append(out[..., first : first + (end - start) // orig * new] if end < samples else out[..., first:])
        return torch.cat(parts, dim=-1).numpy()


def load_audio(
    path: str | os.PathLike[str],
    sample_rate: int,
    min_seconds: float = 0.0,
    check_silence: bool = True,
    mono: bool = True,
) -> np.ndarray:
    """Return the file's audio as float32 at ``sample_rate``: mono ``(samples,)``, or ``(channels, samples)`` with ``mono=False``.

    With ``mono`` stereo (or more channels) is averaged to mono; other rates are resampled:
    both are converted, not rejected. Raises :class:`AudioError` for a missing,
    unreadable, empty, non-finite, silent or too-short file.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError(path, "no such file", "check the path")
    try:
        audio, rate = sf.read(path, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as err:
        raise AudioError(
            path,
            f"cannot be read as audio ({err})",
            f"re-export it as one of {SUPPORTED}",
        ) from None
    if audio.shape[0] == 0:
        raise AudioError(path, "is empty (0 samples)", "remove it or replace it with the real recording")
    if not np.isfinite(audio).all():
        raise AudioError(path, "contains NaN or infinite samples", "re-export it from the original recording")
    audio = audio.mean(axis=1) if mono else np.ascontiguousarray(audio.T)
    if check_silence and float(np.max(np.abs(audio))) < SILENCE_PEAK:
        raise AudioError(path, "is silent (peak below -80 dBFS)", "remove it; silence has no music or noise to learn from")
    duration = audio.shape[-1] / rate
    if duration < min_seconds:
        raise AudioError(
            path,
            f"is too short ({duration:.2f} s < {min_seconds:g} s)",
            "remove it or lower data.min_music_seconds / data.min_noise_seconds",
        )
    return resample(audio, rate, sample_rate).astype(np.float32, copy=False)


def audio_info(path: str | os.PathLike[str]) -> sf._SoundFileInfo:
    """Header information (rate, channels, frames) without decoding the samples."""
    return sf.info(str(path))


def save_audio(path: str | os.PathLike[str], audio: np.ndarray, sample_rate: int, subtype: str = "PCM_16") -> int:
    """Write mono ``(samples,)`` or ``(channels, samples)`` audio atomically (format from the suffix); returns how
    many samples had to be clipped."""
    audio = np.asarray(audio, dtype=np.float32)
    clipped = int(np.count_nonzero(np.abs(audio) > 1.0))
    with atomic_path(path) as tmp:
        sf.write(tmp, np.clip(audio, -1.0, 1.0).T, sample_rate, subtype=subtype)
    return clipped
