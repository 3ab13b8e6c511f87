"""fast_bss_eval against mir_eval on the score stage's own BSS Eval calls: the same figures (0.01 dB)? how much faster?

    python bench/bench_bss_eval.py [--mixtures 45]   (after `make repro`; writes bench/results/bss_eval.json)

Every test mixture is scored as the score stage scores it (``evaluation._score_mixture``: the separator's files, the
oracle IRM and the spectral gate at the STFT rate, the separator at the mixture's rate when ``score.full_band``), with
``metrics.bss_eval`` wrapped: each call the stage makes is also handed to fast_bss_eval, so both libraries see the
library's own references and estimates, nothing rebuilt here. The calls of one mixture, in the order the stage makes
them: the unprocessed mixture (the NSDR baseline), separator, oracle_irm, spectral_gate, then the full-band mixture
and separator_full_band.

mir_eval runs through ``metrics.bss_eval`` as the stage runs it (``bss_eval_sources``, compute_permutation=False,
512 taps, float64; its input checks, a few ms, included); fast_bss_eval's ``bss_eval_sources`` gets the same float64
arrays (as CPU torch tensors: its numpy backend raises under numpy >= 2, recorded as ``numpy_backend_error``) with
filter_length=512 and compute_permutation=False. Both run on one thread (``workers.single_threaded``, as
each scoring process does), in alternating order from call to call. Calls with a silent source (mir_eval not called)
are counted, not compared. Per call: the largest |difference| over both sources of SDR, SIR and SAR; the verdict
(``within_tolerance``) is on what the stage reports: every system's three figures and the baselines' SDR (see _summary).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import math
import sys
import time
from pathlib import Path
from typing import Any

import fast_bss_eval
import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import write_result  # noqa: E402

from danet_music2vec import metrics  # noqa: E402
from danet_music2vec.dsp import StftConfig  # noqa: E402
from danet_music2vec.evaluation import FULL_BAND, SYSTEMS, _score_mixture  # noqa: E402
from danet_music2vec.params import load_params  # noqa: E402
from danet_music2vec.workers import single_threaded  # noqa: E402

TOLERANCE_DB = 0.01
FILTER_LENGTH = 512  # mir_eval's bss_eval_sources: fixed 512-tap distortion filters
METRICS = ("sdr", "sir", "sar")
# metrics.bss_eval's calls for one mixture, in the order _score_mixture makes them.
CALLS = ("mixture", *SYSTEMS)
CALLS_FULL_BAND = ("mixture_full_band", FULL_BAND)


class Both:
    """Stands in for ``metrics.bss_eval``: mir_eval's result (the stage's own call) and fast_bss_eval's on the same arrays."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self._original = metrics.bss_eval

    def __call__(
        self, reference: np.ndarray, estimate: np.ndarray, silence_db: float = metrics.DEFAULT_SILENCE_DB, backend: str = "mir_eval"
    ) -> dict[str, Any]:
        assert backend == "mir_eval", "the stage's own call is mir_eval's (score.bss_eval's default)"
        ref, est = (np.asarray(x).astype(np.float64) for x in (reference, estimate))
        mir_first = len(self.calls) % 2 == 0
        fast, fast_times = None, (math.nan, math.nan)
        if not mir_first:
            fast, fast_times = self._fast(ref, est, silence_db)
        out, mir_times = _timed(lambda: self._original(ref, est, silence_db))
        if mir_first:
            fast, fast_times = self._fast(ref, est, silence_db)
        self.calls.append({"mir_eval": out, "fast_bss_eval": fast, "samples": int(ref.shape[1]),
                           "mir_eval_seconds": mir_times[0], "mir_eval_cpu_seconds": mir_times[1],
                           "fast_bss_eval_seconds": fast_times[0], "fast_bss_eval_cpu_seconds": fast_times[1]})  # fmt: skip
        return out

    @staticmethod
    def _fast(ref: np.ndarray, est: np.ndarray, silence_db: float) -> tuple[dict[str, np.ndarray] | None, tuple[float, float]]:
        if metrics._silent_sources(ref, est, silence_db):
            return None, (math.nan, math.nan)  # mir_eval is not called either
        # The torch backend (CPU, float64): the numpy one raises under numpy >= 2 (see numpy_backend_error).
        out, times = _timed(lambda: fast_bss_eval.bss_eval_sources(
            torch.from_numpy(ref), torch.from_numpy(est), filter_length=FILTER_LENGTH, compute_permutation=False))
        return dict(zip(METRICS, (x.numpy() for x in out))), times


