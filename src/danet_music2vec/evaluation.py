"""Score the pipeline's outputs: separation of every test mixture, genre predictions per input.

Separation is measured at the STFT rate (where the separator works) for three systems on the
same mixtures: the separator, the oracle ideal ratio mask (upper bound) and a blind spectral
gate (non-learned floor). With ``full_band``, the separator's output is also measured at its own
rate (22.05 kHz with ``separate.output_rate: full``) against the full-band sources, so the
report shows what a listener gets, the band above the STFT's Nyquist included. Classification is measured for the same
test clips along every path of :mod:`~danet_music2vec.evidence` (clean music, the noisy mixture, the
separated music through the clean-trained and the adapted classifier, the two combined, and the
product), each with the share of the noise's cost it wins back.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from danet_music2vec.audio import load_audio, resample
from danet_music2vec.references import oracle_irm_estimate, spectral_gate_estimate
from danet_music2vec.data.mixing import Rendered, render_mixture
from danet_music2vec.dsp import StftConfig
from danet_music2vec.evidence import SCORED
from danet_music2vec.metrics import (
    BssEvalBackend,
    bootstrap_ci,
    classification_scores,
    confusion,
    global_scores,
    mixture_baseline,
    SeparationResult,
    separation_scores,
)
from danet_music2vec.workers import Finished, item_key, map_items

if TYPE_CHECKING:  # only for annotations: scoring stored outputs needs neither model
    from danet_music2vec.evidence import GenreReader
    from danet_music2vec.separation import Separator

SYSTEMS = ("separator", "oracle_irm", "spectral_gate")  # the separator and its two references
FULL_BAND = "separator_full_band"  # the separator's output at its own rate, against the full-band sources
# The numbers the score and sweep stages also put on the MLflow parent run, so the UI compares experiments.
HEADLINE_METRICS = (
    "separation.gnsdr", "separation.gsir", "separation.gsar", "separation.oracle_irm.gnsdr", "separation.spectral_gate.gnsdr",
    "separation.full_band.gnsdr",
    *(f"classification.{name}.f1" for name in SCORED),
    "classification.clean.accuracy", "classification.mixture.accuracy", "classification.separated.accuracy",
    "classification.product.accuracy", "classification.product.recovered",
)  # fmt: skip
# metrics/score.json prefixes: the separator's numbers are the headline `separation.*`.
SYSTEM_PREFIX = {"separator": "separation", "oracle_irm": "separation.oracle_irm", "spectral_gate": "separation.spectral_gate",
                 FULL_BAND: "separation.full_band"}  # fmt: skip


def score_separation(
    test_mixtures: pd.DataFrame,
    separated: pd.DataFrame,
    cfg: StftConfig,
    gate: dict[str, Any],
    silence_db: float,
    progress: bool = True,
    full_band: bool = False,
    workers: int = 1,
    finished: Finished | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    backend: BssEvalBackend = "mir_eval",
) -> tuple[pd.DataFrame, dict[str, list[SeparationResult]]]:
    """Per-mixture table (one row per mixture and system) and the results grouped by system.

    ``full_band`` adds the system :data:`FULL_BAND`: the separator's files read at the mixture's
    rate and scored against its full-band sources (only for outputs above the STFT rate).
    ``workers``: processes scoring mixtures in parallel (:func:`~danet_music2vec.workers.map_items`);
    ``finished``: where scored mixtures are kept, so that a killed stage resumes (:func:`score_results`);
    ``on_progress(done, total)`` after each mixture; ``backend``: the BSS Eval library (``score.bss_eval``,
    :func:`~danet_music2vec.metrics.bss_eval`).
    """
    files = separated.set_index("mixture_id")[["music_path", "noise_path"]]
    items = [(row, tuple(files.loc[row.mixture_id])) for _, row in test_mixtures.iterrows()]
    context = (cfg, gate, silence_db, full_band, backend)
    # Hashing every file an item reads is only worth it when results are kept for a rerun.
    keys = None if finished is None else [item_key(repr(context), row.to_dict(), [*_sources(row), *paths]) for row, paths in items]
    rows: list[dict[str, Any]] = []
    by_system: dict[str, list[SeparationResult]] = {system: [] for system in SYSTEMS}
    if full_band:
        by_system[FULL_BAND] = []
    for (row, _), results in zip(items, map_items(_score_mixture, context, items, workers, "score", progress, finished, keys, on_progress)):
        for system, result in results.items():
            by_system[system].append(result)
            rows.append(_row(row, system, result))
    return pd.DataFrame(rows), by_system


def _sources(row: pd.Series) -> list[str]:
    """The audio files a test mixture is rendered from."""
    return [row.music_path, *row.noise_paths]


def score_results(folder: str) -> Finished:
    """Where the score stage keeps each scored mixture (system -> BSS Eval figures) until its outputs are written."""
    return Finished(folder, _encode_results, _decode_results)


def sweep_results(folder: str) -> Finished:
    """Where the sweep stage keeps each swept mixture (per SNR: BSS Eval figures and predicted labels)."""
    return Finished(
        folder,
        lambda per_snr: [[_encode_results(results), list(labels.items())] for results, labels in per_snr],
        lambda data: [(_decode_results(results), dict(labels)) for results, labels in data],
    )


def _encode_results(results: dict[str, SeparationResult]) -> list[list[Any]]:
    # Pairs, here and for the labels: JSON files are written key-sorted, and the tables keep the systems' order.
    return [[system, result.to_dict()] for system, result in results.items()]


def _decode_results(pairs: list[list[Any]]) -> dict[str, SeparationResult]:
    return {system: SeparationResult.from_dict(row) for system, row in pairs}


def _score_mixture(
    context: tuple[StftConfig, dict[str, Any], float, bool, BssEvalBackend], item: tuple[pd.Series, tuple[str, str]]
) -> dict[str, SeparationResult]:
    """One test mixture's separation scores, from the separator's files (``score_separation``'s work item)."""
    cfg, gate, silence_db, full_band, backend = context
    row, paths = item
    rendered = render_mixture(row)
    # Decoded once: at the mixture's rate (the full-band output's own) when that is scored too.
    rate = int(row.sample_rate) if full_band else cfg.sample_rate
    decoded = np.stack([load_audio(path, rate, check_silence=False) for path in paths])
    results = score_systems(rendered, int(row.sample_rate), resample(decoded, rate, cfg.sample_rate), cfg, gate, silence_db,
                            backend)  # fmt: skip
    if full_band:
        results[FULL_BAND] = score_full_band(rendered, decoded, silence_db, backend)
    return results


def score_full_band(
    rendered: Rendered, estimate: np.ndarray, silence_db: float, backend: BssEvalBackend = "mir_eval"
) -> SeparationResult:
    """BSS Eval of a ``(2, samples)`` estimate at the mixture's own rate, against the full-band sources."""
    reference = np.stack([rendered.music, rendered.noise])
    baseline = mixture_baseline(reference, rendered.mixture, silence_db, backend)
    return separation_scores(reference, _fit(estimate, reference.shape[1]), rendered.mixture, silence_db, baseline, backend)


def score_systems(
    rendered: Rendered,
    rate: int,
    separated: np.ndarray,
    cfg: StftConfig,
    gate: dict[str, Any],
    silence_db: float,
    backend: BssEvalBackend = "mir_eval",
) -> dict[str, SeparationResult]:
    """BSS Eval of the separator's ``(2, samples)`` estimate (at the STFT rate), the oracle IRM and the gate on one mixture."""
    music, noise, mixture = (resample(x, rate, cfg.sample_rate) for x in (rendered.music, rendered.noise, rendered.mixture))
    reference = np.stack([music, noise])
    estimates = {
        "separator": _fit(separated, music.shape[0]),
        "oracle_irm": oracle_irm_estimate(mixture, music, noise, cfg),
        "spectral_gate": spectral_gate_estimate(mixture, cfg, **gate),
    }
    baseline = mixture_baseline(reference, mixture, silence_db, backend)
    return {system: separation_scores(reference, est, mixture, silence_db, baseline, backend) for system, est in estimates.items()}


def _row(mixture: Any, system: str, result: SeparationResult, **extra: Any) -> dict[str, Any]:
    return {"mixture_id": mixture.mixture_id, "system": system, "noise": noise_names(mixture.noise_clips),
            "snr_db": mixture.snr_db} | extra | result.to_dict()  # fmt: skip


def noise_names(noise_clips: Iterable[str]) -> str:
    """A mixture's noises as ``plots/separation.csv`` names them: the clip names joined by ``+``."""
    return "+".join(_category(c) for c in noise_clips)


def _fit(estimate: np.ndarray, length: int) -> np.ndarray:
    """Trim or zero-pad (the last few samples of a resampled file) to the reference length."""
    out = np.zeros((estimate.shape[0], length), dtype=np.float32)
    n = min(length, estimate.shape[1])
    out[:, :n] = estimate[:, :n]
    return out


def _category(clip_id: str) -> str:
    return clip_id.rsplit("/", 1)[-1]


def separation_summary(results_by_system: dict[str, list[SeparationResult]]) -> dict[str, float]:
    """Flat ``separation.*`` keys for metrics/score.json."""
    summary: dict[str, float] = {}
    for system, results in results_by_system.items():
        for key, value in global_scores(results).items():
            summary[f"{SYSTEM_PREFIX[system]}.{key}"] = value
    return summary


def score_classification(
    predictions: pd.DataFrame, clips: pd.Series, n_boot: int, seed: int, alpha: float
) -> tuple[dict[str, float], dict[str, pd.DataFrame]]:
    """Accuracy and weighted P/R/F1 with bootstrap intervals per input (:data:`SCORED`), and confusion tables.

    ``clips`` is the music clip of every mixture, indexed by mixture id (data/mixtures.parquet's
    ``music_clip``). The intervals resample test clips, not predictions: the mixtures cut from
    one clip (and the clean music they share) are not independent. ``recovered`` is the share of the
    noise's cost a path wins back: (F1 - mixture F1) / (clean F1 - mixture F1).
    """
    labels = sorted(predictions["true_label"].unique())
    groups = predictions["mixture_id"].map(clips)
    if groups.isna().any():
        missing = sorted(predictions.loc[groups.isna(), "mixture_id"].unique())
        raise ValueError(
            f"no music clip for {len(missing)} predicted mixture(s) (e.g. {missing[0]}); pass the music_clip of every "
            "mixture of data/mixtures.parquet, indexed by mixture_id (rerun `dvc repro` if the predictions are newer)"
        )
    predictions = predictions.assign(clip=groups)
    summary: dict[str, float] = {}
    tables: dict[str, pd.DataFrame] = {}
    for name in SCORED:
        part = predictions[predictions["input"] == name]
        if part.empty:
            continue
        y_true, y_pred = part["true_label"].tolist(), part["predicted_label"].tolist()
        for key, value in classification_scores(y_true, y_pred, labels).items():
            summary[f"classification.{name}.{key}"] = value
        for metric in ("accuracy", "f1"):
            lo, hi = bootstrap_ci(
                y_true, y_pred, metric, n=n_boot, seed=seed, alpha=alpha, labels=labels, groups=part["clip"].tolist()
            )
            summary[f"classification.{name}.{metric}_ci_low"] = lo
            summary[f"classification.{name}.{metric}_ci_high"] = hi
        matrix = confusion(y_true, y_pred, labels)
        tables[name] = pd.DataFrame(matrix, index=labels, columns=labels)
    clean, mixture = summary.get("classification.clean.f1"), summary.get("classification.mixture.f1")
    if clean is not None and mixture is not None and clean > mixture:
        for name in SCORED:
            if f"classification.{name}.f1" in summary and name not in ("clean", "mixture", "clean_adapted"):
                summary[f"classification.{name}.recovered"] = (summary[f"classification.{name}.f1"] - mixture) / (clean - mixture)
    return summary, tables


def json_safe(values: dict[str, Any]) -> dict[str, Any]:
    """NaN (e.g. every mixture silent) becomes null: JSON has no NaN."""
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in values.items()}


