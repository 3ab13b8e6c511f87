import numpy as np
import pandas as pd
import pytest

from danet_music2vec.data.mixing import noise_gains, plan_mixtures, render_mixture, tile
from danet_music2vec.atomic import write_parquet


def splits_table(tmp_path, rate=8000):
    from tests.conftest import tone, write_audio

    rng = np.random.default_rng(1)
    rows = []
    for split in ("train", "test"):
        for i in range(2):
            path = write_audio(tmp_path / f"m_{split}{i}.wav", tone(2.0, rate, 300 + 50 * i), rate)
            rows.append({"clip_id": f"music/{split}{i}", "kind": "music", "label": f"g{i}", "path": str(path), "split": split})
        for i in range(3):
            noise = (0.05 * rng.standard_normal(int(0.7 * rate))).astype(np.float32)
            path = write_audio(tmp_path / f"n_{split}{i}.wav", noise, rate)
            rows.append({"clip_id": f"noise/{split}{i}", "kind": "noise", "label": "n", "path": str(path), "split": split})
    return pd.DataFrame(rows)


def plan(tmp_path, noises=1, snr=0.0, seed=0):
    return plan_mixtures(splits_table(tmp_path), noises, snr, seed, {"train": 2, "test": 1}, sample_rate=8000)


def test_tile_loops_from_the_offset():
    assert list(tile(np.arange(4.0), 3, 6)) == [3, 0, 1, 2, 3, 0]


@pytest.mark.parametrize("noises,snr", [(1, 0.0), (2, -5.0), (2, (-5.0, 5.0))])
def test_mixtures_hit_the_requested_snr(tmp_path, noises, snr):
    mixtures = plan(tmp_path, noises, snr)
    assert list(mixtures["split"].value_counts().sort_index()) == [2, 4]
    for row in mixtures.itertuples():
        rendered = render_mixture(row)
        measured = 10 * np.log10(np.mean(rendered.music.astype(float) ** 2) / np.mean(rendered.noise.astype(float) ** 2))
        assert measured == pytest.approx(row.snr_db, abs=1e-3)
        if isinstance(snr, tuple):
            assert snr[0] <= row.snr_db <= snr[1]
        else:
            assert row.snr_db == pytest.approx(snr, abs=1e-3)
        assert len(set(row.noise_clips)) == noises
        assert all(c.startswith(f"noise/{row.split}") for c in row.noise_clips)  # test music only meets test noise


def test_native_levels_keep_unit_gains(tmp_path):
    mixtures = plan(tmp_path, snr=None)
    assert all(list(g) == [1.0] for g in mixtures["noise_gains"])


def test_render_is_bit_exact_after_a_parquet_round_trip(tmp_path):
    mixtures = plan(tmp_path, noises=2, snr=(-5.0, 5.0))
    write_parquet(tmp_path / "mixtures.parquet", mixtures)
    again = pd.read_parquet(tmp_path / "mixtures.parquet")
    for a, b in zip(mixtures.itertuples(), again.itertuples()):
        ra, rb = render_mixture(a), render_mixture(b)
        assert np.array_equal(ra.mixture, rb.mixture) and np.array_equal(ra.music + ra.noise, ra.mixture)


def test_plan_is_seeded(tmp_path):
    a, b, c = plan(tmp_path, seed=0), plan(tmp_path, seed=0), plan(tmp_path, seed=1)
    assert a.equals(b)
    assert not a["noise_offsets"].equals(c["noise_offsets"])


def test_two_noises_get_equal_power():
    rng = np.random.default_rng(0)
    music = rng.standard_normal(1000).astype(np.float32)
    loud, quiet = 10 * rng.standard_normal(1000), 0.1 * rng.standard_normal(1000)
    g = noise_gains(music, [loud, quiet], 0.0)
    assert np.mean((g[0] * loud) ** 2) == pytest.approx(np.mean((g[1] * quiet) ** 2), rel=1e-6)


def test_too_few_noise_clips_is_explained(tmp_path):
    table = splits_table(tmp_path)
    table = table[~((table["kind"] == "noise") & (table["split"] == "test") & (table["clip_id"] != "noise/test0"))]
    with pytest.raises(ValueError, match="test split has 1 noise clip.*noises=2"):
        plan_mixtures(table, 2, 0.0, 0, {"train": 1, "test": 1}, sample_rate=8000)


@pytest.mark.parametrize("noises", [1, 2])
def test_render_at_another_snr_keeps_clips_and_offsets(tmp_path, noises):
    row = next(plan(tmp_path, noises, 0.0).itertuples())
    original = render_mixture(row)
    for target in (-5.0, 10.0):
        remixed = render_mixture(row, snr_db=target)
        np.testing.assert_array_equal(remixed.music, original.music)
        measured = 10 * np.log10(np.mean(remixed.music.astype(float) ** 2) / np.mean(remixed.noise.astype(float) ** 2))
        assert measured == pytest.approx(target, abs=1e-3)
        # Same noise clips and offsets, only the gain differs: the noise waveforms are proportional.
        scale = np.dot(remixed.noise, original.noise) / np.dot(original.noise, original.noise)
        np.testing.assert_allclose(remixed.noise, scale * original.noise, atol=1e-6)


def test_segments_cut_seeded_parts_of_the_music_clip(tmp_path):
    from danet_music2vec.audio import load_audio

    table = splits_table(tmp_path)
    mixtures = plan_mixtures(table, 1, 0.0, 0, {"test": 4}, sample_rate=8000, segment_seconds=0.5)
    assert (mixtures["num_samples"] == 4000).all() and mixtures["music_offset"].nunique() > 1
    for row in mixtures.itertuples():
        whole = load_audio(row.music_path, 8000)
        np.testing.assert_array_equal(render_mixture(row).music, whole[row.music_offset : row.music_offset + 4000])
    again = plan_mixtures(table, 1, 0.0, 0, {"test": 4}, sample_rate=8000, segment_seconds=0.5)
    assert list(again["music_offset"]) == list(mixtures["music_offset"])
    longer = plan_mixtures(table, 1, 0.0, 0, {"test": 1}, sample_rate=8000, segment_seconds=60.0)
    assert (longer["music_offset"] == 0).all() and (longer["num_samples"] == 16000).all()  # a short clip is used whole


def test_the_noise_count_and_snr_do_not_move_the_music_segments(tmp_path):
    # `dvc exp run -S noises=2` must score the same clean music as noises=1: clean F1 is then comparable.
    table = splits_table(tmp_path)
    one = plan_mixtures(table, 1, 0.0, 0, {"test": 4}, sample_rate=8000, segment_seconds=0.5)
    two = plan_mixtures(table, 2, (-5.0, 5.0), 0, {"test": 4}, sample_rate=8000, segment_seconds=0.5)
    assert list(one["music_offset"]) == list(two["music_offset"])
    assert list(one["noise_offsets"].map(list)) != list(two["noise_offsets"].map(list))
