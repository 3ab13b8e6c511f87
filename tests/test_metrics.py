"""Tests for danet_music2vec.metrics: BSS Eval wrappers, global scores, classification metrics."""

from __future__ import annotations

import math
import warnings

import mir_eval.separation
import numpy as np
import pytest

from danet_music2vec.metrics import (
    SeparationResult,
    bootstrap_ci,
    bss_eval,
    classification_scores,
    confusion,
    global_scores,
    paired_difference,
    per_class_report,
    separation_scores,
)

SR = 8000


def _sources(seconds: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """A fixed synthetic two-source signal: amplitude-modulated two-tone 'music' + white noise."""
    t = np.arange(int(SR * seconds)) / SR
    music = (0.5 * np.sin(2 * np.pi * 440 * t) + 0.25 * np.sin(2 * np.pi * 660 * t)) * (
        0.5 + 0.5 * np.sin(2 * np.pi * 2 * t) ** 2
    )
    noise = 0.3 * np.random.RandomState(0).randn(t.size)
    return music, noise


# ----------------------------------------------------------------------------- bss_eval


def test_bss_eval_regression_values() -> None:
    """Stored reference numbers (computed once with mir_eval 0.8.2), as mir_eval's own tests do."""
    music, noise = _sources()
    ref = np.stack([music, noise])
    est = np.stack([music + 0.1 * noise, noise + 0.2 * music]) + 0.01 * np.random.RandomState(1).randn(2, SR)
    out = bss_eval(ref, est)
    assert out["silent"] is False and out["silent_sources"] == []
    np.testing.assert_allclose(out["sdr"], [19.92503037, 13.82973912], atol=1e-3)
    np.testing.assert_allclose(out["sir"], [20.35893072, 13.93736802], atol=1e-3)
    np.testing.assert_allclose(out["sar"], [30.18391901, 30.1139543], atol=1e-3)


def test_bss_eval_order_is_not_permuted() -> None:
    """Swapped estimates must score badly: the order (0 music, 1 noise) is known, not searched."""
    music, noise = _sources()
    ref = np.stack([music, noise])
    swapped = bss_eval(ref, ref[::-1].copy())
    assert np.all(swapped["sdr"] < 0)


def test_perfect_estimate_gives_very_high_sdr() -> None:
    music, noise = _sources()
    ref = np.stack([music, noise])
    out = bss_eval(ref, ref.copy())
    assert np.all(out["sdr"] > 100)


def test_bss_eval_accepts_float32_and_emits_no_deprecation_noise() -> None:
    music, noise = _sources()
    ref = np.stack([music, noise]).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = bss_eval(ref, ref + np.float32(0.01))
    assert np.all(np.isfinite(out["sdr"]))


@pytest.mark.parametrize(
    ("ref_shape", "est_shape", "match"),
    [((2, 100), (2, 99), "shape"), ((100,), (100,), "n_sources, samples"), ((2, 0), (2, 0), "empty")],
)
def test_bss_eval_rejects_bad_shapes(ref_shape, est_shape, match) -> None:
    with pytest.raises(ValueError, match=match):
        bss_eval(np.ones(ref_shape), np.ones(est_shape))


def test_bss_eval_rejects_non_finite() -> None:
    music, noise = _sources()
    est = np.stack([music, noise])
    est[0, 10] = np.nan
    with pytest.raises(ValueError, match="NaN or inf"):
        bss_eval(np.stack([music, noise]), est)


def test_silent_reference_is_flagged_not_raised() -> None:
    music, noise = _sources()
    ref = np.stack([np.zeros_like(music), noise])
    est = np.stack([music, noise])
    # mir_eval itself refuses this input: the guard is what keeps a stage running.
    with pytest.raises(ValueError):
        mir_eval.separation.bss_eval_sources(ref, est, compute_permutation=False)
    out = bss_eval(ref, est)
    assert out["silent"] is True
    assert out["silent_sources"] == ["reference:music"]
    assert np.all(np.isnan(out["sdr"])) and np.all(np.isnan(out["sir"])) and np.all(np.isnan(out["sar"]))


def test_near_silent_estimate_is_flagged() -> None:
    """Below the -80 dBFS default a source counts as silent even when not exactly zero."""
    music, noise = _sources()
    ref = np.stack([music, noise])
    est = np.stack([music, 1e-6 * noise])
    assert bss_eval(ref, est)["silent_sources"] == ["estimate:noise"]
    assert bss_eval(ref, est, silence_db=-200.0)["silent"] is False


# ------------------------------------------------------------- bss_eval: fast_bss_eval backend


def test_fast_bss_eval_backend_agrees_with_mir_eval() -> None:
    """score.bss_eval: fast_bss_eval gives mir_eval's SDR/SIR/SAR of both sources within 0.01 dB (it is ~1e-10)."""
    music, noise = _sources()
    ref = np.stack([music, noise])
    # Leakage both ways, a short echo (what the 512-tap filters absorb) and white artefacts.
    echo = np.concatenate([np.zeros(40), music[:-40]])
    est = np.stack([music + 0.3 * echo + 0.1 * noise, noise + 0.2 * music]) + 0.01 * np.random.RandomState(1).randn(2, SR)
    slow, fast = bss_eval(ref, est), bss_eval(ref, est, backend="fast_bss_eval")
    assert fast["silent"] is False and fast["silent_sources"] == []
    for key in ("sdr", "sir", "sar"):
        assert fast[key].shape == (2,) and fast[key].dtype == np.float64
        np.testing.assert_allclose(fast[key], slow[key], rtol=0, atol=0.01)
    # Through separation_scores too (the mixture baseline included), on float32 input as the stages pass it.
    mixture = (music + noise).astype(np.float32)
    a = separation_scores(ref.astype(np.float32), est.astype(np.float32), mixture)
    b = separation_scores(ref.astype(np.float32), est.astype(np.float32), mixture, backend="fast_bss_eval")
    np.testing.assert_allclose(list(b.to_dict().values())[:10], list(a.to_dict().values())[:10], rtol=0, atol=0.01)


def test_fast_bss_eval_backend_keeps_the_order_and_the_silence_guard() -> None:
    music, noise = _sources()
    ref = np.stack([music, noise])
    assert np.all(bss_eval(ref, ref[::-1], backend="fast_bss_eval")["sdr"] < 0)  # a reversed view: not permuted back
    out = bss_eval(np.stack([np.zeros_like(music), noise]), ref, backend="fast_bss_eval")
    assert out["silent"] is True and out["silent_sources"] == ["reference:music"] and np.all(np.isnan(out["sdr"]))


def test_fast_bss_eval_backend_falls_back_to_mir_eval_on_a_singular_system() -> None:
    """Two references that are copies of each other: torch's solver refuses, mir_eval's least squares answers."""
    music, noise = _sources()
    ref = np.stack([music, 0.5 * music])
    est = ref + 0.1 * noise
    out = bss_eval(ref, est, backend="fast_bss_eval")
    np.testing.assert_allclose(out["sdr"], bss_eval(ref, est)["sdr"], rtol=0, atol=1e-9)


def test_unknown_bss_eval_backend_is_named() -> None:
    music, noise = _sources()
    with pytest.raises(ValueError, match=r"backend 'museval' is unknown.*score.bss_eval"):
        bss_eval(np.stack([music, noise]), np.stack([music, noise]), backend="museval")


# -------------------------------------------------------------------- separation_scores


def test_mixture_as_estimate_has_zero_nsdr() -> None:
    music, noise = _sources()
    mix = music + noise
    res = separation_scores(np.stack([music, noise]), np.stack([mix, mix]), mix)
    assert res.nsdr_music == pytest.approx(0.0, abs=1e-9)
    assert res.nsdr_noise == pytest.approx(0.0, abs=1e-9)
    assert res.sdr_mixture_music == pytest.approx(res.sdr_music)
    assert res.length == SR and not res.silent


def test_separation_scores_nsdr_is_gain_over_mixture() -> None:
    music, noise = _sources()
    mix = music + noise
    est = np.stack([music + 0.1 * noise, noise + 0.1 * music])
    res = separation_scores(np.stack([music, noise]), est, mix)
    assert res.nsdr_music == pytest.approx(res.sdr_music - res.sdr_mixture_music)
    assert res.nsdr_music > 10
    row = res.to_dict()
    assert row["length"] == SR and row["silent_sources"] == ""


def test_separation_scores_silent_mixture_counted() -> None:
    music, noise = _sources()
    res = separation_scores(np.stack([music, np.zeros_like(noise)]), np.stack([music, noise]), music)
    assert res.silent and res.silent_sources == ("reference:noise",)
    assert math.isnan(res.nsdr_music) and res.length == SR


def test_separation_scores_rejects_mismatched_mixture() -> None:
    music, noise = _sources()
    with pytest.raises(ValueError, match="mixture"):
        separation_scores(np.stack([music, noise]), np.stack([music, noise]), music[:-1])


# ----------------------------------------------------------------------- global_scores


def _result(nsdr: float, sdr: float, length: int, silent: bool = False) -> SeparationResult:
    if silent:
        nan = math.nan
        return SeparationResult(nan, nan, nan, nan, nan, nan, nan, nan, nan, nan, length=length,
                                silent=True, silent_sources=("reference:music",))
    return SeparationResult(
        sdr_music=sdr, sir_music=sdr + 1, sar_music=sdr + 2, sdr_noise=-sdr, sir_noise=0.0, sar_noise=0.0,
        sdr_mixture_music=sdr - nsdr, sdr_mixture_noise=0.0, nsdr_music=nsdr, nsdr_noise=0.0, length=length,
    )


def test_global_scores_are_length_weighted() -> None:
    results = [_result(2.0, 4.0, 1000), _result(6.0, 8.0, 3000), _result(0.0, 0.0, 5000, silent=True)]
    g = global_scores(results)
    # Hand computation: (2*1000 + 6*3000) / 4000 = 5.0 (the unweighted mean would be 4.0);
    # the silent mixture is excluded from the weights, not counted as 0 dB.
    assert g["gnsdr"] == pytest.approx(5.0)
    assert g["gsdr"] == pytest.approx((4 * 1000 + 8 * 3000) / 4000)
    assert g["gsir"] == pytest.approx(g["gsdr"] + 1)
    assert g["gsar"] == pytest.approx(g["gsdr"] + 2)
    assert g["mixture_gsdr"] == pytest.approx(2.0)
    assert (g["n_mixtures"], g["n_scored"], g["n_silent"], g["n_silent_estimate"]) == (3, 2, 1, 0)


def test_global_scores_all_silent_gives_nan_and_counts() -> None:
    music, noise = _sources()
    gated = separation_scores(np.stack([music, noise]), np.stack([np.zeros_like(music), noise]), music + noise)
    g = global_scores([_result(0, 0, 10, silent=True), gated])
    assert math.isnan(g["gnsdr"]) and g["n_silent"] == 2 and g["n_scored"] == 0
    assert g["n_silent_estimate"] == 1


# ---------------------------------------------------------------------- classification

# Hand-checkable case with weighted precision 0.58 (DESIGN.md 6 quotes P = 0.58 for the
# original's example). Confusion matrix (rows true, cols predicted) over a, b, c:
#   a: [1, 0, 1]   support 2
#   b: [0, 2, 0]   support 2
#   c: [1, 3, 2]   support 6
# predicted counts a 2, b 5, c 3 -> precision a 1/2, b 2/5, c 2/3;
# weighted P = 0.2*0.5 + 0.2*0.4 + 0.6*(2/3) = 0.1 + 0.08 + 0.4 = 0.58.
# recall a 1/2, b 1, c 1/3 -> weighted R = accuracy = 5/10 = 0.5;
# F1 a 0.5, b 4/7, c 4/9 -> weighted F1 = 0.1 + 0.8/7 + 0.6*4/9 = 0.480952...
LABELS = ["a", "b", "c"]
Y_TRUE = ["a", "a", "b", "b", "c", "c", "c", "c", "c", "c"]
Y_PRED = ["a", "c", "b", "b", "a", "b", "b", "b", "c", "c"]


def test_weighted_precision_worked_example() -> None:
    s = classification_scores(Y_TRUE, Y_PRED, LABELS)
    assert s["precision"] == pytest.approx(0.58)
    assert s["accuracy"] == pytest.approx(0.5)
    assert s["recall"] == pytest.approx(0.5)
    assert s["f1"] == pytest.approx(0.1 + 0.8 / 7 + 0.6 * 4 / 9)
    assert s["n"] == 10


def test_confusion_matches_hand_matrix() -> None:
    np.testing.assert_array_equal(confusion(Y_TRUE, Y_PRED, LABELS), [[1, 0, 1], [0, 2, 0], [1, 3, 2]])


def test_never_predicted_class_counts_as_zero_precision_without_warning() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = classification_scores(["a", "b", "b", "b"], ["b", "b", "b", "b"], ["a", "b"])
    # a: P 0 (never predicted, zero_division=0), support 1; b: P 3/4, support 3.
    assert s["precision"] == pytest.approx(0.75 * 0.75)


def test_per_class_report_has_classes_and_weighted_avg() -> None:
    report = per_class_report(Y_TRUE, Y_PRED, LABELS)
    assert report["b"]["precision"] == pytest.approx(0.4)
    assert report["c"]["support"] == 6
    assert report["weighted avg"]["precision"] == pytest.approx(0.58)


def test_classification_rejects_bad_inputs() -> None:
    with pytest.raises(ValueError, match="pair up"):
        classification_scores(["a"], ["a", "b"], LABELS)
    with pytest.raises(ValueError, match="not in labels"):
        classification_scores(["a", "z"], ["a", "a"], LABELS)
    with pytest.raises(ValueError, match="empty"):
        classification_scores([], [], LABELS)


def test_bootstrap_contains_point_estimate_and_narrows_with_more_data() -> None:
    rng = np.random.RandomState(3)
    y_true = rng.randint(0, 3, size=40)
    y_pred = np.where(rng.rand(40) < 0.7, y_true, rng.randint(0, 3, size=40))
    acc = classification_scores(y_true, y_pred)["accuracy"]
    lo, hi = bootstrap_ci(y_true, y_pred, "accuracy", n=300)
    assert lo <= acc <= hi and lo < hi
    # Four times the clips with the same accuracy: the interval shrinks (about by half).
    lo4, hi4 = bootstrap_ci(np.tile(y_true, 4), np.tile(y_pred, 4), "accuracy", n=300)
    assert lo4 <= acc <= hi4
    assert (hi4 - lo4) < 0.7 * (hi - lo)


def test_bootstrap_is_seeded_and_takes_callables() -> None:
    def error_rate(t: np.ndarray, p: np.ndarray) -> float:
        return float(np.mean(t != p))

    rng = np.random.RandomState(0)
    y_true = rng.randint(0, 4, size=37)
    y_pred = np.where(rng.rand(37) < 0.6, y_true, rng.randint(0, 4, size=37))
    a = bootstrap_ci(y_true, y_pred, error_rate, n=200, seed=5, alpha=0.1)
    b = bootstrap_ci(y_true, y_pred, error_rate, n=200, seed=5, alpha=0.1)
    c = bootstrap_ci(y_true, y_pred, error_rate, n=200, seed=6, alpha=0.1)
    assert a == b and a != c
    lo, hi = bootstrap_ci(Y_TRUE, Y_PRED, "precision", n=200, labels=LABELS)
    assert lo <= 0.58 <= hi
    with pytest.raises(ValueError, match="unknown metric"):
        bootstrap_ci(Y_TRUE, Y_PRED, "auc")


def test_bootstrap_by_clip_is_the_item_bootstrap_with_one_clip_per_item() -> None:
    rng = np.random.RandomState(4)
    y_true = rng.randint(0, 3, size=30)
    y_pred = np.where(rng.rand(30) < 0.7, y_true, rng.randint(0, 3, size=30))
    for metric in ("accuracy", "f1"):
        item = bootstrap_ci(y_true, y_pred, metric, n=300, seed=2)
        assert bootstrap_ci(y_true, y_pred, metric, n=300, seed=2, groups=[f"m{i:02d}" for i in range(30)]) == item


def test_bootstrap_by_clip_widens_the_interval_when_a_clips_predictions_move_together() -> None:
    rng = np.random.RandomState(5)
    y_true = rng.randint(0, 3, size=12)  # 12 clips
    y_pred = np.where(rng.rand(12) < 0.7, y_true, rng.randint(0, 3, size=12))
    # Five mixtures per clip with the same prediction (e.g. the clean music, classified once per clip).
    clips = np.repeat(np.arange(12), 5)
    t, p = y_true[clips], y_pred[clips]
    for metric in ("accuracy", "f1"):
        lo, hi = bootstrap_ci(t, p, metric, n=500, seed=1)
        lo_c, hi_c = bootstrap_ci(t, p, metric, n=500, seed=1, groups=clips)
        assert lo_c <= classification_scores(t, p)[metric] <= hi_c
        assert hi_c - lo_c > 1.5 * (hi - lo)  # 12 independent clips, not 60 predictions
        # Five copies of each clip carry one clip's information: the interval of the clips themselves.
        assert (lo_c, hi_c) == pytest.approx(bootstrap_ci(y_true, y_pred, metric, n=500, seed=1))
    with pytest.raises(ValueError, match="one group per item"):
        bootstrap_ci(t, p, "accuracy", groups=clips[:-1])


def test_paired_difference_sees_a_small_consistent_gain_that_unpaired_scores_hide() -> None:
    rng = np.random.default_rng(0)
    base = rng.normal(3.0, 3.0, size=40)  # mixtures differ a lot in difficulty
    better = base + 0.3 + rng.normal(0.0, 0.1, size=40)  # a small gain on every mixture
    diff, lo, hi = paired_difference(better, base, n=2000, seed=1)
    assert diff == pytest.approx(np.mean(better - base)) and 0.0 < lo < diff < hi
    same, lo0, hi0 = paired_difference(base, base)
    assert same == lo0 == hi0 == 0.0
    weighted, _, _ = paired_difference([1.0, 3.0], [0.0, 0.0], weights=[3.0, 1.0])
    assert weighted == pytest.approx((3 * 1 + 1 * 3) / 4)


def test_paired_difference_by_group_widens_the_interval_when_items_of_a_group_move_together() -> None:
    rng = np.random.default_rng(0)
    clips = np.repeat(np.arange(9), 5)  # 9 clips, 5 mixtures cut from each
    # The gain depends on the clip (some clips suit the variant, some do not), hardly on the mixture.
    gain = (rng.normal(0.4, 0.6, size=9))[clips] + rng.normal(0.0, 0.05, size=45)
    base = rng.normal(3.0, 3.0, size=45)
    diff, lo, hi = paired_difference(base + gain, base, n=4000, seed=1)
    diff_g, lo_g, hi_g = paired_difference(base + gain, base, n=4000, seed=1, groups=clips)
    assert diff_g == diff  # the point estimate does not depend on how the interval resamples
    assert hi_g - lo_g > 1.8 * (hi - lo)  # 9 independent units, not 45
    # One group per item is the item bootstrap: the same resamples, the same interval.
    assert paired_difference(base + gain, base, n=500, seed=3, groups=[f"m{i:02d}" for i in range(45)]) == pytest.approx(
        paired_difference(base + gain, base, n=500, seed=3)
    )


def test_paired_difference_validates_inputs() -> None:
    with pytest.raises(ValueError, match="equal"):
        paired_difference([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="finite"):
        paired_difference([1.0, float("nan")], [1.0, 2.0])
    with pytest.raises(ValueError, match="alpha"):
        paired_difference([1.0], [1.0], alpha=1.5)
    with pytest.raises(ValueError, match="one group per item"):
        paired_difference([1.0, 2.0], [1.0, 2.0], groups=["a"])


def test_named_bootstrap_metrics_are_sklearns_on_every_resample():
    # The resamples' scores come from confusion counts; each must equal classification_scores (sklearn) on the
    # resample itself: missing classes, a class only predicted, a prediction outside the labels, clusters.
    from danet_music2vec.metrics import _cluster_resamples, _resampled_scores

    rng = np.random.default_rng(4)
    labels = ["blues", "jazz", "rock", "pop"]
    t = rng.choice(labels[:3], size=40)
    p = np.where(rng.random(40) < 0.6, t, rng.choice(labels + ["metal"], size=40))
    clips = [f"c{i // 4}" for i in range(40)]
    for groups, known in ((None, None), (clips, labels)):
        codes, draws = _cluster_resamples(groups, len(t), 50, seed=3)
        fast = _resampled_scores(t, p, codes, draws, known)
        members = np.split(np.argsort(codes, kind="stable"), np.cumsum(np.bincount(codes))[:-1])
        for r, draw in enumerate(draws):
            i = np.concatenate([members[g] for g in draw])
            slow = classification_scores(t[i], p[i], known)
            for metric in ("accuracy", "precision", "recall", "f1"):
                assert fast[metric][r] == pytest.approx(slow[metric], abs=1e-12), (metric, r)
