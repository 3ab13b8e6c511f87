"""The score and sweep stages' per-mixture work with 1 and 2 worker processes: wall time, x real time, peak memory.

    python bench/bench_scoring_workers.py [--mixtures 6]   (after `make repro`; writes bench/results/scoring_workers.json)

Scores the first --mixtures test mixtures as the score stage does (BSS Eval of the separator's files, the oracle IRM
and the spectral gate, full band included) and sweeps them at two input SNRs as the sweep stage does (separation,
BSS Eval, every classification path). Every item runs on one thread wherever it runs, so both worker counts must give
the same numbers: the script checks it. x_real_time = seconds of test audio handled per wall second.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import PeakRss, write_result  # noqa: E402

from danet_music2vec.dsp import StftConfig  # noqa: E402
from danet_music2vec.evaluation import score_separation, snr_sweep  # noqa: E402
from danet_music2vec.evidence import GenreReader  # noqa: E402
from danet_music2vec.params import load_params  # noqa: E402
from danet_music2vec.separation import Separator  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mixtures", type=int, default=6)
    args = parser.parse_args()
    params = load_params()
    cfg, gate, silence = StftConfig.from_params(params.stft), params.score.spectral_gate.model_dump(), params.score.silence_db
    mixtures = pd.read_parquet("data/mixtures.parquet")
    test = mixtures[mixtures["split"] == "test"].head(args.mixtures)
    audio_seconds = float((test["num_samples"] / test["sample_rate"]).sum())
    separated = pd.read_parquet("data/separated/index.parquet")
    separator = Separator.load("models/separator.pt")
    reader = GenreReader.load("models/music2vec.pt", "models/music2vec_adapted.pt",
                              hop_seconds=params.music2vec.test_hop_seconds, device="cpu")  # fmt: skip
    snrs = [0.0, 10.0]
    runs, outputs = [], {}
    for workers in (1, 2):
        for name, work, seconds in (
            ("score", lambda: score_separation(test, separated, cfg, gate, silence, progress=False, full_band=True,
                                               workers=workers)[0], audio_seconds),  # fmt: skip
            ("sweep", lambda: snr_sweep(test, separator, reader, snrs, cfg, gate, silence, progress=False,
                                        workers=workers)[:2], audio_seconds * len(snrs)),  # fmt: skip
        ):
            with PeakRss() as rss:
                start = time.perf_counter()
                outputs[(name, workers)] = work()
                wall = time.perf_counter() - start
            runs.append({"stage": name, "workers": workers, "mixtures": len(test), "audio_seconds": seconds,
                         "wall_seconds": wall, "x_real_time": seconds / wall, "peak_rss_mib_main": rss.peak_mib})  # fmt: skip
            print(runs[-1], flush=True)
    pd.testing.assert_frame_equal(outputs[("score", 1)], outputs[("score", 2)])
    for a, b in zip(outputs[("sweep", 1)], outputs[("sweep", 2)]):
        pd.testing.assert_frame_equal(a, b)
    speedup = {s: next(r["wall_seconds"] for r in runs if r["stage"] == s and r["workers"] == 1)
               / next(r["wall_seconds"] for r in runs if r["stage"] == s and r["workers"] == 2) for s in ("score", "sweep")}  # fmt: skip
    write_result("scoring_workers", {"runs": runs, "speedup_2_workers": speedup, "same_numbers": True})


if __name__ == "__main__":
    main()
