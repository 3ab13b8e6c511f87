"""Adapting the clean-trained music2vec to what the separator leaves (the ``adapt_music2vec`` stage's library).

The clean classifier (``train_music2vec``) never heard a separator's output: residual noise,
musical noise, a suppressed band. Here every training track is mixed with training noise as the
separator was trained (1 or 2 noises, a music-to-noise ratio drawn uniformly over the separator's
training range), separated by the run's separator, and music2vec is fine-tuned from its clean
weights on crops of that separated music, with clean crops mixed in so that it keeps what it
knew.

The product's path is chosen on validation tracks (:func:`held_out`), with a clean and an adapted
classifier that never heard them: the clean classifier of the run trained on every training
track, so its probabilities on any of them are over-confident (F1 1.0 on the sample) and would
always win. The stage therefore trains the pair once more without the validation tracks, chooses
the rule with that pair (:func:`~danet_music2vec.evidence.choose_rule`), and ships the rule with
the adapted classifier fine-tuned on every training track.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from danet_music2vec.audio import resample
from danet_music2vec.data.mixing import noise_gains, tile
from danet_music2vec.music2vec_training import ClipSet
from danet_music2vec.spool import SpooledWave, WaveSpool
from danet_music2vec.workers import map_items


@dataclass(frozen=True)
class SeparatedMixture:
    """One training track mixed with noise and separated: what the adapted classifier learns from or is validated on."""

    clip: int  # index of the track in its ClipSet
    mixture: np.ndarray | None  # None where only the music is kept (training mixtures)
    music: np.ndarray | SpooledWave  # the separator's music estimate, at the ClipSet's rate (on disk: training mixtures)


# Training mixtures are mixed and separated this many at a time, and only their music is kept, on disk: at the
# `full` profile's 700 training tracks x 4 mixtures, every mixture and its music in memory would need about 15 GB
# (docs/BENCHMARKS.md, cost curve). (The music as float16 in memory halves it, but changed the adapted classifier:
# product F1 0.779 -> 0.747.)
BLOCK = 256


def held_out(groups: Sequence[str], labels: Sequence[int], per_genre: int, seed: int) -> list[int]:
    """Indices of the validation clips: ``per_genre`` seeded tracks (``groups``, one per clip) of every genre, whole,
    so that each genre is validated; a genre with no more tracks than that is not held out."""
    if len(groups) != len(labels):
        raise ValueError(f"{len(groups)} groups for {len(labels)} clips")
    rng = np.random.default_rng(seed)
    held: set[str] = set()
    for label in sorted(set(int(x) for x in labels)):
        tracks = sorted({g for g, lab in zip(groups, labels) if lab == label})
        if len(tracks) > per_genre:
            held |= {tracks[int(i)] for i in rng.choice(len(tracks), size=per_genre, replace=False)}
    return [i for i, g in enumerate(groups) if g in held]


def subset(clips: ClipSet, keep: Sequence[int]) -> ClipSet:
    """The clips at indices ``keep``, in that order."""
    return ClipSet(waves=[clips.waves[i] for i in keep], labels=clips.labels[list(keep)], classes=clips.classes,
                   clip_ids=[clips.clip_ids[i] for i in keep])  # fmt: skip


class MusicOf:
    """``separate(mixture, rate)`` for :func:`separated_mixtures`: ``separator``'s music (any architecture, any output
    rate) at the mixture's rate and length. A class, not a closure, so that worker processes can receive it."""

    def __init__(self, separator) -> None:  # type: ignore[no-untyped-def]
        self.separator = separator

    def __call__(self, mixture: np.ndarray, sample_rate: int) -> np.ndarray:
        music = self.separator.separate(mixture, sample_rate).music
        return resample(music, self.separator.output_sample_rate(sample_rate), sample_rate)[: len(mixture)]


