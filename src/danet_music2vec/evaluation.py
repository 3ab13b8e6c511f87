"""Score the pipeline's outputs: separation of every test mixture, genre predictions per input.

Separation is measured at the STFT rate (where DANet works) for three systems on the
same mixtures: DANet, the oracle ideal ratio mask (upper bound) and a blind spectral
gate (non-learned floor). Classification is measured for three inputs of the same test
clips: clean music, the noisy mixture, and DANet's separated music.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from danet_music2vec.audio import load_audio, resample
from danet_music2vec.baselines import oracle_irm_estimate, spectral_gate_estimate
from danet_music2vec.data.mixing import render_mixture
from danet_music2vec.dsp import StftConfig
from danet_music2vec.metrics import (
    bootstrap_ci,
    classification_scores,
    confusion,
    global_scores,
    SeparationResult,
    separation_scores,
)

SYSTEMS = ("danet", "oracle_irm", "baseline")
INPUTS = ("clean", "mixture", "separated")
# metrics/score.json prefixes: DANet's numbers are the headline `separation.*`.
SYSTEM_PREFIX = {"danet": "separation", "oracle_irm": "separation.oracle_irm", "baseline": "separation.baseline"}


def score_separation(
    test_mixtures: pd.DataFrame,
    separated: pd.DataFrame,
    cfg: StftConfig,
    gate: dict[str, Any],
    silence_db: float,
    progress: bool = True,
) -> tuple[pd.DataFrame, dict[str, list[SeparationResult]]]:
    """Per-mixture table (one row per mixture and system) and the results grouped by system."""
    separated = separated.set_index("mixture_id")
    rows: list[dict[str, Any]] = []
    by_system: dict[str, list[SeparationResult]] = {system: [] for system in SYSTEMS}
    for row in tqdm(list(test_mixtures.itertuples()), desc="score", unit="mix", disable=not progress):
        rendered = render_mixture(row)
        rate = int(row.sample_rate)
        music, noise, mixture = (resample(x, rate, cfg.sample_rate) for x in (rendered.music, rendered.noise, rendered.mixture))
        reference = np.stack([music, noise])
        sep = separated.loc[row.mixture_id]
        danet = np.stack(
            [load_audio(sep[k], cfg.sample_rate, check_silence=False) for k in ("music_path", "noise_path")]
        )
        estimates = {
            "danet": _fit(danet, music.shape[0]),
            "oracle_irm": oracle_irm_estimate(mixture, music, noise, cfg),
            "baseline": spectral_gate_estimate(mixture, cfg, **gate),
        }
        for system, estimate in estimates.items():
            result = separation_scores(reference, estimate, mixture, silence_db=silence_db)
            by_system[system].append(result)
            rows.append(
                {"mixture_id": row.mixture_id, "system": system, "noise": "+".join(_category(c) for c in row.noise_clips),
                 "snr_db": row.snr_db} | result.to_dict()  # fmt: skip
            )
    return pd.DataFrame(rows), by_system


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
    predictions: pd.DataFrame, n_boot: int, seed: int, alpha: float
) -> tuple[dict[str, float], dict[str, pd.DataFrame]]:
    """Accuracy and weighted P/R/F1 with bootstrap intervals per input, and confusion tables."""
    labels = sorted(predictions["true_label"].unique())
    summary: dict[str, float] = {}
    tables: dict[str, pd.DataFrame] = {}
    for name in INPUTS:
        part = predictions[predictions["input"] == name]
        if part.empty:
            continue
        y_true, y_pred = part["true_label"].tolist(), part["predicted_label"].tolist()
        for key, value in classification_scores(y_true, y_pred, labels).items():
            summary[f"classification.{name}.{key}"] = value
        for metric in ("accuracy", "f1"):
            lo, hi = bootstrap_ci(y_true, y_pred, metric, n=n_boot, seed=seed, alpha=alpha, labels=labels)
            summary[f"classification.{name}.{metric}_ci_low"] = lo
            summary[f"classification.{name}.{metric}_ci_high"] = hi
        matrix = confusion(y_true, y_pred, labels)
        tables[name] = pd.DataFrame(matrix, index=labels, columns=labels)
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
