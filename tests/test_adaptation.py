"""The adapted classifier's data: held-out tracks per genre, separated training mixtures, the clean share."""

from pathlib import Path

import numpy as np
import pytest

from danet_music2vec.adaptation import MusicOf, held_out, mix, separated_mixtures, subset, training_set
from danet_music2vec.music2vec_training import ClipSet
from danet_music2vec.spool import SpooledWave, WaveSpool

RATE = 8000


def clips(n_tracks_per_genre=(3, 2, 1), clips_per_track: int = 2) -> tuple[ClipSet, list[str]]:
    rng = np.random.default_rng(0)
    waves, labels, ids, groups = [], [], [], []
    for genre, tracks in enumerate(n_tracks_per_genre):
        for t in range(tracks):
            for c in range(clips_per_track):
                waves.append((0.1 * rng.standard_normal(RATE)).astype(np.float32))
                labels.append(genre)
                ids.append(f"music/g{genre}/t{t}_{c}")
                groups.append(f"g{genre}/t{t}")
    classes = [f"g{i}" for i in range(len(n_tracks_per_genre))]
    return ClipSet(waves, np.array(labels, dtype=np.int64), classes, ids), groups


def test_held_out_takes_whole_tracks_one_per_genre_that_has_more() -> None:
    clipset, groups = clips()
    val = held_out(groups, clipset.labels, per_genre=1, seed=0)
    held_groups = {groups[i] for i in val}
    assert len(held_groups) == 2  # genres 0 and 1; genre 2 has one track and keeps it for training
    assert {clipset.labels[i] for i in val} == {0, 1}
    assert all(groups[i] in held_groups for i in range(len(groups)) if i in val)
    assert sum(groups[i] in held_groups for i in range(len(groups))) == len(val)  # both clips of a held track
    assert val == held_out(groups, clipset.labels, per_genre=1, seed=0)
    assert subset(clipset, val).clip_ids == [clipset.clip_ids[i] for i in val]


def test_mix_sets_the_snr_of_the_noise() -> None:
    rng = np.random.default_rng(1)
    music = np.sin(np.linspace(0, 400, RATE)).astype(np.float32)
    noise = (0.3 * rng.standard_normal(RATE // 3)).astype(np.float32)
    mixture = mix(music, [noise], 5.0, rng)
    residual = mixture - music
    assert 10 * np.log10(np.mean(music**2) / np.mean(residual**2)) == pytest.approx(5.0, abs=1e-3)


def test_separated_mixtures_are_seeded_per_track_and_draw_both_noise_counts(tmp_path: Path) -> None:
    clipset, _ = clips()
    rng = np.random.default_rng(2)
    noises = [(0.1 * rng.standard_normal(RATE // 2)).astype(np.float32) for _ in range(4)]
    calls = []

    def separate(mixture: np.ndarray, rate: int) -> np.ndarray:
        calls.append(rate)
        return 0.5 * mixture

    kw = dict(separate=separate, sample_rate=RATE, per_clip=4, noise_counts=(1, 2), snr_db=(-5.0, 5.0), seed=0, progress=False)
    out = separated_mixtures(clipset, [0, 3], noises, **kw)
    assert [m.clip for m in out] == [0, 0, 0, 0, 3, 3, 3, 3] and calls == [RATE] * 8
    np.testing.assert_allclose(out[0].music, 0.5 * out[0].mixture)
    # Mixture k of clip i is the same whichever other tracks are mixed: (seed, stream, i, k) alone.
    again = separated_mixtures(clipset, [3], noises, **kw)
    np.testing.assert_array_equal(again[0].mixture, out[4].mixture)
    other = separated_mixtures(clipset, [3], noises, stream=1, **kw)
    assert not np.allclose(other[0].mixture, out[4].mixture)
    # The training set keeps only the music, on disk, and reads back the same samples.
    with WaveSpool(tmp_path / "music.f32") as spool:
        kept = separated_mixtures(clipset, [0, 3], noises, spool=spool, **kw)
        assert all(m.mixture is None and isinstance(m.music, SpooledWave) for m in kept)
        np.testing.assert_array_equal(np.asarray(kept[5].music), out[5].music)
    with pytest.raises(ValueError, match="need that many"):
        separated_mixtures(clipset, [0], noises[:1], **(kw | {"noise_counts": (2,)}))


def test_training_set_mixes_in_clean_clips_at_about_the_share() -> None:
    clipset, _ = clips()
    mixtures = separated_mixtures(clipset, [0, 1], [np.ones(100, np.float32)], separate=lambda m, r: m, sample_rate=RATE,
                                  per_clip=4, noise_counts=(1,), snr_db=(0.0, 0.0), seed=0, progress=False)  # fmt: skip
    tuned = training_set(clipset, mixtures, clean_share=0.3)
    clean = [i for i in tuned.clip_ids if i.startswith("clean/")]
    assert len(tuned.waves) == 8 + len(clean) and len(clean) / len(tuned.waves) == pytest.approx(0.3, abs=0.1)
    assert {c.split("/", 1)[1].rsplit("/", 1)[0] for c in clean} == {clipset.clip_ids[0], clipset.clip_ids[1]}
    assert list(tuned.labels[:8]) == [clipset.labels[m.clip] for m in mixtures]
    assert len(training_set(clipset, mixtures, clean_share=0.0).waves) == 8
    with pytest.raises(ValueError, match="clean_share"):
        training_set(clipset, mixtures, clean_share=1.0)


@pytest.mark.parametrize("architecture", ["mask", "chimera", "danet"])
def test_every_separator_architecture_feeds_the_adaptation(architecture: str, tmp_path) -> None:
    # What the stage does with models/separator.pt, for each architecture: load it, separate the training mixtures
    # at the classifier's rate, and get music as long as each mixture.
    from danet_music2vec.separation import Separator
    from tests.conftest import separate_params
    from tests.factories import separator_file, tiny_separator_params

    separator = Separator.load(separator_file(tmp_path / "separator.pt", cfg=tiny_separator_params(architecture),
                                              settings=separate_params(device="cpu")))  # fmt: skip

    clipset, _ = clips()
    noises = [(0.1 * np.random.default_rng(3).standard_normal(RATE // 2)).astype(np.float32)] * 2
    out = separated_mixtures(clipset, [0, 1], noises, separate=MusicOf(separator), sample_rate=RATE, per_clip=1, noise_counts=(1, 2),
                             snr_db=(0.0, 0.0), seed=0, progress=False)  # fmt: skip
    assert all(m.music.shape == m.mixture.shape and np.isfinite(m.music).all() for m in out)
    assert len(training_set(clipset, out, clean_share=0.3).waves) >= len(out)
    if architecture == "mask":  # in 2 worker processes: the same music, sample for sample
        parallel = separated_mixtures(clipset, [0, 1], noises, separate=MusicOf(separator), sample_rate=RATE, per_clip=1,
                                      noise_counts=(1, 2), snr_db=(0.0, 0.0), seed=0, progress=False, workers=2)  # fmt: skip
        for a, b in zip(out, parallel):
            np.testing.assert_array_equal(a.music, b.music)