def mix(music: np.ndarray, noises: Sequence[np.ndarray], snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """``music`` plus the ``noises``, each looped from a random offset, at ``snr_db`` (as the mix stage mixes)."""
    tiled = [tile(n, int(rng.integers(0, len(n))), len(music)) for n in noises]
    gains = noise_gains(music, tiled, snr_db)
    return (music + sum(np.float32(g) * n for g, n in zip(gains, tiled))).astype(np.float32)


def separated_mixtures(
    clips: ClipSet,
    tracks: Sequence[int],
    noises: Sequence[np.ndarray],
    separate,  # type: ignore[no-untyped-def]  # (mixture, sample_rate) -> music at sample_rate
    sample_rate: int,
    per_clip: int,
    noise_counts: Sequence[int],
    snr_db: tuple[float, float],
    seed: int,
    stream: int = 0,
    progress: bool = True,
    workers: int = 1,
    spool: WaveSpool | None = None,
) -> list[SeparatedMixture]:
    """``per_clip`` mixtures of every clip at the indices ``tracks``, each with a noise count drawn from ``noise_counts`` and an SNR from
    ``snr_db``, separated by ``separate`` in ``workers`` processes (one thread each, so the music does not depend on
    how many; ``separate`` must then pickle, as :class:`MusicOf` does). Mixture ``k`` of clip ``i`` depends on
    ``(seed, stream, i, k)`` alone (training and validation mixtures take different streams). With a ``spool``, only
    each mixture's music is kept, written there (the training set; :data:`BLOCK` says why)."""
    if len(noises) < max(noise_counts):
        raise ValueError(f"{len(noises)} training noise clip(s): mixtures of {max(noise_counts)} noises need that many")
    work = [(int(i), k) for i in tracks for k in range(per_clip)]
    out = []
    for first in range(0, len(work), BLOCK):
        block = work[first : first + BLOCK]
        mixtures = []
        for i, k in block:
            rng = np.random.default_rng([seed, stream, i, k])
            count = int(noise_counts[int(rng.integers(len(noise_counts)))])
            picked = [noises[int(j)] for j in rng.choice(len(noises), size=count, replace=False)]
            mixtures.append(mix(clips.waves[i], picked, float(rng.uniform(*snr_db)), rng))
        musics = map_items(_separate, (separate, sample_rate), mixtures, workers, "separate training mixtures", progress)
        out += [SeparatedMixture(i, None, spool.add(music)) if spool is not None else SeparatedMixture(i, mixture, music)
                for (i, _), mixture, music in zip(block, mixtures, musics)]  # fmt: skip
    return out


def _separate(context: tuple[Callable[[np.ndarray, int], np.ndarray], int], mixture: np.ndarray) -> np.ndarray:
    separate, sample_rate = context
    return separate(mixture, sample_rate)


def training_set(clean: ClipSet, separated: Sequence[SeparatedMixture], clean_share: float) -> ClipSet:
    """The fine-tuning set: every separated mixture, and the clean clips they were mixed from, each repeated so that
    clean audio makes up about ``clean_share`` of the crops (each item gets the same number of crops per epoch)."""
    if not 0.0 <= clean_share < 1.0:
        raise ValueError(f"clean_share={clean_share}: must be in [0, 1)")
    tracks = sorted({s.clip for s in separated})
    repeats = math.floor(clean_share / (1.0 - clean_share) * len(separated) / max(len(tracks), 1) + 0.5)
    waves = [s.music for s in separated] + [clean.waves[i] for i in tracks for _ in range(repeats)]
    labels = [clean.labels[s.clip] for s in separated] + [clean.labels[i] for i in tracks for _ in range(repeats)]
    ids = [f"separated/{clean.clip_ids[s.clip]}/{n}" for n, s in enumerate(separated)]
    ids += [f"clean/{clean.clip_ids[i]}/{r}" for i in tracks for r in range(repeats)]
    return ClipSet(waves=waves, labels=np.asarray(labels, dtype=np.int64), classes=clean.classes, clip_ids=ids)
