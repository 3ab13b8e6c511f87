"""Dynamic mixing: random excerpts, the requested SNR, bounded gains, silence-aware, held-out groups."""

import numpy as np
import pandas as pd
import pytest
import torch

from danet_music2vec.dsp import StftConfig
from danet_music2vec.dynamic_mixing import DynamicMixer, split_groups
from danet_music2vec.features import FeatureStore, write_features

RATE = 8000
CFG = StftConfig(sample_rate=RATE, n_fft=128, hop=32, chunk_frames=16)


def _audio(path: str) -> np.ndarray:
    kind, seed, level = path.split(":")
    rng = np.random.default_rng(int(seed))
    wave = rng.standard_normal(2 * RATE if kind == "music" else RATE // 2).astype(np.float32) * float(level)
    if kind == "music":
        wave[: RATE // 2] = 0.0  # a pause: excerpts there are silent and must be redrawn
    return wave


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> FeatureStore:
    rows = [{"clip_id": f"music/{i}", "kind": "music", "group": f"t{i}", "path": f"music:{i}:0.1"} for i in range(4)]
    rows += [{"clip_id": f"noise/{i}", "kind": "noise", "group": f"r{i}", "path": f"noise:{10 + i}:{0.01 * (i + 1)}"}
             for i in range(4)]  # fmt: skip
    root = tmp_path_factory.mktemp("features")
    write_features(pd.DataFrame(rows), CFG, root, sample_rate=RATE, load=_audio, progress=False)
    return FeatureStore(root)


def _snr(music: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    return 10 * torch.log10(music.abs().square().sum((1, 2)) / noise.abs().square().sum((1, 2)))


@pytest.mark.parametrize("noises", [1, 2])
def test_batches_hit_the_drawn_snr_range(store: FeatureStore, noises: int) -> None:
    mixer = DynamicMixer(store, {"t0", "t1", "t2", "t3"}, {"r0", "r1", "r2", "r3"}, noises, (-10.0, 15.0), max_gain_db=60)
    music, noise = mixer.batch(range(64))
    assert music.shape == noise.shape == (64, CFG.chunk_frames, CFG.n_freq) and music.dtype == torch.complex64
    snr = _snr(music, noise)
    assert snr.min() >= -10.0 - 1e-3 and snr.max() <= 15.0 + 1e-3 and snr.std() > 4.0


def test_excerpts_come_from_random_offsets_and_skip_silence(store: FeatureStore) -> None:
    mixer = DynamicMixer(store, {"t0"}, {"r0"}, 1, (0.0, 0.0))
    music, _ = mixer.batch(range(100, 132))
    distinct = {tuple(m[0, :3].real.tolist()) for m in music}
    assert len(distinct) > 20  # not a fixed grid of a few chunks
    clip_power = float(store.clips("music")["power"].iloc[0])
    assert (music.abs().square().mean((1, 2)) > clip_power * 1e-3).all()  # no excerpt from the 0.5 s pause


def test_noise_gain_is_bounded(store: FeatureStore) -> None:
    # Noise clip 20 dB below the music clip: -10 dB SNR needs the noise about 11 dB above equal clip power;
    # a 3 dB bound stops it near -2 dB.
    mixer = DynamicMixer(store, {"t0"}, {"r0"}, 1, (-10.0, -10.0), max_gain_db=3.0)
    rng = np.random.default_rng(2)
    for _ in range(8):
        music, noise = mixer.example(rng)
        assert float(_snr(music[None], noise[None])) > -10.0 + 5.0


def test_groups_outside_the_mixer_are_never_drawn(store: FeatureStore) -> None:
    mixer = DynamicMixer(store, {"t1"}, {"r2", "r3"}, 2, (0.0, 0.0))
    assert set(mixer.music["group"]) == {"t1"} and set(mixer.noise["group"]) == {"r2", "r3"}
    with pytest.raises(ValueError, match="noises=2"):
        DynamicMixer(store, {"t1"}, {"r2"}, 2, (0.0, 0.0))


def test_fixed_batches_repeat_exactly(store: FeatureStore) -> None:
    mixer = DynamicMixer(store, {"t0", "t1"}, {"r0", "r1"}, 1, (-5.0, 5.0))
    a, b = mixer.fixed_batches(7, 10, 4), mixer.fixed_batches(7, 10, 4)
    assert [m.shape[0] for m, _ in a] == [4, 4, 2]
    for (ma, na), (mb, nb) in zip(a, b):
        assert torch.equal(ma, mb) and torch.equal(na, nb)


def test_split_groups_holds_out_whole_groups_reproducibly() -> None:
    groups = [f"g{i}" for i in range(10)] * 2
    train, val = split_groups(groups, 0.2, seed=3)
    assert len(val) == 2 and not train & val and train | val == set(groups)
    assert split_groups(groups, 0.2, seed=3) == (train, val)
    assert split_groups(groups, 0.0, seed=3) == (set(groups), set())
    assert split_groups(["only"], 0.5, seed=0) == ({"only"}, set())  # nothing left to train on otherwise


def test_extra_music_share_sets_how_often_the_separation_pool_is_drawn(tmp_path) -> None:
    rows = [{"clip_id": "music/a", "kind": "music", "group": "a", "path": "music:1:0.1"},
            {"clip_id": "separation/extra/b", "kind": "music", "group": "b", "path": "music:2:0.1"},
            {"clip_id": "separation/extra/c", "kind": "music", "group": "c", "path": "music:3:0.1"},
            {"clip_id": "noise/n", "kind": "noise", "group": "n", "path": "noise:4:0.01"}]  # fmt: skip
    write_features(pd.DataFrame(rows), CFG, tmp_path, sample_rate=RATE, load=_audio, progress=False)
    store = FeatureStore(tmp_path)
    proportional = DynamicMixer(store, {"a", "b", "c"}, {"n"}, 1, (0.0, 0.0))
    np.testing.assert_allclose(proportional._music_p, [1 / 3] * 3)
    shared = DynamicMixer(store, {"a", "b", "c"}, {"n"}, 1, (0.0, 0.0), extra_share=0.2)
    np.testing.assert_allclose(shared._music_p, [0.8, 0.1, 0.1])


def test_random_equalisation_filters_each_excerpt_by_a_smooth_curve_within_the_range(store: FeatureStore) -> None:
    plain = DynamicMixer(store, {"t0", "t1"}, {"r0", "r1"}, 1, (-5.0, 5.0))
    equalised = DynamicMixer(store, {"t0", "t1"}, {"r0", "r1"}, 1, (-5.0, 5.0), eq_db=6.0)
    seeds = list(range(500, 508))
    music, _ = plain.batch(seeds)
    eq_music, eq_noise = equalised.batch(seeds)  # the same excerpts (drawn first), then each its own curve
    audible = music.abs() > 1e-6
    gain_db = 20 * torch.log10(eq_music.abs().clamp_min(1e-12) / music.abs().clamp_min(1e-12))
    per_bin = torch.where(audible, gain_db, torch.nan)
    curve = per_bin.nanmedian(dim=1).values  # (B, F): one gain per bin, the same in every frame
    assert torch.allclose(torch.where(audible, gain_db - curve.unsqueeze(1), 0.0), torch.zeros(()), atol=1e-3)
    assert curve.abs().max() <= 6.0 + 1e-4 and curve.std(dim=1).min() > 0.3  # within the range, not flat
    assert not torch.allclose(curve[0], curve[1])  # every example its own curve
    assert curve.diff(dim=1).abs().max() < 12.0 / (CFG.n_freq / 5) + 1e-3  # smooth: 6 points over the band
    snr = _snr(eq_music, eq_noise)  # the SNR is set after the equalisation
    assert (snr > -5.0 - 1e-3).all() and (snr < 5.0 + 1e-3).all()


def test_native_levels_sum_the_recordings_as_they_are(store: FeatureStore) -> None:
    mixer = DynamicMixer(store, {"t0"}, {"r0", "r3"}, 2, None)
    music, noise = mixer.batch(range(300, 316))
    # Music at 0.1, noises r0 at 0.01 and r3 at 0.04 (RMS): unscaled, 10 log10(0.01 / 0.0017) = 7.7 dB.
    snr = _snr(music, noise)
    assert float(snr.median()) == pytest.approx(7.7, abs=0.5) and (snr < 9.0).all()


def test_category_balance_draws_every_noise_category_equally_often(tmp_path) -> None:
    # Three dog clips and one rain clip of equal length: by length dogs take 3/4 of the draws, by category 1/2.
    rows = [{"clip_id": "music/a", "kind": "music", "group": "a", "path": "music:1:0.1"}]
    rows += [{"clip_id": f"noise/{i}", "kind": "noise", "group": f"r{i}", "label": "dog" if i < 3 else "rain",
              "path": f"noise:{i}:0.01"} for i in range(4)]  # fmt: skip
    write_features(pd.DataFrame(rows), CFG, tmp_path, sample_rate=RATE, load=_audio, progress=False)
    store = FeatureStore(tmp_path)
    groups = {f"r{i}" for i in range(4)}
    np.testing.assert_allclose(DynamicMixer(store, {"a"}, groups, 1, (0.0, 0.0))._noise_p, [0.25] * 4)
    balanced = DynamicMixer(store, {"a"}, groups, 1, (0.0, 0.0), noise_balance="category")
    np.testing.assert_allclose(balanced._noise_p, [1 / 6, 1 / 6, 1 / 6, 1 / 2])
