"""Separator files side by side on the pipeline's test mixtures: GNSDR at 8 kHz (the paper) and at full band.

    python bench/bench_separators.py --separator shipped=src/danet_music2vec/pretrained/separator.pt \
        old=/path/to/old.pt [--snr 0] [--override chunk_frames=400 precision=bf16] [--name separators]

Run in a workspace whose `dvc repro mix` ran (data/mixtures.parquet and the audio it names). Every test mixture
is rendered (at --snr dB when given, else at the manifest's gains), separated with `Separator.separate` at its own
rate as `dm2v denoise` does, and scored with BSS Eval as the score stage does: at 8 kHz (output and sources
resampled) and at the mixture's full rate. Paired differences against the first separator come with 95% intervals
resampled by test clip. Writes bench/results/<name>.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import write_result  # noqa: E402

from danet_music2vec.audio import resample  # noqa: E402
from danet_music2vec.data.mixing import render_mixture  # noqa: E402
from danet_music2vec.metrics import global_scores, paired_difference, separation_scores  # noqa: E402
from danet_music2vec.separation import Separator  # noqa: E402

LOW_RATE = 8000


def score(separator: Separator, test: pd.DataFrame, snr: float | None) -> tuple[pd.DataFrame, float]:
    rows, seconds = [], 0.0
    for row in test.itertuples():
        r = render_mixture(row, snr_db=snr)
        rate = int(row.sample_rate)
        start = time.perf_counter()
        out = separator.separate(r.mixture, rate)
        seconds += time.perf_counter() - start
        music = resample(out.music, separator.output_sample_rate(rate), rate)[: len(r.music)]
        noise = r.mixture[: len(music)] - music
        full = separation_scores(np.stack([r.music, r.noise]), np.stack([music, noise]), r.mixture)
        low = [resample(x, rate, LOW_RATE) for x in (r.music, r.noise, r.mixture, music, noise)]
        n = min(len(x) for x in low)
        eight = separation_scores(np.stack([low[0][:n], low[1][:n]]), np.stack([low[3][:n], low[4][:n]]), low[2][:n])
        rows.append({"mixture_id": row.mixture_id, "clip": row.music_clip, "length": full.length,
                     "nsdr_8k": eight.nsdr_music, "nsdr_full": full.nsdr_music, "eight": eight, "full": full,
                     "audio_seconds": len(r.mixture) / rate})  # fmt: skip
    table = pd.DataFrame(rows)
    return table, float(table["audio_seconds"].sum() / seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--separator", nargs="+", required=True, help="NAME=PATH of a separator file; the first is the reference")
    parser.add_argument("--snr", type=float, default=None, help="re-mix every test mixture at this SNR (dB)")
    parser.add_argument("--override", nargs="*", default=[], help="inference settings for every separator, KEY=YAML")
    parser.add_argument("--name", default="separators")
    args = parser.parse_args()
    overrides = {k: yaml.safe_load(v) for k, v in (item.split("=", 1) for item in args.override)}
    test = pd.read_parquet("data/mixtures.parquet").query("split == 'test'")
    tables, result = {}, {}
    for name, path in (item.split("=", 1) for item in args.separator):
        separator = Separator.load(path, device="cpu", **overrides)
        table, x_real_time = score(separator, test, args.snr)
        tables[name] = table
        result[name] = {"path": path, "model_rate": separator.cfg.sample_rate, "x_real_time": x_real_time,
                        "gnsdr_8k": global_scores(list(table["eight"]))["gnsdr"],
                        "gnsdr_full_band": global_scores(list(table["full"]))["gnsdr"]}  # fmt: skip
        print(name, result[name], flush=True)
    reference = next(iter(tables))
    for name, table in tables.items():
        if name == reference:
            continue
        for key in ("nsdr_8k", "nsdr_full"):
            diff, lo, hi = paired_difference(table[key], tables[reference][key], weights=table["length"],
                                             groups=list(table["clip"]))  # fmt: skip
            result[name][f"{key}_vs_{reference}"] = {"mean": diff, "ci95": [lo, hi]}
    write_result(args.name, {"benchmark": "separator files on the test mixtures", "mixtures": len(test),
                             "snr_db": args.snr, "overrides": overrides, "separators": result})  # fmt: skip


if __name__ == "__main__":
    main()
