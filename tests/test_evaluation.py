import math

import numpy as np
import pandas as pd
import pytest

from danet_music2vec.evaluation import (
    confusion_long,
    gnsdr_by_noise,
    json_safe,
    noise_labels,
    score_classification,
    snr_key,
    snr_sweep,
    sweep_curves,
    sweep_summary,
)
from danet_music2vec.separation import OrderCount, Separation


def predictions() -> pd.DataFrame:
    rows = []
    for i, (true, clean, mix) in enumerate([("rock", "rock", "folk"), ("rock", "rock", "rock"), ("folk", "folk", "folk"), ("folk", "folk", "rock")]):
        rows += [
            {"mixture_id": f"m{i}", "input": "clean", "true_label": true, "predicted_label": clean},
            {"mixture_id": f"m{i}", "input": "mixture", "true_label": true, "predicted_label": mix},
        ]
    return pd.DataFrame(rows)


def one_clip_per_mixture(predictions: pd.DataFrame) -> pd.Series:
    """Every mixture cut from a clip of its own: intervals over clips are intervals over mixtures."""
    ids = sorted(predictions["mixture_id"].unique())
    return pd.Series([f"clip-{m}" for m in ids], index=ids)


def test_classification_summary_per_input_with_intervals():
    summary, tables = score_classification(predictions(), one_clip_per_mixture(predictions()), n_boot=200, seed=0, alpha=0.05)
    assert summary["classification.clean.accuracy"] == 1.0
    assert summary["classification.mixture.accuracy"] == 0.5
    assert summary["classification.mixture.f1_ci_low"] <= summary["classification.mixture.f1"] <= summary["classification.mixture.f1_ci_high"]
    assert "classification.separated.f1" not in summary  # no separated rows, no made-up numbers
    assert tables["mixture"].loc["rock", "folk"] == 1 and tables["clean"].to_numpy().trace() == 4


def test_confusion_long_has_one_row_per_clip_for_dvc():
    _, tables = score_classification(predictions(), one_clip_per_mixture(predictions()), n_boot=10, seed=0, alpha=0.05)
    long = confusion_long(tables["mixture"])
    assert len(long) == 4 and list(long.columns) == ["actual", "predicted"]
    assert ((long["actual"] == "rock") & (long["predicted"] == "folk")).sum() == 1


def test_classification_intervals_resample_test_clips():
    # 8 clips, 5 mixtures each; the clean music of a clip gets one prediction, repeated for each of its mixtures.
    true = ["rock", "rock", "rock", "rock", "folk", "folk", "folk", "folk"]
    clean = ["rock", "folk", "rock", "rock", "folk", "rock", "folk", "folk"]
    rows = [
        {"mixture_id": f"m{5 * c + k:02d}", "input": "clean", "true_label": true[c], "predicted_label": clean[c]}
        for c in range(8)
        for k in range(5)
    ]
    table = pd.DataFrame(rows)
    clips = pd.Series([f"c{int(m[1:]) // 5}" for m in table["mixture_id"]], index=table["mixture_id"])
    by_clip, _ = score_classification(table, clips, n_boot=500, seed=0, alpha=0.05)
    by_mixture, _ = score_classification(table, one_clip_per_mixture(table), n_boot=500, seed=0, alpha=0.05)
    assert by_clip["classification.clean.accuracy"] == by_mixture["classification.clean.accuracy"] == 0.75
    for metric in ("accuracy", "f1"):
        width = by_clip[f"classification.clean.{metric}_ci_high"] - by_clip[f"classification.clean.{metric}_ci_low"]
        narrow = by_mixture[f"classification.clean.{metric}_ci_high"] - by_mixture[f"classification.clean.{metric}_ci_low"]
        assert width > 1.5 * narrow  # 8 independent clips, not 40 mixtures
    with pytest.raises(ValueError, match="no music clip for 5 predicted mixture"):
        score_classification(table, clips.iloc[5:], n_boot=10, seed=0, alpha=0.05)


def test_json_safe_turns_nan_into_null():
    assert json_safe({"a": math.nan, "b": 1.5}) == {"a": None, "b": 1.5}


class _IdentitySeparator:
    """Returns the mixture as the music estimate (and silence-free noise): NSDR must be exactly 0."""

    def separate(self, wave, sample_rate):
        return Separation(wave.copy(), 0.5 * wave, OrderCount())

    def output_sample_rate(self, input_rate):
        return input_rate