def confusion_long(table: pd.DataFrame) -> pd.DataFrame:
    """One row per test clip (actual, predicted), the shape DVC's confusion template reads."""
    rows: Iterable[dict[str, str]] = (
        {"actual": actual, "predicted": predicted}
        for actual in table.index
        for predicted in table.columns
        for _ in range(int(table.loc[actual, predicted]))
    )
    return pd.DataFrame(list(rows), columns=["actual", "predicted"])


def snr_key(snr_db: float) -> str:
    """Metric-name tag of an input SNR: -5 -> ``snr_m5``, 2.5 -> ``snr_2.5``."""
    text = f"{abs(snr_db):g}"
    return f"snr_m{text}" if snr_db < 0 else f"snr_{text}"


def snr_sweep(
    test_mixtures: pd.DataFrame,
    separator: Separator,
    reader: GenreReader,
    snrs: Sequence[float],
    cfg: StftConfig,
    gate: dict[str, Any],
    silence_db: float,
    progress: bool = True,
    workers: int = 1,
    finished: Finished | None = None,
    models_key: str = "",
    on_progress: Callable[[int, int], None] | None = None,
    backend: BssEvalBackend = "mir_eval",
) -> tuple[pd.DataFrame, pd.DataFrame, dict[tuple[float, str], list[SeparationResult]]]:
    """Separate, score and classify every test mixture re-mixed at each input SNR in ``snrs``.

    The same music clips, noise clips and offsets as the manifest, only the noise gain
    changes, so the curves isolate the effect of the input SNR. Returns the separation
    table (one row per SNR, mixture and system, with ``input_snr_db``), the predictions
    (one row per SNR, mixture and input of :data:`SCORED`) and the results grouped by (SNR, system).
    ``workers``: processes sweeping mixtures in parallel (each gets the models once); ``finished``: where swept
    mixtures are kept so that a killed stage resumes (:func:`sweep_results`), keyed with ``models_key`` (what
    identifies the separator and the classifiers, e.g. their files' hashes); ``on_progress(done, total)`` after each
    mixture; ``backend``: the BSS Eval library (``score.bss_eval``).
    """
    rows: list[dict[str, Any]] = []
    predictions: list[dict[str, Any]] = []
    grouped: dict[tuple[float, str], list[SeparationResult]] = {(snr, s): [] for snr in snrs for s in SYSTEMS}
    items = [row for _, row in test_mixtures.iterrows()]
    context = (separator, reader, tuple(float(s) for s in snrs), cfg, gate, silence_db, backend)
    settings = repr((models_key, context[2:]))
    keys = None if finished is None else [item_key(settings, row.to_dict(), _sources(row)) for row in items]
    for row, per_snr in zip(items, map_items(_sweep_mixture, context, items, workers, "sweep", progress, finished, keys,
                                                      on_progress)):
        for snr, (results, labels) in zip(snrs, per_snr):
            for system, result in results.items():
                grouped[(float(snr), system)].append(result)
                rows.append(_row(row, system, result, input_snr_db=float(snr)))
            predictions += [
                {"input_snr_db": float(snr), "mixture_id": row.mixture_id, "input": name, "true_label": row.label,
                 "predicted_label": label}
                for name, label in labels.items()
            ]  # fmt: skip
    return pd.DataFrame(rows), pd.DataFrame(predictions), grouped


