"""Separation (BSS Eval) and classification metrics: pure functions on arrays.

Separation follows the MIREX singing-voice convention used by the original work:
per mixture, ``mir_eval.separation.bss_eval_sources`` gives SDR/SIR/SAR for the music
and the noise estimate; NSDR is the SDR gained over the unprocessed mixture; the
global figures (GNSDR, GSDR, GSIR, GSAR) are means weighted by each mixture's length.

BSS Eval runs on one of two backends (``score.bss_eval``): ``mir_eval`` (the default, the reference
implementation) or ``fast_bss_eval`` (the same v3 criteria in closed form, 512-tap filters, float64, on
CPU torch tensors); on the project's 45 test mixtures the two agree within 2e-10 dB on every figure the
score stage reports (bench/bench_bss_eval.py, docs/BENCHMARKS.md).

Source order is fixed everywhere in this project: index 0 = music, index 1 = noise.
No file I/O here (figures are in :mod:`danet_music2vec.plots`).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, get_args

import mir_eval.separation
import numpy as np
from sklearn.metrics import (
    accuracy_score,
    classification_report,
    confusion_matrix,
    precision_recall_fscore_support,
)


SOURCE_NAMES: tuple[str, ...] = ("music", "noise")

# A source whose mean power is below this (dB relative to full scale, i.e. a float
# signal in [-1, 1]) counts as silent. mir_eval itself only refuses exact all-zero
# signals, but near-silent ones (a gated estimate, a crop of digital silence) give
# meaningless, numerically unstable projections, so they are flagged the same way.
DEFAULT_SILENCE_DB = -80.0

# score.bss_eval: which library computes BSS Eval v3 (the same criteria, the same 512-tap filters).
BssEvalBackend = Literal["mir_eval", "fast_bss_eval"]
BSS_EVAL_BACKENDS: tuple[str, ...] = get_args(BssEvalBackend)
FILTER_LENGTH = 512  # mir_eval's bss_eval_sources: fixed 512-tap distortion filters; fast_bss_eval is given the same


# --------------------------------------------------------------------------- separation


def _validate_sources(reference: np.ndarray, estimate: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ref = np.asarray(reference)
    est = np.asarray(estimate)
    if ref.ndim != 2 or est.ndim != 2:
        raise ValueError(
            f"bss_eval expects (n_sources, samples) arrays with one 1-D signal per source; got reference "
            f"shape {ref.shape} and estimate shape {est.shape}. Stack the sources with np.stack([music, noise])."
        )
    if ref.shape != est.shape:
        raise ValueError(
            f"reference shape {ref.shape} != estimate shape {est.shape}: the estimate must have the same "
            "sources in the same order (0 music, 1 noise) and be trimmed/padded to the reference length."
        )
    if ref.shape[0] < 1 or ref.shape[1] < 1:
        raise ValueError(f"bss_eval got an empty signal (shape {ref.shape}); need >= 1 source and >= 1 sample.")
    for name, arr in (("reference", ref), ("estimate", est)):
        if not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
            raise ValueError(f"{name} must be a real-valued numeric array, got dtype {arr.dtype}.")
        if not np.all(np.isfinite(arr)):
            raise ValueError(
                f"{name} contains NaN or inf samples; check the separator output (e.g. a division by a zero "
                "mask sum) before scoring."
            )
    # mir_eval works in float64; converting once here avoids float32 round-off in its projections.
    return ref.astype(np.float64, copy=False), est.astype(np.float64, copy=False)


def _silent_sources(ref: np.ndarray, est: np.ndarray, silence_db: float) -> list[str]:
    threshold = 10.0 ** (silence_db / 10.0)
    names = [SOURCE_NAMES[i] if i < len(SOURCE_NAMES) else f"source{i}" for i in range(ref.shape[0])]
    silent = []
    for kind, arr in (("reference", ref), ("estimate", est)):
        power = np.mean(arr**2, axis=1)
        silent += [f"{kind}:{names[i]}" for i in np.flatnonzero(power <= threshold)]
    return silent


def bss_eval(
    reference: np.ndarray,
    estimate: np.ndarray,
    silence_db: float = DEFAULT_SILENCE_DB,
    backend: BssEvalBackend = "mir_eval",
) -> dict[str, Any]:
    """BSS Eval v3 (``mir_eval.separation.bss_eval_sources``, or fast_bss_eval's) with a known source order.

    Args:
        reference: ``(n_sources, samples)`` true sources (0 music, 1 noise).
        estimate: same shape, the estimates in the same order (no permutation search).
        silence_db: a source with mean power at or below this (dBFS) counts as silent.
        backend: ``mir_eval`` or ``fast_bss_eval`` (``score.bss_eval``): the same figures, the
            second in about 60% of the CPU time (docs/BENCHMARKS.md).

    Returns:
        ``{"sdr", "sir", "sar"}``: float64 arrays ``(n_sources,)`` in dB; ``"silent"``: bool;
        ``"silent_sources"``: e.g. ``["reference:noise"]``. When any reference or estimate is
        silent, mir_eval is not called (it would raise) and the metrics are NaN, so the caller
        can count and skip the item instead of crashing.

    Raises:
        ValueError: shapes differ, are not 2-D, are empty, contain NaN/inf, or ``backend`` is unknown.
    """
    if backend not in BSS_EVAL_BACKENDS:
        raise ValueError(f"bss_eval backend {backend!r} is unknown; use one of {BSS_EVAL_BACKENDS} (score.bss_eval).")
    ref, est = _validate_sources(reference, estimate)
    silent = _silent_sources(ref, est, silence_db)
    if silent:
        nan = np.full(ref.shape[0], np.nan)
        return {"sdr": nan, "sir": nan.copy(), "sar": nan.copy(), "silent": True, "silent_sources": silent}
    sdr, sir, sar = _fast_bss_eval(ref, est) if backend == "fast_bss_eval" else _mir_eval(ref, est)
    return {"sdr": sdr, "sir": sir, "sar": sar, "silent": False, "silent_sources": []}


def _mir_eval(ref: np.ndarray, est: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    with warnings.catch_warnings():
        # mir_eval 0.8 marks its separation module deprecated (removal planned for 0.9);
        # requirements pin 0.8.2, so the warning would only repeat once per mixture.
        warnings.simplefilter("ignore", FutureWarning)
        sdr, sir, sar, _ = mir_eval.separation.bss_eval_sources(ref, est, compute_permutation=False)
    return sdr, sir, sar


def _fast_bss_eval(ref: np.ndarray, est: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """fast_bss_eval's ``bss_eval_sources`` on float64 CPU torch tensors (the threads torch has: one in a scoring process).

    Its numpy backend is not used: fast_bss_eval 0.1.4 passes ``np.linalg.solve`` a stack of vectors, which
    numpy >= 2 reads as one matrix and refuses ("solve: Input operand 1 has a mismatch in its core dimension").
    A singular system (e.g. two references that are filtered copies of each other) falls back to mir_eval,
    which then solves it by least squares as it always does.
    """
    import fast_bss_eval  # imported here: only this backend needs it
    import torch

    try:
        out = fast_bss_eval.bss_eval_sources(
            torch.from_numpy(np.ascontiguousarray(ref)), torch.from_numpy(np.ascontiguousarray(est)),
            filter_length=FILTER_LENGTH, compute_permutation=False,
        )  # fmt: skip
    except torch.linalg.LinAlgError:
        return _mir_eval(ref, est)
    sdr, sir, sar = (x.numpy() for x in out)
    return sdr, sir, sar


@dataclass(frozen=True)
class SeparationResult:
    """BSS Eval figures of one mixture (dB); NaN everywhere when ``silent``.

    ``nsdr_*`` = SDR of the estimate minus SDR of the unprocessed mixture taken as the
    estimate of the same source; ``sdr_mixture_*`` is that mixture baseline.
    """

    sdr_music: float
    sir_music: float
    sar_music: float
    sdr_noise: float
    sir_noise: float
    sar_noise: float
    sdr_mixture_music: float
    sdr_mixture_noise: float
    nsdr_music: float
    nsdr_noise: float
    length: int
    silent: bool = False
    silent_sources: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        """Flat dict, e.g. for one row of a per-mixture Parquet/CSV table."""
        row = asdict(self)
        row["silent_sources"] = ",".join(self.silent_sources)
        return row

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> "SeparationResult":
        """The inverse of :meth:`to_dict`."""
        silent = row["silent_sources"]
        return cls(**{**row, "silent_sources": tuple(silent.split(",")) if silent else ()})


def separation_scores(
    reference: np.ndarray,
    estimate: np.ndarray,
    mixture: np.ndarray,
    silence_db: float = DEFAULT_SILENCE_DB,
    mixture_sdr: np.ndarray | None = None,
    backend: BssEvalBackend = "mir_eval",
) -> SeparationResult:
    """Score one separated mixture.

    Args:
        reference: ``(2, samples)`` true music and noise.
        estimate: ``(2, samples)`` estimated music and noise.
        mixture: ``(samples,)`` the unprocessed mixture (the NSDR baseline).
        silence_db: see :func:`bss_eval`.
        mixture_sdr: :func:`mixture_baseline` of this reference and mixture, when several
            estimates of one mixture are scored (BSS Eval is the slow part).
        backend: see :func:`bss_eval`.
    """
    ref = np.asarray(reference)
    mix = np.asarray(mixture)
    if ref.ndim != 2 or ref.shape[0] != 2:
        raise ValueError(f"reference must be (2, samples) = (music, noise); got shape {ref.shape}.")
    if mix.ndim != 1 or mix.shape[0] != ref.shape[1]:
        raise ValueError(
            f"mixture must be 1-D with {ref.shape[1]} samples like the reference; got shape {mix.shape}."
        )
    sep = bss_eval(ref, estimate, silence_db, backend=backend)
    if sep["silent"]:
        nan = math.nan
        return SeparationResult(nan, nan, nan, nan, nan, nan, nan, nan, nan, nan,
                                length=int(ref.shape[1]), silent=True,
                                silent_sources=tuple(sep["silent_sources"]))
    # The mixture as the estimate of both sources: its SDR against each reference is the
    # "do nothing" baseline that NSDR subtracts.
    sdr_mix = mixture_baseline(ref, mix, silence_db, backend) if mixture_sdr is None else np.asarray(mixture_sdr)
    sdr, sir, sar = sep["sdr"], sep["sir"], sep["sar"]
    return SeparationResult(
        sdr_music=float(sdr[0]), sir_music=float(sir[0]), sar_music=float(sar[0]),
        sdr_noise=float(sdr[1]), sir_noise=float(sir[1]), sar_noise=float(sar[1]),
        sdr_mixture_music=float(sdr_mix[0]), sdr_mixture_noise=float(sdr_mix[1]),
        nsdr_music=float(sdr[0] - sdr_mix[0]), nsdr_noise=float(sdr[1] - sdr_mix[1]),
        length=int(ref.shape[1]),
    )


def mixture_baseline(
    reference: np.ndarray, mixture: np.ndarray, silence_db: float = DEFAULT_SILENCE_DB, backend: BssEvalBackend = "mir_eval"
) -> np.ndarray:
    """SDR ``(2,)`` of the unprocessed mixture taken as the estimate of each source: what NSDR subtracts.

    Only the SDR is kept: the mixture is exactly music + noise, so its SAR is +inf up to round-off
    (some 140 dB, a different number from each backend).
    """
    mix = np.asarray(mixture)
    return bss_eval(reference, np.stack([mix, mix]), silence_db, backend=backend)["sdr"]


def global_scores(results: Sequence[SeparationResult]) -> dict[str, float]:
    """Length-weighted means over the non-silent results (MIREX singing-voice convention).

    GNSDR = sum_i(len_i * NSDR_i) / sum_i(len_i); likewise GSDR, GSIR, GSAR for the music
    (the headline figures) and ``noise_*`` for the noise estimate.

    Returns keys ``gnsdr, gsdr, gsir, gsar, noise_gnsdr, noise_gsdr, noise_gsir, noise_gsar,
    mixture_gsdr`` (music SDR of the unprocessed mixture), ``n_mixtures`` (all results),
    ``n_scored``, ``n_silent`` and ``n_silent_estimate`` (of those, silenced by the separator). When every result is silent the means are NaN.
    """
    scored = [r for r in results if not r.silent]
    out: dict[str, float] = {
        "n_mixtures": len(results),
        "n_scored": len(scored),
        "n_silent": len(results) - len(scored),
        # Silent *estimates* are the separator's fault (it removed everything), not the data's:
        # counted apart so that skipping them can never flatter a model unnoticed.
        "n_silent_estimate": sum(any(s.startswith("estimate:") for s in r.silent_sources) for r in results),
    }
    columns = {
        "gnsdr": "nsdr_music", "gsdr": "sdr_music", "gsir": "sir_music", "gsar": "sar_music",
        "noise_gnsdr": "nsdr_noise", "noise_gsdr": "sdr_noise", "noise_gsir": "sir_noise",
        "noise_gsar": "sar_noise", "mixture_gsdr": "sdr_mixture_music",
    }
    weights = np.array([r.length for r in scored], dtype=np.float64)
    for key, attr in columns.items():
        if not scored:
            out[key] = math.nan
            continue
        values = np.array([getattr(r, attr) for r in scored], dtype=np.float64)
        out[key] = float(np.sum(weights * values) / np.sum(weights))
    return out


def _cluster_resamples(groups: Sequence[Any] | None, size: int, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(codes, draws)``: the resamples of a cluster bootstrap over ``size`` items.

    ``codes[i]`` numbers the group of item ``i`` (``0 .. n_groups - 1``, groups in sorted
    order); each of the ``n`` rows of ``draws`` (``n x n_groups``) draws ``n_groups`` groups
    with replacement (``np.random.RandomState(seed)``), and a resample holds every item of
    each group drawn. Without ``groups`` every item is its own group: the item bootstrap.
    Items of one group (the mixtures cut from one test clip) are not independent, and
    resampling them one by one would give too narrow an interval.
    """
    if groups is not None and len(groups) != size:
        raise ValueError(
            f"the bootstrap needs one group per item (e.g. the music clip of each mixture); "
            f"got {len(groups)} groups for {size} items"
        )
    codes = np.arange(size) if groups is None else np.unique(np.asarray(list(groups)), return_inverse=True)[1].ravel()
    n_groups = int(codes.max()) + 1
    return codes, np.random.RandomState(seed).randint(0, n_groups, size=(n, n_groups))


def paired_difference(
    a: Sequence[float],
    b: Sequence[float],
    weights: Sequence[float] | None = None,
    n: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
    groups: Sequence[Any] | None = None,
) -> tuple[float, float, float]:
    """``(difference, low, high)``: the weighted mean of ``a - b`` over paired items and its bootstrap interval.

    ``a[i]`` and ``b[i]`` are two systems' scores on the same item (e.g. NSDR of one test
    mixture), ``weights`` the items' lengths (GNSDR weighting). Items are resampled with
    replacement ``n`` times; the interval is the ``alpha/2`` .. ``1 - alpha/2`` percentiles.
    Pairing removes what the items share (an easy mixture is easy for both systems), so a
    real difference shows with far fewer items than two unpaired intervals would need.

    ``groups`` (one label per item, e.g. the music clip of each mixture) resamples whole
    groups instead of items (a cluster bootstrap): mixtures cut from the same clip are not
    independent, and resampling them one by one would give too narrow an interval.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    w = np.ones_like(a) if weights is None else np.asarray(weights, dtype=np.float64)
    if a.shape != b.shape or a.shape != w.shape or a.ndim != 1 or a.size == 0:
        raise ValueError(f"paired_difference needs equal, non-empty 1-D arrays; got {a.shape}, {b.shape}, {w.shape}")
    if not np.all(np.isfinite(a)) or not np.all(np.isfinite(b)) or np.any(w <= 0):
        raise ValueError("paired_difference needs finite scores and positive weights")
    if n < 1 or not 0.0 < alpha < 1.0:
        raise ValueError(f"bootstrap n must be >= 1 and alpha in (0, 1); got n={n}, alpha={alpha}")
    diff = a - b
    codes, draws = _cluster_resamples(groups, diff.size, n, seed)
    # Per group: the sum of weighted differences and of weights; a resample adds up its groups' sums.
    weighted_sum = np.bincount(codes, weights=diff * w)
    weight_sum = np.bincount(codes, weights=w)
    stats = weighted_sum[draws].sum(1) / weight_sum[draws].sum(1)
    lo, hi = np.percentile(stats, [100.0 * alpha / 2.0, 100.0 * (1.0 - alpha / 2.0)])
    return float(np.sum(diff * w) / np.sum(w)), float(lo), float(hi)


# ----------------------------------------------------------------------- classification


def _validate_labels(y_true: Sequence[Any], y_pred: Sequence[Any], labels: Sequence[Any] | None) -> None:
    if len(y_true) != len(y_pred):
        raise ValueError(f"y_true has {len(y_true)} items but y_pred has {len(y_pred)}; they must pair up.")
    if len(y_true) == 0:
        raise ValueError("no predictions to score (empty y_true); check that the test split is not empty.")
    if labels is not None:
        unknown = sorted({y for y in y_true} - set(labels), key=str)
        if unknown:
            raise ValueError(
                f"true labels {unknown} are not in labels {list(labels)}; pass every genre the test set holds."
            )


def classification_scores(
    y_true: Sequence[Any], y_pred: Sequence[Any], labels: Sequence[Any] | None = None
) -> dict[str, float]:
    """Accuracy and support-weighted precision/recall/F1 (sklearn, ``zero_division=0``).

    Returns keys ``accuracy, precision, recall, f1, n``.
    """
    _validate_labels(y_true, y_pred, labels)
    precision, recall, f1, _ = precision_recall_fscore_support(
        y_true, y_pred, labels=None if labels is None else list(labels), average="weighted", zero_division=0
    )
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
        "n": len(y_true),
    }


def per_class_report(
    y_true: Sequence[Any], y_pred: Sequence[Any], labels: Sequence[Any] | None = None
) -> dict[str, Any]:
    """``sklearn.metrics.classification_report`` as a dict (``zero_division=0``)."""
    _validate_labels(y_true, y_pred, labels)
    return classification_report(
        y_true, y_pred, labels=None if labels is None else list(labels), output_dict=True, zero_division=0
    )


_NAMED_METRICS = ("accuracy", "precision", "recall", "f1")


def bootstrap_ci(
    y_true: Sequence[Any],
    y_pred: Sequence[Any],
    metric: str | Callable[[np.ndarray, np.ndarray], float],
    n: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
    labels: Sequence[Any] | None = None,
    groups: Sequence[Any] | None = None,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``metric`` over resampled predictions.

    Predictions are drawn with replacement ``n`` times (``np.random.RandomState(seed)``), the
    metric is recomputed on each resample, and the ``alpha/2`` and ``1 - alpha/2`` percentiles
    are returned. ``metric`` is a callable ``(y_true, y_pred) -> float`` or one of
    ``"accuracy", "precision", "recall", "f1"`` (weighted, as :func:`classification_scores`).

    ``groups`` (one label per prediction: the test clip of each mixture) resamples whole
    groups instead of predictions (a cluster bootstrap, as :func:`paired_difference`): the
    predictions of the mixtures cut from one clip are not independent.
    """
    _validate_labels(y_true, y_pred, labels)
    if n < 1:
        raise ValueError(f"bootstrap n must be >= 1, got {n}.")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"bootstrap alpha must be in (0, 1), got {alpha}.")
    if isinstance(metric, str) and metric not in _NAMED_METRICS:
        raise ValueError(f"unknown metric {metric!r}; use one of {_NAMED_METRICS} or a callable.")
    t = np.asarray(y_true)
    p = np.asarray(y_pred)
    codes, draws = _cluster_resamples(groups, len(t), n, seed)
    if isinstance(metric, str):
        stats = _resampled_scores(t, p, codes, draws, labels)[metric]
    else:
        # The items of each group, in item order: without groups (or with one per item, labelled in
        # item order) a resample is exactly the item bootstrap's.
        members = np.split(np.argsort(codes, kind="stable"), np.cumsum(np.bincount(codes))[:-1])
        resamples = (np.concatenate([members[g] for g in draw]) for draw in draws)
        stats = np.array([metric(t[i], p[i]) for i in resamples], dtype=np.float64)
    lo, hi = np.percentile(stats, [100.0 * alpha / 2.0, 100.0 * (1.0 - alpha / 2.0)])
    return float(lo), float(hi)