def _timed(fn: Any) -> tuple[Any, tuple[float, float]]:
    """``fn()`` and its (wall, CPU) seconds: the CPU time is the fairer figure on a shared machine (one thread)."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, (time.perf_counter() - wall, time.process_time() - cpu)


def numpy_backend_error() -> str | None:
    """What fast_bss_eval's numpy backend says on a small random mixture (None if it works)."""
    rs = np.random.RandomState(0)
    ref = rs.randn(2, 4000)
    try:
        fast_bss_eval.bss_eval_sources(ref, ref + 0.1 * rs.randn(2, 4000), filter_length=FILTER_LENGTH, compute_permutation=False)
    except Exception as exc:  # noqa: BLE001 - recorded, not handled
        return f"{type(exc).__name__}: {exc}"
    return None


def _diffs(call: dict[str, Any]) -> dict[str, list[float]] | None:
    """|mir_eval - fast_bss_eval| per metric and source (inf where only one is finite), None for a silent call."""
    if call["mir_eval"]["silent"]:
        return None
    out = {}
    for m in METRICS:
        a, b = np.asarray(call["mir_eval"][m], dtype=np.float64), np.asarray(call["fast_bss_eval"][m], dtype=np.float64)
        d = np.abs(a - b)
        d[~(np.isfinite(a) & np.isfinite(b))] = np.inf
        out[m] = [float(x) for x in d]
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mixtures", type=int, default=None, help="the first N test mixtures (default: all)")
    args = parser.parse_args()
    params = load_params()
    cfg, gate, silence = StftConfig.from_params(params.stft), params.score.spectral_gate.model_dump(), params.score.silence_db
    full_band = params.score.full_band and params.separate.output_rate == "full"  # as stages/score.py
    mixtures = pd.read_parquet("data/mixtures.parquet")
    test = mixtures[mixtures["split"] == "test"]
    test = test if args.mixtures is None else test.head(args.mixtures)
    files = pd.read_parquet("data/separated/index.parquet").set_index("mixture_id")[["music_path", "noise_path"]]
    names = CALLS + (CALLS_FULL_BAND if full_band else ())

    both = Both()
    metrics.bss_eval = both  # separation_scores and mixture_baseline look it up at call time
    rows: list[dict[str, Any]] = []
    try:
        with single_threaded():  # torch.set_num_threads(1) and BLAS on one thread, as in a scoring process
            for _, row in test.iterrows():
                first = len(both.calls)
                results = _score_mixture((cfg, gate, silence, full_band, "mir_eval"), (row, tuple(files.loc[row.mixture_id])))
                calls = both.calls[first:]
                assert len(calls) == len(names), f"{row.mixture_id}: {len(calls)} bss_eval calls, expected {names}"
                for name, call in zip(names, calls):
                    _check_label(name, call, results)
                    diffs = _diffs(call)
                    rows.append({
                        "mixture_id": row.mixture_id, "call": name, "samples": call["samples"], "silent": diffs is None,
                        **{k: call[k] for k in ("mir_eval_seconds", "mir_eval_cpu_seconds", "fast_bss_eval_seconds",
                                                "fast_bss_eval_cpu_seconds")},
                        **{f"{m}_{src}_mir_eval": float(call["mir_eval"][m][i]) for m in METRICS for i, src in enumerate(metrics.SOURCE_NAMES)},
                        **{f"max_abs_diff_{m}": (max(diffs[m]) if diffs else None) for m in METRICS},
                        **{f"abs_diff_{m}_{src}": (diffs[m][i] if diffs else None) for m in METRICS for i, src in enumerate(metrics.SOURCE_NAMES)},
                    })  # fmt: skip
                print(row.mixture_id, {r["call"]: round(max(r[f"max_abs_diff_{m}"] or 0.0 for m in METRICS), 6)
                                       for r in rows[-len(names):]}, flush=True)  # fmt: skip
    finally:
        metrics.bss_eval = both._original
    write_result("bss_eval", {"numpy_backend_error": numpy_backend_error(), "backend": "torch (CPU, float64, one thread)"}
                 | _summary(pd.DataFrame(rows), names, len(test)))


def _check_label(name: str, call: dict[str, Any], results: dict[str, metrics.SeparationResult]) -> None:
    """The call named ``name`` gave the stage's figure for that system (the call order is as assumed)."""
    if call["mir_eval"]["silent"]:
        return
    sdr = float(call["mir_eval"]["sdr"][0])
    if name.startswith("mixture"):
        system = FULL_BAND if name == "mixture_full_band" else SYSTEMS[0]
        expected = results[system].sdr_mixture_music
    else:
        expected = results[name].sdr_music
    assert math.isnan(expected) or expected == sdr, f"call {name}: sdr {sdr} is not the stage's {expected}"