def _sweep_mixture(
    context: tuple[Separator, GenreReader, tuple[float, ...], StftConfig, dict[str, Any], float, BssEvalBackend],
    row: pd.Series,
) -> list[tuple[dict[str, SeparationResult], dict[str, str]]]:
    """One test mixture at every SNR: its separation scores and the label every path predicts (``snr_sweep``'s item)."""
    separator, reader, snrs, cfg, gate, silence_db, backend = context
    rate = int(row.sample_rate)
    out_rate = separator.output_sample_rate(rate)
    clean_proba = None  # the clean music does not depend on the SNR
    out = []
    for snr in snrs:
        rendered = render_mixture(row, snr_db=snr)
        music, noise, _ = separator.separate(rendered.mixture, rate)
        estimate = np.stack([resample(x, out_rate, cfg.sample_rate) for x in (music, noise)])
        results = score_systems(rendered, rate, estimate, cfg, gate, silence_db, backend)
        if clean_proba is None:
            clean_proba = reader.clean_probas(rendered.music, rate)
        probas = reader.scored(clean_proba, rendered.mixture, resample(music, out_rate, rate), rate)
        out.append((results, {name: reader.classes[int(np.argmax(p))] for name, p in probas.items()}))
    return out


def sweep_summary(
    predictions: pd.DataFrame,
    grouped: dict[tuple[float, str], list[SeparationResult]],
    clips: pd.Series,
    n_boot: int,
    seed: int,
    alpha: float,
) -> dict[str, float]:
    """Flat ``snr_<x>.separation.*`` / ``snr_<x>.classification.*`` keys, as metrics/score.json per input SNR.

    ``clips``: the music clip of every mixture, by mixture id, for intervals over test clips
    (:func:`score_classification`).
    """
    summary: dict[str, float] = {}
    for snr in sorted({snr for snr, _ in grouped}):
        key = snr_key(snr)
        by_system = {system: results for (s, system), results in grouped.items() if s == snr}
        values = separation_summary(by_system)
        values |= score_classification(predictions[predictions["input_snr_db"] == snr], clips, n_boot, seed, alpha)[0]
        summary |= {f"{key}.{k}": v for k, v in values.items()}
    return summary