def _resampled_scores(
    t: np.ndarray, p: np.ndarray, codes: np.ndarray, draws: np.ndarray, labels: Sequence[Any] | None
) -> dict[str, np.ndarray]:
    """:func:`classification_scores`' accuracy, precision, recall and F1 of every resample, from confusion counts.

    A resample's confusion matrix is the sum of its drawn groups' matrices, so the ``n`` resamples cost a few
    array operations instead of ``n`` calls of sklearn (1000 resamples of 45 predictions: 68 s for the score
    stage's 16 intervals before). The formulas are sklearn's (weighted by true support, ``zero_division=0``, F1 =
    2 tp / (true + predicted)); tests/test_metrics.py checks them against it.
    """
    seen = sorted(set(t.tolist()) | set(p.tolist()), key=str)
    scored = seen if labels is None else list(labels)  # the classes sklearn averages over
    classes = scored + [c for c in seen if c not in set(scored)]  # then predictions of a class outside ``labels``
    k, m = len(classes), len(scored)
    index = {c: i for i, c in enumerate(classes)}
    cells = np.array([index[a] * k + index[b] for a, b in zip(t.tolist(), p.tolist())])
    n_groups = draws.shape[1]
    per_group = np.zeros((n_groups, k * k))
    np.add.at(per_group, (codes, cells), 1.0)
    drawn = np.zeros((draws.shape[0], n_groups))
    np.add.at(drawn, (np.arange(draws.shape[0])[:, None], draws), 1.0)
    matrix = (drawn @ per_group).reshape(-1, k, k)  # (n, true, predicted): integer counts, exact in float64
    accuracy = np.diagonal(matrix, axis1=1, axis2=2).sum(1) / matrix.sum((1, 2))
    tp = np.diagonal(matrix, axis1=1, axis2=2)[:, :m]
    true, predicted = matrix.sum(2)[:, :m], matrix.sum(1)[:, :m]
    support = true.sum(1)

    def ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
        return np.divide(num, den, out=np.zeros_like(num), where=den > 0)

    def weighted(per_class: np.ndarray) -> np.ndarray:
        return (per_class * true).sum(1) / support

    return {
        "accuracy": accuracy,
        "precision": weighted(ratio(tp, predicted)),
        "recall": weighted(ratio(tp, true)),
        "f1": weighted(ratio(2.0 * tp, true + predicted)),
    }


def confusion(y_true: Sequence[Any], y_pred: Sequence[Any], labels: Sequence[Any]) -> np.ndarray:
    """Confusion matrix (rows = true, columns = predicted) in ``labels`` order."""
    _validate_labels(y_true, y_pred, labels)
    return confusion_matrix(y_true, y_pred, labels=list(labels))