class _LoudnessClassifier:
    """Labels a clip by its RMS: deterministic, so clean/mixture/separated predictions can be compared."""

    classes = ["g0", "g1"]

    def predict_proba(self, wave, sample_rate):
        loud = float(np.sqrt(np.mean(np.square(wave)))) > 0.2
        return np.array([0.0, 1.0]) if loud else np.array([1.0, 0.0])


def test_snr_sweep_identity_separator_gains_nothing_at_every_snr(tmp_path):
    from danet_music2vec.dsp import StftConfig
    from tests.data.test_mixing import plan

    mixtures = plan(tmp_path, noises=1, snr=0.0)
    test = mixtures[mixtures["split"] == "test"]
    cfg = StftConfig(sample_rate=8000, n_fft=256, hop=64, window="sqrt_hann", chunk_frames=100)
    gate = {"percentile": 10, "over_subtraction": 1.0, "floor_db": -12, "smooth_frames": 5, "freq_median_bins": 15}
    snrs = [-5.0, 0.0, 10.0]
    from danet_music2vec.evidence import SCORED, GenreReader, ProductRule

    reader = GenreReader(_LoudnessClassifier(), _LoudnessClassifier(), ProductRule(path="combined"))
    per_mixture, predictions, grouped = snr_sweep(test, _IdentitySeparator(), reader, snrs, cfg, gate,
                                                  silence_db=-80, progress=False)  # fmt: skip
    assert len(per_mixture) == len(test) * len(snrs) * 3 and len(predictions) == len(test) * len(snrs) * len(SCORED)
    separator = per_mixture[per_mixture["system"] == "separator"]
    np.testing.assert_allclose(separator["nsdr_music"], 0.0, atol=1e-6)
    # The mixture's own SDR rises with the input SNR; the oracle stays far above it.
    mixture_sdr = separator.groupby("input_snr_db")["sdr_mixture_music"].mean()
    assert list(mixture_sdr.index) == snrs and mixture_sdr.is_monotonic_increasing
    oracle = per_mixture[per_mixture["system"] == "oracle_irm"]
    assert (oracle["nsdr_music"] > 3.0).all()
    by_input = predictions.pivot_table(index=["input_snr_db", "mixture_id"], columns="input", values="predicted_label", aggfunc="first")
    assert (by_input["mixture"] == by_input["separated"]).all()
    assert (by_input["product"] == by_input["combined"]).all()

    summary = sweep_summary(predictions, grouped, test.set_index("mixture_id")["music_clip"], n_boot=50, seed=0, alpha=0.05)
    assert summary["snr_m5.separation.gnsdr"] == pytest.approx(0.0, abs=1e-6)
    assert summary["snr_10.separation.oracle_irm.gnsdr"] > 3.0
    gnsdr, f1 = sweep_curves(summary, snrs)
    assert list(gnsdr.columns) == ["snr_db", "separator", "oracle_irm", "spectral_gate"]
    assert list(f1["snr_db"]) == snrs and (f1["mixture"] == f1["separated"]).all()
    assert list(f1.columns) == ["snr_db", *SCORED] and (f1["product"] == f1["combined"]).all()


def test_snr_sweep_gives_the_same_numbers_from_two_worker_processes(tmp_path):
    from danet_music2vec.dsp import StftConfig
    from danet_music2vec.evidence import GenreReader, ProductRule
    from tests.data.test_mixing import plan

    mixtures = plan(tmp_path, noises=1, snr=0.0)
    test = mixtures[mixtures["split"] == "test"].head(3)
    cfg = StftConfig(sample_rate=8000, n_fft=256, hop=64, window="sqrt_hann", chunk_frames=100)
    gate = {"percentile": 10, "over_subtraction": 1.0, "floor_db": -12, "smooth_frames": 5, "freq_median_bins": 15}
    reader = GenreReader(_LoudnessClassifier(), _LoudnessClassifier(), ProductRule())
    runs = [snr_sweep(test, _IdentitySeparator(), reader, [5.0], cfg, gate, silence_db=-80, progress=False, workers=w)
            for w in (1, 2)]  # fmt: skip
    pd.testing.assert_frame_equal(runs[0][0], runs[1][0])
    pd.testing.assert_frame_equal(runs[0][1], runs[1][1])

    # Kept as they come (a killed stage's rerun takes them), and taken back to the same numbers.
    from danet_music2vec.evaluation import sweep_results

    for expected_reuse in (0, len(test)):
        finished = sweep_results(str(tmp_path / "finished"))
        kept = snr_sweep(test, _IdentitySeparator(), reader, [5.0], cfg, gate, silence_db=-80, progress=False,
                         finished=finished, models_key="identity")  # fmt: skip
        assert finished.reused == expected_reuse
        pd.testing.assert_frame_equal(kept[0], runs[0][0])
        pd.testing.assert_frame_equal(kept[1], runs[0][1])
    other = sweep_results(str(tmp_path / "finished"))
    snr_sweep(test, _IdentitySeparator(), reader, [5.0], cfg, gate, silence_db=-80, progress=False, finished=other,
              models_key="another separator")  # fmt: skip
    assert other.reused == 0