def _summary(table: pd.DataFrame, names: tuple[str, ...], n_mixtures: int) -> dict[str, Any]:
    """The verdict is on the figures the stage reports: SDR/SIR/SAR of every system, and the baselines' SDR (NSDR's).

    The baselines' SAR is not kept (``metrics.mixture_baseline`` returns the SDR only): the unprocessed mixture is
    exactly music + noise, so its artifact error is zero up to round-off and its SAR (+inf in exact arithmetic) is a
    round-off figure near 140 dB that no two implementations need agree on. It is reported, not judged.
    """
    scored = table[~table["silent"]]
    systems = scored[~scored["call"].str.startswith("mixture")]
    baselines = scored[scored["call"].str.startswith("mixture")]
    per_call = {}
    for name in names:
        part = table[table["call"] == name]
        per_call[name] = _stats(part[~part["silent"]]) | {"calls": len(part), "silent": int(part["silent"].sum()),
                                                          "samples": int(part["samples"].iloc[0])}  # fmt: skip
    baseline_sdr = float(baselines[[f"abs_diff_sdr_{s}" for s in metrics.SOURCE_NAMES]].to_numpy().max())
    overall = _stats(systems) | {"calls": int((~table["call"].str.startswith("mixture")).sum())}
    worst = scored.assign(worst=scored[[f"max_abs_diff_{m}" for m in METRICS]].max(axis=1)).nlargest(10, "worst")
    timing = _stats(scored)
    return {
        "what": "BSS Eval v3 of every call the score stage makes on the test mixtures: mir_eval vs fast_bss_eval",
        "versions": {lib: importlib.metadata.version(lib) for lib in ("mir_eval", "fast_bss_eval", "numpy", "scipy", "torch")},
        "filter_length": FILTER_LENGTH,
        "tolerance_db": TOLERANCE_DB,
        "mixtures": n_mixtures,
        "within_tolerance": bool(overall["within_tolerance"] and baseline_sdr <= TOLERANCE_DB),
        "systems": overall,
        "baseline_sdr_max_abs_diff": baseline_sdr,
        "baseline_sar_max_abs_diff": float(baselines[[f"abs_diff_sar_{s}" for s in metrics.SOURCE_NAMES]].to_numpy().max()),
        "baseline_sar_mir_eval_range": [float(baselines[[f"sar_{s}_mir_eval" for s in metrics.SOURCE_NAMES]].to_numpy().min()),
                                        float(baselines[[f"sar_{s}_mir_eval" for s in metrics.SOURCE_NAMES]].to_numpy().max())],
        "timing_all_calls": {k: v for k, v in timing.items() if "seconds" in k or "speedup" in k},
        "silent_calls": int(table["silent"].sum()),
        "per_call": per_call,
        "worst_calls": worst[["mixture_id", "call", *[f"abs_diff_{m}_{s}" for m in METRICS for s in metrics.SOURCE_NAMES],
                              *[f"{m}_{s}_mir_eval" for m in METRICS for s in metrics.SOURCE_NAMES]]].to_dict("records"),
        "per_mixture": [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
                        for r in table.drop(columns=[c for c in table if c.startswith("abs_diff_")]).to_dict("records")],
    }  # fmt: skip


def _stats(part: pd.DataFrame) -> dict[str, Any]:
    """Max and mean |difference| per metric (over sources and calls), mixtures over the tolerance, wall times."""
    out: dict[str, Any] = {}
    for m in METRICS:
        values = part[[f"abs_diff_{m}_{s}" for s in metrics.SOURCE_NAMES]].to_numpy(dtype=np.float64)
        out[f"max_abs_diff_{m}"] = float(values.max())
        out[f"mean_abs_diff_{m}"] = float(values.mean())
    worst = part[[f"max_abs_diff_{m}" for m in METRICS]].max(axis=1)
    out |= {"calls_over_tolerance": int((worst > TOLERANCE_DB).sum()), "within_tolerance": bool((worst <= TOLERANCE_DB).all())}
    for kind in ("", "cpu_"):
        mir, fast = float(part[f"mir_eval_{kind}seconds"].sum()), float(part[f"fast_bss_eval_{kind}seconds"].sum())
        out |= {f"mir_eval_{kind}seconds": mir, f"fast_bss_eval_{kind}seconds": fast,
                f"{kind}speedup": mir / fast if fast > 0 else None}  # fmt: skip
    return out


if __name__ == "__main__":
    main()
