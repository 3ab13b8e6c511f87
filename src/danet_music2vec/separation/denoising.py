"""A file's music as ``dm2v denoise``, ``dm2v classify --denoise`` and the served model all take it.

Here, not in :mod:`danet_music2vec.service`, so that ``dm2v denoise`` imports only the separator's code: the
classifiers' libraries (scikit-learn, pandas, pyarrow) cost about 160 MB of memory before any audio is read.
"""

from __future__ import annotations

import numpy as np

from danet_music2vec.audio import resample


def separate_music(separator, wave: np.ndarray, sample_rate: int) -> tuple[np.ndarray, int]:  # type: ignore[no-untyped-def]
    """The separator's music estimate, shaped as ``wave`` (``(samples,)`` or ``(channels, samples)``), and its rate
    (the input's, or the STFT rate for a band-limited separator)."""
    music = separator.separate(wave, sample_rate).music
    return np.asarray(music, dtype=np.float32), int(separator.output_sample_rate(sample_rate))


def denoise(separator, wave: np.ndarray, sample_rate: int) -> np.ndarray:  # type: ignore[no-untyped-def]
    """``dm2v denoise``: the music of ``wave`` (mono or ``(channels, samples)``) at the input's rate, length and
    channels, whatever rate the separator works at."""
    music, music_rate = separate_music(separator, wave, sample_rate)
    music = resample(music, music_rate, sample_rate)
    samples = wave.shape[-1]
    if music.shape[-1] >= samples:
        return music[..., :samples]
    return np.pad(music, [(0, 0)] * (music.ndim - 1) + [(0, samples - music.shape[-1])])