def test_snr_key_names_negative_snrs_without_a_minus_sign():
    assert [snr_key(s) for s in (-5.0, 0.0, 2.5, 10)] == ["snr_m5", "snr_0", "snr_2.5", "snr_10"]


def test_gnsdr_by_noise_weights_by_length_and_counts_both_noises():
    table = pd.DataFrame(
        [
            {"mixture_id": "a", "system": "separator", "noise": "1-1-A-0", "nsdr_music": 2.0, "length": 100, "silent": False},
            {"mixture_id": "b", "system": "separator", "noise": "1-1-A-0+2-2-A-1", "nsdr_music": 5.0, "length": 300, "silent": False},
            {"mixture_id": "c", "system": "separator", "noise": "2-2-A-1", "nsdr_music": float("nan"), "length": 50, "silent": True},
            {"mixture_id": "a", "system": "oracle_irm", "noise": "1-1-A-0", "nsdr_music": 9.0, "length": 100, "silent": False},
        ]
    )
    splits = pd.DataFrame({"clip_id": ["noise/1-1-A-0", "noise/2-2-A-1", "music/rock/a"], "kind": ["noise", "noise", "music"],
                           "label": ["dog", "rain", "rock"]})  # fmt: skip
    assert noise_labels(splits) == {"1-1-A-0": "dog", "2-2-A-1": "rain"}
    out = gnsdr_by_noise(table, noise_labels(splits)).set_index("category")
    assert out.loc["dog", "gnsdr"] == pytest.approx((2.0 * 100 + 5.0 * 300) / 400)
    assert out.loc["rain", "gnsdr"] == pytest.approx(5.0) and out.loc["rain", "n"] == 1


def test_full_band_scores_the_output_at_the_mixture_rate(tmp_path):
    from danet_music2vec.audio import resample
    from danet_music2vec.data.mixing import plan_mixtures, render_mixture
    from danet_music2vec.evaluation import FULL_BAND, score_full_band, separation_summary
    from tests.data.test_mixing import splits_table

    rate = 22050  # white noise up to 11 kHz
    mixtures = plan_mixtures(splits_table(tmp_path, rate), 1, 0.0, 0, {"train": 2, "test": 1}, sample_rate=rate)
    row = next(mixtures[mixtures["split"] == "test"].itertuples())
    rendered = render_mixture(row)
    identity = score_full_band(rendered, np.stack([rendered.mixture, 0.5 * rendered.mixture]), silence_db=-80)
    assert identity.nsdr_music == pytest.approx(0.0, abs=1e-6) and identity.length == rendered.mixture.shape[0]
    exact = score_full_band(rendered, np.stack([rendered.music, rendered.noise]), silence_db=-80)
    assert exact.nsdr_music > 30.0
    # The true sources band-limited to 4 kHz (what an 8 kHz separator can give): the full band sees the loss.
    narrow = np.stack([resample(resample(x, rate, 8000), 8000, rate) for x in (rendered.music, rendered.noise)])
    limited = score_full_band(rendered, narrow, silence_db=-80)
    assert limited.nsdr_noise < exact.nsdr_noise - 10.0
    summary = separation_summary({FULL_BAND: [identity, exact]})
    assert set(summary) >= {"separation.full_band.gnsdr", "separation.full_band.gsir"}