def sweep_curves(summary: dict[str, float], snrs: Sequence[float]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two tables indexed by input SNR: GNSDR per system, and weighted F1 per classifier input."""
    gnsdr = pd.DataFrame(
        [{"snr_db": snr} | {s: summary.get(f"{snr_key(snr)}.{SYSTEM_PREFIX[s]}.gnsdr") for s in SYSTEMS} for snr in snrs]
    )
    f1 = pd.DataFrame(
        [{"snr_db": snr} | {i: summary.get(f"{snr_key(snr)}.classification.{i}.f1") for i in SCORED} for snr in snrs]
    )
    return gnsdr, f1


def noise_labels(splits: pd.DataFrame) -> dict[str, str]:
    """Category of every noise clip of data/splits.parquet, keyed as the ``noise`` column names it."""
    noise = splits[splits["kind"] == "noise"]
    return {_category(clip): label for clip, label in zip(noise["clip_id"], noise["label"])}


def gnsdr_by_noise(per_mixture: pd.DataFrame, noise_labels: dict[str, str], system: str = "separator") -> pd.DataFrame:
    """Length-weighted GNSDR of ``system`` per noise category (and input SNR when the table has one).

    ``noise_labels`` maps a noise clip's file stem (the ``noise`` column; ``a+b`` for two
    noises) to its category. A mixture with two noises counts for both categories.
    """
    part = per_mixture[(per_mixture["system"] == system) & ~per_mixture["silent"]].copy()
    part["category"] = part["noise"].str.split("+").map(lambda stems: sorted({noise_labels[s] for s in stems}))
    part = part.explode("category")
    keys = ["category"] + (["input_snr_db"] if "input_snr_db" in part else [])
    part["weighted"] = part["nsdr_music"] * part["length"]
    table = part.groupby(keys).agg(weighted=("weighted", "sum"), length=("length", "sum"), n=("mixture_id", "nunique"))
    table["gnsdr"] = table["weighted"] / table["length"]
    return table.reset_index()[keys + ["gnsdr", "n"]]
